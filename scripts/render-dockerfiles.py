#!/usr/bin/env python3
"""Write every service's Dockerfile from deploy/docker/Dockerfile.template and services.toml.

The ten images differ only in the service's name, package, port and whether it has
migrations, so they come from one template. Run it after editing the template or adding a
service; `--check` (run by the tests) fails when a committed Dockerfile is stale.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "docker" / "Dockerfile.template"

MIGRATIONS = """\
# Migrations travel with the image: `alembic upgrade head` runs from the WORKDIR below.
COPY {service}/alembic.ini /app/{service}/alembic.ini
COPY {service}/migrations/ /app/{service}/migrations/"""
NO_MIGRATIONS = "# {service} owns no database schema: there is nothing to migrate."


def render(service: str, spec: dict[str, object], template: str) -> str:
    migrations = MIGRATIONS if spec.get("schema") else NO_MIGRATIONS
    values = {
        "migrations": migrations.format(service=service),
        "service": service,
        "package": str(spec["package"]),
        "port": str(spec["port"]),
    }
    text = template
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise SystemExit(f"{TEMPLATE}: unknown placeholder left in the {service} Dockerfile")
    return text


def rendered_dockerfiles() -> dict[Path, str]:
    services = tomllib.loads((ROOT / "services.toml").read_text())["services"]
    template = TEMPLATE.read_text()
    return {
        ROOT / name / "Dockerfile": render(name, spec, template) for name, spec in services.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="only report Dockerfiles that differ; write nothing"
    )
    args = parser.parse_args()
    stale = []
    for path, text in rendered_dockerfiles().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print("stale (run scripts/render-dockerfiles.py): " + ", ".join(map(str, stale)))
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ten Dockerfiles: hadolint-clean, rendered from the one template, multi-stage on a
pinned slim Python, only the service's locked runtime dependencies, shared/ vendored in,
a fixed non-root user, a liveness HEALTHCHECK, uvicorn (uvloop, httptools, workers from
the environment) stopped gracefully, migrations on board — and nothing secret."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from flow_shared.http import SERVER_KEEPALIVE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, dict[str, object]] = tomllib.loads((ROOT / "services.toml").read_text())[
    "services"
]
BIN = Path(sys.executable).parent
PYTHON_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")
UV_IMAGE = re.compile(r"^ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+$")
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL|AMQP_URL|REDIS_URL", re.I)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions with continuation lines joined and comments dropped, split by FROM."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name, []))
        else:
            stages[-1].instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return stages


def dockerfile(service: str) -> list[Stage]:
    return parse_dockerfile((ROOT / service / "Dockerfile").read_text())


def env_values(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            values[name] = value
    return values


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"not the exec (JSON) form: {arguments}"
    return [str(part) for part in parsed]


def test_hadolint_passes_on_every_dockerfile() -> None:
    paths = [str(ROOT / service / "Dockerfile") for service in SERVICES]
    result = subprocess.run(
        [str(BIN / "hadolint"), *paths], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_dockerfiles_are_rendered_from_the_template() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render-dockerfiles.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", list(SERVICES))
def test_builds_from_pinned_images_in_stages(service: str) -> None:
    stages = dockerfile(service)
    assert len(stages) >= 2
    bases = [stage.base for stage in stages]
    assert all(PYTHON_BASE.match(b) or UV_IMAGE.match(b) for b in bases), bases
    # The build and runtime stages share one exact Python, so the venv's links stay valid.
    assert len({b for b in bases if PYTHON_BASE.match(b)}) == 1
    assert PYTHON_BASE.match(stages[-1].base)


@pytest.mark.parametrize("service", list(SERVICES))
def test_installs_only_the_locked_runtime_dependencies_and_vendors_shared(service: str) -> None:
    build = next(stage for stage in dockerfile(service) if stage.name == "build")
    copies = build.all("COPY")
    assert "shared/ shared/" in copies
    assert f"{service}/src/ {service}/src/" in copies
    assert "pyproject.toml uv.lock ./" in copies
    syncs = [run for run in build.all("RUN") if run.startswith("uv sync")]
    assert syncs
    for sync in syncs:
        flags = sync.split()
        assert {"--frozen", "--no-dev"} <= set(flags), sync
        assert flags[flags.index("--package") + 1] == f"flow-{service}"
    assert "--no-editable" in syncs[-1].split()  # installed into the venv, not linked
    # The package exists in the lock file, so `--frozen --package` can resolve it.
    assert f'name = "flow-{service}"' in (ROOT / "uv.lock").read_text()

    runtime = dockerfile(service)[-1]
    assert "--from=build /opt/venv /opt/venv" in runtime.all("COPY")
    assert env_values(runtime)["PATH"].startswith("/opt/venv/bin:")


@pytest.mark.parametrize("service", list(SERVICES))
def test_runs_as_a_fixed_non_root_user(service: str) -> None:
    runtime = dockerfile(service)[-1]
    [user] = runtime.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0
    [create] = [run for run in runtime.all("RUN") if "useradd" in run]
    assert f"--uid {uid}" in create
    assert f"--gid {gid}" in create
    # Nothing runs after USER as another user, and USER comes after every RUN.
    keywords = [i.keyword for i in runtime.instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")


@pytest.mark.parametrize("service", list(SERVICES))
def test_serves_with_uvicorn_and_stops_gracefully(service: str) -> None:
    spec = SERVICES[service]
    runtime = dockerfile(service)[-1]
    env = env_values(runtime)
    assert env["PORT"] == str(spec["port"])
    assert env["SERVICE_NAME"] == service
    assert runtime.all("EXPOSE") == [str(spec["port"])]
    assert runtime.all("STOPSIGNAL") == ["SIGTERM"]

    [cmd] = runtime.all("CMD")
    shell, flag, script = exec_form(cmd)
    assert (shell, flag) == ("sh", "-c")
    words = shlex.split(script)
    # exec: uvicorn is PID 1 and gets SIGTERM itself.
    assert words[:3] == ["exec", "uvicorn", f"{spec['package']}.main:create_app"]
    options = dict(zip(words[3:], [*words[4:], ""], strict=True))
    assert options["--loop"] == "uvloop"
    assert options["--http"] == "httptools"
    assert options["--workers"] == "$WEB_CONCURRENCY"
    assert options["--port"] == "$PORT"
    assert options["--host"] == "0.0.0.0"  # noqa: S104 (inside its own container)
    assert int(options["--timeout-graceful-shutdown"]) > 0
    # Idle connections outlive every Flow client pool's (flow_shared.http).
    assert int(options["--timeout-keep-alive"]) == SERVER_KEEPALIVE_SECONDS
    assert "--factory" in words
    assert "--no-proxy-headers" in words


@pytest.mark.parametrize("service", list(SERVICES))
def test_healthcheck_probes_liveness(service: str) -> None:
    runtime = dockerfile(service)[-1]
    [healthcheck] = runtime.all("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    probe = exec_form(command)
    assert probe[:2] == ["python", "-c"]  # slim images have no curl
    assert "/health/live" in probe[2]
    assert "os.environ['PORT']" in probe[2]
    assert "--timeout=" in options
    assert "--interval=" in options


@pytest.mark.parametrize("service", list(SERVICES))
def test_migrations_are_in_the_image(service: str) -> None:
    runtime = dockerfile(service)[-1]
    copies = runtime.all("COPY")
    workdir = runtime.all("WORKDIR")[-1]
    if SERVICES[service].get("schema"):
        assert f"{service}/alembic.ini {workdir}/alembic.ini" in copies
        assert f"{service}/migrations/ {workdir}/migrations/" in copies
        assert (ROOT / service / "alembic.ini").is_file()
    else:
        assert not [c for c in copies if "migrations" in c or "alembic" in c]


@pytest.mark.parametrize("service", list(SERVICES))
def test_no_secret_is_baked_in(service: str) -> None:
    for stage in dockerfile(service):
        for name in [*env_values(stage), *(a.split("=")[0] for a in stage.all("ARG"))]:
            assert not SECRET_NAME.search(name), f"{service}: {name} in the image"
        for source in stage.all("COPY"):
            assert ".env" not in source
            assert ".pem" not in source


def test_build_context_leaves_secrets_and_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".env.*", "*.pem", ".git", ".venv", "var"} <= ignored
    assert not [line for line in ignored if line.startswith("!")]

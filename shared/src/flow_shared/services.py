"""The fleet as services.toml describes it: every service's name, port, package, schema
and the services allowed to call its /internal routes. flowctl, the Kubernetes renderer
and the test fleet all read it through here."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


def short_name(name: str) -> str:
    """A service's suffix of its per-service variables: order-service -> ORDER."""
    return name.removesuffix("-service").replace("-", "_").upper()


@dataclass(frozen=True)
class ServiceSpec:
    """One entry of services.toml."""

    name: str
    port: int
    package: str
    schema: str | None
    callers: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        """The suffix of its per-service variables (SERVICE_KEY_<SHORT>, ...)."""
        return short_name(self.name)

    @property
    def url_variable(self) -> str:
        return self.name.replace("-", "_").upper() + "_URL"


def load_service_specs(root: Path) -> list[ServiceSpec]:
    """Every service of the repository at `root`, in services.toml's order."""
    data = tomllib.loads((root / "services.toml").read_text())
    return [
        ServiceSpec(
            name=name,
            port=int(spec["port"]),
            package=str(spec["package"]),
            schema=spec.get("schema"),
            callers=list(spec.get("callers", [])),
        )
        for name, spec in data["services"].items()
    ]

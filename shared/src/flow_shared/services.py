"""The fleet as services.toml describes it: every service's name, port, package, schema,
the services allowed to call its /internal routes and the gateway route prefixes it owns.
flowctl, the renderers and the test fleet read the file through here; the services
themselves read the generated copy, flow_shared.fleet_table (their images hold no
services.toml)."""

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
    # The gateway's `/api/v1/<prefix>/...` prefixes this service owns (SPEC, "Gateway").
    routes: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        """The suffix of its per-service variables (SERVICE_KEY_<SHORT>, ...)."""
        return short_name(self.name)

    @property
    def url_field(self) -> str:
        """Its URL's settings field (order-service -> order_service_url)."""
        return self.name.replace("-", "_") + "_url"

    @property
    def url_variable(self) -> str:
        return self.url_field.upper()

    @property
    def local_url(self) -> str:
        """Where it listens on this machine at its own port (`make up`'s default)."""
        return f"http://127.0.0.1:{self.port}"


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
            routes=list(spec.get("routes", [])),
        )
        for name, spec in data["services"].items()
    ]

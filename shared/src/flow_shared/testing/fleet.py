"""An isolated Flow fleet: the real services, started by scripts/flowctl.py exactly as
`make up` starts them, on ports of their own, with their own database, AMQP vhost,
Redis key prefix and keys/run/log directories, so several fleets (an end-to-end
session, a benchmark, a developer's `make up`) share one machine without meeting.

    with IsolatedFleet(label="bench", port_offset=21000, overrides={...}) as fleet:
        httpx.get(fleet.gateway + "/health/ready")

`stop()` (or leaving the `with`) stops the processes and removes everything the
fleet created: database, vhost, Redis keys and, unless kept, its directory.

The fleet's AMQP_URL is the broker admin's (guest) on the fleet's vhost: `flowctl up`
provisions every event service's own broker user there (flow_shared.events.access) and
starts each service as that user, so every end-to-end test runs under the production
broker permissions. (Broker users are global and their rights per vhost: fleets side
by side share the users, with the same passwords from .env.example.)
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from flow_shared.provisioning import drop_database
from flow_shared.services import ServiceSpec, load_service_specs
from flow_shared.testing.envfiles import parse_env
from flow_shared.testing.infra import create_vhost, delete_vhost, repo_root

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_BASE_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ADMIN_EMAIL = "admin@flow.local"


def render_env_file(template: str, overrides: Mapping[str, str]) -> str:
    """`template` (the text of .env.example) with every overridden key replaced, so each
    setting appears once and the file stays readable."""
    lines = [
        raw
        for raw in template.splitlines()
        if raw.lstrip().startswith("#") or raw.partition("=")[0].strip() not in overrides
    ]
    lines += [f"{key}={value}" for key, value in overrides.items()]
    return "\n".join(lines) + "\n"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts connections on the port, or a server could not listen on it."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        pass
    # A client socket on the port (connected or in TIME_WAIT) answers nothing but still
    # makes uvicorn's bind fail; try the bind as uvicorn does it (SO_REUSEADDR).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def ephemeral_port_range() -> range:
    """The ports the kernel hands out to outgoing connections (Linux), end included."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default
    return range(int(low), int(high) + 1)


def descendant_pids(pid: int) -> list[int]:
    """`pid` and every process below it (uvicorn's workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: split after the last ')'.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
    found = [pid]
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


class IsolatedFleet:
    """The whole fleet for one run; see the module docstring."""

    def __init__(
        self,
        *,
        label: str,
        port_offset: int,
        overrides: Mapping[str, str] | None = None,
        work_dir: Path | None = None,
        keep_work_dir: bool = False,
        admin_dsn: str = DEFAULT_ADMIN_DSN,
        amqp_base_url: str = DEFAULT_AMQP_BASE_URL,
        redis_url: str = DEFAULT_REDIS_URL,
        root: Path | None = None,
    ) -> None:
        if not label.replace("_", "").isalnum() or not label.islower():
            raise ValueError(f"label must be lower-case letters, digits and _: {label!r}")
        self.root = root or repo_root()
        self.label = label
        self.port_offset = port_offset
        suffix = uuid.uuid4().hex[:8]
        self.database = f"flow_{label}_{suffix}"
        self.vhost = f"flow-{label.replace('_', '-')}-{suffix}"
        self.redis_prefix = f"flow{label.replace('_', '')}:{suffix}:"
        self.redis_url = redis_url
        self.admin_dsn = admin_dsn
        self.amqp_url = amqp_base_url.rstrip("/") + "/" + urllib.parse.quote(self.vhost, safe="")
        self.admin_email = ADMIN_EMAIL
        self.admin_password = f"{label}-admin-" + secrets.token_urlsafe(12)
        self._owns_work_dir = work_dir is None
        self.keep_work_dir = keep_work_dir
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix=f"flow-{label}-"))
        self.services = load_service_specs(self.root)
        self.overrides: dict[str, str] = {
            "ENVIRONMENT": "test",
            "POSTGRES_DB": self.database,
            "POSTGRES_ADMIN_DSN": admin_dsn,
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": self.redis_prefix,
            "JWT_KEYS_DIR": str(self.keys_dir),
            "FLOW_RUN_DIR": str(self.run_dir),
            "FLOW_LOG_DIR": str(self.log_dir),
            "BOOTSTRAP_ADMIN_EMAIL": self.admin_email,
            "BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            **(overrides or {}),
        }
        self._vhost_created = False
        self._started = False

    # --- where things are ----------------------------------------------------------------

    @property
    def keys_dir(self) -> Path:
        return self.work_dir / "keys"

    @property
    def run_dir(self) -> Path:
        return self.work_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "log"

    @property
    def env_file(self) -> Path:
        return self.work_dir / f"{self.label}.env"

    def spec(self, name: str) -> ServiceSpec:
        return next(s for s in self.services if s.name == name)

    def port(self, name: str) -> int:
        return self.spec(name).port + self.port_offset

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    @property
    def gateway(self) -> str:
        return self.url("api-gateway")

    @property
    def user_service(self) -> str:
        return self.url("user-service")

    @property
    def admin_service(self) -> str:
        return self.url("admin-service")

    @property
    def database_dsn(self) -> str:
        """The fleet's database as the admin (superuser) role: for checks and seeding only."""
        return self.admin_dsn.rsplit("/", 1)[0] + "/" + self.database

    def setting(self, key: str) -> str | None:
        """A setting as the services see it (overrides over .env.example)."""
        if key in self.overrides:
            return self.overrides[key]
        return parse_env(self.root / ".env.example").get(key)

    def database_url(self, schema: str) -> str:
        """A service's own login (role flow_<schema>), as flowctl gives it to the service."""
        password = self.setting(f"DB_PASSWORD_{schema.upper()}") or ""
        parsed = urllib.parse.urlparse(self.admin_dsn)
        host = parsed.hostname or "127.0.0.1"
        port = parsed.port or 5432
        quoted = urllib.parse.quote(password, safe="")
        return f"postgresql://flow_{schema}:{quoted}@{host}:{port}/{self.database}"

    # --- running it ------------------------------------------------------------------------

    def flowctl(self, *args: str, quiet: bool = False) -> None:
        """scripts/flowctl.py with this fleet's env file and port offset."""
        command = [
            sys.executable,
            str(self.root / "scripts" / "flowctl.py"),
            *args,
            "--env-file",
            str(self.env_file),
            "--port-offset",
            str(self.port_offset),
        ]
        if not quiet:
            subprocess.run(command, check=True, cwd=self.root)
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "flowctl.out").open("ab") as out:
            result = subprocess.run(command, cwd=self.root, stdout=out, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = (self.log_dir / "flowctl.out").read_text(errors="replace")[-8000:]
            raise RuntimeError(f"flowctl {' '.join(args)} failed:\n{tail}")

    def busy_ports(self) -> list[int]:
        return [self.port(s.name) for s in self.services if port_in_use(self.port(s.name))]

    def start(self, *, quiet: bool = False) -> IsolatedFleet:
        """Provision, migrate and start every service; on failure, clean up and raise.

        Refuses to start on ports something already answers on: flowctl's readiness
        check would take another fleet's answers for this one's."""
        try:
            ephemeral = ephemeral_port_range()
            clashing = [self.port(s.name) for s in self.services if self.port(s.name) in ephemeral]
            if clashing:
                # Any outgoing connection (thousands in a test run) may hold such a port,
                # and a service then fails to start now and then.
                raise RuntimeError(
                    f"ports {clashing} lie in the kernel's ephemeral range "
                    f"{ephemeral.start}-{ephemeral.stop - 1}; choose a port offset below it"
                )
            busy = self.busy_ports()
            if busy:
                raise RuntimeError(
                    f"ports {busy} are in use (another fleet on port offset "
                    f"{self.port_offset}?); choose another offset"
                )
            for directory in (self.keys_dir, self.run_dir, self.log_dir):
                directory.mkdir(parents=True, exist_ok=True)
            template = (self.root / ".env.example").read_text()
            self.env_file.write_text(render_env_file(template, self.overrides))
            self.env_file.chmod(0o600)  # it holds the fleet's passwords
            create_vhost(self.vhost)
            self._vhost_created = True
            self._started = True
            self.flowctl("up", quiet=quiet)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the services and remove everything this fleet created. Safe to repeat."""
        if self._started and self.env_file.exists():
            try:
                self.flowctl("down", quiet=True)
            except RuntimeError as exc:
                print(f"stopping the {self.label} fleet: {exc}", file=sys.stderr)
            self._started = False
        if self._vhost_created:
            delete_vhost(self.vhost)
            self._vhost_created = False
        asyncio.run(drop_database(self.admin_dsn, self.database))
        self._clear_redis()
        if self._owns_work_dir and not self.keep_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _clear_redis(self) -> None:
        from redis import Redis

        client = Redis.from_url(self.redis_url)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=self.redis_prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
        finally:
            client.close()

    def __enter__(self) -> IsolatedFleet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if os.environ.get("CI"):
            # Keep the evidence of a failed run in the CI output.
            self.print_log_tails(30)
        self.stop()

    # --- looking at it ---------------------------------------------------------------------

    def main_pid(self, name: str) -> int | None:
        """The service's uvicorn process, as recorded in the run directory (if alive)."""
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if self.spec(name).package.encode() in cmdline else None

    def service_pids(self) -> dict[str, list[int]]:
        """Every service's processes: its uvicorn process and its workers."""
        pids: dict[str, list[int]] = {}
        for service in self.services:
            pid = self.main_pid(service.name)
            if pid is not None:
                pids[service.name] = descendant_pids(pid)
        return pids

    def log_tails(self, lines: int = 30) -> Iterator[tuple[str, str]]:
        """(log name, its last lines) for each service log: evidence of a failed run."""
        for log in sorted(self.log_dir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            yield log.name, "\n".join(text)

    def print_log_tails(self, lines: int = 30) -> None:
        for name, tail in self.log_tails(lines):
            print(f"--- tail of {name} ---\n{tail}")

#!/usr/bin/env python3
"""Run the Flow fleet on this machine: provision, migrate, declare the event topology,
start, stop.

`make up` / `make down` / `make migrate` call this; the end-to-end tests call
it too, so they start the platform exactly as an operator does. The fleet is
described by services.toml; configuration comes from .env, else .env.example.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from flow_shared.config import join_caller_keys
from flow_shared.http import SERVER_KEEPALIVE_SECONDS
from flow_shared.services import ServiceSpec, load_service_specs

if TYPE_CHECKING:
    from flow_shared.events.access import BrokerAccount

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0


Service = ServiceSpec


def load_services() -> list[Service]:
    return load_service_specs(ROOT)


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


EXAMPLE_ENV_FILE = ROOT / ".env.example"


def is_production(config: dict[str, str]) -> bool:
    """As BaseServiceSettings decides it: ENVIRONMENT or FLOW_ENV says "production"."""
    return "production" in (config.get("ENVIRONMENT"), config.get("FLOW_ENV"))


def load_config(env_file: Path | None = None) -> dict[str, str]:
    """The .env file (or .env.example), overridden by the process environment.

    Never .env.example in production: its secrets are public, so a missing .env there is
    a mistake to stop on, not a default to fall back to."""
    if env_file is None:
        env_file = ROOT / ".env" if (ROOT / ".env").exists() else EXAMPLE_ENV_FILE
    config = read_env_file(env_file)
    config.update(
        {
            k: v
            for k, v in os.environ.items()
            if k in config or k.startswith("FLOW_") or k == "ENVIRONMENT"
        }
    )
    if is_production(config) and env_file.resolve() == EXAMPLE_ENV_FILE.resolve():
        raise SystemExit(
            "flowctl: production does not run on .env.example (its secrets are public); "
            "give --env-file (scripts/generate-api-keys.sh writes .env.production)"
        )
    return config


class Fleet:
    def __init__(self, config: dict[str, str], port_offset: int = 0) -> None:
        self.config = config
        self.services = load_services()
        self.port_offset = port_offset
        self.run_dir = self._path(config.get("FLOW_RUN_DIR", "var/run"))
        self.log_dir = self._path(config.get("FLOW_LOG_DIR", "var/log"))
        self.keys_dir = self._path(config.get("JWT_KEYS_DIR", "var/keys"))

    @staticmethod
    def _path(value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else ROOT / path

    def port(self, service: Service) -> int:
        return service.port + self.port_offset

    def url(self, service: Service) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    def by_name(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def database_url(self, service: Service, driver: str = "postgresql+asyncpg") -> str:
        assert service.schema is not None
        password = self.config[f"DB_PASSWORD_{service.schema.upper()}"]
        host = self.config.get("POSTGRES_HOST", "127.0.0.1")
        port = self.config.get("POSTGRES_PORT", "5432")
        database = self.config.get("POSTGRES_DB", "flow")
        return f"{driver}://flow_{service.schema}:{password}@{host}:{port}/{database}"

    def service_env(self, service: Service) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.config)
        env["SERVICE_NAME"] = service.name
        for other in self.services:
            env[other.url_variable] = self.url(other)
        user = self.by_name("user-service")
        env["JWKS_URL"] = f"{self.url(user)}/.well-known/jwks.json"
        env["JWT_KEYS_DIR"] = str(self.keys_dir)
        env["SERVICE_KEY"] = self.config[f"SERVICE_KEY_{service.short}"]
        env["TRUSTED_SERVICE_KEYS"] = join_caller_keys(
            {c: self.config[f"SERVICE_KEY_{self.by_name(c).short}"] for c in service.callers}
        )
        if service.schema:
            env["DATABASE_URL"] = self.database_url(service)
            env["DB_SCHEMA"] = service.schema
        # AMQP_URL in the config is the broker admin's; each service gets its own user
        # (flow_shared.events.access), and one that uses no events gets none.
        account = self.broker_account(service)
        if account is not None:
            from flow_shared.events.access import service_amqp_url

            env["AMQP_URL"] = service_amqp_url(self.config["AMQP_URL"], account)
        else:
            env.pop("AMQP_URL", None)
        return env

    def broker_account(self, service: Service) -> BrokerAccount | None:
        from flow_shared.events.access import BrokerAccount, broker_services, password_variable

        if service.name not in broker_services():
            return None
        variable = password_variable(service.name)
        if not self.config.get(variable):
            raise SystemExit(
                f"flowctl: {variable} is not set (its broker user's password); copy the "
                "AMQP_PASSWORD_* lines of .env.example into your env file"
            )
        return BrokerAccount(service.name, self.config[variable])

    # --- provisioning and migrations -------------------------------------------------

    def provision(self) -> None:
        self.provision_database()
        self.provision_broker()

    def provision_broker(self) -> None:
        """Every event service's broker user and rights, then the event topology, through
        the management API as the admin of AMQP_URL (flow_shared.events.access)."""
        from flow_shared.events.access import provision_broker, vhost_of

        admin_url = self.config["AMQP_URL"]
        parsed = urllib.parse.urlsplit(admin_url)
        accounts = [
            account
            for account in (self.broker_account(s) for s in self.services)
            if account is not None
        ]
        exchange = self.config.get("EVENTS_EXCHANGE", "flow.events")
        vhost = vhost_of(admin_url)
        print(f"provisioning broker users on vhost {vhost}")
        asyncio.run(
            provision_broker(
                self.config.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672"),
                urllib.parse.unquote(parsed.username or "guest"),
                urllib.parse.unquote(parsed.password or "guest"),
                vhost,
                accounts,
                amqp_url=admin_url,
                exchange=exchange,
            )
        )

    def replay_dead_letters(self, names: list[str]) -> None:
        """Put the services' dead letters back into their queues (as their own users)."""
        from flow_shared.events.consumer import replay_dead_letters
        from flow_shared.events.topology import fleet_topology

        topology = fleet_topology(self.config.get("EVENTS_EXCHANGE", "flow.events"))
        for name in names or [s.service for s in topology.subscriptions]:
            amqp_url = self.service_env(self.by_name(name))["AMQP_URL"]
            count = asyncio.run(replay_dead_letters(amqp_url, topology.subscription(name)))
            print(f"{name}: {count} dead letters back in {name}.events")

    def provision_database(self) -> None:
        from flow_shared.provisioning import SchemaGrant, provision, role_for_schema

        grants = [
            SchemaGrant(
                s.schema, role_for_schema(s.schema), self.config[f"DB_PASSWORD_{s.schema.upper()}"]
            )
            for s in self.services
            if s.schema
        ]
        asyncio.run(
            provision(
                self.config["POSTGRES_ADMIN_DSN"], self.config.get("POSTGRES_DB", "flow"), grants
            )
        )

    def migrate(self) -> None:
        for service in self.services:
            if not service.schema:
                continue
            print(f"migrating {service.name}")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "alembic",
                    "-c",
                    str(ROOT / service.name / "alembic.ini"),
                    "upgrade",
                    "head",
                ],
                cwd=ROOT / service.name,
                env=self.service_env(service),
                check=True,
            )

    def declare_event_topology(self) -> None:
        """Every consumer's queue, bound, before any service runs: events published before
        their consumer first starts wait for it (flow_shared.events.topology)."""
        from flow_shared.events.topology import declare_topology_at, fleet_topology

        exchange = self.config.get("EVENTS_EXCHANGE", "flow.events")
        print(f"declaring the event topology on {exchange}")
        asyncio.run(declare_topology_at(self.config["AMQP_URL"], fleet_topology(exchange)))

    def ensure_keys(self) -> None:
        """A local RS256 key pair on first run; production keys come from the key script."""
        from flow_shared.signing_keys import ensure_signing_key

        kid = ensure_signing_key(self.keys_dir)
        if kid is not None:
            print(f"generated JWT signing key {kid}")

    # --- processes -----------------------------------------------------------------------

    def pid_file(self, service: Service) -> Path:
        return self.run_dir / f"{service.name}.pid"

    def running_pid(self, service: Service) -> int | None:
        try:
            pid = int(self.pid_file(service).read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        # Only a process that is still ours counts: PIDs get reused.
        return pid if service.package.encode() in cmdline else None

    def _alive(self, service: Service) -> bool:
        try:
            pid = int(self.pid_file(service).read_text().strip())
        except (OSError, ValueError):
            return False
        return not _reap(pid)

    def start(self, service: Service) -> None:
        if self.running_pid(service) is not None:
            print(f"{service.name} already running")
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # WEB_CONCURRENCY_<SERVICE> (e.g. WEB_CONCURRENCY_INVENTORY) overrides the default.
        workers = self.config.get(
            f"WEB_CONCURRENCY_{service.short}", self.config.get("WEB_CONCURRENCY", "1")
        )
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            f"{service.package}.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port(service)),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--workers",
            workers,
            "--timeout-graceful-shutdown",
            "20",
            "--timeout-keep-alive",
            str(SERVER_KEEPALIVE_SECONDS),
            "--no-access-log",
            "--no-server-header",
            # Client-sent X-Forwarded-For must not pick the client address (rate limits
            # are per IP); the gateway trusts only TRUSTED_PROXY_HOPS of its own.
            "--no-proxy-headers",
        ]
        log = (self.log_dir / f"{service.name}.log").open("ab")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.service_env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file(service).write_text(str(process.pid))
        print(f"started {service.name} (pid {process.pid}) on :{self.port(service)}")

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                # Not running_pid(): just after fork the child's cmdline is still ours.
                if not self._alive(service):
                    log_file = self.log_dir / f"{service.name}.log"
                    raise SystemExit(
                        f"{service.name} exited during start-up; see {log_file}\n" + _tail(log_file)
                    )
                try:
                    with urllib.request.urlopen(
                        f"{self.url(service)}/health/ready", timeout=2
                    ) as r:
                        if r.status == 200:
                            pending.remove(service)
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.3)
        if pending:
            raise SystemExit("not ready in time: " + ", ".join(s.name for s in pending))

    def stop(self, service: Service) -> None:
        pid = self.running_pid(service)
        if pid is None:
            self.pid_file(service).unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)  # uvicorn drains in-flight requests, then shuts down
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and self.running_pid(service) == pid:
            if _reap(pid):
                break
            time.sleep(0.1)
        if self.running_pid(service) == pid:
            print(f"{service.name} did not stop in {STOP_TIMEOUT_SECONDS}s; killing")
            os.kill(pid, signal.SIGKILL)
        self.pid_file(service).unlink(missing_ok=True)
        print(f"stopped {service.name}")

    def up(self) -> None:
        self.ensure_keys()
        self.provision()
        self.migrate()
        # Identity first: every other service verifies tokens with its JWKS.
        for service in sorted(self.services, key=lambda s: s.name != "user-service"):
            self.start(service)
        self.wait_ready()
        print("\nFlow is up:")
        for service in self.services:
            print(f"  {service.name:<22} {self.url(service)}")
        print(f"  API docs               {self.url(self.by_name('api-gateway'))}/docs")
        print(f"  logs                   {self.log_dir}/<service>.log")

    def down(self) -> None:
        for service in reversed(self.services):
            self.stop(service)

    def restart(self, names: list[str]) -> None:
        """Restart some services (e.g. user-service after a signing-key rotation)."""
        chosen = [self.by_name(name) for name in names] or self.services
        for service in chosen:
            self.stop(service)
            self.start(service)
        self.wait_ready()


def _tail(log_file: Path, lines: int = 40) -> str:
    """The end of a service's log, so a failed start shows its cause where it is reported
    (CI removes the fleet's directory afterwards)."""
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _reap(pid: int) -> bool:
    """True once `pid` has exited (reaping it if it is our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "command",
        choices=[
            "up",
            "down",
            "start",
            "stop",
            "restart",
            "migrate",
            "provision",
            "topology",
            "dlq-replay",
            "keys",
            "status",
        ],
    )
    parser.add_argument(
        "services",
        nargs="*",
        help="for start/stop/restart/dlq-replay: which services (default all)",
    )
    parser.add_argument("--env-file", type=Path, default=None)
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("FLOW_PORT_OFFSET", "0"))
    )
    args = parser.parse_args()
    fleet = Fleet(load_config(args.env_file), port_offset=args.port_offset)
    if args.command == "up":
        fleet.up()
    elif args.command == "down":
        fleet.down()
    elif args.command == "restart":
        fleet.restart(args.services)
    elif args.command == "stop":
        for name in args.services:
            fleet.stop(fleet.by_name(name))
    elif args.command == "start":
        for name in args.services:
            fleet.start(fleet.by_name(name))
        fleet.wait_ready()
    elif args.command == "migrate":
        fleet.provision()
        fleet.migrate()
    elif args.command == "provision":
        fleet.provision()
    elif args.command == "topology":
        fleet.declare_event_topology()
    elif args.command == "dlq-replay":
        fleet.replay_dead_letters(args.services)
    elif args.command == "keys":
        fleet.ensure_keys()
    else:
        for service in fleet.services:
            pid = fleet.running_pid(service)
            print(f"{service.name:<22} {'running pid ' + str(pid) if pid else 'stopped'}")


if __name__ == "__main__":
    main()

"""`python -m flow_shared.provisioning`: the compose init container provisions the database,
its extensions (PostGIS, btree_gist), the schemas and their roles from environment
variables alone — and says nothing secret while doing it."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from flow_shared.provisioning import (
    ProvisioningConfigError,
    config_from_environment,
    drop_database,
    role_for_schema,
)

ADMIN_DSN = os.environ.get(
    "FLOW_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class ProvisioningTarget:
    database: str
    passwords: dict[str, str]  # schema -> password

    @property
    def environment(self) -> dict[str, str]:
        env = {
            "POSTGRES_ADMIN_DSN": ADMIN_DSN,
            "POSTGRES_DB": self.database,
            "DB_SCHEMAS": ",".join(self.passwords),
        }
        env.update({f"DB_PASSWORD_{s.upper()}": p for s, p in self.passwords.items()})
        return env


def run_entry_point(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only PATH from the outside: the entry point must need nothing else.
    env = {"PATH": os.environ.get("PATH", ""), **environment}
    return subprocess.run(
        [sys.executable, "-m", "flow_shared.provisioning"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _drop_roles(roles: list[str]) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        for role in roles:
            await connection.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await connection.close()


@pytest.fixture
def target() -> Iterator[ProvisioningTarget]:
    # Unique names: roles are cluster-wide and must not touch the roles `make up` uses.
    suffix = uuid.uuid4().hex[:8]
    schemas = [f"prov_{suffix}_orders", f"prov_{suffix}_users"]
    chosen = ProvisioningTarget(
        database=f"flow_provision_{suffix}",
        passwords={schema: secrets.token_hex(16) for schema in schemas},
    )
    yield chosen
    asyncio.run(drop_database(ADMIN_DSN, chosen.database))
    asyncio.run(_drop_roles([role_for_schema(s) for s in schemas]))


async def _inspect(database: str) -> dict[str, object]:
    connection = await asyncpg.connect(ADMIN_DSN.rsplit("/", 1)[0] + "/" + database)
    try:
        owners = {
            row["nspname"]: row["owner"]
            for row in await connection.fetch(
                "SELECT n.nspname, r.rolname AS owner FROM pg_namespace n "
                "JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname LIKE 'prov_%'"
            )
        }
        extensions = {
            row["extname"]: row["schema"]
            for row in await connection.fetch(
                "SELECT e.extname, n.nspname AS schema FROM pg_extension e "
                "JOIN pg_namespace n ON n.oid = e.extnamespace"
            )
        }
        roles = {
            row["rolname"]: (row["rolcanlogin"], row["rolsuper"], row["has_password"])
            for row in await connection.fetch(
                "SELECT rolname, rolcanlogin, rolsuper, rolpassword IS NOT NULL AS has_password "
                "FROM pg_authid WHERE rolname LIKE 'flow_prov_%'"
            )
        }
    finally:
        await connection.close()
    return {"owners": owners, "extensions": extensions, "roles": roles}


def test_provisions_database_schemas_and_roles_from_the_environment(
    target: ProvisioningTarget,
) -> None:
    first = run_entry_point(target.environment)
    assert first.returncode == 0, first.stderr
    # Running it again (every `docker compose up`) is harmless.
    second = run_entry_point(target.environment)
    assert second.returncode == 0, second.stderr

    state = asyncio.run(_inspect(target.database))
    assert state["owners"] == {s: role_for_schema(s) for s in target.passwords}
    # PostGIS, and btree_gist for GiST indexes mixing uuid with geography (inventory's
    # stock by product and location): migrations run as service roles, which cannot add them.
    extensions = state["extensions"]
    assert isinstance(extensions, dict)
    assert extensions.get("postgis") == "public"
    assert extensions.get("btree_gist") == "public"
    assert state["roles"] == {role_for_schema(s): (True, False, True) for s in target.passwords}
    for output in (first.stdout + first.stderr, second.stdout + second.stderr):
        assert target.database in output
        for password in target.passwords.values():
            assert password not in output


def test_missing_settings_are_named_without_values(target: ProvisioningTarget) -> None:
    environment = target.environment
    first_schema = next(iter(target.passwords))
    del environment[f"DB_PASSWORD_{first_schema.upper()}"]
    del environment["POSTGRES_ADMIN_DSN"]

    result = run_entry_point(environment)

    assert result.returncode == 2
    assert "POSTGRES_ADMIN_DSN" in result.stderr
    assert f"DB_PASSWORD_{first_schema.upper()}" in result.stderr
    for password in target.passwords.values():
        assert password not in result.stderr + result.stdout


def test_unsafe_schema_names_are_refused_before_connecting() -> None:
    with pytest.raises(ProvisioningConfigError, match="unsafe identifier"):
        config_from_environment(
            {
                "POSTGRES_ADMIN_DSN": ADMIN_DSN,
                "DB_SCHEMAS": 'users"; DROP DATABASE flow; --',
                'DB_PASSWORD_USERS"; DROP DATABASE FLOW; --': "x",
            }
        )


def test_database_defaults_to_flow() -> None:
    admin_dsn, database, grants = config_from_environment(
        {"POSTGRES_ADMIN_DSN": ADMIN_DSN, "DB_SCHEMAS": "users", "DB_PASSWORD_USERS": "pw"}
    )
    assert (admin_dsn, database) == (ADMIN_DSN, "flow")
    assert [(g.schema, g.role, g.password) for g in grants] == [("users", "flow_users", "pw")]

"""Create the database, its extensions (PostGIS, btree_gist), and one schema plus one
login role per service.

A role owns its own schema and has no rights on any other, so a service's SQL
cannot reach another service's tables even by mistake. Run as a superuser
(`make up`, the test fixtures, or the compose init container); idempotent.

`python -m flow_shared.provisioning` provisions from the environment (the compose
init container runs it): POSTGRES_ADMIN_DSN (a superuser), POSTGRES_DB (default
`flow`), DB_SCHEMAS (comma-separated) and DB_PASSWORD_<SCHEMA> for each schema.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class SchemaGrant:
    schema: str
    role: str
    password: str


def role_for_schema(schema: str) -> str:
    return f"flow_{schema}"


def _ident(name: str) -> str:
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"unsafe identifier: {name!r}")
    return '"' + name + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def provision(
    admin_dsn: str,
    database: str,
    grants: Sequence[SchemaGrant],
    *,
    reset_passwords: bool = True,
) -> None:
    """`reset_passwords=False` leaves an existing role's password alone (test sessions
    share the cluster's roles with a running `make up`)."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await admin.execute(f"CREATE DATABASE {_ident(database)}")
        for grant in grants:
            role_exists = await admin.fetchval(
                "SELECT 1 FROM pg_roles WHERE rolname = $1", grant.role
            )
            if role_exists and not reset_passwords:
                continue
            verb = "ALTER" if role_exists else "CREATE"
            await admin.execute(
                f"{verb} ROLE {_ident(grant.role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"PASSWORD {_literal(grant.password)}"
            )
        await admin.execute(f"REVOKE ALL ON DATABASE {_ident(database)} FROM PUBLIC")
        for grant in grants:
            await admin.execute(
                f"GRANT CONNECT, TEMPORARY ON DATABASE {_ident(database)} TO {_ident(grant.role)}"
            )
    finally:
        await admin.close()

    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + database
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        # GiST operator classes for plain types (uuid), for indexes that mix them with
        # PostGIS columns (inventory's stock by product and location).
        await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public")
        # The extensions live in public; nobody may create objects there.
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        for grant in grants:
            schema, role = _ident(grant.schema), _ident(grant.role)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
            await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
            await conn.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
            db = _ident(database)
            await conn.execute(
                f"ALTER ROLE {role} IN DATABASE {db} SET search_path = {schema}, public"
            )
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, database: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_ident(database)} WITH (FORCE)")
    finally:
        await admin.close()


class ProvisioningConfigError(ValueError):
    """The environment does not say what to provision; the message names what is missing."""


def config_from_environment(environ: Mapping[str, str]) -> tuple[str, str, list[SchemaGrant]]:
    """(admin DSN, database, grants) from POSTGRES_ADMIN_DSN, POSTGRES_DB, DB_SCHEMAS and
    DB_PASSWORD_<SCHEMA>. Error messages name variables, never their values."""
    admin_dsn = environ.get("POSTGRES_ADMIN_DSN", "").strip()
    database = environ.get("POSTGRES_DB", "").strip() or "flow"
    schemas = [s.strip() for s in environ.get("DB_SCHEMAS", "").split(",") if s.strip()]
    missing = [] if admin_dsn else ["POSTGRES_ADMIN_DSN"]
    if not schemas:
        missing.append("DB_SCHEMAS")
    grants = []
    for schema in schemas:
        variable = f"DB_PASSWORD_{schema.upper()}"
        password = environ.get(variable, "")
        if not password:
            missing.append(variable)
            continue
        try:
            _ident(schema)  # refuse an unsafe name before connecting
        except ValueError as exc:
            raise ProvisioningConfigError(f"DB_SCHEMAS: {exc}") from None
        grants.append(SchemaGrant(schema, role_for_schema(schema), password))
    if missing:
        raise ProvisioningConfigError("set " + ", ".join(missing))
    return admin_dsn, database, grants


def main(environ: Mapping[str, str] | None = None) -> int:
    try:
        admin_dsn, database, grants = config_from_environment(
            os.environ if environ is None else environ
        )
    except ProvisioningConfigError as exc:
        print(f"provisioning: {exc}", file=sys.stderr)
        return 2
    asyncio.run(provision(admin_dsn, database, grants))
    roles = ", ".join(grant.role for grant in grants)
    print(f"provisioned database {database}: PostGIS, schemas and roles {roles}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

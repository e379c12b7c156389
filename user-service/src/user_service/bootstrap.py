"""The first platform admin: created at start-up from BOOTSTRAP_ADMIN_EMAIL /
BOOTSTRAP_ADMIN_PASSWORD, or by hand with this command:

    DATABASE_URL=postgresql+asyncpg://flow_users:...@127.0.0.1:5432/flow \\
        python -m user_service.bootstrap --email admin@example.org [--full-name "Ada Admin"]

The password comes from BOOTSTRAP_ADMIN_PASSWORD when set, else from a prompt
(or one line of standard input when it is not a terminal). Running it again
for an existing e-mail changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from flow_shared.db import Database, create_engine
from flow_shared.errors import ServiceUnavailable
from flow_shared.unit_of_work import unit_of_work
from user_service import sessions
from user_service.config import Settings
from user_service.passwords import Passwords
from user_service.schemas import EMAIL_PATTERN, MIN_PASSWORD_LENGTH
from user_service.service import platform_admin, suspension

log = structlog.get_logger("user_service.bootstrap")


STARTUP_RETRY_INITIAL_SECONDS = 1.0
STARTUP_RETRY_MAX_SECONDS = 30.0
# What an unreachable database raises; anything else is a real error and stops start-up.
_UNREACHABLE = (OSError, TimeoutError, DBAPIError)


async def on_startup(app: FastAPI) -> None:
    """Start-up hook. A database that is not reachable yet does not stop the service
    (readiness reports it); the work is retried in the background until it succeeds."""
    app.state.startup_retry = None
    try:
        await prepare(app)
    except _UNREACHABLE as exc:
        log.warning("startup_tasks_deferred", error=type(exc).__name__)
        app.state.startup_retry = asyncio.create_task(_retry_prepare(app))


async def on_shutdown(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "startup_retry", None)
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _retry_prepare(app: FastAPI) -> None:
    delay = STARTUP_RETRY_INITIAL_SECONDS
    while True:
        await asyncio.sleep(delay)
        try:
            await prepare(app)
        except _UNREACHABLE as exc:
            log.warning("startup_tasks_deferred", error=type(exc).__name__)
            delay = min(delay * 2, STARTUP_RETRY_MAX_SECONDS)
        else:
            log.info("startup_tasks_done")
            return


async def prepare(app: FastAPI) -> None:
    """Put suspension marks and token epochs back into Redis, then create the bootstrap
    admin if configured."""
    settings: Settings = app.state.settings
    database: Database = app.state.database
    async with unit_of_work(database) as uow:
        session = uow.session
        try:
            restored = await suspension.restore_suspension_marks(session, app.state.redis, settings)
            if restored:
                log.info("suspension_marks_restored", organizations=restored)
            epochs = await sessions.restore_epoch_marks(session, app.state.redis, settings)
            if epochs:
                log.info("token_epochs_restored", users=epochs)
        except ServiceUnavailable:
            # Token checks fail closed while Redis is away, so starting is still safe.
            log.warning("suspension_marks_not_restored")
        if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
            await platform_admin.ensure_platform_admin(
                session,
                app.state.passwords,
                email=settings.bootstrap_admin_email,
                password=settings.bootstrap_admin_password.get_secret_value(),
                full_name=settings.bootstrap_admin_full_name,
            )


async def create_platform_admin(
    settings: Settings, *, email: str, password: str, full_name: str
) -> bool:
    if settings.database_url is None:
        raise SystemExit("DATABASE_URL is not set")
    database = Database(
        create_engine(
            settings.database_url.get_secret_value(),
            schema=settings.db_schema,
            application_name=f"{settings.service_name}-bootstrap",
            pool_size=1,
            max_overflow=0,
        )
    )
    try:
        async with unit_of_work(database) as uow:
            user = await platform_admin.ensure_platform_admin(
                uow.session,
                Passwords.from_settings(settings),
                email=email,
                password=password,
                full_name=full_name,
            )
    finally:
        await database.dispose()
    return user is not None


def _read_password() -> str:
    from_env = os.environ.get("BOOTSTRAP_ADMIN_PASSWORD")
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("Password for the platform admin: ")
    if getpass.getpass("Repeat it: ") != password:
        raise SystemExit("the passwords differ")
    return password


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m user_service.bootstrap", description="Create a Flow platform admin."
    )
    parser.add_argument("--email", required=True)
    parser.add_argument("--full-name", default="Flow Platform Admin")
    args = parser.parse_args(argv)
    email = args.email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise SystemExit(f"{args.email!r} is not an e-mail address")
    password = _read_password()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    # The admin comes from the arguments, whatever BOOTSTRAP_ADMIN_* the environment holds.
    settings = Settings(bootstrap_admin_email=None, bootstrap_admin_password=None)
    created = asyncio.run(
        create_platform_admin(settings, email=email, password=password, full_name=args.full_name)
    )
    print(f"platform admin {email} {'created' if created else 'already exists; nothing changed'}")


if __name__ == "__main__":
    main()

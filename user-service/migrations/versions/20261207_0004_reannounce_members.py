"""re-announce every member: user.registered again, with the role

notification-service's member projection learned roles (who hears org-admin and
platform-admin notifications: licence warnings, unfilled SOS requests) from
user.registered's `role`, which events published before that field did not carry: on a
platform upgraded from then, no existing admin would hear them. This writes one
user.registered per existing user into the outbox, with today's facts; every consumer
upserts from it (notification-service's members, admin-service's organisations), so a
second hearing changes nothing else. A new database has no users: nothing is written.

The payload is spelled out here, as user.registered (version 1) is today, rather than
built by the service's code, which may change after this revision.

Revision ID: users_0004
Revises: users_0003
Create Date: 2026-12-07
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "users_0004"
down_revision: str | None = "users_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "users"
EVENT_TYPE = "user.registered"


def reannounce(connection: sa.Connection) -> int:
    """Write a user.registered for every user; returns how many."""
    occurred_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    # The schema is this module's constant, never input.
    members = connection.execute(
        sa.text(
            f"SELECT u.id, u.email, u.full_name, u.role, o.id AS org_id, o.kind, o.name,"  # noqa: S608
            f" o.verified FROM {SCHEMA}.users u JOIN {SCHEMA}.organizations o"
            f" ON o.id = u.org_id ORDER BY u.created_at, u.id"
        )
    ).all()
    insert = sa.text(
        f"INSERT INTO {SCHEMA}.outbox (event_id, event_type, payload)"  # noqa: S608
        " VALUES (:event_id, :event_type, CAST(:payload AS jsonb))"
    )
    for member in members:
        event_id = uuid.uuid4()
        payload = {
            "id": str(event_id),
            "type": EVENT_TYPE,
            "version": 1,
            "occurred_at": occurred_at,
            "producer": "user-service",
            "correlation_id": None,
            "data": {
                "user_id": str(member.id),
                "email": member.email,
                "full_name": member.full_name,
                "role": member.role,
                "org_id": str(member.org_id),
                "org_kind": member.kind,
                "org_name": member.name,
                "org_verified": member.verified,
                "added_by": None,
            },
        }
        connection.execute(
            insert,
            {"event_id": event_id, "event_type": EVENT_TYPE, "payload": json.dumps(payload)},
        )
    return len(members)


def upgrade() -> None:
    reannounce(op.get_bind())


def downgrade() -> None:
    # Announcements cannot be taken back; nothing in the schema changed.
    pass

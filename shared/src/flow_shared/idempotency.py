"""`Idempotency-Key`: the same key and body replays the first answer; another body is 422.

Enforced by a constraint, not check-then-insert: the key's row is inserted in
the request's own transaction. A concurrent request with the same key blocks
on the unique index until the first transaction ends; then it either sees the
stored answer (first committed) or takes the key over (first rolled back).
A create request runs its work through `answer_once`, which does all of this.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Header
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.errors import UnprocessableEntity
from flow_shared.json_codec import ORJSONResponse, dumps, loads

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_TABLE = "idempotency_keys"
MAX_KEY_LENGTH = 200


class IdempotencyKeyReused(UnprocessableEntity):
    code = "idempotency-key-reused"
    title = "Idempotency key reused"


class InvalidIdempotencyKey(UnprocessableEntity):
    code = "invalid-idempotency-key"
    title = "Invalid idempotency key"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


@dataclass(frozen=True, slots=True)
class IdempotentAnswer:
    """What a request with an optional Idempotency-Key answers; kept as JSON so that a replay
    answers the same. `replayed`: this is the stored first answer (the route says so in
    `Idempotent-Replayed`)."""

    status_code: int
    body: Any
    replayed: bool

    def response(self, location: str | None = None) -> ORJSONResponse:
        """The answer as the route sends it, a replay exactly as the first (with
        `Location` when the route creates something)."""
        headers = {"Location": location} if location is not None else {}
        if self.replayed:
            headers[REPLAYED_HEADER] = "true"
        return ORJSONResponse(self.body, status_code=self.status_code, headers=headers)


REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_DESCRIPTION = "Same key and body replays the first answer; another body is 422."
# The request header, optional (a client that sends none gets no replay protection) or
# required (a caller whose retries must never act twice: a service, after a restart).
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description=_KEY_DESCRIPTION)
]
RequiredIdempotencyKey = Annotated[
    str, Header(alias="Idempotency-Key", description=_KEY_DESCRIPTION)
]


def define_idempotency_table(metadata: MetaData) -> Table:
    return Table(
        IDEMPOTENCY_TABLE,
        metadata,
        # The scope includes the caller's organisation: keys never collide across tenants.
        Column("scope", String(200), primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response", JSONB, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def request_fingerprint(value: Any) -> str:
    """SHA-256 of the canonical JSON of the request (sorted keys)."""

    return hashlib.sha256(
        orjson.dumps(loads(dumps(value)), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


def validate_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKey(
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters."
        )
    return key


async def claim_idempotency_key(
    session: AsyncSession, table: Table, *, scope: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Own `key` for this transaction (None), or get the answer to replay.

    Raises `IdempotencyKeyReused` (422) when the key was used with another body.
    """
    key = validate_key(key)
    inserted = await session.execute(
        insert(table)
        .values(scope=scope, key=key, fingerprint=fingerprint)
        .on_conflict_do_nothing(index_elements=[table.c.scope, table.c.key])
        .returning(table.c.key)
    )
    if inserted.first() is not None:
        return None
    # The row was committed by an earlier request (we waited for it if it was in flight).
    row = (
        await session.execute(
            select(table.c.fingerprint, table.c.status_code, table.c.response).where(
                table.c.scope == scope, table.c.key == key
            )
        )
    ).one()
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"This {IDEMPOTENCY_HEADER} was already used with a different request body."
        )
    if row.status_code is None:
        # Committed without an answer cannot happen through store_idempotent_response;
        # refuse rather than run the request twice.
        raise IdempotencyKeyReused(f"This {IDEMPOTENCY_HEADER} has no stored answer.")
    return StoredResponse(status_code=row.status_code, body=row.response)


async def store_idempotent_response(
    session: AsyncSession, table: Table, *, scope: str, key: str, status_code: int, body: Any
) -> None:
    """Keep the answer in the same transaction as the change it describes."""
    await session.execute(
        update(table)
        .where(table.c.scope == scope, table.c.key == validate_key(key))
        .values(status_code=status_code, response=loads(dumps(body)))
    )


async def answer_once(
    session: AsyncSession,
    table: Table,
    *,
    scope: str,
    key: str | None,
    request_body: Any,
    status_code: int,
    produce: Callable[[], Awaitable[Any]],
) -> IdempotentAnswer:
    """Run `produce` once per Idempotency-Key in `scope`; replay its answer otherwise.

    `request_body` is the request as JSON (its fingerprint tells a retry from a reuse);
    `produce` does the work and returns the body answered with `status_code`. The key is
    claimed in this transaction: a concurrent request with the same key waits for it to
    end and then replays the stored answer. A failed request stores nothing (its
    transaction rolls back), so it may be retried. Without a key, `produce` just runs.
    """
    if key is None:
        return IdempotentAnswer(status_code, await produce(), replayed=False)
    stored = await claim_idempotency_key(
        session, table, scope=scope, key=key, fingerprint=request_fingerprint(request_body)
    )
    if stored is not None:
        return IdempotentAnswer(stored.status_code, stored.body, replayed=True)
    body = await produce()
    await store_idempotent_response(
        session, table, scope=scope, key=key, status_code=status_code, body=body
    )
    return IdempotentAnswer(status_code, body, replayed=False)

"""The built-in sandbox card provider: stands in for a real one, with test tokens.

- `tok_visa` (last four 4242) and `tok_mastercard` (4444) are approved;
- `tok_declined` ("card declined") and `tok_insufficient_funds` are declined, as is any
  other token ("unknown token");
- `tok_timeout` is approved, but the answer is lost: the call waits the configured
  timeout and raises `ProviderTimeout`. Repeating it with the same idempotency key gets
  the recorded answer at once, exactly as a real provider's idempotency keys behave — so
  a retried event authorizes once.

Its books (`sandbox_charges`) and idempotency map (`sandbox_requests`) live in the
database, written in the sandbox's own transactions through its own connection pool:
what the provider did survives a rollback on our side, as it would at a real provider.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from flow_shared.clock import utcnow
from flow_shared.db import Database, create_engine
from flow_shared.unit_of_work import unit_of_work
from payment_service.config import Settings
from payment_service.models import SandboxCharge, SandboxChargeStatus, SandboxRequest
from payment_service.provider import Authorization, OperationResult, ProviderTimeout

APPROVED_TOKENS = {"tok_visa": "4242", "tok_mastercard": "4444", "tok_timeout": "0341"}
DECLINED_TOKENS = {"tok_declined": "card declined", "tok_insufficient_funds": "insufficient funds"}
LOST_ANSWER_TOKEN = "tok_timeout"  # noqa: S105 - a test token, not a secret

Perform = Callable[[AsyncSession], Awaitable[tuple[dict[str, Any], str | None]]]


class SandboxProvider:
    def __init__(
        self, engine: AsyncEngine, *, timeout_seconds: float, owns_engine: bool = False
    ) -> None:
        self._books = Database(engine)
        self._timeout_seconds = timeout_seconds
        self._owns_engine = owns_engine

    @property
    def name(self) -> str:
        return "sandbox"

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxProvider:
        assert settings.database_url is not None  # checked at start-up
        engine = create_engine(
            settings.database_url.get_secret_value(),
            schema=settings.db_schema,
            application_name=f"{settings.service_name}-sandbox",
            pool_size=settings.sandbox_pool_size,
            max_overflow=0,
        )
        return cls(engine, timeout_seconds=settings.provider_timeout_seconds, owns_engine=True)

    async def aclose(self) -> None:
        if self._owns_engine:
            await self._books.dispose()

    # -- the provider interface ------------------------------------------------------

    async def authorize(
        self, *, token: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> Authorization:
        async def perform(session: AsyncSession) -> tuple[dict[str, Any], str | None]:
            if token in DECLINED_TOKENS or token not in APPROVED_TOKENS:
                reason = DECLINED_TOKENS.get(token, "unknown token")
                return asdict(Authorization(approved=False, failure_reason=reason)), None
            now = utcnow()
            ref = f"sbx_ch_{uuid.uuid4().hex}"
            session.add(
                SandboxCharge(
                    ref=ref,
                    token=token,
                    last4=APPROVED_TOKENS[token],
                    currency=currency,
                    authorized_amount=amount,
                    captured_amount=Decimal("0"),
                    refunded_amount=Decimal("0"),
                    status=SandboxChargeStatus.AUTHORIZED,
                    created_at=now,
                    updated_at=now,
                )
            )
            answer = Authorization(approved=True, provider_ref=ref, last4=APPROVED_TOKENS[token])
            return asdict(answer), ref

        response, first_time = await self._once(idempotency_key, "authorize", perform)
        if first_time and token == LOST_ANSWER_TOKEN:
            await asyncio.sleep(self._timeout_seconds)
            raise ProviderTimeout(f"sandbox did not answer within {self._timeout_seconds}s")
        return Authorization(**response)

    async def capture(
        self, *, provider_ref: str, amount: Decimal, idempotency_key: str
    ) -> OperationResult:
        async def perform(session: AsyncSession) -> tuple[dict[str, Any], str | None]:
            charge = await self._charge(session, provider_ref)
            if charge is None or charge.status != SandboxChargeStatus.AUTHORIZED:
                return _refused(charge, "capture"), provider_ref
            if amount > charge.authorized_amount:
                return asdict(OperationResult(False, "amount exceeds authorization")), provider_ref
            charge.status = SandboxChargeStatus.CAPTURED
            charge.captured_amount = amount
            charge.updated_at = utcnow()
            return asdict(OperationResult(True)), provider_ref

        response, _ = await self._once(idempotency_key, "capture", perform)
        return OperationResult(**response)

    async def void(self, *, provider_ref: str, idempotency_key: str) -> OperationResult:
        async def perform(session: AsyncSession) -> tuple[dict[str, Any], str | None]:
            charge = await self._charge(session, provider_ref)
            if charge is not None and charge.status == SandboxChargeStatus.VOIDED:
                return asdict(OperationResult(True)), provider_ref
            if charge is None or charge.status != SandboxChargeStatus.AUTHORIZED:
                return _refused(charge, "void"), provider_ref
            charge.status = SandboxChargeStatus.VOIDED
            charge.updated_at = utcnow()
            return asdict(OperationResult(True)), provider_ref

        response, _ = await self._once(idempotency_key, "void", perform)
        return OperationResult(**response)

    async def refund(
        self, *, provider_ref: str, amount: Decimal, idempotency_key: str
    ) -> OperationResult:
        async def perform(session: AsyncSession) -> tuple[dict[str, Any], str | None]:
            charge = await self._charge(session, provider_ref)
            if charge is None or charge.status != SandboxChargeStatus.CAPTURED:
                return _refused(charge, "refund"), provider_ref
            if amount <= 0 or charge.refunded_amount + amount > charge.captured_amount:
                return asdict(OperationResult(False, "amount exceeds captured")), provider_ref
            charge.refunded_amount = charge.refunded_amount + amount
            if charge.refunded_amount == charge.captured_amount:
                charge.status = SandboxChargeStatus.REFUNDED
            charge.updated_at = utcnow()
            return asdict(OperationResult(True)), provider_ref

        response, _ = await self._once(idempotency_key, "refund", perform)
        return OperationResult(**response)

    # -- the sandbox's books -----------------------------------------------------------

    async def _once(
        self, idempotency_key: str, operation: str, perform: Perform
    ) -> tuple[dict[str, Any], bool]:
        """Run `perform` once per key: (its answer, True), or (the first answer, False)."""
        async with unit_of_work(self._books) as uow:
            session = uow.session
            # Same-key calls queue here, so the second one finds the first one's answer.
            await session.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended(idempotency_key, 0)))
            )
            stored = await session.scalar(
                select(SandboxRequest.response).where(
                    SandboxRequest.idempotency_key == idempotency_key
                )
            )
            if stored is not None:
                return stored, False
            response, charge_ref = await perform(session)
            await session.flush()
            await session.execute(
                pg_insert(SandboxRequest).values(
                    idempotency_key=idempotency_key,
                    operation=operation,
                    charge_ref=charge_ref,
                    response=response,
                    created_at=utcnow(),
                )
            )
        return response, True

    @staticmethod
    async def _charge(session: AsyncSession, ref: str) -> SandboxCharge | None:
        charge: SandboxCharge | None = await session.scalar(
            select(SandboxCharge).where(SandboxCharge.ref == ref).with_for_update()
        )
        return charge


def _refused(charge: SandboxCharge | None, operation: str) -> dict[str, Any]:
    reason = "no such charge" if charge is None else f"cannot {operation} a {charge.status} charge"
    return asdict(OperationResult(False, reason))

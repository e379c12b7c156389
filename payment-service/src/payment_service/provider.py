"""What payment-service needs from a card payment provider, and how a provider fails.

Every call carries an idempotency key: repeating a call with the same key (after a
timeout, or when an event is redelivered) returns the first answer and never charges or
authorizes twice. payment-service derives its keys from the order (`authorize:<order>`),
so a retry after a rolled-back transaction reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Authorization:
    approved: bool
    provider_ref: str | None = None
    last4: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OperationResult:
    succeeded: bool
    failure_reason: str | None = None


class ProviderError(Exception):
    """The provider could not be reached or did not answer properly: try again later."""


class ProviderTimeout(ProviderError):
    """No answer in time. The operation may have happened at the provider: repeat it with
    the same idempotency key to learn its outcome."""


class PaymentProvider(Protocol):
    @property
    def name(self) -> str: ...

    async def authorize(
        self, *, token: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> Authorization: ...

    async def capture(
        self, *, provider_ref: str, amount: Decimal, idempotency_key: str
    ) -> OperationResult: ...

    async def void(self, *, provider_ref: str, idempotency_key: str) -> OperationResult: ...

    async def refund(
        self, *, provider_ref: str, amount: Decimal, idempotency_key: str
    ) -> OperationResult: ...

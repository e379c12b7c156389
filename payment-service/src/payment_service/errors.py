"""payment-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import Conflict, DomainError, NotFound, ServiceUnavailable, Unauthorized


class PaymentNotFound(NotFound):
    code = "payment-not-found"
    title = "Payment not found"


class UnknownWebhookProvider(NotFound):
    code = "unknown-webhook-provider"
    title = "Unknown webhook provider"


class IllegalPaymentTransition(Conflict):
    code = "illegal-transition"
    title = "Illegal payment transition"


class NothingToRefund(Conflict):
    code = "nothing-to-refund"
    title = "Nothing to refund"


class RefundExceedsCaptured(Conflict):
    """Carries `refundable` (captured minus already refunded, a decimal string)."""

    code = "refund-exceeds-captured"
    title = "Refund exceeds what was captured"


class DepositExceedsCreditable(Conflict):
    code = "deposit-exceeds-creditable"
    title = "Deposit credit exceeds what may still be credited"


class CardTokenConflict(Conflict):
    code = "card-token-conflict"
    title = "Another card token was handed over for this order"


class RefundRefused(Conflict):
    code = "refund-refused"
    title = "Refund refused by the provider"


class ProviderUnavailable(ServiceUnavailable):
    code = "payment-provider-unavailable"
    title = "Payment provider unavailable"


class InvalidWebhookSignature(Unauthorized):
    code = "invalid-webhook-signature"
    title = "Invalid webhook signature"

    def __init__(self, detail: str) -> None:
        # Not a bearer-token endpoint: no WWW-Authenticate challenge.
        super().__init__(detail, headers={})


class PaymentNotOpened(DomainError):
    """An order event arrived before the order's payment was opened (its order.placed is
    still being retried): raised so that the consumer retries this event too."""

    status, code, title = 409, "payment-not-opened", "Payment not opened yet"


class ProviderRefusedOperation(DomainError):
    """The provider refused a capture, void or refund that the order's course requires:
    retried, then dead-lettered for an operator to look at."""

    status, code, title = 502, "provider-refused", "Provider refused the operation"

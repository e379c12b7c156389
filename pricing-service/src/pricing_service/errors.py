"""pricing-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import Conflict, NotFound, UnprocessableEntity


class DepotNotFound(NotFound):
    code = "depot-not-found"
    title = "Depot not found"


class QuoteNotFound(NotFound):
    code = "quote-not-found"
    title = "Quote not found"


class RouteNotFound(NotFound):
    code = "route-not-found"
    title = "Route not found"


class VendorUnavailable(Conflict):
    """The vendor is not verified or is suspended: it cannot be quoted."""

    code = "vendor-unavailable"
    title = "Vendor unavailable"


class NoPrice(Conflict):
    """The vendor has no price for one or more requested products (named in `product_ids`)."""

    code = "no-price"
    title = "No price"


class MixedCurrency(Conflict):
    code = "mixed-currency"
    title = "Prices in different currencies"


class OutOfDeliveryRange(Conflict):
    code = "out-of-delivery-range"
    title = "Outside the depot's delivery range"


class ProductNotFound(NotFound):
    code = "product-not-found"
    title = "Product not found"


class DepositNotAllowed(UnprocessableEntity):
    """A deposit on a product that is not a serial-tracked oxygen cylinder: nothing could
    ever trace (or refund) it."""

    code = "deposit-not-allowed"
    title = "Deposit not allowed"

"""order-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import Conflict, NotFound


class OrderNotFound(NotFound):
    code = "order-not-found"
    title = "Order not found"


class SiteNotFound(NotFound):
    code = "site-not-found"
    title = "Delivery site not found"


class DepotOrProductNotFound(NotFound):
    code = "depot-or-product-not-found"
    title = "Depot or product not found"


class InsufficientStock(Conflict):
    """Carries `short_items: [{product_id, requested, available}]` from inventory-service."""

    code = "insufficient-stock"
    title = "Insufficient stock"


class ShortageRoutinePaused(Conflict):
    """Carries `shortage_ids, categories`: the delivery point lies inside an active shortage
    for a category of the order's products, and the order is routine."""

    code = "shortage-routine-paused"
    title = "Routine orders paused by a shortage"


class AllocationCapExceeded(Conflict):
    """Carries `product_id, cap, open, requested`: the hospital's open units of a product
    plus this order would pass its cap."""

    code = "allocation-cap-exceeded"
    title = "Allocation cap exceeded"


class VendorUnavailable(Conflict):
    code = "vendor-unavailable"
    title = "Vendor unavailable"


class PriceUnavailable(Conflict):
    code = "no-price"
    title = "No price"


class NoSupplierInRange(Conflict):
    code = "no-supplier-in-range"
    title = "No supplier in range"


class IllegalTransition(Conflict):
    code = "illegal-transition"
    title = "Illegal status transition"


class OrderExpired(Conflict):
    code = "order-expired"
    title = "Order expired"


class ReservationNotHeld(Conflict):
    code = "reservation-not-held"
    title = "Reservation not held"


class HoldLost(Conflict):
    """The order's stock hold at inventory-service expired or was released, so the vendor
    cannot promise the goods: the order stays placed until it expires."""

    code = "hold-lost"
    title = "Stock hold lost"


class ReservationRefused(Conflict):
    """inventory-service refused the hold for a reason other than short stock."""

    code = "reservation-refused"
    title = "Reservation refused"


class QuoteRefused(Conflict):
    """pricing-service refused to quote (e.g. the delivery point is out of the depot's range)."""

    code = "quote-refused"
    title = "Quote refused"


class SosNotFound(NotFound):
    code = "sos-not-found"
    title = "SOS request not found"


class SosClosed(Conflict):
    """The SOS request is no longer open (fulfilled, cancelled or unfilled)."""

    code = "sos-closed"
    title = "SOS request closed"


class SosRingClosed(Conflict):
    """The vendor's offer is not in the SOS's open ring (it timed out, or was declined)."""

    code = "sos-ring-closed"
    title = "SOS ring closed"


class CylindersRequired(Conflict):
    """The order took cylinder deposits: dispatching it must name the serials, so every
    deposit can be traced to a cylinder (and refunded when it comes back)."""

    code = "cylinders-required"
    title = "Cylinder serials required"


class CylindersRefused(Conflict):
    """inventory-service refused the named serials; carries its `cylinders: [{serial,
    reason}]` and (dispatch) `lines: [{product_id, quantity, named}]` unchanged."""

    code = "cylinders-refused"
    title = "Cylinders refused"

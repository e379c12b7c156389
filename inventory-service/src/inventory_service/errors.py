"""inventory-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from flow_shared.errors import Conflict, NotFound, UnprocessableEntity


class ProductNotFound(NotFound):
    code, title = "product-not-found", "Product not found"


class DepotNotFound(NotFound):
    code, title = "depot-not-found", "Depot not found"


class VendorNotFound(NotFound):
    code, title = "vendor-not-found", "Vendor not found"


class ReservationNotFound(NotFound):
    code, title = "reservation-not-found", "Reservation not found"


class SiteNotFound(NotFound):
    code, title = "site-not-found", "Site not found"


class SupplyNotReported(NotFound):
    """No report for the site yet, or the site is another hospital's: the same answer."""

    code, title = "supply-not-reported", "No oxygen supply reported for this site"


class UnknownProducts(UnprocessableEntity):
    code, title = "unknown-products", "Unknown products"

    def __init__(self, product_ids: Sequence[uuid.UUID]) -> None:
        ids = sorted(str(product_id) for product_id in product_ids)
        super().__init__("No product with these ids: " + ", ".join(ids), extra={"product_ids": ids})


class GasUnknown(UnprocessableEntity):
    """A report counts the oxygen of a product whose gas per unit Flow does not know (one
    created before products carried it): counting it as none would raise false alarms."""

    code, title = "gas-unknown", "The gas these products hold is not known"

    def __init__(self, product_ids: Sequence[uuid.UUID]) -> None:
        ids = sorted(str(product_id) for product_id in product_ids)
        super().__init__(
            "These products hold oxygen but their gas per unit is not set: "
            + ", ".join(ids)
            + ". A platform admin sets it (PATCH /api/v1/catalog/products/{id}, gas_liters).",
            extra={"product_ids": ids},
        )


class DuplicateSku(Conflict):
    code, title = "duplicate-sku", "A product with this SKU exists"


class StockBelowReserved(Conflict):
    """on_hand may not go below what is reserved for orders (nor below zero)."""

    code, title = "stock-below-reserved", "Stock cannot go below the reserved quantity"


class StockAboveMaximum(Conflict):
    """on_hand may not grow past MAX_UNITS: the stored integer would overflow."""

    code, title = "stock-above-maximum", "Stock cannot exceed the largest quantity Flow holds"


class VendorUnavailable(Conflict):
    code, title = "vendor-unavailable", "The vendor is not verified or is suspended"


class ReservationMismatch(Conflict):
    code, title = "reservation-mismatch", "This order already has a different reservation"


class ReservationNotHeld(Conflict):
    code, title = "reservation-not-held", "The reservation is no longer held"


class ReservationCommitted(Conflict):
    code, title = "reservation-committed", "The reservation is committed and cannot be released"


@dataclass(frozen=True, slots=True)
class ShortItem:
    product_id: uuid.UUID
    requested: int
    available: int


class InsufficientStock(Conflict):
    code, title = "insufficient-stock", "Not enough stock"

    def __init__(self, short_items: Sequence[ShortItem]) -> None:
        self.short_items = list(short_items)
        super().__init__(
            "Not enough stock for: "
            + ", ".join(f"{s.product_id} ({s.available} of {s.requested})" for s in short_items),
            extra={
                "short_items": [
                    {
                        "product_id": str(s.product_id),
                        "requested": s.requested,
                        "available": s.available,
                    }
                    for s in self.short_items
                ]
            },
        )


class CylinderNotFound(NotFound):
    """No such serial of this vendor: another vendor's serial is the same answer."""

    code, title = "cylinder-not-found", "Cylinder not found"


class NotACylinderProduct(UnprocessableEntity):
    code, title = "not-a-cylinder-product", "The product is not an oxygen cylinder"


class SerialTaken(Conflict):
    code, title = "serial-taken", "The vendor already has a cylinder with this serial"

    def __init__(self, serials: Sequence[str]) -> None:
        taken = sorted(serials)
        super().__init__(
            "Serials already registered: " + ", ".join(taken), extra={"serials": taken}
        )


class CylinderNotAtDepot(Conflict):
    code, title = "cylinder-not-at-depot", "The cylinder is not at its depot"


class CylinderNotFillable(Conflict):
    """Only an empty cylinder at its depot, in hydrotest date, is filled."""

    code, title = "cylinder-not-fillable", "The cylinder cannot be filled"


@dataclass(frozen=True, slots=True)
class RefusedCylinder:
    serial: str
    reason: str


@dataclass(frozen=True, slots=True)
class MiscountedLine:
    product_id: uuid.UUID
    quantity: int
    named: int


class CylindersRefused(Conflict):
    """Named serials that may not move (each with why), and for a dispatch the cylinder
    lines whose named count is not their quantity. Nothing has moved."""

    code, title = "cylinders-refused", "Some cylinders cannot move"

    def __init__(
        self,
        cylinders: Sequence[RefusedCylinder],
        lines: Sequence[MiscountedLine] = (),
    ) -> None:
        self.cylinders = sorted(cylinders, key=lambda c: c.serial)
        self.lines = list(lines)
        parts = [f"{c.serial} ({c.reason})" for c in self.cylinders] + [
            f"{line.product_id}: {line.named} named of {line.quantity}" for line in self.lines
        ]
        super().__init__(
            "Refused: " + ", ".join(parts),
            extra={
                "cylinders": [{"serial": c.serial, "reason": c.reason} for c in self.cylinders],
                "lines": [
                    {
                        "product_id": str(line.product_id),
                        "quantity": line.quantity,
                        "named": line.named,
                    }
                    for line in self.lines
                ],
            },
        )

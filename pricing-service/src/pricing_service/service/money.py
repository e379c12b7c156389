"""Quote arithmetic: pure `Decimal` functions with explicit rounding, no I/O.

Every amount is rounded to the cent with ROUND_HALF_UP at a fixed point and the
total is the exact sum of the rounded parts, so a quote always adds up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from flow_shared.validation import ensure_amount_fits

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
HUNDRED = Decimal(100)


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def distance_decimal(distance_km: float) -> Decimal:
    """A route distance as used for fees: the decimal of its printed value, to 0.1 km."""
    # str() gives the shortest repr, so 12.3 becomes Decimal("12.3"), not 12.2999...
    return Decimal(str(distance_km)).quantize(TENTH, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class LinePrice:
    """One requested line with the price row that applies to it."""

    quantity: int
    unit_price: Decimal
    delivery_fee_per_km: Decimal
    min_delivery_fee: Decimal
    emergency_surcharge_pct: Decimal
    # Refundable, per unit; kept out of every figure that adds up to `total`.
    deposit_per_unit: Decimal = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class QuoteAmounts:
    line_totals: tuple[Decimal, ...]
    subtotal: Decimal
    delivery_fee: Decimal
    surcharge: Decimal
    tax: Decimal
    total: Decimal
    deposit_total: Decimal = Decimal("0.00")


def compute_quote(
    lines: Sequence[LinePrice],
    *,
    distance_km: Decimal,
    priority: str,
    tax_rate: Decimal,
) -> QuoteAmounts:
    if not lines:
        raise ValueError("a quote needs at least one line")
    line_totals = tuple(to_cents(line.unit_price * line.quantity) for line in lines)
    subtotal = sum(line_totals, Decimal(0))
    # One delivery carries every line: the most demanding price row sets the fee.
    delivery_fee = max(
        to_cents(max(line.min_delivery_fee, line.delivery_fee_per_km * distance_km))
        for line in lines
    )
    if priority == "emergency":
        # Each line carries its own vendor-set percentage; rounded once, on the sum.
        surcharge = to_cents(
            sum(
                (
                    line_total * line.emergency_surcharge_pct / HUNDRED
                    for line_total, line in zip(line_totals, lines, strict=True)
                ),
                Decimal(0),
            )
        )
    else:
        surcharge = Decimal("0.00")
    tax = to_cents((subtotal + delivery_fee + surcharge) * tax_rate)
    # Every part is at most the total: one check keeps each of them inside Numeric(14, 2).
    total = ensure_amount_fits(subtotal + delivery_fee + surcharge + tax, what="quote total")
    deposit_total = to_cents(
        sum((line.deposit_per_unit * line.quantity for line in lines), Decimal(0))
    )
    # The hospital is charged total + deposit_total: that sum must fit an amount too.
    ensure_amount_fits(total + deposit_total, what="quote total with deposits")
    return QuoteAmounts(
        line_totals=line_totals,
        subtotal=subtotal,
        delivery_fee=delivery_fee,
        surcharge=surcharge,
        tax=tax,
        total=total,
        deposit_total=deposit_total,
    )

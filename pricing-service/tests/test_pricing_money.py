"""Quote arithmetic adds up to the cent for any inputs: property tests on
`compute_quote` and on quotes served (and stored) by the API.

The oracle works in exact fractions with its own half-up rounding, independent of
the `Decimal` code under test.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_service.service.money import LinePrice, compute_quote, distance_decimal, to_cents

if TYPE_CHECKING:
    from conftest import AskQuote, InventoryStub, SetPrice

CENT = Decimal("0.01")


def half_up_cents(value: Fraction) -> Fraction:
    """Round a non-negative exact value to the cent, ties away from zero."""
    scaled = value * 100
    whole = scaled.numerator // scaled.denominator
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    return Fraction(whole, 100)


def money(max_cents: int) -> st.SearchStrategy[Decimal]:
    return st.integers(min_value=0, max_value=max_cents).map(lambda c: Decimal(c) / 100)


lines_strategy = st.lists(
    st.builds(
        LinePrice,
        quantity=st.integers(min_value=1, max_value=10_000),
        unit_price=money(5_000_000),
        delivery_fee_per_km=money(5_000),
        min_delivery_fee=money(50_000),
        emergency_surcharge_pct=money(10_000),  # 0.00 .. 100.00
    ),
    min_size=1,
    max_size=6,
)
distance_strategy = st.integers(min_value=0, max_value=5_000).map(lambda d: Decimal(d) / 10)
tax_strategy = st.integers(min_value=0, max_value=3_000).map(lambda t: Decimal(t) / 10_000)
priority_strategy = st.sampled_from(["routine", "urgent", "emergency"])


def has_two_decimals(value: Decimal) -> bool:
    return value.as_tuple().exponent == -2


@settings(max_examples=300, deadline=None)
@given(
    lines=lines_strategy,
    distance_km=distance_strategy,
    tax_rate=tax_strategy,
    priority=priority_strategy,
)
def test_quote_parts_add_up_to_the_cent_and_match_an_exact_oracle(
    lines: list[LinePrice], distance_km: Decimal, tax_rate: Decimal, priority: str
) -> None:
    amounts = compute_quote(lines, distance_km=distance_km, priority=priority, tax_rate=tax_rate)

    parts = (amounts.subtotal, amounts.delivery_fee, amounts.surcharge, amounts.tax)
    assert amounts.total == sum(parts, Decimal(0))
    for value in (*parts, amounts.total, *amounts.line_totals):
        assert has_two_decimals(value), value

    exact_lines = [half_up_cents(Fraction(line.unit_price) * line.quantity) for line in lines]
    assert [Fraction(v) for v in amounts.line_totals] == exact_lines
    subtotal = sum(exact_lines, Fraction(0))
    assert Fraction(amounts.subtotal) == subtotal

    distance = Fraction(distance_km)
    delivery_fee = max(
        half_up_cents(
            max(Fraction(line.min_delivery_fee), Fraction(line.delivery_fee_per_km) * distance)
        )
        for line in lines
    )
    assert Fraction(amounts.delivery_fee) == delivery_fee

    if priority == "emergency":
        surcharge = half_up_cents(
            sum(
                (
                    lt * Fraction(line.emergency_surcharge_pct) / 100
                    for lt, line in zip(exact_lines, lines, strict=True)
                ),
                Fraction(0),
            )
        )
    else:
        surcharge = Fraction(0)
    assert Fraction(amounts.surcharge) == surcharge

    tax = half_up_cents((subtotal + delivery_fee + surcharge) * Fraction(tax_rate))
    assert Fraction(amounts.tax) == tax
    assert Fraction(amounts.total) == subtotal + delivery_fee + surcharge + tax


def test_half_cent_rounds_up_not_to_even() -> None:
    # 0.125 would be 0.12 under banker's rounding.
    assert to_cents(Decimal("0.125")) == Decimal("0.13")
    amounts = compute_quote(
        [
            LinePrice(
                quantity=1,
                unit_price=Decimal("10.00"),
                delivery_fee_per_km=Decimal("0.25"),
                min_delivery_fee=Decimal("0.00"),
                emergency_surcharge_pct=Decimal("0"),
            )
        ],
        distance_km=Decimal("0.5"),  # 0.25 x 0.5 = 0.125
        priority="routine",
        tax_rate=Decimal("0"),
    )
    assert amounts.delivery_fee == Decimal("0.13")


def test_minimum_delivery_fee_applies_when_the_distance_fee_is_smaller() -> None:
    line = LinePrice(
        quantity=2,
        unit_price=Decimal("50.00"),
        delivery_fee_per_km=Decimal("1.50"),
        min_delivery_fee=Decimal("20.00"),
        emergency_surcharge_pct=Decimal("0"),
    )
    near = compute_quote([line], distance_km=Decimal("4.0"), priority="routine", tax_rate=CENT)
    far = compute_quote([line], distance_km=Decimal("30.0"), priority="routine", tax_rate=CENT)

    assert near.delivery_fee == Decimal("20.00")  # 1.50 x 4 = 6.00 < 20.00
    assert far.delivery_fee == Decimal("45.00")  # 1.50 x 30


def test_emergency_surcharge_only_for_emergency_priority() -> None:
    line = LinePrice(
        quantity=3,
        unit_price=Decimal("33.33"),
        delivery_fee_per_km=Decimal("0"),
        min_delivery_fee=Decimal("0"),
        emergency_surcharge_pct=Decimal("15"),
    )
    by_priority = {
        p: compute_quote([line], distance_km=Decimal("1"), priority=p, tax_rate=Decimal(0))
        for p in ("routine", "urgent", "emergency")
    }

    assert by_priority["routine"].surcharge == Decimal("0.00")
    assert by_priority["urgent"].surcharge == Decimal("0.00")
    # 99.99 x 15 % = 14.9985 → 15.00
    assert by_priority["emergency"].surcharge == Decimal("15.00")
    assert by_priority["emergency"].total == Decimal("114.99")


def test_route_distance_is_taken_as_its_printed_decimal() -> None:
    # 0.1 + 0.2 as a float is 0.30000000000000004; fees must use 0.3 km.
    assert distance_decimal(0.1 + 0.2) == Decimal("0.3")
    assert distance_decimal(12.25) == Decimal("12.3")


@settings(
    max_examples=30,
    deadline=None,
    # Each example uses fresh ids, so sharing the app between examples is safe.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    line=st.builds(
        LinePrice,
        quantity=st.integers(min_value=1, max_value=5_000),
        unit_price=money(2_000_000),
        delivery_fee_per_km=money(2_000),
        min_delivery_fee=money(20_000),
        emergency_surcharge_pct=money(10_000),
    ),
    distance_tenths=st.integers(min_value=0, max_value=3_000),
    priority=priority_strategy,
)
async def test_quotes_served_by_the_api_add_up_to_the_cent(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    service_headers: dict[str, str],
    line: LinePrice,
    distance_tenths: int,
    priority: str,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot(distance_km=distance_tenths / 10)
    product = uuid.uuid4()
    await set_price(
        depot.vendor_id,
        product,
        unit_price=str(line.unit_price),
        per_km=str(line.delivery_fee_per_km),
        min_fee=str(line.min_delivery_fee),
        pct=str(line.emergency_surcharge_pct),
    )

    created = await ask_quote(pricing_client, depot, [(product, line.quantity)], priority=priority)
    assert created.status_code == 201, created.text
    # Read back from the database too: storage must not change a cent.
    stored = await pricing_client.get(
        f"/internal/quotes/{created.json()['quote_id']}", headers=service_headers
    )
    assert stored.json() == created.json()

    quote = created.json()
    names = ("subtotal", "delivery_fee", "surcharge", "tax", "total")
    amounts = {name: quote[name] for name in names}
    for text_value in (*amounts.values(), quote["items"][0]["line_total"]):
        assert isinstance(text_value, str)
        assert has_two_decimals(Decimal(text_value)), text_value
    parts = [Decimal(amounts[name]) for name in names[:-1]]
    assert Decimal(amounts["total"]) == sum(parts, Decimal(0))
    assert Fraction(quote["items"][0]["line_total"]) == half_up_cents(
        Fraction(line.unit_price) * line.quantity
    )
    expected = compute_quote(
        [line],
        distance_km=Decimal(distance_tenths) / 10,
        priority=priority,
        tax_rate=Decimal("0.05"),
    )
    assert Decimal(amounts["total"]) == expected.total

"""The emergency reserve (SPEC, fair allocation): routine holds may not take a depot's
stock of a product below EMERGENCY_RESERVE_PCT (20) of its on_hand; urgent and emergency
holds may use all of it. The floor is part of the conditional UPDATE that holds, so no
number of concurrent routine holds gets past it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest


async def _depot(inv: Any, product: uuid.UUID, on_hand: int) -> uuid.UUID:
    vendor = await inv.vendor()
    depot: uuid.UUID = await inv.depot(vendor)
    await inv.set_stock(vendor, depot, product, on_hand)
    return depot


async def test_a_routine_hold_leaves_the_reserve_and_its_short_item_says_what_it_may_take(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-10L"]
    depot = await _depot(inv, product, 10)  # reserve: 2 units

    too_much = await inv.reserve(depot, [(product, 9)], priority="routine")
    assert too_much.status_code == 409, too_much.text
    assert too_much.json()["short_items"] == [
        {"product_id": str(product), "requested": 9, "available": 8}
    ]
    held = await inv.reserve(depot, [(product, 8)], priority="routine")
    assert held.status_code == 201, held.text
    refused = await inv.reserve(depot, [(product, 1)], priority="routine")
    assert refused.status_code == 409
    assert refused.json()["short_items"] == [
        {"product_id": str(product), "requested": 1, "available": 0}
    ]


@pytest.mark.parametrize("priority", ["urgent", "emergency"])
async def test_urgent_and_emergency_holds_may_use_the_reserve(
    inv: Any, product_ids: dict[str, uuid.UUID], priority: str
) -> None:
    product = product_ids["O2-CYL-10L"]
    depot = await _depot(inv, product, 10)
    assert (await inv.reserve(depot, [(product, 8)], priority="routine")).status_code == 201

    rest = await inv.reserve(depot, [(product, 2)], priority=priority)

    assert rest.status_code == 201, rest.text
    sold_out = await inv.reserve(depot, [(product, 1)], priority=priority)
    assert sold_out.json()["short_items"] == [
        {"product_id": str(product), "requested": 1, "available": 0}
    ]


async def test_a_reservation_without_priority_is_routine(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-10L"]
    depot = await _depot(inv, product, 5)  # reserve: 1 unit

    answer = await inv.reserve(depot, [(product, 5)], priority=None)

    assert answer.status_code == 409, answer.text
    assert answer.json()["short_items"][0]["available"] == 4


async def test_the_reserve_rounds_up_so_a_small_depot_keeps_a_unit(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-10L"]
    depot = await _depot(inv, product, 3)  # 20% of 3 is 0.6: one unit kept

    assert (await inv.reserve(depot, [(product, 3)], priority="routine")).status_code == 409
    assert (await inv.reserve(depot, [(product, 2)], priority="routine")).status_code == 201


async def test_concurrent_routine_holds_never_dip_into_the_reserve_and_emergencies_take_it(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-10L"]
    depot = await _depot(inv, product, 50)  # routine may take 40

    routine = await asyncio.gather(
        *(inv.reserve(depot, [(product, 1)], priority="routine") for _ in range(60))
    )
    statuses = [r.status_code for r in routine]
    assert statuses.count(201) == 40, statuses
    assert statuses.count(409) == 20, statuses

    emergency = await asyncio.gather(
        *(inv.reserve(depot, [(product, 1)], priority="emergency") for _ in range(15))
    )
    statuses = [r.status_code for r in emergency]
    assert statuses.count(201) == 10, statuses
    assert statuses.count(409) == 5, statuses

"""The oxygen runway's arithmetic (SPEC "Oxygen runway"): hand-computed cases with the
numbers in comments, and properties with hypothesis. Pure functions: no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory_service.service.runway import (
    GasUnits,
    InboundOrder,
    PatientGroup,
    RunwayLevel,
    SupplyState,
    apply_delivery,
    crossing,
    hours_left,
    hours_left_with_inbound,
    level,
    next_level_change_at,
    remaining,
    runs_out_at,
    state_from_report,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CYLINDER = Decimal(1500)  # litres of gas in one large cylinder
MICROSECOND = timedelta(microseconds=1)


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


def inbound(eta: datetime, quantity: int, per_unit: Decimal | None = CYLINDER) -> InboundOrder:
    return InboundOrder(uuid.uuid4(), uuid.uuid4(), quantity, eta, per_unit)


def test_ten_cylinders_at_fifty_lpm_last_five_hours() -> None:
    # 10 x 1,500 L = 15,000 L; 50 L/min = 3,000 L/h -> 5 h, below critical 6 h.
    state = state_from_report(
        stock=[GasUnits(10, CYLINDER)], consumption_lpm=Decimal(50), as_of=NOW
    )
    assert state.gas_liters == 15_000
    assert hours_left(state, NOW) == 5
    assert runs_out_at(state, NOW) == NOW + hours(5)
    assert level(hours_left(state, NOW)) == "critical"


def test_accessories_hold_no_gas() -> None:
    state = state_from_report(
        stock=[GasUnits(2, CYLINDER), GasUnits(40, None)], consumption_lpm=Decimal(1), as_of=NOW
    )
    assert state.gas_liters == 3_000


def test_nothing_consumed_has_no_hours_and_is_ok() -> None:
    state = state_from_report(stock=[GasUnits(1, CYLINDER)], consumption_lpm=Decimal(0), as_of=NOW)
    assert remaining(state, NOW + hours(1000)) == 1500
    assert hours_left(state, NOW) is None
    assert runs_out_at(state, NOW) is None
    assert hours_left_with_inbound(state, NOW, [inbound(NOW, 1)]) is None
    assert level(None) == "ok"
    assert next_level_change_at(state, NOW) is None


def test_stock_reported_two_hours_ago_has_drained() -> None:
    # 96 x 1,500 = 144,000 L at 600 L/min (36,000 L/h); 2 h later 72,000 L: 2 h left.
    state = state_from_report(
        stock=[GasUnits(96, CYLINDER)], consumption_lpm=Decimal(600), as_of=NOW - hours(2)
    )
    assert remaining(state, NOW) == 72_000
    assert hours_left(state, NOW) == 2
    assert runs_out_at(state, NOW) == NOW + hours(2)


def test_a_report_at_now_or_in_the_future_drains_nothing() -> None:
    at_now = SupplyState(Decimal(6000), Decimal(100), NOW)
    assert remaining(at_now, NOW) == 6000
    ahead = SupplyState(Decimal(6000), Decimal(100), NOW + timedelta(minutes=5))  # clock skew
    assert remaining(ahead, NOW) == 6000
    assert hours_left(ahead, NOW) == 1


def test_running_dry_stays_at_zero_and_is_critical() -> None:
    # 6,000 L at 100 L/min lasts 1 h; 10 h later nothing is left.
    state = SupplyState(Decimal(6000), Decimal(100), NOW - hours(10))
    assert remaining(state, NOW) == 0
    assert hours_left(state, NOW) == 0
    assert runs_out_at(state, NOW) == NOW
    assert level(hours_left(state, NOW)) == "critical"


def test_patients_times_flow_is_the_consumption() -> None:
    # 3 patients at 2 L/min + 2 at 15 L/min = 36 L/min.
    state = state_from_report(
        stock=[GasUnits(36, Decimal(100))],
        patients=[PatientGroup(3, Decimal(2)), PatientGroup(2, Decimal(15))],
        as_of=NOW,
    )
    assert state.consumption_lpm == 36
    assert hours_left(state, NOW) == Decimal(3600) / Decimal(36 * 60)  # 1 h 40 min
    no_patients = state_from_report(stock=[], patients=[], as_of=NOW)
    assert no_patients.consumption_lpm == 0


def test_a_report_needs_exactly_one_way_of_giving_consumption() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        state_from_report(stock=[], as_of=NOW)
    with pytest.raises(ValueError, match="exactly one"):
        state_from_report(stock=[], consumption_lpm=Decimal(1), patients=[], as_of=NOW)


def test_a_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        SupplyState(Decimal(1), Decimal(1), datetime(2026, 12, 7))


def test_a_delivery_adds_to_the_gas_drained_to_its_time() -> None:
    # 30,000 L at 08:00, 100 L/min (6,000 L/h): 18,000 L at 10:00, + 4 x 1,500 = 24,000.
    state = SupplyState(Decimal(30_000), Decimal(100), NOW - hours(4))
    delivered = apply_delivery(state, delivered_at=NOW - hours(2), units=[GasUnits(4, CYLINDER)])
    assert delivered == SupplyState(Decimal(24_000), Decimal(100), NOW - hours(2))
    assert remaining(delivered, NOW) == 12_000  # 2 h more at 6,000 L/h


def test_a_delivery_after_running_dry_starts_from_zero() -> None:
    # 6,000 L at 08:00 at 100 L/min ran out at 09:00; 2 x 1,500 arrive at 11:00.
    state = SupplyState(Decimal(6000), Decimal(100), NOW - hours(4))
    delivered = apply_delivery(state, delivered_at=NOW - hours(1), units=[GasUnits(2, CYLINDER)])
    assert delivered.gas_liters == 3000
    assert remaining(delivered, NOW - timedelta(minutes=45)) == 1500


def test_a_delivery_older_than_the_report_is_already_in_it() -> None:
    report = SupplyState(Decimal(20_000), Decimal(100), NOW)
    late = apply_delivery(report, delivered_at=NOW - hours(1), units=[GasUnits(4, CYLINDER)])
    assert late == report
    at_report_time = apply_delivery(report, delivered_at=NOW, units=[GasUnits(4, CYLINDER)])
    assert at_report_time.gas_liters == 26_000


def test_inbound_before_running_dry_extends_the_runway() -> None:
    # 6,000 L at 100 L/min = 1 h. At +30 min 3,000 L are left, +3,000 = 6,000: 1 h more.
    state = SupplyState(Decimal(6000), Decimal(100), NOW)
    assert hours_left_with_inbound(state, NOW, []) == 1
    assert hours_left_with_inbound(state, NOW, [inbound(NOW + hours(0.5), 2)]) == Decimal("1.5")


def test_inbound_after_running_dry_does_not_undo_the_outage() -> None:
    state = SupplyState(Decimal(6000), Decimal(100), NOW)
    assert hours_left_with_inbound(state, NOW, [inbound(NOW + hours(2), 100)]) == 1
    # Arriving at the very moment it runs dry does not prevent the outage either.
    assert hours_left_with_inbound(state, NOW, [inbound(NOW + hours(1), 100)]) == 1
    # In ETA order whatever order they come in: the +30 min one keeps it going to 1.5 h,
    # the +2 h one comes after that.
    later_first = [inbound(NOW + hours(2), 100), inbound(NOW + hours(0.5), 2)]
    assert hours_left_with_inbound(state, NOW, later_first) == Decimal("1.5")


def test_overdue_inbound_counts_as_arriving_now() -> None:
    # Due an hour ago and still on its way: 6,000 + 3,000 L at 6,000 L/h = 1.5 h.
    state = SupplyState(Decimal(6000), Decimal(100), NOW)
    assert hours_left_with_inbound(state, NOW, [inbound(NOW - hours(1), 2)]) == Decimal("1.5")
    dry = SupplyState(Decimal(0), Decimal(100), NOW)
    assert hours_left_with_inbound(dry, NOW, [inbound(NOW - hours(1), 2)]) == 0


def test_inbound_accessories_change_nothing() -> None:
    state = SupplyState(Decimal(6000), Decimal(100), NOW)
    assert hours_left_with_inbound(state, NOW, [inbound(NOW, 50, None)]) == 1


@pytest.mark.parametrize(
    ("hours_value", "expected"),
    [
        (None, "ok"),
        (Decimal(0), "critical"),
        (Decimal(6), "critical"),
        (Decimal("6.01"), "low"),
        (Decimal(24), "low"),
        (Decimal("24.01"), "ok"),
    ],
)
def test_level_thresholds(hours_value: Decimal | None, expected: RunwayLevel) -> None:
    assert level(hours_value) == expected


def test_custom_thresholds_and_their_validation() -> None:
    assert level(Decimal(10), alert_hours=Decimal(12), critical_hours=Decimal(2)) == "low"
    for alert, critical in [
        (Decimal(6), Decimal(6)),
        (Decimal(6), Decimal(8)),
        (Decimal(6), Decimal(-1)),
    ]:
        with pytest.raises(ValueError, match="critical_hours"):
            level(Decimal(1), alert_hours=alert, critical_hours=critical)


@pytest.mark.parametrize(
    ("previous", "new", "expected"),
    [
        ("ok", "ok", None),
        ("ok", "low", "low"),
        ("ok", "critical", "critical"),
        ("low", "ok", None),
        ("low", "low", None),
        ("low", "critical", "critical"),
        ("critical", "ok", None),
        ("critical", "low", None),
        ("critical", "critical", None),
    ],
)
def test_crossing_table(previous: RunwayLevel, new: RunwayLevel, expected: str | None) -> None:
    assert crossing(previous, new) == expected


def test_next_level_change_from_ok_and_from_low() -> None:
    # 180,000 L at 100 L/min = 30 h: low at +6 h (24 h left), then critical at +24 h.
    state = SupplyState(Decimal(180_000), Decimal(100), NOW)
    assert next_level_change_at(state, NOW) == NOW + hours(6)
    assert next_level_change_at(state, NOW + hours(6)) == NOW + hours(24)
    assert next_level_change_at(state, NOW + hours(24)) is None  # critical until a delivery
    # A report from the future: the drain starts at its as_of.
    ahead = SupplyState(Decimal(180_000), Decimal(100), NOW + timedelta(minutes=5))
    assert next_level_change_at(ahead, NOW) == NOW + timedelta(minutes=5) + hours(6)


def test_next_level_change_rounds_up_to_the_microsecond() -> None:
    # 100,000 L at 7 L/min = 238.095... h: not a whole microsecond.
    state = SupplyState(Decimal(100_000), Decimal(7), NOW)
    due = next_level_change_at(state, NOW)
    assert due is not None
    assert level(hours_left(state, due)) == "low"
    assert level(hours_left(state, due - MICROSECOND)) == "ok"


litres = st.integers(min_value=0, max_value=10_000_000).map(lambda n: Decimal(n) / 10)
rates = st.integers(min_value=1, max_value=100_000).map(lambda n: Decimal(n) / 100)
offsets = st.integers(min_value=-(10**6), max_value=10**12).map(
    lambda us: timedelta(microseconds=us * 997)
)
states = st.builds(SupplyState, gas_liters=litres, consumption_lpm=rates, as_of=st.just(NOW))


@given(states, offsets, st.integers(min_value=0, max_value=10**12))
def test_remaining_never_negative_and_never_increases(
    state: SupplyState, offset: timedelta, later_us: int
) -> None:
    now = NOW + offset
    later = now + timedelta(microseconds=later_us)
    assert 0 <= remaining(state, later) <= remaining(state, now) <= state.gas_liters


@given(
    states,
    offsets,
    st.lists(
        st.tuples(
            offsets, st.integers(min_value=0, max_value=50), st.sampled_from([None, CYLINDER])
        ),
        max_size=5,
    ),
)
def test_inbound_never_shortens_the_runway(
    state: SupplyState, offset: timedelta, orders: list[tuple[timedelta, int, Decimal | None]]
) -> None:
    now = NOW + offset
    with_inbound = hours_left_with_inbound(
        state, now, [inbound(NOW + eta, quantity, per_unit) for eta, quantity, per_unit in orders]
    )
    without = hours_left(state, now)
    assert with_inbound is not None
    assert without is not None
    assert with_inbound >= without


SEVERITY = {"ok": 0, "low": 1, "critical": 2}


@given(litres, litres)
def test_level_is_monotone_in_hours(first: Decimal, second: Decimal) -> None:
    fewer, more = sorted([first / 100, second / 100])
    assert SEVERITY[level(fewer)] >= SEVERITY[level(more)]


@given(states, offsets)
def test_next_level_change_is_the_exact_microsecond(state: SupplyState, offset: timedelta) -> None:
    now = NOW + offset
    before = level(hours_left(state, now))
    due = next_level_change_at(state, now)
    if before == "critical":
        assert due is None
        return
    assert due is not None
    assert due > now
    assert level(hours_left(state, due)) != before
    assert level(hours_left(state, due - MICROSECOND)) == before

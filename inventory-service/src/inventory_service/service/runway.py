"""Oxygen runway arithmetic: how long a site's oxygen lasts. Pure functions, no I/O,
no clock reads: every answer takes `now`.

The rules, as a hospital's oxygen officer reads them:

- **Supply state.** A site has `gas_liters` of gaseous oxygen at `as_of`, used at
  `consumption_lpm` litres per minute. A report sets it: the gas is the sum of full
  units x the product's `gas_liters` (accessories have none and count 0); the rate is
  `consumption_lpm` given directly or the sum of patients x flow, exactly one of the
  two (0 is allowed: nothing is being used).
- **Drain.** Gas drains linearly from `as_of` at the rate and never goes below 0. A
  `now` before `as_of` (clock skew, a report "from the future") drains nothing.
- **Deliveries.** A delivery at time t first drains the state to t (gas that ran out
  stays out until the delivery), then adds its units' gas; the new `as_of` is t. A
  delivery timestamped before `as_of` is ignored: the report is the truth at its time
  and already counted it (an event can arrive after a newer report). One at exactly
  `as_of` is added.
- **Hours left** = remaining / rate / 60, None when the rate is 0; `runs_out_at` =
  now + hours left. Values are exact `Decimal`s (to the context's 28 digits); the API
  schema rounds hours to 2 decimals. Moments are rounded up to the microsecond, so at
  the moment returned the event has happened.
- **Inbound.** Open orders arrive at their ETA, in ETA order, the gas draining
  between arrivals; an overdue one (ETA before now) is still on its way and counts as
  arriving now. The hours left with inbound run to the FIRST moment the gas reaches 0:
  a delivery after the site ran dry does not undo the outage, and one arriving at the
  very moment it runs dry does not prevent it (an ETA is an estimate; zero margin is
  an outage).
- **Level.** "critical" when hours left <= `critical_hours`, "low" when <=
  `alert_hours`, else "ok" ("ok" when nothing is consumed). It uses the gas on site
  only: a delivery is not oxygen until it arrives. `critical_hours` must be below
  `alert_hours`.
- **Crossings** alert once per descent; see `crossing`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

RunwayLevel = Literal["ok", "low", "critical"]
RunwayCrossing = Literal["low", "critical"]

DEFAULT_ALERT_HOURS = Decimal(24)
DEFAULT_CRITICAL_HOURS = Decimal(6)

MINUTES_PER_HOUR = 60
MICROSECONDS_PER_MINUTE = 60_000_000
MICROSECONDS_PER_HOUR = 3_600_000_000
ZERO = Decimal(0)

_SEVERITY: dict[RunwayLevel, int] = {"ok": 0, "low": 1, "critical": 2}


def _gas_of(quantity: int, gas_liters_per_unit: Decimal | None) -> Decimal:
    if quantity < 0:
        raise ValueError("a quantity of units cannot be negative")
    if gas_liters_per_unit is None:  # an accessory: no oxygen in it
        return ZERO
    return quantity * gas_liters_per_unit


@dataclass(frozen=True, slots=True)
class GasUnits:
    """`quantity` units of one product, each holding `gas_liters_per_unit` litres of
    gaseous oxygen (None for accessories)."""

    quantity: int
    gas_liters_per_unit: Decimal | None

    @property
    def gas_liters(self) -> Decimal:
        return _gas_of(self.quantity, self.gas_liters_per_unit)


@dataclass(frozen=True, slots=True)
class PatientGroup:
    """`count` patients on oxygen at `flow_lpm` litres per minute each."""

    count: int
    flow_lpm: Decimal


@dataclass(frozen=True, slots=True)
class InboundOrder:
    """One line of an open order on its way to the site."""

    order_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    eta: datetime
    gas_liters_per_unit: Decimal | None

    @property
    def gas_liters(self) -> Decimal:
        return _gas_of(self.quantity, self.gas_liters_per_unit)


@dataclass(frozen=True, slots=True)
class SupplyState:
    """`gas_liters` on site at `as_of`, used at `consumption_lpm`."""

    gas_liters: Decimal
    consumption_lpm: Decimal
    as_of: datetime

    def __post_init__(self) -> None:
        if self.gas_liters < 0 or self.consumption_lpm < 0:
            raise ValueError("gas and consumption cannot be negative")
        if self.as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware")


def total_gas(units: Iterable[GasUnits]) -> Decimal:
    return sum((line.gas_liters for line in units), ZERO)


def state_from_report(
    *,
    stock: Iterable[GasUnits],
    as_of: datetime,
    consumption_lpm: Decimal | None = None,
    patients: Iterable[PatientGroup] | None = None,
) -> SupplyState:
    """The state a site's report sets: its full units' gas, and its rate given directly
    or from its patients (exactly one of the two)."""
    if consumption_lpm is not None and patients is None:
        rate = consumption_lpm
    elif consumption_lpm is None and patients is not None:
        groups = list(patients)
        if any(group.count < 0 or group.flow_lpm < 0 for group in groups):
            raise ValueError("patient counts and flows cannot be negative")
        rate = sum((group.count * group.flow_lpm for group in groups), ZERO)
    else:
        raise ValueError("give exactly one of consumption_lpm and patients")
    return SupplyState(gas_liters=total_gas(stock), consumption_lpm=rate, as_of=as_of)


def _microseconds(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def _after(start: datetime, hours: Fraction) -> datetime:
    # Rounded up: at the moment returned the exact moment has been reached.
    return start + timedelta(microseconds=math.ceil(hours * MICROSECONDS_PER_HOUR))


def _drained(consumption_lpm: Decimal, elapsed: timedelta) -> Decimal:
    """Litres used over `elapsed` (nothing over a negative span)."""
    return consumption_lpm * max(0, _microseconds(elapsed)) / MICROSECONDS_PER_MINUTE


def remaining(state: SupplyState, now: datetime) -> Decimal:
    """Litres left at `now`."""
    return max(ZERO, state.gas_liters - _drained(state.consumption_lpm, now - state.as_of))


def apply_delivery(
    state: SupplyState, *, delivered_at: datetime, units: Iterable[GasUnits]
) -> SupplyState:
    """The state after a delivery at `delivered_at`: drained to then, plus its gas; a
    delivery older than the state is already in it (see the module rules)."""
    if delivered_at < state.as_of:
        return state
    return SupplyState(
        gas_liters=remaining(state, delivered_at) + total_gas(units),
        consumption_lpm=state.consumption_lpm,
        as_of=delivered_at,
    )


def _hours_of(gas_liters: Decimal, consumption_lpm: Decimal) -> Decimal:
    return gas_liters / (consumption_lpm * MINUTES_PER_HOUR)


def hours_left(state: SupplyState, now: datetime) -> Decimal | None:
    """Hours the gas on site lasts from `now`; None when nothing is consumed."""
    if state.consumption_lpm == 0:
        return None
    return _hours_of(remaining(state, now), state.consumption_lpm)


def runs_out_at(state: SupplyState, now: datetime) -> datetime | None:
    """`now` + hours left; None when nothing is consumed."""
    if state.consumption_lpm == 0:
        return None
    return _after(
        now, Fraction(remaining(state, now)) / (Fraction(state.consumption_lpm) * MINUTES_PER_HOUR)
    )


def hours_left_with_inbound(
    state: SupplyState, now: datetime, inbound: Iterable[InboundOrder]
) -> Decimal | None:
    """Hours from `now` until the gas first reaches 0 when the inbound orders arrive at
    their ETAs; None when nothing is consumed. The walk starts from the gas at `now`,
    as `hours_left` does, so with no inbound the two agree."""
    rate = state.consumption_lpm
    if rate == 0:
        return None
    gas = remaining(state, now)
    clock = now
    arrivals = sorted((max(order.eta, now), order.gas_liters) for order in inbound)
    for arrives_at, delivered_gas in arrivals:
        gas_on_arrival = gas - _drained(rate, arrives_at - clock)
        if gas_on_arrival <= 0:
            break  # ran dry before (or as) it arrives
        if delivered_gas == 0:
            continue  # accessories only: nothing changes
        gas = gas_on_arrival + delivered_gas
        clock = arrives_at
    return Decimal(_microseconds(clock - now)) / MICROSECONDS_PER_HOUR + _hours_of(gas, rate)


def check_thresholds(alert_hours: Decimal, critical_hours: Decimal) -> None:
    """Raise ValueError unless 0 <= critical_hours < alert_hours."""
    if critical_hours < 0:
        raise ValueError("critical_hours cannot be negative")
    if critical_hours >= alert_hours:
        raise ValueError("critical_hours must be below alert_hours")


def level(
    hours: Decimal | None,
    *,
    alert_hours: Decimal = DEFAULT_ALERT_HOURS,
    critical_hours: Decimal = DEFAULT_CRITICAL_HOURS,
) -> RunwayLevel:
    """The level of a site with `hours` of gas left (None: nothing consumed)."""
    check_thresholds(alert_hours, critical_hours)
    if hours is None or hours > alert_hours:
        return "ok"
    if hours > critical_hours:
        return "low"
    return "critical"


def crossing(previous_level: RunwayLevel, new_level: RunwayLevel) -> RunwayCrossing | None:
    """The alert a change of level raises, if any: only a change to a more severe level.

    previous \\ new | ok   | low  | critical
    ok             | -    | low  | critical
    low            | -    | -    | critical
    critical       | -    | -    | -

    Skipping a level alerts only the more severe one (ok -> critical is "critical").
    Getting better alerts nothing (critical -> low is no new "low"), and it re-arms
    the alerts of the levels left: after critical -> low a new descent to critical
    alerts again, after a recovery to ok a new descent to low does. A site's first
    report compares with "ok", so one reported already low alerts.
    """
    if new_level == "ok" or _SEVERITY[new_level] <= _SEVERITY[previous_level]:
        return None
    return new_level


def next_level_change_at(
    state: SupplyState,
    now: datetime,
    *,
    alert_hours: Decimal = DEFAULT_ALERT_HOURS,
    critical_hours: Decimal = DEFAULT_CRITICAL_HOURS,
) -> datetime | None:
    """When, without a delivery, the level will next change: the first microsecond at
    which the hours left fall to the next threshold (alert_hours from "ok",
    critical_hours from "low"). None when nothing is consumed or the site is critical
    (it stays critical until a delivery, which makes a new state)."""
    check_thresholds(alert_hours, critical_hours)
    rate = state.consumption_lpm
    current = level(hours_left(state, now), alert_hours=alert_hours, critical_hours=critical_hours)
    if rate == 0 or current == "critical":
        return None
    threshold = alert_hours if current == "ok" else critical_hours
    # Hours left fall one an hour from as_of (remaining drains linearly from there), so
    # the moment is exact: as_of + the state's hours of gas - the threshold.
    hours_of_gas = Fraction(state.gas_liters) / (Fraction(rate) * MINUTES_PER_HOUR)
    return _after(state.as_of, hours_of_gas - Fraction(threshold))

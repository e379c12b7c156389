"""The correctness invariants after every order run, read straight from the databases
(as the admin role: a check, not a service, so it may look across schemas).

First the run's consequences are given time to settle (outboxes relayed, payments and
notifications consumed, no placement half done, every consumer's queue empty, so the
next run starts on a quiet fleet); then every invariant is checked and any failure
stops the bench loudly.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from flow_bench.api import Account, FlowApi
from flow_bench.loadgen import RunResult
from flow_bench.seed import BENCH_SCHEMA

# Orders whose reservation must still be held, and those whose goods have left.
LIVE_STATUSES = ("placed", "confirmed", "dispatched")

_PENDING_OUTBOX_SCHEMAS = """
SELECT table_schema FROM information_schema.tables
WHERE table_name = 'outbox' AND table_type = 'BASE TABLE' ORDER BY table_schema
"""

_MISSING_PAYMENTS = """
SELECT count(*) FROM orders.orders o
LEFT JOIN payments.payments p ON p.order_id = o.id
WHERE p.id IS NULL
"""

_PLACED_NOTIFICATIONS = """
WITH heard AS (
    SELECT (data->>'order_id')::uuid AS order_id, count(*) AS copies,
           bool_and(org_id::text = data->>'vendor_id') AS to_vendor
    FROM notifications.notifications
    WHERE type = 'order.placed'
    GROUP BY 1
)
SELECT count(*) FILTER (WHERE h.copies IS NULL) AS missing,
       count(*) FILTER (WHERE h.copies > 1) AS duplicated,
       count(*) FILTER (WHERE NOT h.to_vendor) AS misaddressed
FROM orders.orders o LEFT JOIN heard h ON h.order_id = o.id
"""

_ORPHAN_HOLDS = """
SELECT count(*) FROM inventory.reservations r
LEFT JOIN orders.orders o ON o.id = r.order_id
WHERE o.id IS NULL AND r.status IN ('held', 'committed')
"""

_PAYMENTS_PER_ORDER = """
SELECT count(*) FILTER (WHERE o.id IS NULL) AS without_order,
       count(*) - count(DISTINCT p.order_id) AS duplicated
FROM payments.payments p LEFT JOIN orders.orders o ON o.id = p.order_id
"""

_NEGATIVE_STOCK = """
SELECT count(*) FROM inventory.stock
WHERE on_hand < 0 OR reserved < 0 OR on_hand - reserved < 0
"""

_CONSERVATION = f"""
WITH per_status AS (
    SELECT r.depot_id, ri.product_id,
           sum(ri.quantity) FILTER (WHERE r.status = 'committed') AS delivered,
           sum(ri.quantity) FILTER (WHERE r.status = 'held') AS held
    FROM inventory.reservations r
    JOIN inventory.reservation_items ri ON ri.reservation_id = r.id
    GROUP BY r.depot_id, ri.product_id
)
SELECT count(*) FILTER (
           WHERE i.on_hand IS DISTINCT FROM
                 (s.on_hand - s.reserved) + s.reserved + coalesce(t.delivered, 0)
       ) AS unbalanced,
       count(*) FILTER (WHERE s.reserved <> coalesce(t.held, 0)) AS reserved_not_held,
       count(*) FILTER (WHERE i.on_hand IS NULL) AS unknown_rows,
       count(*) AS rows
FROM inventory.stock s
LEFT JOIN {BENCH_SCHEMA}.initial_stock i USING (depot_id, product_id)
LEFT JOIN per_status t USING (depot_id, product_id)
"""  # noqa: S608 - built from constants only

_ORDER_HOLDS = f"""
SELECT count(*) FROM orders.orders o
LEFT JOIN inventory.reservations r ON r.id = o.reservation_id
WHERE r.id IS NULL
   OR (o.status IN {LIVE_STATUSES!r} AND r.status <> 'held')
   OR (o.status = 'delivered' AND r.status <> 'committed')
"""  # noqa: S608 - built from constants only


# An SOS becomes one order when accepted (order-service's service/sos.py): a fulfilled SOS
# names an order carrying its sos_id, and an order with a sos_id is its SOS's order.
_SOS_ORDERS = """
SELECT (SELECT count(*) FROM orders.sos_requests s
        LEFT JOIN orders.orders o ON o.id = s.order_id AND o.sos_id = s.id
        WHERE s.status = 'fulfilled' AND o.id IS NULL) AS fulfilled_without_order,
       (SELECT count(*) FROM orders.orders o
        LEFT JOIN orders.sos_requests s
               ON s.id = o.sos_id AND s.order_id = o.id AND s.status = 'fulfilled'
        WHERE o.sos_id IS NOT NULL AND s.id IS NULL) AS orders_without_sos,
       (SELECT count(*) FROM orders.orders WHERE sos_id IS NOT NULL) AS sos_orders
"""


class InvariantViolation(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    ok: bool
    detail: str

    @classmethod
    def none_counted(cls, name: str, counts: dict[str, int], *, context: str = "") -> Invariant:
        """Holds when every count (of what breaks it, keyed by what is counted) is zero;
        `context` opens the detail."""
        detail = ", ".join(f"{count} {what}" for what, count in counts.items())
        return cls(name, not any(counts.values()), f"{context}; {detail}" if context else detail)


@dataclass
class CheckRecord:
    after: str
    orders: int
    drain_seconds: float
    invariants: list[Invariant]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.invariants)

    def summary(self) -> dict[str, Any]:
        return {
            "after": self.after,
            "orders": self.orders,
            "drain_seconds": round(self.drain_seconds, 2),
            "ok": self.ok,
            "invariants": [
                {"name": i.name, "ok": i.ok, "detail": i.detail} for i in self.invariants
            ],
        }


async def queued_messages(vhost: str) -> dict[str, int]:
    """Messages ready or unacknowledged in each of the vhost's queues but the DLQs."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        "list_queues",
        "-p",
        vhost,
        "--no-table-headers",
        "name",
        "messages",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl list_queues -p {vhost} failed ({process.returncode})")
    queued: dict[str, int] = {}
    for line in output.decode().splitlines():
        name, _, count = line.rpartition("\t")
        if name and not name.endswith(".dlq") and count.isdigit() and int(count):
            queued[name] = int(count)
    return queued


@dataclass
class OrderChecks:
    dsn: str
    drain_timeout_s: float
    # The fleet's AMQP vhost: its queues must be empty too before the next run starts.
    vhost: str
    records: list[CheckRecord] = field(default_factory=list)

    async def after_run(self, result: RunResult) -> None:
        """The hook for every order run: settle, check, and stop the bench on a failure."""
        record = await self.check(after=f"{result.label} at {result.offered_rate:g}/s")
        if not record.ok:
            broken = "; ".join(f"{i.name}: {i.detail}" for i in record.invariants if not i.ok)
            raise InvariantViolation(f"after {record.after}: {broken}")

    async def check(self, *, after: str) -> CheckRecord:
        connection = await asyncpg.connect(self.dsn)
        try:
            drain_seconds, unsettled = await self._drain(connection)
            invariants = await self._invariants(connection, unsettled)
            orders = int(await connection.fetchval("SELECT count(*) FROM orders.orders"))
        finally:
            await connection.close()
        record = CheckRecord(after, orders, drain_seconds, invariants)
        self.records.append(record)
        return record

    async def _unsettled(self, connection: asyncpg.Connection) -> dict[str, int]:
        pending: dict[str, int] = {}
        for row in await connection.fetch(_PENDING_OUTBOX_SCHEMAS):
            schema = str(row["table_schema"])
            count = await connection.fetchval(
                # The schema name comes from information_schema, not from input.
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'  # noqa: S608
            )
            if count:
                pending[f"{schema} outbox"] = int(count)
        missing_payments = int(await connection.fetchval(_MISSING_PAYMENTS))
        if missing_payments:
            pending["orders without a payment"] = missing_payments
        notified = await connection.fetchrow(_PLACED_NOTIFICATIONS)
        if notified["missing"]:
            pending["orders without an order.placed notification"] = int(notified["missing"])
        orphans = int(await connection.fetchval(_ORPHAN_HOLDS))
        if orphans:
            pending["holds without an order"] = orphans
        for queue, count in (await queued_messages(self.vhost)).items():
            pending[f"queue {queue}"] = count
        return pending

    async def _drain(self, connection: asyncpg.Connection) -> tuple[float, dict[str, int]]:
        """Wait for the run to settle; returns how long it took and what is still pending."""
        started = time.monotonic()
        while unsettled := await self._unsettled(connection):
            if time.monotonic() - started > self.drain_timeout_s:
                break
            await asyncio.sleep(0.5)
        return time.monotonic() - started, unsettled

    async def _invariants(
        self, connection: asyncpg.Connection, unsettled: dict[str, int]
    ) -> list[Invariant]:
        outboxes = {k: v for k, v in unsettled.items() if k.endswith("outbox")}
        invariants = [
            Invariant(
                "outbox drained",
                not outboxes,
                ", ".join(f"{k}: {v} unpublished" for k, v in outboxes.items())
                or "every row published",
            )
        ]
        negative = int(await connection.fetchval(_NEGATIVE_STOCK))
        invariants.append(
            Invariant.none_counted("no stock negative", {"rows below zero": negative})
        )
        balance = await connection.fetchrow(_CONSERVATION)
        invariants.append(
            Invariant.none_counted(
                "initial = available + reserved + delivered, per stock row",
                {
                    f"of {balance['rows']} rows unbalanced": int(balance["unbalanced"]),
                    "without a recorded initial quantity": int(balance["unknown_rows"]),
                },
            )
        )
        invariants.append(
            Invariant.none_counted(
                "reserved = quantities of live holds, per stock row",
                {"rows differ": int(balance["reserved_not_held"])},
            )
        )
        missing_payments = int(await connection.fetchval(_MISSING_PAYMENTS))
        payments = await connection.fetchrow(_PAYMENTS_PER_ORDER)
        invariants.append(
            Invariant.none_counted(
                "one payment per order",
                {
                    "orders without one": missing_payments,
                    "duplicated": int(payments["duplicated"]),
                    "for no order": int(payments["without_order"]),
                },
            )
        )
        notified = await connection.fetchrow(_PLACED_NOTIFICATIONS)
        invariants.append(
            Invariant.none_counted(
                "one order.placed notification per order, to its vendor",
                {
                    "missing": int(notified["missing"]),
                    "duplicated": int(notified["duplicated"]),
                    "not to the vendor": int(notified["misaddressed"]),
                },
            )
        )
        sos = await connection.fetchrow(_SOS_ORDERS)
        invariants.append(
            Invariant.none_counted(
                "every fulfilled SOS has its order, every SOS order its fulfilled SOS",
                {
                    "fulfilled SOS without their order": int(sos["fulfilled_without_order"]),
                    "orders without their SOS": int(sos["orders_without_sos"]),
                },
                context=f"{sos['sos_orders']} SOS orders",
            )
        )
        mismatched = int(await connection.fetchval(_ORDER_HOLDS))
        orphans = int(await connection.fetchval(_ORPHAN_HOLDS))
        invariants.append(
            Invariant.none_counted(
                "every order holds its stock, no hold without an order",
                {"orders with a wrong hold": mismatched, "holds without an order": orphans},
            )
        )
        return invariants


# --- the admin's runway list (scenario 7) ---------------------------------------------------

# Consecutive pages read at each of these places in the list: its start, middle and end.
RUNWAY_CHECK_PAGES_EACH = 3


def soonest_first_breaks(items: Sequence[dict[str, Any]]) -> int:
    """How many neighbouring runways are out of order (runs_out_at ascending, NULLs last,
    then site_id)."""
    breaks = 0
    for before, after in itertools.pairwise(items):
        a, b = before.get("runs_out_at"), after.get("runs_out_at")
        if a is None and b is not None:
            breaks += 1
        elif a is not None and b is not None:
            moment_a, moment_b = datetime.fromisoformat(a), datetime.fromisoformat(b)
            if moment_a > moment_b or (
                moment_a == moment_b and str(before["site_id"]) > str(after["site_id"])
            ):
                breaks += 1
        elif a is None and b is None and str(before["site_id"]) > str(after["site_id"]):
            breaks += 1
    return breaks


def runway_check_pages(pages: int) -> list[list[int]]:
    """Runs of consecutive pages to read: the first, middle and last few (no page twice)."""
    each = RUNWAY_CHECK_PAGES_EACH
    starts = [1, max(1, pages // 2 - each // 2), max(1, pages - each + 1)]
    seen: set[int] = set()
    runs: list[list[int]] = []
    for start in starts:
        run = [p for p in range(start, min(pages, start + each - 1) + 1) if p not in seen]
        seen.update(run)
        if run:
            runs.append(run)
    return runs


async def check_runway_list(
    api: FlowApi, admin: Account, *, expected_total: int, seeded: int, page_size: int
) -> CheckRecord:
    """Through the gateway as the platform admin: the list's total is every site with a
    runway, and a sample of consecutive pages (start, middle, end) reads soonest first,
    full but for the last page."""
    path = "/api/v1/supply/runway"
    first = await api.call("GET", f"{path}?page=1&page_size={page_size}", account=admin)
    total = int(first["total"])
    pages = max(1, -(-total // page_size))
    breaks = short_pages = read = 0
    for run in runway_check_pages(pages):
        items: list[dict[str, Any]] = []
        for page in run:
            answer = (
                first
                if page == 1
                else await api.call(
                    "GET", f"{path}?page={page}&page_size={page_size}", account=admin
                )
            )
            got = list(answer["items"])
            expected = page_size if page < pages else total - page_size * (pages - 1)
            short_pages += len(got) != expected
            items += got
            read += 1
        breaks += soonest_first_breaks(items)
    invariants = [
        Invariant.none_counted(
            "the admin's runway list counts every site",
            {
                f"sites off (listed {total:,}, in site_supply {expected_total:,})": abs(
                    total - expected_total
                )
            },
            context=f"{seeded:,} seeded",
        ),
        Invariant.none_counted(
            "the admin's runway list is soonest first, NULLs last",
            {"neighbours out of order": breaks, "pages not full": short_pages},
            context=f"{read} pages of {pages:,} read (start, middle, end)",
        ),
    ]
    return CheckRecord(after="runway reads", orders=0, drain_seconds=0.0, invariants=invariants)

"""PostgreSQL's own ceiling for an order's core writes: pgbench running the same SQL
statements an order placement makes (the conditional reservation UPDATE of a stock
row, the order INSERT, the outbox INSERT) in one transaction, against a scratch copy
of those tables holding the same hot stock rows the HTTP orders hit, with the same
client count as the load generator's concurrency cap.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from flow_shared.json_codec import dumps

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
SCRATCH = "bench_pgbench"
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class PgbenchRun:
    clients: int
    tps: float
    latency_avg_ms: float | None


def parse_output(output: str) -> tuple[float, float | None]:
    tps = _TPS.search(output)
    if tps is None:
        raise RuntimeError(f"pgbench printed no tps:\n{output[-2000:]}")
    latency = _LATENCY.search(output)
    return float(tps.group(1)), float(latency.group(1)) if latency else None


def order_script(keys: int, *, vendor_id: str, depot_id: str, hospital_id: str) -> str:
    """One order's writes, as pgbench's custom script."""
    user_id = str(uuid.uuid4())
    history = dumps([{"status": "placed", "at": "2026-11-24T12:00:00Z", "actor": user_id}])
    # An envelope of the size order.placed really has (two lines).
    payload = dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "order.placed",
            "version": 1,
            "occurred_at": "2026-11-24T12:00:00Z",
            "producer": "order-service",
            "correlation_id": uuid.uuid4().hex,
            "data": {
                "order_id": str(uuid.uuid4()),
                "hospital_org_id": hospital_id,
                "vendor_id": vendor_id,
                "depot_id": depot_id,
                "status": "placed",
                "priority": "urgent",
                "payment_method": "invoice",
                "total": "131.25",
                "currency": "GBP",
                "items": [
                    {
                        "product_id": str(uuid.uuid4()),
                        "quantity": 2,
                        "unit_price": "50.00",
                        "line_total": "100.00",
                    },
                    {
                        "product_id": str(uuid.uuid4()),
                        "quantity": 1,
                        "unit_price": "0.00",
                        "line_total": "0.00",
                    },
                ],
                "actor_id": user_id,
                "at": "2026-11-24T12:00:00Z",
            },
        }
    ).decode()
    return f"""\\set k random(1, {keys})
\\set q random(1, 3)
BEGIN;
UPDATE {SCRATCH}.stock AS s
   SET reserved = s.reserved + :q, updated_at = clock_timestamp()
  FROM {SCRATCH}.stock_keys AS k
 WHERE k.k = :k AND s.depot_id = k.depot_id AND s.product_id = k.product_id
   AND s.on_hand - s.reserved >= :q
RETURNING s.depot_id, s.product_id, s.on_hand, s.reserved, s.low_stock_threshold,
          s.low_stock_alerted, s.updated_at;
INSERT INTO {SCRATCH}.orders (id, hospital_org_id, placed_by, vendor_id, depot_id, site_id,
    delivery_lat, delivery_lon, priority, payment_method, status, status_history,
    reservation_id, reservation_status, quote_id, currency, subtotal, delivery_fee,
    surcharge, tax, total, distance_km, expires_at, created_at, updated_at)
VALUES (gen_random_uuid(), '{hospital_id}', '{user_id}', '{vendor_id}', '{depot_id}', NULL,
    52.2, 0.12, 'urgent', 'invoice', 'placed', '{history.decode()}', gen_random_uuid(), 'held',
    gen_random_uuid(), 'GBP', 100.00, 25.00, 0.00, 6.25, 131.25, 12.5,
    now() + interval '1 hour', now(), now());
INSERT INTO {SCRATCH}.outbox (event_id, event_type, payload)
VALUES (gen_random_uuid(), 'order.placed', '{payload}');
END;
"""  # noqa: S608 - our own constants and ids, no input


async def prepare_scratch(dsn: str, depot_ids: list[str]) -> int:
    """Copies of the tables (with their constraints and indexes) and of the hot stock
    rows; returns how many stock rows the script picks from."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            f"""
            DROP SCHEMA IF EXISTS {SCRATCH} CASCADE;
            CREATE SCHEMA {SCRATCH};
            CREATE TABLE {SCRATCH}.stock (LIKE inventory.stock INCLUDING ALL);
            CREATE TABLE {SCRATCH}.orders (LIKE orders.orders INCLUDING ALL);
            CREATE TABLE {SCRATCH}.outbox (LIKE orders.outbox INCLUDING ALL);
            CREATE SEQUENCE {SCRATCH}.outbox_seq OWNED BY {SCRATCH}.outbox.seq;
            ALTER TABLE {SCRATCH}.outbox
                ALTER COLUMN seq SET DEFAULT nextval('{SCRATCH}.outbox_seq');
            CREATE TABLE {SCRATCH}.stock_keys (
                k integer PRIMARY KEY, depot_id uuid NOT NULL, product_id uuid NOT NULL);
            """
        )
        await connection.execute(
            f"INSERT INTO {SCRATCH}.stock SELECT * FROM inventory.stock "  # noqa: S608
            "WHERE depot_id = ANY($1::uuid[])",
            depot_ids,
        )
        await connection.execute(
            f"INSERT INTO {SCRATCH}.stock_keys "  # noqa: S608
            f"SELECT row_number() OVER (ORDER BY depot_id, product_id), depot_id, product_id "
            f"FROM {SCRATCH}.stock"
        )
        await connection.execute(f"ANALYZE {SCRATCH}.stock; ANALYZE {SCRATCH}.stock_keys")
        count = await connection.fetchval(f"SELECT count(*) FROM {SCRATCH}.stock_keys")  # noqa: S608
        return int(count)
    finally:
        await connection.close()


async def drop_scratch(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
    finally:
        await connection.close()


def _connection_args(dsn: str) -> list[str]:
    parsed = urllib.parse.urlparse(dsn)
    return [
        "-h",
        parsed.hostname or "127.0.0.1",
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        parsed.path.lstrip("/"),
    ]


async def run_pgbench(dsn: str, script: str, *, clients: int, seconds: float) -> PgbenchRun:
    """One pgbench run (prepared statements, as the services' asyncpg uses them)."""
    directory = Path(tempfile.mkdtemp(prefix="flow-bench-pgbench-"))
    try:
        path = directory / "order.sql"
        path.write_text(script)
        threads = max(1, min(clients, os.cpu_count() or 1))
        command = [
            PGBENCH,
            "-n",
            "-M",
            "prepared",
            "-f",
            str(path),
            "-c",
            str(clients),
            "-j",
            str(threads),
            "-T",
            str(max(1, round(seconds))),
            *_connection_args(dsn),
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"pgbench failed ({process.returncode}):\n{text[-2000:]}")
        tps, latency = parse_output(text)
        return PgbenchRun(clients=clients, tps=tps, latency_avg_ms=latency)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

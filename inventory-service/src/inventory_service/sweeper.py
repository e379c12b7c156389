"""The background release of expired holds, one PeriodicTask per process.

Several inventory processes run it at once safely: each batch takes only
reservation rows nobody else has locked (SKIP LOCKED), in its own transaction.
"""

from __future__ import annotations

import structlog
from redis.asyncio import Redis

from flow_shared.db import Database
from flow_shared.metrics import business_counter
from flow_shared.unit_of_work import unit_of_work
from inventory_service.cache import bump_generation
from inventory_service.service.reservations import expire_due_reservations

log = structlog.get_logger("inventory.sweeper")

RESERVATIONS_EXPIRED = business_counter(
    "flow_inventory_reservations_expired_total", "Holds released by the sweeper on expiry."
)


class ReservationSweeper:
    def __init__(self, database: Database, redis: Redis, *, redis_prefix: str, batch_size: int):
        self.database = database
        self.redis = redis
        self.redis_prefix = redis_prefix
        self.batch_size = batch_size

    async def run_once(self) -> int:
        """Expire everything due now, a batch per transaction. Returns how many expired."""
        total = 0
        while True:
            async with unit_of_work(self.database) as uow:
                expired = await expire_due_reservations(uow.session, batch_size=self.batch_size)
            if expired:
                total += expired
                RESERVATIONS_EXPIRED.inc(expired)
                await bump_generation(self.redis, self.redis_prefix)
            if expired < self.batch_size:
                break
        if total:
            log.info("reservations_expired", count=total)
        return total

"""The background deletion of long-expired quotes, one PeriodicTask per process.

Several pricing processes run it at once safely: each batch takes only quote rows
nobody else has locked (SKIP LOCKED), in its own transaction.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import structlog

from flow_shared.clock import Clock, utcnow
from flow_shared.db import Database
from flow_shared.lifecycle import run_in_batches
from pricing_service.service.quotes import prune_expired_quotes

log = structlog.get_logger("pricing_service.pruner")


class QuotePruner:
    def __init__(
        self,
        database: Database,
        *,
        retention: timedelta,
        batch_size: int,
        clock: Clock = utcnow,
    ) -> None:
        self.database = database
        self.retention = retention
        self.batch_size = batch_size
        self.clock = clock

    async def run_once(self) -> int:
        """Prune everything due now, a batch per transaction. Returns how many went."""
        batch = partial(
            prune_expired_quotes,
            now=self.clock(),
            retention=self.retention,
            batch_size=self.batch_size,
        )
        total = await run_in_batches(self.database, batch, batch_size=self.batch_size)
        if total:
            log.info("quotes_pruned", count=total)
        return total

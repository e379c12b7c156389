"""A clock a test moves: hand `clock` to an app or a job (`flow_shared.clock.Clock`)
and `advance` it instead of waiting."""

from __future__ import annotations

from datetime import datetime, timedelta


class MovableClock:
    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("a clock tells timezone-aware time")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        """Move on by `timedelta(**delta)` (hours=, minutes=, ...); returns the new now."""
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.utcoffset() is None:
            raise ValueError("a clock tells timezone-aware time")
        self._now = moment

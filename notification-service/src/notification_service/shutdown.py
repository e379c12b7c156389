"""Ending open streams as soon as the server is told to stop.

On SIGTERM uvicorn stops accepting and waits for in-flight responses to finish before
it runs the lifespan shutdown. A stream never finishes by itself, so without this the
process would wait out its graceful-shutdown timeout and then cut every stream. The
server does not tell the application that it is draining, so the process's SIGTERM and
SIGINT handlers (uvicorn's, installed before the lifespan starts) are wrapped: the
wrapper asks the streams to end, then hands the signal on unchanged.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger("notifications.shutdown")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class StopSignalHook:
    def __init__(
        self, on_stop: Callable[[], None], signals: tuple[signal.Signals, ...] = SIGNALS
    ) -> None:
        self._on_stop = on_stop
        self._signals = signals
        self._previous: dict[signal.Signals, SignalHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        # Signal handlers can only be set from the main thread (not under a test runner's
        # worker thread, say); there, shutdown simply waits for the streams' own end.
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        for sig in self._signals:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # A signal handler must not touch the loop's state directly.
            loop.call_soon_threadsafe(self._on_stop)
        previous = self._previous.get(signal.Signals(signum))
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            log.info("stop_signal_default_action", signal=signum)
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

"""Stopping a training run cleanly: SIGINT and SIGTERM set a flag the loop checks after each step;
`Interrupted` carries the exit status (128 + signal) and the line that says how to resume.

Usage::

    with StopSignals() as signals:
        ...                                  # after each step: if signals.received: raise Interrupted(...)
"""
from __future__ import annotations

import signal
import threading

from ..errors import RoadsegError, SignalStop


class Interrupted(RoadsegError):
    """Training stopped by SIGINT or SIGTERM; RUN/last.pt holds the last complete epoch."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class StopSignals:
    """While active, SIGINT and SIGTERM set a flag that the training loop checks after each step;
    a second signal interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            raise SignalStop
        self.received = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

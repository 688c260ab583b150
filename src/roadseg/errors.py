"""User-facing errors: one line that names the file, the problem and what to do.

Usage: ``raise InputError(path, "is not a PNG image", "re-export it as PNG")``
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any


class RoadsegError(Exception):
    """An error the command line prints as one line and exits with status 2."""

    exit_code = 2


class SignalStop(KeyboardInterrupt):
    """Raised by roadseg's own SIGINT/SIGTERM handlers. A subclass on purpose: when the exact
    KeyboardInterrupt passes through code run by ``exec`` (dataclasses, namedtuples: common while
    torch is imported), CPython marks it unhandled for the whole process and, even though the CLI
    caught it and returned 130, kills itself with SIGINT at exit (status -2 instead of 130)."""


class InputError(RoadsegError):
    """Bad input: names the offending file or folder, what is wrong and how to fix it."""

    def __init__(self, path: str | Path | None, problem: str, fix: str = "") -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        message = f"{where}{problem}"
        if fix:
            message += f"; {fix}"
        super().__init__(message)


@functools.cache
def note_once(message: str) -> None:
    """Print a one-line note on stderr, once per process (e.g. a fallback to a slower path)."""
    print(message, file=sys.stderr)


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or raise the one line that says how to install it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(None, f"{what} needs the {module.split('.')[0]} package",
                         f"pip install 'roadseg[{extra}]'") from None


def say_interrupted(signum: int) -> int:
    """Print the one line a command stopped by `signum` ends with; returns its exit status, 128 + signum."""
    import signal
    print(f"roadseg: interrupted ({signal.Signals(signum).name}); nothing half-written was left",
          file=sys.stderr, flush=True)
    return 128 + signum


def end_if_importing(signum: int, frame: Any) -> None:
    """For a signal handler: when the signal landed inside an import statement, print the one line and
    end the process at once (an exception raised there can cross torch's C++ (pybind11) frames, which
    then abort the process; an import writes nothing)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            import os
            os._exit(say_interrupted(signum))
        frame = frame.f_back

"""An interrupt that no ``except`` can swallow.

Ctrl-C raises :class:`KeyboardInterrupt` wherever Python happens to be. Inside
TensorFlow's converter cleanup it can surface as ``OSError [Errno 9]``, and a
broad ``except Exception`` then turns the user's Ctrl-C into a "note" and the
run goes on to replace the previous bundle. So the signal is also *recorded*:
:func:`checkpoint` re-raises it between phases, and the bundle writer calls it
before publishing, so an interrupted run never publishes, whatever swallowed
the first exception.

SIGTERM (``docker stop``, CI cancels, ``kill``) is handled exactly like SIGINT.
Exit codes follow the shell's convention: 128 + the signal number (130 for
SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import functools
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
EXIT_CODES = {"SIGINT": 128 + int(signal.SIGINT), "SIGTERM": 128 + int(signal.SIGTERM)}

_received: str | None = None
_depth = 0


def received() -> str | None:
    """The name of the signal received inside :func:`catch_signals` ("SIGINT"/"SIGTERM"), or None."""
    return _received


def exit_code(name: str | None = None) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
    return EXIT_CODES.get(name or _received or "SIGINT", 130)


def checkpoint() -> None:
    """Raise :class:`KeyboardInterrupt` again if a signal was received, even if the first one was swallowed."""
    if _received is not None:
        raise KeyboardInterrupt(_received)


def _handler(signum: int, _frame: Any) -> None:
    global _received
    name = _NAMES.get(signum, str(signum))
    if _received is None:
        _received = name
    raise KeyboardInterrupt(name)


@contextmanager
def catch_signals() -> Iterator[None]:
    """Record SIGINT and SIGTERM (and raise KeyboardInterrupt for both) while the block runs.

    Nested uses share one record; the outermost restores the previous handlers
    and forgets the signal. Outside the main thread it does nothing (handlers
    can only be set there).
    """
    global _received, _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    previous = {s: signal.getsignal(s) for s in _NAMES}
    _received, _depth = None, 1
    for s in _NAMES:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        _depth = 0
        for s, h in previous.items():
            signal.signal(s, h)
        _received = None


def handles_signals(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`catch_signals` and :func:`checkpoint` when it returns."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with catch_signals():
            result = fn(*args, **kwargs)
            checkpoint()
            return result

    return wrapper  # type: ignore[return-value]

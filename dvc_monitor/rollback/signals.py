"""Signals and checkpoints of a rollback.

SIGTERM and SIGHUP become ``Terminated`` (SIGINT already raises KeyboardInterrupt) so that
the transaction is undone; during an undo they are ignored, so that a second Ctrl-C
cannot leave it half done. ``Checkpoint`` callables are called after each step; the
default does nothing (tests install their own to cause faults at exact points).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

STEPS = ("preflight", "backup", "restore", "fetch", "checkout", "repro", "verify", "commit",
         "tag")
Checkpoint = Callable[[str], None]


def no_checkpoint(step: str) -> None:  # noqa: ARG001 - the default: nothing happens
    return None


class Terminated(BaseException):
    """SIGTERM/SIGHUP turned into an exception so that the transaction is undone."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Terminated`` (SIGINT already raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise Terminated(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Let an undo finish: a second Ctrl-C must not leave it half done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)

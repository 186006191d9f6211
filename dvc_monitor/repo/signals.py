"""Signals and checkpoints of a rollback.

SIGTERM and SIGHUP become ``Terminated`` and SIGINT ``KeyboardInterrupt`` (even when the
process was started with it ignored), so that the transaction is undone; during an undo they are ignored, so that a second Ctrl-C
cannot leave it half done. ``interruptible`` keeps these handlers in force around work
that would otherwise drop SIGINT (DVC's repro ignores it while it waits for a stage
command on the main thread). ``Checkpoint`` callables are called after each step; the
default does nothing (tests install their own to cause faults at exact points).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator, TypeVar

STEPS = ("preflight", "backup", "restore", "fetch", "checkout", "repro", "verify", "commit",
         "tag")
Checkpoint = Callable[[str], None]
T = TypeVar("T")


def no_checkpoint(step: str) -> None:  # noqa: ARG001 - the default: nothing happens
    return None


class Terminated(BaseException):
    """SIGTERM/SIGHUP turned into an exception so that the transaction is undone."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Terminated``, SIGINT raises KeyboardInterrupt.

    SIGINT too is set here: a process started with SIGINT ignored (a background job of a
    shell script, or the child of a program that ignores it) gets no KeyboardInterrupt
    from Python, and a rollback must still be aborted and undone by it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise Terminated(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
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


def interruptible(fn: Callable[[], T], stop: Callable[[], None]) -> T:
    """``fn()`` on a worker thread, so that the main thread's signal handlers stay in force.

    DVC's repro sets SIGINT to SIG_IGN while it waits for a stage command, but only on the
    main thread: a SIGINT sent to our pid (not the process group, so the stage command
    does not get it) was lost. Here the main thread only waits; a signal raises there as
    anywhere else, ``stop()`` ends the child processes ``fn`` waits for (again until ``fn``
    returns, signals ignored meanwhile), and then the signal's exception goes on up.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    box: dict = {}

    def work() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed over to the main thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="dvc-monitor-worker", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    except BaseException:
        with signals_ignored():
            while worker.is_alive():  # a command started after the signal is stopped too
                stop()
                worker.join(0.2)
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]

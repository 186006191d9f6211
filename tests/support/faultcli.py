"""``dvc-monitor`` with faults at exact rollback checkpoints (a test hook; tests only).

Usage: ``python faultcli.py SPEC ARGS...`` runs ``dvc-monitor ARGS...`` with a checkpoint
callable installed. SPEC is ``<step>[:hang|:kill|:pause]``, several separated by commas;
``<step>`` is one of ``dvc_monitor.repo.signals.STEPS`` or ``undo`` (half way through
an undo). A bare step raises an exception there; ``hang`` prints a line and sleeps (so a
test can kill the process), ``kill`` SIGKILLs the process, ``pause`` waits for SIGUSR1.
``lock:report`` injects nothing: it prints a line (``LOCK_WAIT``) when the command finds
the repository's write lock held by another process and starts waiting for it, so that a
test can wait for that moment instead of sleeping.
"""

from __future__ import annotations

import os
import signal
import sys
import time

LOCK_WAIT = "test fault: waiting for the repository lock"


def report_lock_waits() -> None:
    """Print ``LOCK_WAIT`` once, on the first failed attempt at the repository lock.

    Only listens: filelock logs every attempt that finds the lock held (DEBUG, logger
    ``filelock``); the lock and its waiting are the real ones.
    """
    import logging

    from dvc_monitor.repo.locking import LOCK_NAME

    class Report(logging.Handler):
        said = False

        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if not self.said and "not acquired" in text and LOCK_NAME in text:
                self.said = True
                print(f"dvc-monitor: {LOCK_WAIT} (pid {os.getpid()})", file=sys.stderr,
                      flush=True)

    log = logging.getLogger("filelock")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(Report())


def checkpoint_for(spec: str):
    faults = {}
    for item in spec.split(","):
        where, _, how = item.strip().partition(":")
        if how == "report":
            report_lock_waits()
            continue
        faults[where] = how

    def checkpoint(step: str) -> None:
        if step not in faults:
            return
        how = faults[step]
        if how == "hang":
            print(f"dvc-monitor: test fault: hanging after {step} (pid {os.getpid()})",
                  file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "pause":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
            print(f"dvc-monitor: test fault: paused after {step} (pid {os.getpid()})",
                  file=sys.stderr, flush=True)
            signal.sigwait({signal.SIGUSR1})
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
            return
        raise RuntimeError(f"injected fault after step '{step}'")

    return checkpoint


if __name__ == "__main__":
    from dvc_monitor.cli import main

    sys.exit(main(sys.argv[2:], checkpoint=checkpoint_for(sys.argv[1])))

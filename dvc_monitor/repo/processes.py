"""Processes dvc-monitor starts: stopping stage commands on an abort."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def kill_children() -> None:
    """Stop stage commands we started (a SIGTERM reaches us, not the child)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with DVC
        return
    with contextlib.suppress(Exception):
        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(Exception):
                child.terminate()
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            with contextlib.suppress(Exception):
                child.kill()


def kill_orphans(root: Path) -> None:
    """Stop stage commands left running by a killed rollback (DVC sets DVC_ROOT for them)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return
    me = os.getpid()
    ancestors = set()
    with contextlib.suppress(Exception):
        ancestors = {p.pid for p in psutil.Process().parents()}
    victims = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me or proc.pid in ancestors:
            continue
        with contextlib.suppress(Exception):
            if proc.environ().get("DVC_ROOT") == str(root) and proc.environ().get("DVC_STAGE"):
                victims.append(proc)
    for proc in victims:
        with contextlib.suppress(Exception):
            proc.kill()

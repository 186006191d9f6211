"""One lock per repository for every dvc-monitor write (register, promote, rollback, ...).

The lock file lives in ``.git/`` so it is never committed or seen by ``git status``.
Two writers never interleave: the second waits up to ``timeout`` seconds, then fails
with a message that names the holder. Within one process the lock is re-entrant, so a
rollback that holds it can call ``registry.promote``, which takes it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from dvc_monitor.errors import RepositoryLocked

LOCK_NAME = "dvc-monitor.lock"
DEFAULT_TIMEOUT = 30.0


def lock_path(root: str | Path) -> Path:
    from dvc_monitor.repo.git import GitRepo

    git_dir = GitRepo(root).run("rev-parse", "--absolute-git-dir").strip()
    return Path(git_dir) / LOCK_NAME


@contextlib.contextmanager
def repo_lock(root: str | Path, command: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Path]:
    """Hold the repository's write lock while the block runs."""
    from filelock import FileLock, Timeout

    path = lock_path(root)
    info_path = path.with_suffix(".owner")
    lock = FileLock(str(path), is_singleton=True)  # same path, same lock: re-entrant
    outermost = not lock.is_locked
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        holder = _read_owner(info_path)
        raise RepositoryLocked(
            f"another dvc-monitor command is writing to this repository ({holder}); "
            "wait for it to finish and try again"
        ) from None
    try:
        if outermost:
            info_path.write_text(json.dumps({
                "command": command, "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }))
        yield path
    finally:
        if outermost:
            with contextlib.suppress(OSError):
                info_path.unlink()
        lock.release()


def _read_owner(path: Path) -> str:
    try:
        owner = json.loads(path.read_text())
        return f"'{owner['command']}', pid {owner['pid']}, since {owner['since']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"

"""The ``.git/dvc-monitor`` state folder: where journals of unfinished writes live.

Finding it is cheap enough for every command: a few ``stat`` calls, no subprocess, no DVC.
"""

from __future__ import annotations

import os
from pathlib import Path

from dvc_monitor.repo.git import GitRepo

STATE_DIR = "dvc-monitor"
ROLLBACK_JOURNAL = "rollback.json"
INGEST_JOURNAL = "ingest.json"


def git_dir_of(start: str | os.PathLike[str]) -> Path | None:
    """The .git folder of the repository containing ``start``, found without running git."""
    try:
        path = Path(start).resolve()
    except OSError:
        return None
    for folder in (path, *path.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            return dotgit
        if dotgit.is_file():
            try:
                line = dotgit.read_text().strip()
            except OSError:
                return None
            if line.startswith("gitdir:"):
                gd = Path(line[len("gitdir:"):].strip())
                return gd if gd.is_absolute() else (folder / gd).resolve()
            return None
    return None


def pending_journal(start: str | os.PathLike[str] = ".") -> Path | None:
    """The journal of an unfinished rollback in the repository at ``start``, or None.

    Cheap enough for every command: a few ``stat`` calls, no subprocess, no DVC.
    """
    git_dir = git_dir_of(start)
    if git_dir is None:
        return None
    journal = git_dir / STATE_DIR / ROLLBACK_JOURNAL
    return journal if journal.is_file() else None


def state_dir(git: GitRepo) -> Path:
    """The ``.git/dvc-monitor`` folder of ``git``'s repository (it may not exist yet)."""
    return Path(git.run("rev-parse", "--absolute-git-dir").strip()) / STATE_DIR

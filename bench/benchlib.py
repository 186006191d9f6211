"""What the bench scripts share: the environment they run commands in.

Commands run as a user runs them, as separate processes, with a HOME, a dvc-monitor home
and a git identity of their own (``os.environ`` itself is never changed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a bench's commands, rooted at ``home``."""
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", HOME=str(home),
        DVC_MONITOR_HOME=str(home / "dvc-monitor"), DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.com",
        GIT_CONFIG_NOSYSTEM="1", PYTHONWARNINGS="ignore", **extra,
    )
    return env

"""What the bench scripts share: the environment they run commands in.

Commands run as a user runs them, as separate processes, with a HOME, a dvc-monitor home
and a git identity of their own (``os.environ`` itself is never changed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

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


def anomaly_repo(root: Path, name: str) -> tuple[Path, Callable[..., None]]:
    """``root/repo``: the anomaly template's model ``name`` trained and committed, v1.0.0
    registered and in prod (DVC remote ``root/remote``); and ``sh(*args)``, which runs a
    command there in the bench's environment."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    (root / "home").mkdir(exist_ok=True)
    env = env_for(root / "home")

    def sh(*args: str) -> None:
        subprocess.run(list(args), cwd=repo, env=env, check=True, capture_output=True)

    dm = str(BIN / "dvc-monitor")
    sh("git", "init", "-q", "-b", "main")
    sh(dm, "init", "--template", "anomaly", "--name", name, "--sample-data",
       "--remote", str(root / "remote"))
    sh(str(BIN / "dvc"), "repro", f"models/{name}/dvc.yaml")
    sh("git", "add", "-A")
    sh("git", "commit", "-q", "-m", "v1.0.0")
    sh(dm, "register", name, "--version", "v1.0.0")
    sh(dm, "promote", name, "v1.0.0", "--stage", "prod")
    return repo, sh

"""Every call dvc-monitor makes into DVC. DVC is imported here, lazily, and nowhere else.

Read-only commands (versions, show, history, diff) never come here: they read
``dvc.lock`` from git directly. Writes go through DVC's own Python API so that what
lands in ``.dvc`` files, ``dvc.lock`` and the cache is exactly what ``dvc`` would write.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Iterator

from dvc_monitor.errors import ExternalCommandError


@contextlib.contextmanager
def open_repo(root: str | Path) -> Iterator["object"]:
    """A ``dvc.repo.Repo`` for ``root``; DVC errors become one-line ``ExternalCommandError``."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            yield repo
    except DvcException as exc:
        raise ExternalCommandError(f"dvc: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text}: {str(cause).strip()}"
    return " ".join(text.split())


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence DVC's own logging and progress output (our commands print their own)."""
    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def is_dvc_repo(root: str | Path) -> bool:
    return (Path(root) / ".dvc").is_dir()


def init(root: str | Path) -> None:
    """``dvc init`` (which also stages DVC's files in git)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with quiet():
            Repo.init(str(root))
    except DvcException as exc:
        raise ExternalCommandError(f"dvc init: {_one_line(exc)}") from None


def remotes(root: str | Path) -> dict[str, str]:
    """Configured remotes (name -> url) from the repository's DVC config."""
    with open_repo(root) as repo:
        return {name: conf.get("url", "") for name, conf in repo.config["remote"].items()}


def add_default_remote(root: str | Path, name: str, url: str) -> None:
    """``dvc remote add -d NAME URL`` into the project config (``.dvc/config``)."""
    with open_repo(root) as repo:
        with repo.config.edit("repo") as conf:
            conf["remote"][name] = {"url": url}
            conf["core"]["remote"] = name


def add(root: str | Path, target: str) -> None:
    """``dvc add TARGET`` (relative to ``root``); writes TARGET.dvc and caches the data."""
    with open_repo(root) as repo, quiet():
        repo.add(str(Path(root) / target))


def repro(root: str | Path, targets: list[str] | None = None, force: bool = False) -> None:
    """``dvc repro TARGETS``, with DVC's stage output hidden unless it fails."""
    with open_repo(root) as repo, quiet():
        repo.reproduce(targets=[str(Path(root) / t) for t in targets] if targets else None,
                       force=force)


def status(root: str | Path, targets: list[str] | None = None) -> dict:
    """``dvc status TARGETS``: an empty dict means the pipeline is up to date."""
    with open_repo(root) as repo, quiet():
        return repo.status(targets=[str(Path(root) / t) for t in targets] if targets else None)


def md5_cache_dir(root: str | Path) -> str:
    """The local cache's object folder, where md5 ``ab12...`` is ``<dir>/ab/12...``.

    ``.dvc/cache/files/md5`` unless the cache is configured elsewhere.
    """
    with open_repo(root) as repo:
        return str(repo.cache.local.path)

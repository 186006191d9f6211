"""``load_model``: the model a registry reference names, loaded and verified.

A repository is a local path or a git URL. A URL is cloned once into the user cache
folder (``<cache>/clones/<name>-<hash of the URL>``) and its branches and tags are
refreshed by ``fetch_registry``: one ``git ls-remote``, and a ``git fetch`` only when the
origin's refs differ from the clone's. The model object comes from that clone's DVC
remote, fetched for the version's commit only (what ``dvc.api`` and ``dvc artifacts get``
do).

The model bytes are found by the md5 that the version's ``dvc.lock`` records, checked
against the md5 the registry recorded at registration, and loaded with
``modelio.load_model_bytes`` (md5 check, trusted-type audit, never pickle) by the one
reader of a version's model (``model.state.load_model``): an adopted model comes back
bound to its ``monitor.yaml`` (threshold, interval) with its ``trusted_types`` applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_monitor.model.data import ModelConfig
from dvc_monitor.errors import (
    ExternalCommandError, ModelFileError, NotAGitRepository, UnknownVersion, UsageError,
)

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.production.scoring import Scores
    from dvc_monitor.registry.values import ModelVersion

_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:")
_URL_SCHEMES = ("file://", "git://", "http://", "https://", "ssh://", "git+ssh://")


def is_url(repo: str | Path) -> bool:
    """True when ``repo`` is a git URL rather than a folder on this machine."""
    text = str(repo)
    if Path(text).exists():
        return False
    return text.startswith(_URL_SCHEMES) or bool(_SCP_URL.match(text))


def default_cache_dir() -> Path:
    """The user cache folder of dvc-monitor (``~/.cache/dvc-monitor`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("dvc-monitor", appauthor=False))


def clone_dir(url: str, cache_dir: str | Path | None = None) -> Path:
    """Where the cached clone of ``url`` lives (a readable name plus a hash of the URL)."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1])
    stem = stem.removesuffix(".git").strip("-.") or "repo"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return base / "clones" / f"{stem[:40]}-{digest}"


def open_repo(repo: str | Path = ".", cache_dir: str | Path | None = None,
              refresh: bool = True) -> Path:
    """The root of a local repository, or of the up-to-date cached clone of a git URL."""
    from dvc_monitor.repo.git import GitRepo

    if not is_url(repo):
        return GitRepo.discover(repo).root
    url = str(repo)
    dest = clone_dir(url, cache_dir)
    from filelock import FileLock

    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_file(dest)):
        if not (dest / ".git").is_dir():
            _git("clone", "-q", "--", url, str(dest), what=f"clone {url}")
            return dest
    if refresh:
        fetch_registry(dest)
    return dest


def _lock_file(clone: Path) -> str:
    return str(clone) + ".lock"  # next to the clone: one writer at a time (workers, processes)


REGISTRY_REFS = ("refs/tags", "refs/remotes/origin")  # what a cached clone keeps of origin


def fetch_registry(clone: Path) -> bool:
    """Bring a cached clone's branches and tags up to date with its origin; True when a
    ``git fetch`` ran.

    One ``git ls-remote`` of the origin's heads and tags first (one small request): when
    they name the objects the clone already has, nothing is fetched. Otherwise ``git fetch``
    runs under the clone's lock, unless another process (a replica, a ``--workers``
    sibling) brought the clone up to date while this one waited for the lock. Tags are
    forced and pruned: a registry tag moved or deleted upstream is so here too.
    """
    from filelock import FileLock

    remote = _remote_refs(clone)
    if remote == _clone_refs(clone):
        return False
    with FileLock(_lock_file(clone)):
        if remote == _clone_refs(clone):  # fetched by another process meanwhile
            return False
        _git("-C", str(clone), "fetch", "-q", "--force", "--prune", "--prune-tags", "origin",
             "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*",
             what="fetch the registry tags")
    return True


def _remote_refs(clone: Path) -> dict[str, str]:
    """The origin's heads and tags, named as the clone keeps them (ref -> object id)."""
    out = _git("-C", str(clone), "ls-remote", "--refs", "--heads", "--tags", "origin",
               what="list the registry tags")
    refs = {}
    for line in out.splitlines():
        oid, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            ref = "refs/remotes/origin/" + ref[len("refs/heads/"):]
        refs[ref] = oid
    return refs


def _clone_refs(clone: Path) -> dict[str, str]:
    """The clone's copy of the origin's heads and tags (its origin/HEAD left out)."""
    out = _git("-C", str(clone), "for-each-ref", "--format=%(refname)%09%(objectname)",
               *REGISTRY_REFS, what="read the cached clone's tags")
    refs = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    refs.pop("refs/remotes/origin/HEAD", None)
    return refs


def registry_git_dir(root: str | Path) -> Path:
    """The git directory holding the tags of the repository at ``root`` (the common one
    of a worktree)."""
    from dvc_monitor.repo.git import GitRepo

    found = GitRepo(root).common_dir()
    if found is None:
        raise NotAGitRepository(f"{root} is not a git repository")
    return found


def refs_stamp(git_dir: Path) -> tuple:
    """What the registry's tags are stored as, by file identity (no git process): the
    packed refs, the reftable list and each loose tag's (path, inode, size, mtime). A tag
    written, moved or deleted changes it (git writes a ref by renaming a new file)."""
    import os

    def ident(path: Path) -> tuple | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    loose = []
    for base, dirs, files in os.walk(git_dir / "refs" / "tags"):
        dirs.sort()
        for name in sorted(files):
            path = Path(base, name)
            loose.append((str(path), ident(path)))
    return (ident(git_dir / "packed-refs"), ident(git_dir / "reftable" / "tables.list"),
            tuple(loose))


def _git(*args: str, what: str) -> str:
    import subprocess

    proc = subprocess.run(["git", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ExternalCommandError(f"git could not {what}: {last}")
    return proc.stdout


def reference(name: str, stage: str | None = None, version: str | None = None) -> str:
    """The registry reference for ``name`` with a stage, a version, or neither (latest)."""
    if stage and version:
        raise UsageError("give a stage or a version, not both")
    if stage:
        return f"{name}#{stage}"
    if version:
        return f"{name}@{version}"
    return name


# -- the loaded model -------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """One registered version's model in memory, with what scoring needs to know."""

    name: str
    version: str
    id: str | None
    md5: str
    kind: str
    features: tuple[str, ...]
    commit: str
    config: ModelConfig = field(repr=False)
    model: Any = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def spec(self):
        """The ``Kind`` that scores this model (its adopted form for an adopted model)."""
        return self.config.spec

    def score(self, rows: "pd.DataFrame | list[dict]", source: str = "the rows") -> list[dict]:
        """The kind's result for each row (see ``scoring.score_frame``)."""
        return self.score_detail(rows, source).results

    def score_detail(self, rows: "pd.DataFrame | list[dict]", source: str = "the rows") -> "Scores":
        """Results plus the raw score and alert arrays (what the live gauges watch)."""
        from dvc_monitor.production.scoring import score_frame, to_frame

        return score_frame(self, to_frame(rows, source), source)

    def to_json(self) -> dict:
        return {"model": self.name, "version": self.version, "id": self.id, "md5": self.md5,
                "kind": self.kind, "features": list(self.features), "commit": self.commit}


def load_version(root: str | Path, mv: "ModelVersion", state=None) -> LoadedModel:
    """Load registry version ``mv`` of the repository at ``root``, verified (``state``:
    its ``version_state``, if read already)."""
    from dvc_monitor.model.state import load_model as load_state_model

    state = state or version_state(root, mv)
    checked_md5(mv, state)
    model = load_state_model(state)  # md5-checked bytes, safe loader
    return LoadedModel(name=mv.name, version=mv.version, id=mv.id, md5=state.model_md5,
                       kind=state.kind, features=state.config.features, commit=mv.commit,
                       config=state.config, model=model)


def checked_md5(mv: "ModelVersion", state) -> str:
    """The md5 of version ``mv``'s model file (``state``: its ``version_state``), refused
    when its dvc.lock records none or one other than the registered md5."""
    if not state.model_md5:
        raise ModelFileError(f"{mv.ref} has no trained model in its dvc.lock; it cannot be loaded")
    if mv.model_md5 and mv.model_md5 != state.model_md5:
        raise ModelFileError(
            f"{mv.ref}: the model md5 in dvc.lock ({state.model_md5}) differs from the "
            f"registered one ({mv.model_md5}); the version was not loaded"
        )
    return state.model_md5


def version_state(root: str | Path, mv: "ModelVersion"):
    """What version ``mv`` is at its commit (kind, config, model md5), model not loaded.
    A model dvc-monitor did not train is refused here: there is nothing to score it with."""
    from dvc_monitor.model.state import read_state, require_trained

    return require_trained(read_state(Path(root), mv.name, mv.commit), mv.ref)


def resolve(root: str | Path, ref: str) -> "ModelVersion":
    """The version a reference names now (``NAME``, ``NAME@vX.Y.Z``, ``NAME#STAGE``, ``NAME@<id>``)."""
    from dvc_monitor.registry.state import Registry

    return Registry.load(root).get(ref)


def load_model(name: str, stage: str | None = None, version: str | None = None,
               repo: str | Path = ".", rev: str | None = None,
               cache_dir: str | Path | None = None) -> LoadedModel:
    """The model of ``name`` in ``stage``, or at ``version``, or the latest version.

    ``repo`` is a path or a git URL (cloned into ``cache_dir``, default the user cache
    folder). ``rev`` instead names a git revision: the registered version made at that
    commit. The md5 is checked and the model is loaded with the safe loader only.
    """
    if rev is not None:
        if stage or version:
            raise UsageError("give rev, or a stage or version, not both")
        root = open_repo(repo, cache_dir)
        return load_version(root, version_at(root, name, rev))
    return load_ref(reference(name, stage, version), repo, cache_dir)


def load_ref(ref: str, repo: str | Path = ".", cache_dir: str | Path | None = None) -> LoadedModel:
    """The model a reference (``NAME``, ``NAME@vX.Y.Z``, ``NAME#STAGE``, ``NAME@<id>``) names."""
    root = open_repo(repo, cache_dir)
    return load_version(root, resolve(root, ref))


def resolve_with_previous(root: str | Path, ref: str) -> tuple["ModelVersion", "ModelVersion | None"]:
    """The version ``ref`` names now and, for ``NAME#STAGE``, the version that
    ``rollback NAME --previous --stage STAGE`` would give the stage back (the one that held
    it before; None when none did, or for another reference): one read of the registry."""
    from dvc_monitor.registry.state import Registry

    reg = Registry.load(root)
    holder = reg.get(ref)
    name, sep, stage = ref.partition("#")
    previous = reg.previous_in_stage(holder.name, stage) if sep and name == holder.name else None
    if previous is not None and previous.registered:
        previous = reg.resolve(holder.name, previous.version)
    return holder, previous


def version_at(root: str | Path, name: str, rev: str) -> "ModelVersion":
    """The registered version of ``name`` made at git revision ``rev``."""
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.model.state import resolve_commit

    commit = resolve_commit(root, rev)
    reg = Registry.load(root)
    for mv in reg.versions(name):
        if mv.commit == commit:
            return reg.resolve(name, mv.version)
    raise UnknownVersion(f"no registered version of {name} was made at {rev} ({commit[:7]}); "
                         f"register it with 'dvc-monitor register {name}'")

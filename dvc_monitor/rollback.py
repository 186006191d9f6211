"""The rollback transaction: put one model back to a registered version, verified, atomically.

``rollback`` restores version V of model NAME in five steps, then commits::

    preflight  resolve V; refuse a dirty tree; take the repository lock; check that every
               object V needs is in the local cache or on the remote     (changes nothing)
    restore    V's pipeline files from git: dvc.yaml, dvc.lock, params, .dvc files, the
               git-tracked code its stages depend on, and its cache:false outputs
               (metrics.json, plots/) -- only this model's files
    fetch      the missing objects, exactly those, from the DVC remote
    checkout   the model's DVC outputs from the cache (forced for exactly these outputs)
    repro      ``dvc repro`` of the model's dvc.yaml: instant when the outputs were
               restored, a retrain (same bytes: models are byte-stable) when not
    verify     model md5, data hashes, params and version id equal what V registered
    commit     a new commit on the current branch; with ``--stage`` a GTO stage tag

Atomicity. Before touching anything, a journal (``.git/dvc-monitor/rollback.json``) and
backups of every file and output that will be touched (``.git/dvc-monitor/rollback-backup``;
hard links for DVC outputs, copies for git-tracked files) are written. Any failure or
signal (SIGINT, SIGTERM, SIGHUP) undoes everything from the backups: HEAD, index,
working-tree files and DVC outputs end exactly as before. A rollback killed outright is
finished (if it had committed) or undone by the next dvc-monitor command, which checks for
the journal (``pending_journal``: a file-exists test, no DVC import), or by
``dvc-monitor recover``.

Test hook: the environment variable ``DVC_MONITOR_FAULT=<step>`` makes the rollback raise
an exception right after ``<step>`` (one of ``STEPS``); ``<step>:hang`` makes it print a
line to stderr and sleep there (so a test can kill it), ``<step>:kill`` makes it SIGKILL
itself, ``<step>:pause`` makes it wait for SIGUSR1 and then go on (so a test can take the
remote away between two steps). Several faults are separated by commas; the extra point
``undo`` (half way through an undo) lets ``repro,undo:kill`` kill a rollback while it is
undoing itself. It is read only by this module and has no other effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from dvc_monitor.errors import (
    DirtyWorkTree,
    DvcMonitorError,
    ExternalCommandError,
    MissingObjects,
    RepositoryLocked,
    RollbackError,
    UnknownVersion,
    UsageError,
    VerificationError,
)
from dvc_monitor.gitrepo import GitRepo
from dvc_monitor.layout import ModelLayout

FAULT_ENV = "DVC_MONITOR_FAULT"
STEPS = ("preflight", "backup", "restore", "fetch", "checkout", "repro", "verify", "commit",
         "tag")
DEFAULT_STAGE = "prod"
STATE_DIR = "dvc-monitor"
JOURNAL_NAME = "rollback.json"
BACKUP_NAME = "rollback-backup"
JOURNAL_SCHEMA = 1
TRAILER_ID = "Rollback-Id"

Progress = Callable[[str], ContextManager[Any]]


# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectNeed:
    """One DVC object the target version needs, and where it is."""

    path: str  # the workspace path it becomes (repo-relative)
    oid: str  # md5 (``...dir`` for a folder manifest)
    role: str  # "data" (from a .dvc file: cannot be rebuilt) or "output" (a stage makes it)
    location: str  # "workspace" | "cache" | "remote" | "missing"


@dataclass
class RollbackPlan:
    """What a rollback will do. ``--dry-run`` prints it; nothing is changed to compute it."""

    name: str
    version: str  # the target
    commit: str  # the target version's registered commit
    id: str
    short_id: str
    head: str
    branch: str
    current_version: str | None  # the version the workspace holds now (same id), if any
    current_id: str | None
    stage: str | None  # stage to assign to the target (--stage)
    stage_holder: str | None  # who holds that stage now
    message: str | None
    pipeline_dir: str  # the model's dvc.yaml folder
    restore: list[str]  # files written from the target commit
    delete: list[str]  # files removed (this model's, absent at the target)
    shared: list[str]  # restored files outside the model folder (other models may read them)
    outputs: list[str]  # DVC-tracked outputs checked out
    objects: list[ObjectNeed]
    fetch: list[str]  # oids to download
    remote: str | None  # "name (url)"
    cache_dir: str
    retrain: bool
    retrain_reason: str
    run_cache: bool | None  # a run-cache entry for the model's stage exists
    expected: dict  # {"id", "model": {path: md5}, "data": {path: md5}, "params": {...}}

    @property
    def missing(self) -> list[ObjectNeed]:
        return [o for o in self.objects if o.location == "missing"]


@dataclass(frozen=True)
class Check:
    what: str  # "id" | "model" | "data" | "code" | "output" | "params"
    path: str
    expected: Any
    got: Any
    ok: bool


@dataclass
class Proof:
    """What verification compared: every check, and the overall verdict."""

    target_id: str
    got_id: str | None
    model: Check | None
    checks: list[Check]
    ok: bool

    @property
    def mismatches(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


@dataclass
class RollbackResult:
    name: str
    version: str
    id: str
    dry_run: bool
    plan: RollbackPlan
    commit: str | None = None  # the new commit (None: dry run, or nothing to commit)
    tag: str | None = None  # the stage tag written
    retrained: bool = False
    stages_run: list[str] = field(default_factory=list)
    fetched: int = 0
    proof: Proof | None = None
    allowed_mismatch: bool = False
    recovered: str | None = None  # what was done about an earlier interrupted rollback
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class RecoveryResult:
    action: str  # "none" | "undone" | "finished" | "cleaned" | "busy" | "discarded"
    name: str | None = None
    version: str | None = None
    commit: str | None = None
    message: str = ""


# -- the journal: where it is (cheap: no git, no DVC) ----------------------------------


def _git_dir_of(start: str | os.PathLike[str]) -> Path | None:
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
    git_dir = _git_dir_of(start)
    if git_dir is None:
        return None
    journal = git_dir / STATE_DIR / JOURNAL_NAME
    return journal if journal.is_file() else None


def _state_dir(git: GitRepo) -> Path:
    return Path(git.run("rev-parse", "--absolute-git-dir").strip()) / STATE_DIR


# -- small helpers ----------------------------------------------------------------------


def _fault(step: str) -> None:
    """The test hook (see the module docstring)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for item in spec.split(","):
        where, _, how = item.strip().partition(":")
        if where == step:
            _fault_now(step, how)


def _fault_now(step: str, how: str) -> None:
    if how == "hang":
        print(f"dvc-monitor: test fault: hanging after {step} (pid {os.getpid()})",
              file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "pause":  # wait for SIGUSR1, then go on (a test changes the world meanwhile)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        print(f"dvc-monitor: test fault: paused after {step} (pid {os.getpid()})",
              file=sys.stderr, flush=True)
        signal.sigwait({signal.SIGUSR1})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        return
    raise RuntimeError(f"injected fault after step '{step}' ({FAULT_ENV})")


class _Terminated(BaseException):
    """SIGTERM/SIGHUP turned into an exception so that the transaction is undone."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``_Terminated`` (SIGINT already raises KeyboardInterrupt)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise _Terminated(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Let an undo finish: a second Ctrl-C must not leave it half done."""
    import threading

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


def _norm(*parts: str) -> str:
    path = posixpath.normpath(posixpath.join(*parts).replace("\\", "/"))
    return "" if path == "." else path


def _inside(path: str) -> bool:
    return bool(path) and not path.startswith("../") and path != ".." and not path.startswith("/")


def _md5_file(path: str | Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _md5_path(path: Path) -> str | None:
    """md5 of a file, or DVC's ``.dir`` hash of a folder, computed from the bytes (no state db).

    A folder's hash is the md5 of its manifest, ``json.dumps(sorted [{"md5", "relpath"}])``,
    which is how DVC computes it.
    """
    if path.is_symlink() and not path.exists():
        return None
    if path.is_file():
        return _md5_file(path)
    if not path.is_dir():
        return None
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for fn in filenames:
            full = Path(dirpath) / fn
            rel = full.relative_to(path).as_posix()
            entries.append({"md5": _md5_file(full), "relpath": rel})
    entries.sort(key=lambda e: e["relpath"])
    manifest = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(manifest).hexdigest() + ".dir"


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove_path(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _link_tree(src: Path, dst: Path) -> None:
    """Back up ``src`` (file or folder) at ``dst`` with hard links (copies across devices).

    DVC never writes an output in place (checkout and repro delete, then create), so a
    hard link keeps the old bytes safe at no cost.
    """
    def one(s: Path, d: Path) -> None:
        try:
            os.link(s, d, follow_symlinks=False)
        except OSError:
            shutil.copy2(s, d, follow_symlinks=False)

    if src.is_dir() and not src.is_symlink():
        dst.mkdir(parents=True)
        for dirpath, dirnames, filenames in os.walk(src):
            rel = Path(dirpath).relative_to(src)
            for dn in dirnames:
                (dst / rel / dn).mkdir()
            for fn in filenames:
                one(Path(dirpath) / fn, dst / rel / fn)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        one(src, dst)


def _list(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# -- the model's pipeline at a revision ------------------------------------------------


@dataclass
class _Pipeline:
    rev: str
    dir: str  # repo-relative folder of the model's dvc.yaml
    tree: dict[str, tuple[str, str]]  # tracked file -> (mode, blob oid), under dir + extras
    yaml: dict
    lock: dict | None
    lock_raw: bytes | None
    dvcfiles: dict[str, dict]  # .dvc file -> parsed
    cached: dict[str, str] = field(default_factory=dict)  # DVC-cached output -> oid
    sources: set[str] = field(default_factory=set)  # cached outputs from .dvc files (data)
    git_outs: set[str] = field(default_factory=set)  # cache: false outputs (in git)
    git_deps: set[str] = field(default_factory=set)  # git-tracked deps of its stages
    params_files: set[str] = field(default_factory=set)
    external: set[str] = field(default_factory=set)  # deps neither in git nor made here
    legacy: list[str] = field(default_factory=list)  # outputs with DVC 2 hashes

    def tracked(self, path: str) -> bool:
        return path in self.tree or any(p.startswith(path + "/") for p in self.tree)

    def files_under(self, path: str) -> list[str]:
        if path in self.tree:
            return [path]
        return sorted(p for p in self.tree if p.startswith(path + "/"))

    def own_files(self) -> set[str]:
        """This model's pipeline files and cache:false outputs (written by rollback)."""
        own = set()
        for path in self.tree:
            if not path.startswith(self.dir + "/") and self.dir:
                continue
            base = posixpath.basename(path)
            if base in (ModelLayout.DVC_YAML, ModelLayout.DVC_LOCK, ".gitignore", ".dvcignore") \
                    or base.endswith(".dvc"):
                own.add(path)
        for p in self.params_files:
            own.update(self.files_under(p))
        for p in self.git_outs:
            own.update(self.files_under(p))
        return own

    def dep_files(self) -> set[str]:
        out = set()
        for p in self.git_deps:
            out.update(self.files_under(p))
        return out


def _ls_tree(git: GitRepo, rev: str, paths: list[str]) -> dict[str, tuple[str, str]]:
    if not paths:
        return {}
    out = git.run("--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", rev, "--",
                  *paths, check=False)
    tree = {}
    for rec in out.split("\0"):
        if not rec:
            continue
        meta, _, path = rec.partition("\t")
        mode, otype, oid = meta.split()
        if otype == "blob":
            tree[path] = (mode, oid)
    return tree


def _stage_wdir(yaml_doc: dict, stage: str) -> str:
    stages = yaml_doc.get("stages") if isinstance(yaml_doc, dict) else None
    body = stages.get(stage.split("@")[0]) if isinstance(stages, dict) else None
    wdir = body.get("wdir") if isinstance(body, dict) else None
    return wdir if isinstance(wdir, str) and "${" not in wdir else "."


def _read_pipeline(git: GitRepo, rev: str, pdir: str, extra: set[str] = frozenset()) -> _Pipeline:
    from dvc_monitor.identity import load_lock, parse_yaml

    tree = _ls_tree(git, rev, [pdir or "."])
    yaml_path = _norm(pdir, ModelLayout.DVC_YAML)
    lock_path = _norm(pdir, ModelLayout.DVC_LOCK)
    dvc_paths = sorted(p for p in tree if p.endswith(".dvc"))
    blobs = git.read_blobs([f"{rev}:{p}" for p in (yaml_path, lock_path, *dvc_paths)])

    def parsed(path: str) -> Any:
        raw = blobs.get(f"{rev}:{path}")
        if raw is None:
            return None
        return parse_yaml(raw.decode("utf-8", errors="replace"), f"{path} at {rev[:7]}")

    yaml_doc = parsed(yaml_path) or {}
    lock_raw = blobs.get(f"{rev}:{lock_path}")
    lock = load_lock(lock_raw, f"{lock_path} at {rev[:7]}") if lock_raw else None
    dvcfiles = {p: parsed(p) or {} for p in dvc_paths}
    pl = _Pipeline(rev, pdir, tree, yaml_doc if isinstance(yaml_doc, dict) else {}, lock,
                   lock_raw, dvcfiles)

    # DVC-tracked data: outs of .dvc files
    for dpath, doc in dvcfiles.items():
        base = _norm(posixpath.dirname(dpath), str(doc.get("wdir") or "."))
        for out in doc.get("outs") or []:
            if not isinstance(out, dict) or "path" not in out:
                continue
            path = _norm(base, str(out["path"]))
            if out.get("md5"):
                pl.cached[path] = str(out["md5"])
                pl.sources.add(path)
                if out.get("hash") != "md5":
                    pl.legacy.append(path)

    # stages: outs (cached or in git), deps, params
    outs_of_stages: dict[str, str] = {}
    deps: set[str] = set()
    for stage, body in ((lock or {}).get("stages") or {}).items():
        if not isinstance(body, dict):
            continue
        base = _norm(pdir, _stage_wdir(pl.yaml, str(stage)))
        for out in body.get("outs") or []:
            if isinstance(out, dict) and "path" in out:
                path = _norm(base, str(out["path"]))
                outs_of_stages[path] = str(out.get("md5") or "")
                if out.get("md5") and out.get("hash") != "md5":
                    pl.legacy.append(path)
        for dep in body.get("deps") or []:
            if isinstance(dep, dict) and "path" in dep:
                deps.add(_norm(base, str(dep["path"])))
        for fname in (body.get("params") or {}):
            pl.params_files.add(_norm(base, str(fname)))
    pl.params_files.add(_norm(pdir, ModelLayout.PARAMS))

    outside = sorted({p for p in (*outs_of_stages, *deps, *pl.params_files, *extra)
                      if _inside(p) and pdir and not p.startswith(pdir + "/")})
    pl.tree.update(_ls_tree(git, rev, outside))

    def made_here(path: str) -> bool:
        return any(path == o or path.startswith(o + "/") for o in (*outs_of_stages, *pl.cached))

    for path, md5 in outs_of_stages.items():
        if pl.tracked(path):
            pl.git_outs.add(path)
        elif md5:
            pl.cached[path] = md5
    for path in deps:
        if not _inside(path) or made_here(path):
            continue
        if pl.tracked(path):
            pl.git_deps.add(path)
        else:
            pl.external.add(path)
    return pl


# -- preflight --------------------------------------------------------------------------


@dataclass
class _Context:
    """What preflight learned, kept for the transaction (not shown to users)."""

    git: GitRepo
    root: Path
    target: Any  # registry.ModelVersion
    identity: Any  # identity.VersionIdentity of the target
    head_pl: _Pipeline
    target_pl: _Pipeline
    write: dict[str, tuple[str, str]]  # path -> (mode, blob oid) at the target
    delete: list[str]
    files: list[str]  # every git-tracked path whose bytes are backed up
    outs: list[str]  # every DVC output path that is backed up
    dvc_targets: list[str]  # what checkout is given
    model_path: str  # repo-relative
    by: str
    from_version: str | None
    remote_manifests: dict[str, bytes]  # .dir manifests read from the remote in preflight


def _resolve_target(reg, name: str, to: str | None, previous: bool, stage: str | None):
    """(target version, holder of the stage now or None)."""
    if previous:
        s = stage or DEFAULT_STAGE
        holder = reg.stage_holder(name, s)
        if holder is None:
            raise UnknownVersion(f"no version of {name} is in stage '{s}', so there is no "
                                 f"previous one; give the version with --to VERSION")
        prev = reg.previous_in_stage(name, s)
        if prev is None:
            raise UnknownVersion(f"no other version of {name} held stage '{s}' before "
                                 f"{holder.version}; give the version with --to VERSION")
        return reg.resolve(name, prev.version) if prev.registered else prev, holder
    target = reg.resolve(name, to)
    holder = reg.stage_holder(name, stage) if stage else None
    return target, holder


def _dirty_paths(porcelain: str) -> tuple[list[str], list[str]]:
    """(tracked paths with changes, untracked paths) from ``git status --porcelain -z``-ish text."""
    tracked, untracked = [], []
    for line in porcelain.splitlines():
        if len(line) < 4:
            continue
        code, path = line[:2], line[3:]
        if " -> " in path:
            path = path.split(" -> ", 1)[1]
        path = path.strip('"')
        (untracked if code == "??" else tracked).append(path)
    return tracked, untracked


def _preflight(git: GitRepo, dvc, name: str, to: str | None, previous: bool,
               stage: str | None, message: str | None) -> tuple[RollbackPlan, _Context]:
    from dvc_monitor.identity import identity_from_lock
    from dvc_monitor.registry import Registry

    root = git.root
    head = git.head()
    if head is None:
        raise RollbackError("the repository has no commits; there is nothing to roll back")
    branch = git.branch()
    if branch is None:
        raise RollbackError("HEAD is detached; switch to the branch the rollback should be "
                            "committed on (git switch main) and run again")

    reg = Registry.load(root)
    target, holder = _resolve_target(reg, name, to, previous, stage)
    if target.registered and not target.active:
        raise RollbackError(f"{name} {target.version} is deregistered; pick an active version "
                            f"('dvc-monitor versions {name}')")
    identity = target.identity
    if identity is None:
        raise RollbackError(f"cannot read the pipeline of {name} {target.version} at commit "
                            f"{target.commit[:7]} ({target.warning or 'no dvc.lock'}); "
                            "it cannot be restored")

    layout = ModelLayout(name)
    pdir = posixpath.dirname(target.lock_path) if target.lock_path else layout.dir
    model_path = _norm(pdir, identity.model_path)

    # the pipeline at HEAD and at the target, from git (two ls-tree + one cat-file each)
    head_pl = _read_pipeline(git, head, pdir)
    target_pl = _read_pipeline(git, target.commit, pdir,
                               extra=head_pl.git_outs | head_pl.params_files)
    head_pl.tree.update(_ls_tree(git, head, sorted(
        p for p in target_pl.git_deps | target_pl.git_outs | target_pl.params_files
        if _inside(p) and p not in head_pl.tree)))
    if target_pl.lock is None:
        raise RollbackError(f"{name} {target.version} has no {_norm(pdir, 'dvc.lock')} at "
                            f"{target.commit[:7]}; it cannot be restored")
    if target_pl.legacy:
        raise RollbackError(f"{name} {target.version} was built with DVC 2 hashes "
                            f"({_list(target_pl.legacy)}); restore it with 'dvc checkout' "
                            "by hand")

    current_id = None
    if head_pl.lock is not None:
        with contextlib.suppress(DvcMonitorError):
            current_id = identity_from_lock(head_pl.lock, identity.model_path).id
    current_version = None
    if current_id:
        same = [v for v in reg.versions(name) if v.id == current_id]
        at_head = [v for v in same if v.commit == head]
        current_version = (at_head or same or [None])[0]
        current_version = current_version.version if current_version else None

    # which git-tracked files change
    target_files = target_pl.own_files() | target_pl.dep_files()
    write = {p: target_pl.tree[p] for p in sorted(target_files)
             if head_pl.tree.get(p) != target_pl.tree[p]}
    delete = sorted(p for p in head_pl.own_files() if p not in target_pl.tree)
    shared = sorted(p for p in write if pdir and not p.startswith(pdir + "/"))

    # DVC outputs: all of HEAD's and the target's
    outs = sorted(set(head_pl.cached) | set(target_pl.cached))
    gitignores = {_norm(posixpath.dirname(o), ".gitignore") for o in outs}
    gitignores |= {p for p in head_pl.own_files() if p.endswith("/.gitignore")}
    files = sorted(set(write) | set(delete) | gitignores)

    # dirty tree: never lose an uncommitted edit
    porcelain = git.run("status", "--porcelain", "--untracked-files=all")
    tracked_dirty, untracked = _dirty_paths(porcelain)
    if tracked_dirty:
        raise DirtyWorkTree(
            f"uncommitted changes in {_list(tracked_dirty)}; commit or stash them "
            "(git stash -u), then run the rollback again (nothing was changed)")
    file_set = set(files)
    clash = [p for p in untracked if p in file_set or any(
        p == o or p.startswith(o + "/") for o in target_pl.git_outs)]
    if clash:
        raise DirtyWorkTree(
            f"untracked files would be overwritten: {_list(clash)}; move them away or commit "
            "them, then run the rollback again (nothing was changed)")
    changed_outs = []
    for path, oid in sorted(head_pl.cached.items()):
        got = dvc.workspace_hash(path)
        if got is not None and got != oid:
            changed_outs.append(path)
    if changed_outs:
        dvc_files = " ".join([_norm(pdir, ModelLayout.DVC_YAML), *sorted(head_pl.dvcfiles)])
        raise DirtyWorkTree(
            f"DVC-tracked outputs differ from HEAD's dvc.lock: {_list(changed_outs)}; keep "
            f"them with 'dvc commit {dvc_files}' and a git commit, or discard them with "
            f"'dvc checkout --force {dvc_files}', then run again (nothing was changed)")

    # objects the target needs: in the workspace already, in the local cache, else remote
    objects: list[ObjectNeed] = []
    remote_manifests: dict[str, bytes] = {}
    workspace_dirs: dict[str, dict[str, str]] = {}
    for path, oid in target_pl.cached.items():
        if oid.endswith(".dir"):
            entries = dvc.workspace_entries(path)
            if entries is not None:
                workspace_dirs[path] = entries

    pending_dirs: list[tuple[str, str, str]] = []
    for path, oid in sorted(target_pl.cached.items()):
        role = "data" if path in target_pl.sources else "output"
        if not oid.endswith(".dir") and dvc.workspace_hash(path) == oid:
            objects.append(ObjectNeed(path, oid, role, "workspace"))
            continue
        if oid.endswith(".dir"):
            raw = dvc.local_manifest(oid)
            if raw is None and dvc.workspace_hash(path) == oid:
                # the folder is in the workspace as the target has it: cache it from there
                objects.append(ObjectNeed(path, oid, role, "workspace"))
                objects.extend(ObjectNeed(f"{path}/{rel}", md5, role, "workspace")
                               for rel, md5 in sorted(workspace_dirs.get(path, {}).items()))
                continue
            if raw is None:
                pending_dirs.append((path, oid, role))
                continue
            objects.append(ObjectNeed(path, oid, role, "cache"))
            objects.extend(_entries(path, raw, role, workspace_dirs.get(path), dvc))
        else:
            objects.append(ObjectNeed(path, oid, role, "cache" if dvc.in_cache(oid)
                                      else "unknown"))

    remote = dvc.remote()
    remote_label = f"{remote[0]} ({remote[1]})" if remote else None
    unknown = [o for o in objects if o.location == "unknown"]
    if unknown or pending_dirs:
        if remote is None:
            objects = [ObjectNeed(o.path, o.oid, o.role, "missing") if o.location == "unknown"
                       else o for o in objects]
            objects += [ObjectNeed(p, oid, role, "missing") for p, oid, role in pending_dirs]
        else:
            from dvc_monitor.dvcops import RemoteUnavailable

            try:
                if dvc.remote_root_missing():
                    raise RemoteUnavailable(f"the DVC remote folder {remote[1]} does not exist")
                for path, oid, role in pending_dirs:
                    raw = dvc.remote_manifest(oid)
                    if raw is None:
                        objects.append(ObjectNeed(path, oid, role, "missing"))
                        continue
                    objects.append(ObjectNeed(path, oid, role, "remote"))
                    remote_manifests[oid] = raw
                    objects.extend(_entries(path, raw, role, workspace_dirs.get(path), dvc))
                ask = sorted({o.oid for o in objects if o.location == "unknown"})
                there = dvc.remote_has(ask)
            except RemoteUnavailable as exc:
                raise RollbackError(
                    f"{name} {target.version} needs objects that are not in the local cache "
                    f"and the DVC remote cannot be used: {exc}; check the remote "
                    "('dvc remote list'), the network and the credentials, then run again "
                    "(nothing was changed)"
                ) from None
            objects = [ObjectNeed(o.path, o.oid, o.role,
                                  ("remote" if o.oid in there else "missing"))
                       if o.location == "unknown" else o for o in objects]

    missing_data = [o for o in objects if o.location == "missing" and o.role == "data"]
    if missing_data:
        where = f"the local cache ({dvc.cache_dir})" + (
            f" nor on the remote {remote_label}" if remote else " and no DVC remote is set")
        raise MissingObjects(
            f"{name} {target.version} needs {len(missing_data)} data object(s) found neither in "
            f"{where}: {_list([f'{o.path} ({o.oid[:10]})' for o in missing_data])}; "
            "run 'dvc push' where they exist, then run the rollback again (nothing was changed)")

    missing_outs = [o for o in objects if o.location == "missing"]
    model_stage = identity.stages[-1] if identity.stages else None
    run_cache = None
    if model_stage and target_pl.lock:
        entry = (target_pl.lock.get("stages") or {}).get(model_stage)
        if isinstance(entry, dict):
            run_cache = dvc.run_cache_has(entry)
    if missing_outs:
        retrain_reason = (f"{_list([o.path for o in missing_outs])} in neither the local cache "
                          f"nor {'the remote ' + remote_label if remote else 'a remote'}: "
                          "dvc repro rebuilds them" + ("" if not run_cache else
                                                       " (a run-cache entry exists)"))
    else:
        retrain_reason = "every output is in the workspace, the local cache or the remote"

    expected_data = {}
    for p, m in (target.data or {}).items():
        expected_data[p] = m
    if not expected_data:
        for p, m in identity.deps.items():
            rp = _norm(pdir, p)
            if rp in target_pl.cached:
                expected_data[rp] = m
    expected = {
        "id": target.id or identity.id,
        "model": {model_path: target.model_md5 or identity.model_md5},
        "data": expected_data,
        "params": identity.params,
    }

    who = git.identity()
    plan = RollbackPlan(
        name=name, version=target.version, commit=target.commit, id=target.id or identity.id,
        short_id=target.short_id or identity.short, head=head, branch=branch,
        current_version=current_version, current_id=current_id, stage=stage,
        stage_holder=holder.version if holder is not None else None, message=message,
        pipeline_dir=pdir, restore=sorted(write), delete=delete, shared=shared,
        outputs=sorted(target_pl.cached), objects=objects,
        fetch=sorted({o.oid for o in objects if o.location == "remote"}),
        remote=remote_label, cache_dir=dvc.cache_dir, retrain=bool(missing_outs),
        retrain_reason=retrain_reason, run_cache=run_cache, expected=expected,
    )
    ctx = _Context(
        git=git, root=root, target=target, identity=identity, head_pl=head_pl,
        target_pl=target_pl, write=write, delete=delete, files=files, outs=outs,
        dvc_targets=[_norm(pdir, ModelLayout.DVC_YAML)] + sorted(target_pl.dvcfiles),
        model_path=model_path, by=f"{who.name} <{who.email}>",
        remote_manifests=remote_manifests,
        from_version=(holder.version if holder is not None else current_version),
    )
    return plan, ctx


def _entries(path: str, raw: bytes, role: str, head_entries: dict[str, str] | None,
             dvc) -> list[ObjectNeed]:
    """The files of a folder object: in the workspace already, in the cache, or unknown."""
    try:
        entries = json.loads(raw)
    except ValueError:
        return [ObjectNeed(path, "?", role, "missing")]
    out = []
    for e in entries:
        rel, md5 = e.get("relpath"), e.get("md5")
        if not rel or not md5:
            continue
        if head_entries and head_entries.get(rel) == md5:
            loc = "workspace"
        else:
            loc = "cache" if dvc.in_cache(md5) else "unknown"
        out.append(ObjectNeed(f"{path}/{rel}", md5, role, loc))
    return out


# -- the transaction --------------------------------------------------------------------


class _Transaction:
    """Journal, backups, steps and undo of one rollback (recovery reuses undo/finish)."""

    def __init__(self, git: GitRepo, journal: dict):
        self.git = git
        self.root = git.root
        self.dir = _state_dir(git)
        self.path = self.dir / JOURNAL_NAME
        self.backups = self.dir / BACKUP_NAME
        self.j = journal

    def save(self) -> None:
        _write_json_atomic(self.path, self.j)

    # -- backups ------------------------------------------------------------------------

    def backup(self) -> None:
        """Write the journal, then back up every file and output that may be touched."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.backups.exists():
            shutil.rmtree(self.backups)
        self.j["phase"] = "backup"
        self.save()
        self.backups.mkdir()
        for i, rel in enumerate(self.j["files"]):
            src = self.root / rel
            if src.is_file() or src.is_symlink():
                name = f"f{i}"
                shutil.copy2(src, self.backups / name, follow_symlinks=False)
                self.j["backup_files"][rel] = name
        for i, rel in enumerate(self.j["outs"]):
            src = self.root / rel
            if os.path.lexists(src):
                name = f"o{i}"
                _link_tree(src, self.backups / (name + ".tmp"))
                os.replace(self.backups / (name + ".tmp"), self.backups / name)
                self.j["backup_outs"][rel] = name
        self.j["phase"] = "apply"
        self.save()

    # -- undo ---------------------------------------------------------------------------

    def undo(self) -> None:
        """Put HEAD, the index, the files and the outputs back; then drop the journal."""
        _kill_children()
        if self.j.get("phase") == "backup":  # backups incomplete: nothing was touched yet
            self.cleanup()
            return
        if self.j.get("phase") != "undo":  # a recovery after a kill goes on undoing
            self.j["phase"] = "undo"
            self.save()
        git = self.git
        commit = self.j.get("commit")
        head = git.head()
        if commit and head == commit:
            for tag in self._our_tags():
                git.run("tag", "-d", "--end-of-options", tag, check=False)
            git.run("update-ref", "-m", "dvc-monitor: undo interrupted rollback",
                    f"refs/heads/{self.j['branch']}", self.j["head"], commit)
        # files: bytes from the backups, index from the original HEAD
        for rel in self.j["files"]:
            dst = self.root / rel
            name = self.j["backup_files"].get(rel)
            if name is not None:
                src = self.backups / name
                if not src.exists():
                    raise RollbackError(f"the backup of {rel} is missing from {self.backups}; "
                                        "restore it with 'git checkout HEAD -- "
                                        f"{rel}'")
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".dvc-monitor-tmp")
                shutil.copy2(src, tmp, follow_symlinks=False)
                os.replace(tmp, dst)
            elif os.path.lexists(dst):
                _remove_path(dst)
        paths = [p for p in self.j["files"]]
        if paths:
            in_head = set(_ls_tree(git, self.j["head"], paths))
            back = [p for p in paths if p in in_head]
            gone = [p for p in paths if p not in in_head]
            if back:
                git.run("--literal-pathspecs", "reset", "-q", self.j["head"], "--", *back,
                        check=False)
            if gone:
                git.run("--literal-pathspecs", "rm", "-q", "--cached", "--ignore-unmatch",
                        "--", *gone, check=False)
        _fault("undo")
        # DVC outputs: move each backup back (a missing backup was moved back already)
        for rel in self.j["outs"]:
            dst = self.root / rel
            name = self.j["backup_outs"].get(rel)
            if name is None:
                if os.path.lexists(dst):
                    _remove_path(dst)
                continue
            src = self.backups / name
            if not os.path.lexists(src):
                continue
            if os.path.lexists(dst):
                _remove_path(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        _repair_dvc_locks(self.root)
        self.cleanup()

    def cleanup(self) -> None:
        # the journal goes first: backups without a journal are stale and removed by the
        # next rollback, a journal without its backups could not be undone
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        shutil.rmtree(self.backups, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    def _our_tags(self) -> list[str]:
        from dvc_monitor.tags import parse_message

        txn = self.j["txn"]
        found = []
        for ref in self.git.tags():
            if not ref.annotated or "#" not in ref.name:
                continue
            meta = parse_message(ref.message) or {}
            rb = meta.get("rollback")
            if isinstance(rb, dict) and rb.get("txn") == txn:
                found.append(ref.name)
        return found

    # -- finishing after a commit -------------------------------------------------------

    def finish(self) -> str | None:
        """Write the stage tag if it is due and missing; drop the journal. Returns the tag."""
        tag = None
        if self.j.get("assign"):
            existing = self._our_tags()
            if existing:
                tag = existing[0]
            else:
                tag = _assign_stage(self.root, self.j)
        self.cleanup()
        return tag


def _repair_dvc_locks(root: Path) -> None:
    """A DVC call interrupted while rewriting its rwlock file leaves it torn: repair it."""
    from dvc_monitor import dvcops

    with contextlib.suppress(Exception):
        dvcops.repair_rwlock(root)


def _kill_children() -> None:
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


def _kill_orphans(root: Path) -> None:
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


@contextlib.contextmanager
def _lock(root: Path, command: str, timeout: float | None = None) -> Iterator[None]:
    """The repository lock (re-entrant: ``registry.promote`` takes it again inside)."""
    from dvc_monitor.locking import repo_lock

    with repo_lock(root, command, **({} if timeout is None else {"timeout": timeout})):
        yield


def _assign_stage(root: Path, j: dict) -> str:
    from dvc_monitor.registry import promote

    meta = {"rollback": {
        "from": j.get("from_version"), "to": j["version"], "by": j["by"], "why": j.get("message"),
        "commit": j.get("commit") or j["head"], "txn": j["txn"], "at": j["started"],
    }}
    message = (f"Roll back {j['name']}: assign stage {j['stage']} to {j['version']}"
               + (f" ({j['message']})" if j.get("message") else ""))
    event = promote(root, j["name"], j["version"], j["stage"], message=message, extra_meta=meta)
    return event.tag


# -- verification -----------------------------------------------------------------------


def _lookup(doc: Any, key: str) -> Any:
    if isinstance(doc, dict) and key in doc:
        return doc[key]
    cur = doc
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


_MISSING = "<missing>"


def _verify(ctx: _Context, plan: RollbackPlan) -> Proof:
    """Compare the restored workspace with what the target version registered."""
    from dvc_monitor.identity import identity_from_lock, parse_yaml

    root = ctx.root
    pdir = plan.pipeline_dir
    checks: list[Check] = []
    lock_file = root / _norm(pdir, ModelLayout.DVC_LOCK)
    got_id = None
    try:
        got_identity = identity_from_lock(lock_file.read_bytes(), ctx.identity.model_path)
        got_id = got_identity.id
    except (OSError, DvcMonitorError):
        got_identity = None
    checks.append(Check("id", _norm(pdir, ModelLayout.DVC_LOCK), plan.id, got_id,
                        got_id == plan.id))

    model_check = None
    for path, md5 in plan.expected["model"].items():
        got = _md5_path(root / path)
        model_check = Check("model", path, md5, got, got == md5 and md5 is not None)
        checks.append(model_check)
    for path, md5 in sorted(plan.expected["data"].items()):
        got = _md5_path(root / path)
        checks.append(Check("data", path, md5, got, got == md5))
    # code deps, the other lineage outputs, and cache:false outputs (metrics, plots)
    seen = set(plan.expected["model"]) | set(plan.expected["data"])
    for p, md5 in ctx.identity.deps.items():
        rp = _norm(pdir, p)
        if rp in seen or not _inside(rp) or "+" in md5:
            continue
        seen.add(rp)
        got = _md5_path(root / rp)
        checks.append(Check("code" if rp in ctx.target_pl.git_deps else "data", rp, md5, got,
                            got == md5))
    lock_stages = (ctx.target_pl.lock or {}).get("stages") or {}
    for stage, body in lock_stages.items():
        base = _norm(pdir, _stage_wdir(ctx.target_pl.yaml, str(stage)))
        for out in (body or {}).get("outs") or []:
            if not isinstance(out, dict) or "path" not in out:
                continue
            rp = _norm(base, str(out["path"]))
            md5 = out.get("md5")
            if rp in seen or not md5:
                continue
            seen.add(rp)
            got = _md5_path(root / rp)
            checks.append(Check("output", rp, md5, got, got == md5))
    # params: the values in the params files equal the ones the version was built with
    expected_params = ctx.identity.params or {}
    got_params: dict = {}
    params_ok = True
    for fname, values in expected_params.items():
        path = root / _norm(pdir, fname)
        try:
            doc = parse_yaml(path.read_text(), str(path))
        except (OSError, DvcMonitorError):
            doc = None
        got_params[fname] = {}
        for key, value in (values or {}).items():
            got = _lookup(doc, key)
            got_params[fname][key] = got
            params_ok = params_ok and got == value
    if got_identity is not None:
        params_ok = params_ok and got_identity.params == expected_params
    checks.append(Check("params", ", ".join(_norm(pdir, f) for f in expected_params),
                        expected_params, got_params, params_ok))
    return Proof(target_id=plan.id, got_id=got_id, model=model_check, checks=checks,
                 ok=all(c.ok for c in checks))


def _mismatch_message(plan: RollbackPlan, proof: Proof, dvc) -> str:
    bad = proof.mismatches
    first = bad[0]
    what = (f"{first.path}: expected {_short(first.expected)}, got {_short(first.got)}"
            if first.what != "params" else "params differ from the ones it was built with")
    hint = "pass --allow-mismatch to keep it anyway"
    corrupted = _corrupted_objects(
        [c.expected for c in bad if c.what in ("model", "data", "output")
         and isinstance(c.expected, str)], dvc)
    if corrupted:
        hint = (f"the DVC cache object {corrupted[0]} is corrupted: delete it and run the "
                "rollback again (it will be fetched from the remote or rebuilt)")
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return (f"verification failed for {plan.name} {plan.version}: {what}{more}; the repository "
            f"was restored to its previous state; {hint}")


def _corrupted_objects(oids: list[str], dvc) -> list[str]:
    """Cache files (of these oids, or of the files of these folders) whose bytes lie."""
    found = []
    for oid in oids:
        names = [oid]
        if oid.endswith(".dir"):
            raw = dvc.local_manifest(oid)
            try:
                names = [e["md5"] for e in json.loads(raw or b"[]") if isinstance(e, dict)]
            except (ValueError, KeyError):
                names = []
        for name in names:
            path = dvc.cache_path(name)
            if os.path.isfile(path) and _md5_file(path) != name:
                found.append(path)
    return found


def _short(value: Any) -> str:
    text = "nothing" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the public API ---------------------------------------------------------------------


def _noop_progress(message: str) -> ContextManager[Any]:
    return contextlib.nullcontext()


def rollback(root: str | os.PathLike[str], name: str, to: str | None = None,
             previous: bool = False, stage: str | None = None, message: str | None = None,
             dry_run: bool = False, allow_mismatch: bool = False,
             progress: Progress | None = None,
             lock_timeout: float | None = None) -> RollbackResult:
    """Roll model ``name`` back to version ``to`` (or ``previous``), verified and atomic.

    See the module docstring for the steps. Raises ``DirtyWorkTree``, ``MissingObjects``,
    ``RepositoryLocked``, ``VerificationError`` or ``RollbackError``; after any of them
    (and after SIGINT/SIGTERM) the repository is as it was.
    """
    from dvc_monitor import dvcops
    from dvc_monitor.tags import validate_artifact_name, validate_stage_name

    started = time.monotonic()
    step = progress or _noop_progress
    validate_artifact_name(name)
    if stage is not None:
        validate_stage_name(stage)
    if previous and to:
        raise UsageError("give either --to VERSION or --previous, not both")
    if not previous and not to:
        raise UsageError("say where to roll back to: --to VERSION (or a version id) or "
                         "--previous")
    git = GitRepo.discover(root)
    root = git.root

    if dry_run:
        with step("Preflight: resolve the version, check the tree and the objects"):
            with dvcops.session(root) as dvc:
                plan, _ = _preflight(git, dvc, name, to, previous, stage, message)
        result = RollbackResult(name, plan.version, plan.id, True, plan)
        result.notes = _notes(plan, previous)
        result.seconds = time.monotonic() - started
        return result

    with _lock(root, f"rollback {name}", lock_timeout):
        recovered = None
        if pending_journal(root) is not None:
            rec = _recover_locked(git)
            recovered = rec.message
        with dvcops.session(root) as dvc:
            with step("Preflight: resolve the version, check the tree and the objects"):
                plan, ctx = _preflight(git, dvc, name, to, previous, stage, message)
            result = RollbackResult(name, plan.version, plan.id, False, plan,
                                    recovered=recovered, allowed_mismatch=allow_mismatch)
            result.notes = _notes(plan, previous)
            _run(ctx, plan, dvc, result, step, allow_mismatch)
    result.seconds = time.monotonic() - started
    return result


def _notes(plan: RollbackPlan, previous: bool) -> list[str]:
    notes = []
    if plan.shared:
        notes.append(f"restores files outside {plan.pipeline_dir}: {_list(plan.shared)} "
                     "(other models that read them will see the change)")
    if previous and plan.stage is None and plan.stage_holder:
        notes.append(f"stage {DEFAULT_STAGE} still points to {plan.stage_holder}; add "
                     f"--stage {DEFAULT_STAGE} to move it to {plan.version}")
    return notes


def _journal_for(plan: RollbackPlan, ctx: _Context) -> dict:
    return {
        "schema": JOURNAL_SCHEMA, "txn": uuid.uuid4().hex, "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "argv": sys.argv, "name": plan.name, "version": plan.version, "id": plan.id,
        "target_commit": plan.commit, "stage": plan.stage, "message": plan.message,
        "by": ctx.by, "from_version": ctx.from_version, "head": plan.head,
        "branch": plan.branch, "files": ctx.files, "outs": ctx.outs, "backup_files": {},
        "backup_outs": {}, "phase": "backup", "commit": None,
        "assign": bool(plan.stage) and plan.stage_holder != plan.version,
    }


def _run(ctx: _Context, plan: RollbackPlan, dvc, result: RollbackResult, step: Progress,
         allow_mismatch: bool) -> None:
    tx = _Transaction(ctx.git, _journal_for(plan, ctx))
    try:
        with _signals_raise():
            _fault("preflight")
            with step("Back up the files and outputs that will change"):
                tx.backup()
                _fault("backup")
            with step(f"Restore {plan.name} {plan.version}'s pipeline files from git "
                      f"({len(plan.restore)} to write, {len(plan.delete)} to remove)"):
                _restore_files(ctx)
                _fault("restore")
            label = (f"Fetch {len(plan.fetch)} object(s) from {plan.remote}" if plan.fetch
                     else "Fetch: every object is in the local cache")
            with step(label):
                in_ws = [o for o in plan.objects if o.location == "workspace"]
                for o in in_ws:
                    if o.oid.endswith(".dir"):
                        dvc.cache_workspace_dir(o.path, o.oid)
                dvc.cache_workspace_files({o.path: o.oid for o in in_ws
                                           if not o.oid.endswith(".dir")})
                if plan.fetch:
                    for oid, raw in ctx.remote_manifests.items():
                        dvc.add_manifest(oid, raw)
                    n, failed = dvc.fetch([o for o in plan.fetch if not o.endswith(".dir")])
                    result.fetched = n + len(ctx.remote_manifests)
                    failed = sorted(set(failed) | {oid for oid in plan.fetch
                                                   if not dvc.in_cache(oid)})
                    if failed:
                        raise RollbackError(
                            f"could not download {len(failed)} object(s) from {plan.remote} "
                            f"({_list(failed)}); the repository was restored to its previous "
                            "state; check the remote and run again")
                _fault("fetch")
            with step("Check out the model's data and outputs from the DVC cache"):
                dvc.reset()
                dvc.checkout(ctx.dvc_targets, force=True)
                for rel in set(ctx.head_pl.cached) - set(ctx.target_pl.cached):
                    if os.path.lexists(ctx.root / rel):
                        _remove_path(ctx.root / rel)
                _fault("checkout")
            label = ("Retrain with dvc repro (" + plan.retrain_reason + ")" if plan.retrain
                     else "Run dvc repro (outputs restored: nothing to retrain)")
            with step(label):
                # checkout changed outputs only, not dvc.yaml/dvc.lock: DVC's index is current
                result.stages_run = dvc.repro([_norm(plan.pipeline_dir, ModelLayout.DVC_YAML)])
                model_stage = ctx.identity.stages[-1] if ctx.identity.stages else None
                result.retrained = any(s.rsplit(":", 1)[-1] == model_stage
                                       for s in result.stages_run)
                _fault("repro")
            with step("Verify model, data and params against the registered version"):
                proof = _verify(ctx, plan)
                result.proof = proof
                if not proof.ok and not allow_mismatch:
                    raise VerificationError(_mismatch_message(plan, proof, dvc))
                _fault("verify")
            with step(f"Commit on {plan.branch}"):
                result.commit = _commit(ctx, plan, tx, proof)
                _fault("commit")
            if plan.stage:
                with step(f"Assign stage {plan.stage} to {plan.name} {plan.version}"):
                    if not tx.j["assign"]:
                        result.notes.append(f"{plan.version} already holds stage {plan.stage}; "
                                            "no stage tag written")
                    else:
                        tx.j["commit"] = result.commit
                        result.tag = _assign_stage(ctx.root, tx.j)
                    _fault("tag")
    except BaseException as exc:
        with _signals_ignored():
            try:
                tx.undo()
            except Exception as undo_exc:  # the journal stays: recover will try again
                raise RollbackError(
                    f"the rollback failed ({_reason(exc)}) and undoing it failed too "
                    f"({_reason(undo_exc)}); the journal is kept in {tx.path}: run "
                    "'dvc-monitor recover'") from None
        if isinstance(exc, DvcMonitorError) and not isinstance(exc, ExternalCommandError):
            if isinstance(exc, (RollbackError, MissingObjects)):
                raise
            raise RollbackError(f"{exc} (the repository was restored to its previous state)") \
                from None
        if isinstance(exc, KeyboardInterrupt):
            err = RollbackError("interrupted (SIGINT); the repository was restored to its "
                                "previous state")
            err.exit_code = 130
            raise err from None
        if isinstance(exc, _Terminated):
            err = RollbackError(f"interrupted ({exc}); the repository was restored to its "
                                "previous state")
            err.exit_code = 128 + exc.signum
            raise err from None
        if isinstance(exc, Exception):
            raise RollbackError(f"{_reason(exc)}; the repository was restored to its previous "
                                "state") from None
        raise
    # done: outside the try, so that nothing can undo a finished rollback (a kill from here
    # on leaves a journal that the next command finishes)
    tx.cleanup()


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, DvcMonitorError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _restore_files(ctx: _Context) -> None:
    """Write the target's blobs (new inodes: backups stay intact) and remove stale files."""
    rev = ctx.target.commit
    blobs = ctx.git.read_blobs([f"{rev}:{p}" for p in ctx.write])
    for path, (mode, _) in ctx.write.items():
        data = blobs.get(f"{rev}:{path}")
        if data is None:
            raise RollbackError(f"cannot read {path} at {rev[:7]} from git")
        dst = ctx.root / path
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".dvc-monitor-tmp")
        if mode == "120000":
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(data.decode(), tmp)
        else:
            tmp.write_bytes(data)
            os.chmod(tmp, 0o755 if mode == "100755" else 0o644)
        os.replace(tmp, dst)
    for path in ctx.delete:
        dst = ctx.root / path
        if os.path.lexists(dst):
            _remove_path(dst)


def _commit(ctx: _Context, plan: RollbackPlan, tx: _Transaction, proof: Proof) -> str | None:
    git = ctx.git
    head_files = set(_ls_tree(git, plan.head, ctx.files))
    paths = [p for p in ctx.files if p in head_files or os.path.lexists(ctx.root / p)]
    if paths:
        git.run("--literal-pathspecs", "add", "-A", "--", *paths)
    if git.ok("diff", "--cached", "--quiet"):
        return None  # the workspace was at the target already
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    current = plan.current_version or (f"id {plan.current_id}" if plan.current_id else "unknown")
    body = [
        f"Roll back {plan.name} to {plan.version} (id {plan.id})",
        "",
        f"Restores {plan.name} {plan.version} (commit {plan.commit[:12]}): its pipeline "
        "files, params, data and model, verified against the registered version.",
        "",
        f"model md5: {proof.model.got if proof.model else 'n/a'}"
        + ("" if proof.ok else " (MISMATCH allowed with --allow-mismatch)"),
    ]
    if plan.message:
        body += ["", plan.message]
    body += [
        "",
        f"Rollback-Model: {plan.name}",
        f"Rollback-From: {current}",
        f"Rollback-To: {plan.version} ({plan.id})",
        f"Rollback-Target-Commit: {plan.commit}",
        f"Rollback-By: {ctx.by}",
        f"Rollback-Date: {when}",
    ]
    if plan.message:
        body.append(f"Rollback-Reason: {' '.join(plan.message.split())}")
    if plan.stage:
        body.append(f"Rollback-Stage: {plan.stage}")
    body.append(f"{TRAILER_ID}: {tx.j['txn']}")
    git.run("commit", "-q", "--no-verify", "--cleanup=verbatim", "-F", "-",
            input="\n".join(body) + "\n")
    commit = git.head()
    tx.j["commit"] = commit
    tx.j["phase"] = "committed"
    tx.save()
    return commit


# -- recovery ---------------------------------------------------------------------------


def _commit_is_ours(git: GitRepo, commit: str, j: dict) -> bool:
    msg = git.run("log", "-1", "--format=%B%x00%P", commit, check=False)
    text, _, parents = msg.partition("\0")
    return f"{TRAILER_ID}: {j['txn']}" in text and parents.strip() == j["head"]


def _recover_locked(git: GitRepo, discard: bool = False) -> RecoveryResult:
    """Finish or undo the rollback the journal describes. The caller holds the lock."""
    state = _state_dir(git)
    path = state / JOURNAL_NAME
    try:
        j = json.loads(path.read_text())
    except FileNotFoundError:
        return RecoveryResult("none", message="no interrupted rollback")
    except ValueError:
        # journals are written atomically, so this one was damaged from outside; without
        # backups nothing had been touched, with backups a person must look
        if (state / BACKUP_NAME).exists() and not discard:
            raise RollbackError(
                f"the rollback journal {path} is unreadable; the backups of the files it "
                f"touched are in {state / BACKUP_NAME}: compare with 'git status', then run "
                "'dvc-monitor recover --discard'") from None
        shutil.rmtree(state / BACKUP_NAME, ignore_errors=True)
        path.unlink()
        with contextlib.suppress(OSError):
            state.rmdir()
        return RecoveryResult("cleaned", message="removed an unreadable rollback journal "
                              "(the rollback had not changed anything)")
    tx = _Transaction(git, j)
    name, version = j.get("name"), j.get("version")
    if discard:
        tx.cleanup()
        return RecoveryResult("discarded", name, version,
                              message=f"discarded the journal of the rollback of {name} to "
                                      f"{version} without changing the repository")
    _kill_orphans(git.root)
    _repair_dvc_locks(git.root)
    head = git.head()
    if j.get("phase") == "backup":
        tx.cleanup()
        return RecoveryResult("cleaned", name, version,
                              message=f"an interrupted rollback of {name} to {version} had not "
                                      "changed anything; removed its journal")
    commit = j.get("commit")
    if not commit and head != j["head"] and head and _commit_is_ours(git, head, j):
        commit = j["commit"] = head
    if commit and head == commit and j.get("phase") != "undo":
        tag = tx.finish()
        extra = f" and tagged {tag}" if tag else ""
        return RecoveryResult("finished", name, version, commit,
                              message=f"finished an interrupted rollback of {name} to {version} "
                                      f"(commit {commit[:7]}{extra})")
    if head != j["head"] and not (commit and head == commit):
        raise RollbackError(
            f"an interrupted rollback of {name} started at commit {j['head'][:7]}, but HEAD is "
            f"now {(head or '?')[:7]}; undo it by hand (backups in {state / BACKUP_NAME}) or "
            "run 'dvc-monitor recover --discard' to drop its journal")
    with _signals_ignored():
        tx.undo()
    return RecoveryResult("undone", name, version, j["head"],
                          message=f"undid an interrupted rollback of {name} to {version}: the "
                                  f"repository is back at {j['head'][:7]} as before")


def recover(root: str | os.PathLike[str] = ".", discard: bool = False,
            wait: bool = True) -> RecoveryResult:
    """Finish or undo an interrupted rollback (``dvc-monitor recover``).

    With ``wait=False``, return ``action="busy"`` at once when another dvc-monitor
    command holds the repository lock (a rollback still running is not interrupted).
    """
    git = GitRepo.discover(root)
    if pending_journal(git.root) is None:
        return RecoveryResult("none", message="no interrupted rollback in this repository")
    try:
        with _lock(git.root, "recover", None if wait else 0):
            return _recover_locked(git, discard=discard)
    except RepositoryLocked:
        if wait:
            raise
        return RecoveryResult("busy", message="a rollback is running in this repository")


def recover_pending(start: str | os.PathLike[str] = ".") -> RecoveryResult | None:
    """What every command runs first: recover an interrupted rollback, if there is one."""
    if pending_journal(start) is None:
        return None
    return recover(start, wait=False)

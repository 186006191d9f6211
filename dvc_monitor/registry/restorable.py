"""Where the DVC objects of each registered version are, and whether it can be restored.

A version needs the objects of its commit: every cached output in the model's
``dvc.lock`` (the model itself, intermediate outputs) and every ``.dvc``-tracked input
(the data partitions and their ``.dir`` manifests). ``check`` looks for each one in the
local cache and on the DVC remote (one batched existence query for all versions), and
calls a version *rebuildable* when its inputs are present and its pipeline is
deterministic, so that ``dvc repro`` makes the same outputs again. Rebuildable is said
of this install: a version whose ``trainer.json`` records another trainer (dvc-monitor's
stage code, scikit-learn, numpy, scipy, skops) is rebuildable only with that trainer,
and ``check`` names it. An adopted model (``adopted: true`` in its ``monitor.yaml``) is
trained by its user's own code, which makes no byte-for-byte promise: it is never
rebuildable, so ``gc`` always keeps its outputs and ``check`` says why.

``CheckResult`` is the value ``dvc-monitor check`` prints, ``dvc-monitor push`` relies on
(it refuses to publish a tag whose objects are nowhere) and a garbage collector may use
(drop a cold object only when its versions are rebuildable without it).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dvc_monitor.repo import cache as dvccache

# stage commands whose outputs are reproducible byte for byte (seeded training,
# canonicalised model files, deterministic JSON/CSV): the dvc-monitor model stages
_DETERMINISTIC_CMD = "dvc-monitor stage "

STATUS_REMOTE = "remote"  # every object on the DVC remote
STATUS_REBUILDABLE = "rebuildable"  # inputs on the remote, outputs rebuilt by dvc repro
STATUS_NEEDS_TRAINER = "needs-trainer"  # outputs nowhere; only the recorded trainer rebuilds
STATUS_LOCAL = "local-only"  # some objects only in this machine's cache: push them
STATUS_MISSING = "missing"  # an object is nowhere and the version cannot be rebuilt
STATUS_UNREADABLE = "unreadable"  # its pipeline files cannot be read at its commit

REBUILD_HERE = "this-install"  # dvc repro with this install makes the same outputs
REBUILD_OTHER = "other-trainer"  # only the trainer recorded in its trainer.json would
REBUILD_NO = "no"  # inputs missing, or a pipeline not known to be deterministic
# an adopted model (monitor.yaml: adopted): its user's own training code makes it
ADOPTED_WHY = "trained by its own pipeline, not known to be deterministic"


@dataclass(frozen=True)
class ObjectState:
    """One DVC object a version needs."""

    path: str  # repo-relative workspace path (a file inside a folder: ``dir/file``)
    oid: str  # md5, ``...dir`` for a folder manifest
    role: str  # "data" (a .dvc-tracked input) or "output" (a stage makes it)
    local: bool  # in the local cache
    remote: bool | None  # on the DVC remote; None when there is no remote

    @property
    def nowhere(self) -> bool:
        return not self.local and not self.remote


@dataclass(frozen=True)
class VersionState:
    """Where the objects of one registered version are."""

    name: str
    version: str
    commit: str
    objects: tuple[ObjectState, ...]
    deterministic: bool
    why_not: str  # why the pipeline is not known to be deterministic ("" if it is)
    error: str | None = None  # its pipeline cannot be read
    # the recorded trainer when only it differs from this install's (None otherwise)
    trainer: dict | None = None
    trainer_differences: tuple[str, ...] = ()
    adopted: bool = False  # trained by its own pipeline (monitor.yaml: adopted)

    @property
    def on_remote(self) -> int:
        return sum(1 for o in self.objects if o.remote)

    @property
    def in_cache(self) -> int:
        return sum(1 for o in self.objects if o.local)

    @property
    def nowhere(self) -> list[ObjectState]:
        return [o for o in self.objects if o.nowhere]

    @property
    def can_rebuild(self) -> bool:
        """Inputs present (cache or remote) and a deterministic pipeline."""
        return self.error is None and self.deterministic and all(
            o.local or o.remote for o in self.objects if o.role == "data")

    @property
    def rebuild(self) -> str:
        """Who can rebuild its outputs: this install, only its recorded trainer, or no one."""
        if self.can_rebuild:
            return REBUILD_HERE
        inputs = all(o.local or o.remote for o in self.objects if o.role == "data")
        if self.error is None and self.trainer is not None and inputs:
            return REBUILD_OTHER
        return REBUILD_NO

    @property
    def rebuild_note(self) -> str:
        if self.rebuild == REBUILD_HERE:
            return "with this install"
        if self.rebuild == REBUILD_OTHER:
            from dvc_monitor.model.trainer import describe

            return f"only with trainer {describe(self.trainer)}"
        if self.adopted and self.error is None:
            return f"no ({ADOPTED_WHY})"
        return "no"

    @property
    def status(self) -> str:
        if self.error is not None:
            return STATUS_UNREADABLE
        if all(o.remote for o in self.objects):
            return STATUS_REMOTE
        if self.deterministic and all(o.remote for o in self.objects if o.role == "data"):
            return STATUS_REBUILDABLE
        if not self.nowhere or self.can_rebuild:
            return STATUS_LOCAL
        if self.rebuild == REBUILD_OTHER:
            return STATUS_NEEDS_TRAINER
        return STATUS_MISSING

    @property
    def restorable(self) -> bool:
        """A fresh clone can restore it from the remote (objects there, or rebuildable)."""
        return self.status in (STATUS_REMOTE, STATUS_REBUILDABLE)

    @property
    def note(self) -> str:
        if self.error is not None:
            return self.error
        gone = self.nowhere
        if gone:
            shown = ", ".join(o.path for o in gone[:2]) + (
                f" and {len(gone) - 2} more" if len(gone) > 2 else "")
            if self.can_rebuild:
                what = "rebuilt by dvc repro"
            elif self.rebuild == REBUILD_OTHER:
                what = (f"rebuildable {self.rebuild_note}; "
                        f"this install differs: {'; '.join(self.trainer_differences)}")
            else:
                what = f"cannot be rebuilt: {self.why_not or 'an input is missing'}"
            return f"nowhere: {shown} ({what})"
        if self.status == STATUS_LOCAL:
            return "only in the local cache: run 'dvc-monitor push'"
        if self.status == STATUS_REBUILDABLE:
            return "outputs not on the remote; dvc repro rebuilds them"
        return ""

    def to_json(self) -> dict:
        return {
            "name": self.name, "version": self.version, "commit": self.commit,
            "status": self.status, "restorable": self.restorable,
            "rebuildable": self.can_rebuild, "rebuild": self.rebuild,
            "trainer_needed": None if self.trainer is None else {
                "fingerprint": self.trainer, "differences": list(self.trainer_differences)},
            "deterministic": self.deterministic, "adopted": self.adopted,
            "why_not_deterministic": self.why_not or None, "error": self.error,
            "objects": len(self.objects), "in_cache": self.in_cache,
            "on_remote": self.on_remote, "note": self.note,
            "nowhere": [{"path": o.path, "oid": o.oid, "role": o.role} for o in self.nowhere],
        }


@dataclass
class CheckResult:
    """``check``'s answer: one row per registered version."""

    remote: str | None  # "name (url)" of the DVC remote asked, None when there is none
    versions: list[VersionState] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every version can be restored from the remote (no versions: trivially)."""
        if not self.versions:
            return True
        return self.remote is not None and all(v.restorable for v in self.versions)

    def get(self, name: str, version: str) -> VersionState | None:
        for v in self.versions:
            if v.name == name and v.version == version:
                return v
        return None

    def to_json(self) -> dict:
        return {"remote": self.remote, "ok": self.ok,
                "versions": [v.to_json() for v in self.versions]}


# -- what a version needs ---------------------------------------------------------------


@dataclass(frozen=True)
class _Needs:
    """What one version needs, and whether its pipeline would make the same outputs."""

    objects: dict[str, tuple[str, str]]  # path -> (oid, role)
    why_not: str = ""  # "" when deterministic
    error: str | None = None
    trainer: dict | None = None  # the recorded trainer, when only it differs from this one
    trainer_differences: tuple[str, ...] = ()
    adopted: bool = False


def _needed(git, root: Path, mv, now: dict, adopted: bool = False) -> _Needs:
    """The objects of one version and whether a retrain here (trainer ``now``) gives them
    again (never, for an ``adopted`` model)."""
    from dvc_monitor.errors import DvcMonitorError, TrainerMismatch
    from dvc_monitor.model import trainer
    from dvc_monitor.model.pipeline import read_pipeline, recorded_trainer

    if not mv.lock_path:  # no stage at that commit outputs the model: say so, as it found it
        return _Needs({}, error=mv.warning or f"no dvc.lock for {mv.model_path or mv.name} "
                                              f"at commit {mv.commit[:7]}")
    pdir = posixpath.dirname(mv.lock_path)
    try:
        pl = read_pipeline(git, mv.commit, pdir)
    except DvcMonitorError as exc:
        return _Needs({}, error=str(exc))
    if pl.lock is None:
        return _Needs({}, error=f"no {mv.lock_path} at {mv.commit[:7]}")
    needed = {p: (oid, "data" if p in pl.sources else "output") for p, oid in pl.cached.items()}
    if adopted:  # its user's own code: no byte-for-byte promise
        return _Needs(needed, ADOPTED_WHY, adopted=True)
    why = _why_not_deterministic(pl)
    if why:
        return _Needs(needed, why)
    # the same stages on another trainer would not make the same bytes
    raw = recorded_trainer(git, mv.commit, pdir, pl)
    try:
        recorded = None if raw is None else trainer.parse(raw, f"{mv.commit[:12]}:{pdir or '.'}")
    except TrainerMismatch as exc:
        return _Needs(needed, f"a retrain would not give the registered model: {exc}")
    diffs = trainer.differences(recorded, now) if recorded is not None else []
    if diffs:
        return _Needs(needed, "a retrain would not give the registered model: "
                      + trainer.other_trainer_note(diffs), None, recorded, tuple(diffs))
    return _Needs(needed)


def _adopted(git, versions: list) -> set[tuple[str, str]]:
    """(name, version) of the ``versions`` whose monitor.yaml at their commit says their
    own pipeline trains them, read in one batch."""
    from dvc_monitor.errors import DvcMonitorError
    from dvc_monitor.model.data import ModelConfig
    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.repo.dvcfiles import norm

    specs = {(mv.name, mv.version): f"{mv.commit}:"
             f"{norm(posixpath.dirname(mv.lock_path), ModelLayout.MONITOR)}"
             for mv in versions if mv.lock_path}
    blobs = git.read_blobs(list(dict.fromkeys(specs.values()))) if specs else {}
    found = set()
    for key, spec in specs.items():
        raw = blobs.get(spec)
        try:
            if raw is not None and ModelConfig.from_text(
                    raw.decode("utf-8", errors="replace"), spec).adopted:
                found.add(key)
        except DvcMonitorError:
            continue
    return found


def _why_not_deterministic(pl) -> str:
    if pl.external:
        return f"it reads files outside git and DVC ({', '.join(sorted(pl.external)[:2])})"
    stages = (pl.yaml.get("stages") or {}) if isinstance(pl.yaml, dict) else {}
    for name, body in (pl.lock.stages if pl.lock is not None else {}).items():
        decl = stages.get(name.split("@")[0]) if isinstance(stages, dict) else None
        if isinstance(decl, dict) and (decl.get("always_changed") or decl.get("frozen")):
            return f"stage {name} is always_changed or frozen"
        for c in body.commands:
            if not isinstance(c, str) or not c.strip().startswith(_DETERMINISTIC_CMD):
                return f"stage {name} runs '{str(c)[:60]}', not known to be deterministic"
    return ""


def manifest_entries(raw: bytes | None) -> list[tuple[str, str]] | None:
    """The (relpath, md5) entries of a DVC ``.dir`` manifest (None: not a readable one)."""
    try:
        entries = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    return [(str(e["relpath"]), str(e["md5"])) for e in entries
            if isinstance(e, dict) and e.get("md5") and e.get("relpath")]


def _local(root: Path, oid: str) -> bool:
    return dvccache.object_path(root, oid).is_file()


# -- the check --------------------------------------------------------------------------


def scan(root: str | Path, versions: Iterable, dvc=None) -> CheckResult:
    """Where the objects of ``versions`` (``ModelVersion``s) are.

    ``dvc`` is an open ``DvcSession`` (its remote is asked); None: local cache only.
    """
    from dvc_monitor.repo.git import GitRepo
    from dvc_monitor.model.trainer import current as current_trainer

    git = GitRepo.discover(root)
    root = git.root
    remote = dvc.remote() if dvc is not None else None
    now = current_trainer()
    versions = list(versions)
    adopted = _adopted(git, versions)
    rows = [(mv, _needed(git, root, mv, now, (mv.name, mv.version) in adopted))
            for mv in versions]

    # .dir manifests: from the local cache, else from the remote
    objects: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for mv, needs in rows:
        items = []
        for path, (oid, role) in sorted(needs.objects.items()):
            items.append((path, oid, role))
            if oid.endswith(".dir"):
                raw = None
                obj = dvccache.object_path(root, oid)
                if obj.is_file():
                    raw = obj.read_bytes()
                elif remote is not None:
                    raw = dvc.remote_manifest(oid)
                for rel, md5 in manifest_entries(raw) or []:
                    items.append((f"{path}/{rel}", md5, role))
        objects[(mv.name, mv.version)] = items

    oids = sorted({oid for items in objects.values() for _, oid, _ in items})
    there = dvc.remote_has(oids) if remote is not None else set()
    result = CheckResult(remote=f"{remote[0]} ({remote[1]})" if remote else None)
    for mv, needs in rows:
        states = tuple(
            ObjectState(path, oid, role, _local(root, oid),
                        (oid in there) if remote is not None else None)
            for path, oid, role in objects[(mv.name, mv.version)])
        result.versions.append(VersionState(
            mv.name, mv.version, mv.commit, states, needs.error is None and not needs.why_not,
            needs.why_not, needs.error, needs.trainer, needs.trainer_differences,
            needs.adopted))
    return result


def check(root: str | Path = ".", names: list[str] | None = None,
          remote: str | None = None) -> CheckResult:
    """Where each active registered version's objects are (of ``names``, or of all models).

    ``remote`` names a DVC remote (default: the repository's default remote). With no
    remote configured, ``CheckResult.remote`` is None and nothing counts as restorable.
    """
    from dvc_monitor.repo import dvc as dvcops
    from dvc_monitor.registry.state import Registry

    reg = Registry.load(root)
    wanted = list(names) if names else reg.models(include_deprecated=True)
    versions = [mv for n in wanted for mv in reg.versions(n) if mv.registered]
    with dvcops.session(reg.root, remote) as dvc:
        return scan(reg.root, versions, dvc if dvc.remote() is not None else None)

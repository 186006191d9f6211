"""Rollback planning: the preflight that makes a plan (changes nothing) from the model's
pipeline at HEAD and at the target revision (``model.pipeline``)."""


import contextlib
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_monitor.errors import (
    DirtyWorkTree,
    DvcMonitorError,
    MissingObjects,
    RollbackError,
    UnknownVersion,
    some,
)
from dvc_monitor.model.files import AS_WRITTEN, CANONICAL
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.model.pipeline import Pipeline, read_pipeline, recorded_trainer
from dvc_monitor.repo.dvcfiles import inside, norm
from dvc_monitor.repo.git import GitRepo

DEFAULT_STAGE = "prod"







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
    # a retrain on another trainer than the registered one (trainer.json): what differs
    trainer: str | None = None
    trainer_differs: bool = False
    problems: list[str] = field(default_factory=list)  # what a --dry-run could not check
    warnings: list[str] = field(default_factory=list)  # the registry's (lightweight tags, ...)
    # trained by its own pipeline (``adopted: true`` in monitor.yaml at the target): its
    # model file is verified as its code wrote it, with the types its monitor.yaml trusts
    adopted: bool = False
    trusted_types: tuple[str, ...] = ()

    @property
    def missing(self) -> list[ObjectNeed]:
        return [o for o in self.objects if o.location == "missing"]


# -- preflight --------------------------------------------------------------------------


@dataclass
class RollbackContext:
    """What preflight learned, kept for the transaction (not shown to users)."""

    git: GitRepo
    root: Path
    target: Any  # registry.ModelVersion
    identity: Any  # identity.VersionIdentity of the target
    head_pl: Pipeline
    target_pl: Pipeline
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


def preflight(git: GitRepo, dvc, name: str, to: str | None, previous: bool,
              stage: str | None, message: str | None,
              dry_run: bool = False) -> tuple[RollbackPlan, RollbackContext]:
    """The plan and what the transaction needs. Planned from the target revision: HEAD's
    pipeline files may be corrupt (they are overwritten). With ``dry_run``, a remote that
    cannot be reached is named in ``plan.problems`` instead of stopping the plan.

    Six steps, each refusing with its own message: resolve the version, read the pipeline
    at HEAD and at the target, check the workspace, locate the objects (cache, remote),
    decide on a retrain (and its trainer), build the plan.
    """
    from dvc_monitor.registry.state import Registry

    root = git.root
    head, branch = _head_and_branch(git)
    reg = Registry.load(root)
    target, holder, identity = _resolve_version(reg, name, to, previous, stage)
    layout = ModelLayout(name)
    pdir = posixpath.dirname(target.lock_path) if target.lock_path else layout.dir
    model_path = norm(pdir, identity.model_path)

    problems: list[str] = []
    head_pl, target_pl = _read_pipelines(git, head, name, target, pdir, problems)
    current_id, current_version = _current_version(reg, name, head, head_pl, identity)
    changes = _changes(pdir, head_pl, target_pl)
    _check_workspace(git, dvc, pdir, head_pl, target_pl, changes.files)
    found = _locate_objects(dvc, f"{name} {target.version}", target_pl, dry_run, problems)
    config = _model_config(git, target.commit, pdir, problems)
    adopted = bool(config and config.adopted)
    trusted = config.trusted_types if config is not None else ()
    retrain = _plan_retrain(git, dvc, identity, target.commit, pdir, target_pl, found,
                            adopted)

    who = git.identity()
    plan = RollbackPlan(
        name=name, version=target.version, commit=target.commit, id=target.id or identity.id,
        short_id=target.short_id or identity.short, head=head, branch=branch,
        current_version=current_version, current_id=current_id, stage=stage,
        stage_holder=holder.version if holder is not None else None, message=message,
        pipeline_dir=pdir, restore=sorted(changes.write), delete=changes.delete,
        shared=changes.shared, outputs=sorted(target_pl.cached), objects=found.objects,
        fetch=sorted({o.oid for o in found.objects if o.location == "remote"}),
        remote=found.remote_label, cache_dir=dvc.cache_dir, retrain=retrain.needed,
        retrain_reason=retrain.reason, run_cache=retrain.run_cache,
        expected=_expected(target, identity, pdir, target_pl, model_path, adopted, trusted),
        trainer=retrain.trainer, trainer_differs=retrain.trainer_differs,
        problems=problems, warnings=list(reg.warnings), adopted=adopted,
        trusted_types=trusted,
    )
    ctx = RollbackContext(
        git=git, root=root, target=target, identity=identity, head_pl=head_pl,
        target_pl=target_pl, write=changes.write, delete=changes.delete, files=changes.files,
        outs=changes.outs,
        dvc_targets=[norm(pdir, ModelLayout.DVC_YAML)] + sorted(target_pl.dvcfiles),
        model_path=model_path, by=f"{who.name} <{who.email}>",
        remote_manifests=found.manifests,
        from_version=(holder.version if holder is not None else current_version),
    )
    return plan, ctx


# -- step 1: resolve the version ---------------------------------------------------------


def _head_and_branch(git: GitRepo) -> tuple[str, str]:
    """HEAD's commit and branch; a rollback needs both (it commits on the branch)."""
    head = git.head()
    if head is None:
        raise RollbackError("the repository has no commits; there is nothing to roll back")
    branch = git.branch()
    if branch is None:
        raise RollbackError("HEAD is detached; switch to the branch the rollback should be "
                            "committed on (git switch main) and run again")
    return head, branch


def _resolve_version(reg, name: str, to: str | None, previous: bool, stage: str | None):
    """(target version, holder of the stage now or None, the target's identity): an active
    version whose pipeline can be read."""
    target, holder = _resolve_target(reg, name, to, previous, stage)
    if target.registered and not target.active:
        raise RollbackError(f"{name} {target.version} is deregistered; pick an active version "
                            f"('dvc-monitor versions {name}')")
    identity = target.identity
    if identity is None:
        raise RollbackError(f"cannot read the pipeline of {name} {target.version} at commit "
                            f"{target.commit[:7]} ({target.warning or 'no dvc.lock'}); "
                            "it cannot be restored")
    return target, holder, identity


# -- step 2: the pipeline at HEAD and at the target --------------------------------------


def _read_pipelines(git: GitRepo, head: str, name: str, target, pdir: str,
                    problems: list[str]) -> tuple[Pipeline, Pipeline]:
    """The pipeline at HEAD and at the target, from git (two ls-tree + one cat-file each).
    HEAD's unreadable files are named in ``problems``; the target's must be readable."""
    broken_at_head: list[str] = []
    head_pl = read_pipeline(git, head, pdir, broken=broken_at_head)
    if broken_at_head:
        problems.append(f"HEAD's {some(broken_at_head, 2)} cannot be read: restored from "
                        f"{target.version}")
    target_pl = read_pipeline(git, target.commit, pdir,
                               extra=head_pl.git_outs | head_pl.params_files)
    head_pl.tree.update(git.ls_tree(head, sorted(
        p for p in target_pl.git_deps | target_pl.git_outs | target_pl.params_files
        if inside(p) and p not in head_pl.tree)))
    if target_pl.lock is None:
        raise RollbackError(f"{name} {target.version} has no {norm(pdir, 'dvc.lock')} at "
                            f"{target.commit[:7]}; it cannot be restored")
    if target_pl.legacy:
        raise RollbackError(f"{name} {target.version} was built with DVC 2 hashes "
                            f"({some(target_pl.legacy)}); restore it with 'dvc checkout' "
                            "by hand")
    return head_pl, target_pl


def _current_version(reg, name: str, head: str, head_pl: Pipeline,
                     identity) -> tuple[str | None, str | None]:
    """(id, version) of what the workspace holds now, from HEAD's dvc.lock (None: unknown)."""
    from dvc_monitor.registry.identity import identity_from_lock

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
    return current_id, current_version


@dataclass(frozen=True)
class _Changes:
    """The git-tracked files a rollback writes or removes, and the outputs it backs up."""

    write: dict[str, tuple[str, str]]  # path -> (mode, blob oid) at the target
    delete: list[str]  # this model's files absent at the target
    shared: list[str]  # written files outside the model folder
    outs: list[str]  # DVC outputs of HEAD and the target
    files: list[str]  # every git-tracked path whose bytes are backed up


def _changes(pdir: str, head_pl: Pipeline, target_pl: Pipeline) -> _Changes:
    """Which git-tracked files change, and which DVC outputs (all of HEAD's and the target's)."""
    target_files = target_pl.own_files() | target_pl.dep_files()
    # its monitor.yaml (kind, reference, trusted types): an adopted model's stages do not
    # read it, yet it belongs to the version; kept (never removed) when the target has none
    monitor = norm(pdir, ModelLayout.MONITOR)
    if monitor in target_pl.tree:
        target_files.add(monitor)
    write = {p: target_pl.tree[p] for p in sorted(target_files)
             if head_pl.tree.get(p) != target_pl.tree[p]}
    delete = sorted(p for p in head_pl.own_files() if p not in target_pl.tree)
    shared = sorted(p for p in write if pdir and not p.startswith(pdir + "/"))
    outs = sorted(set(head_pl.cached) | set(target_pl.cached))
    gitignores = {norm(posixpath.dirname(o), ".gitignore") for o in outs}
    gitignores |= {p for p in head_pl.own_files() if p.endswith("/.gitignore")}
    files = sorted(set(write) | set(delete) | gitignores)
    return _Changes(write, delete, shared, outs, files)


# -- step 3: check the workspace ---------------------------------------------------------


def _check_workspace(git: GitRepo, dvc, pdir: str, head_pl: Pipeline, target_pl: Pipeline,
                     files: list[str]) -> None:
    """Refuse a dirty tree: never lose an uncommitted edit, an untracked file the rollback
    would overwrite, or a DVC output that differs from HEAD's dvc.lock."""
    porcelain = git.run("status", "--porcelain", "--untracked-files=all")
    tracked_dirty, untracked = _dirty_paths(porcelain)
    if tracked_dirty:
        raise DirtyWorkTree(
            f"uncommitted changes in {some(tracked_dirty)}; commit or stash them "
            "(git stash -u), then run the rollback again (nothing was changed)")
    file_set = set(files)
    clash = [p for p in untracked if p in file_set or any(
        p == o or p.startswith(o + "/") for o in target_pl.git_outs)]
    if clash:
        raise DirtyWorkTree(
            f"untracked files would be overwritten: {some(clash)}; move them away or commit "
            "them, then run the rollback again (nothing was changed)")
    changed_outs = []
    for path, oid in sorted(head_pl.cached.items()):
        got = dvc.workspace_hash(path)
        if got is not None and got != oid:
            changed_outs.append(path)
    if changed_outs:
        dvc_files = " ".join([norm(pdir, ModelLayout.DVC_YAML), *sorted(head_pl.dvcfiles)])
        raise DirtyWorkTree(
            f"DVC-tracked outputs differ from HEAD's dvc.lock: {some(changed_outs)}; keep "
            f"them with 'dvc commit {dvc_files}' and a git commit, or discard them with "
            f"'dvc checkout --force {dvc_files}', then run again (nothing was changed)")


# -- step 4: locate the objects ----------------------------------------------------------


@dataclass
class _Objects:
    """Where each object the target needs is, and the remote that was asked."""

    objects: list[ObjectNeed]
    remote_label: str | None  # "name (url)"
    manifests: dict[str, bytes]  # .dir manifests read from the remote


def _locate_objects(dvc, what: str, target_pl: Pipeline, dry_run: bool,
                    problems: list[str]) -> _Objects:
    """The objects ``what`` (the target) needs: in the workspace already, in the local
    cache, else on the remote. Refuses when data (which no stage rebuilds) is nowhere."""
    workspace_dirs: dict[str, dict[str, str]] = {}
    for path, oid in target_pl.cached.items():
        if oid.endswith(".dir"):
            entries = dvc.workspace_entries(path)
            if entries is not None:
                workspace_dirs[path] = entries
    objects, pending_dirs = _local_objects(dvc, target_pl, workspace_dirs)

    remote = dvc.remote()
    remote_label = f"{remote[0]} ({remote[1]})" if remote else None
    manifests: dict[str, bytes] = {}
    unknown = [o for o in objects if o.location == "unknown"]
    if unknown or pending_dirs:
        if remote is None:
            objects = [ObjectNeed(o.path, o.oid, o.role, "missing") if o.location == "unknown"
                       else o for o in objects]
            objects += [ObjectNeed(p, oid, role, "missing") for p, oid, role in pending_dirs]
        else:
            objects, manifests = _remote_objects(dvc, what, remote, objects, pending_dirs,
                                                 workspace_dirs, dry_run, problems)

    missing_data = [o for o in objects if o.location == "missing" and o.role == "data"]
    if missing_data:
        where = f"the local cache ({dvc.cache_dir})" + (
            f" nor on the remote {remote_label}" if remote else " and no DVC remote is set")
        raise MissingObjects(
            f"{what} needs {len(missing_data)} data object(s) found neither in "
            f"{where}: {some([f'{o.path} ({o.oid[:10]})' for o in missing_data])}; "
            "run 'dvc push' where they exist, then run the rollback again (nothing was changed)")
    return _Objects(objects, remote_label, manifests)


def _local_objects(dvc, target_pl: Pipeline, workspace_dirs: dict[str, dict[str, str]]
                   ) -> tuple[list[ObjectNeed], list[tuple[str, str, str]]]:
    """(the objects, located in the workspace or the cache or "unknown"; the folders whose
    manifest is not in the local cache, as (path, oid, role))."""
    objects: list[ObjectNeed] = []
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
    return objects, pending_dirs


def _remote_objects(dvc, what: str, remote: tuple[str, str], objects: list[ObjectNeed],
                    pending_dirs: list[tuple[str, str, str]],
                    workspace_dirs: dict[str, dict[str, str]], dry_run: bool,
                    problems: list[str]) -> tuple[list[ObjectNeed], dict[str, bytes]]:
    """Ask the remote for the objects not at hand: (the objects located, the folder
    manifests read). A remote that cannot be used is fine when only outputs (which dvc
    repro rebuilds) are missing; a ``dry_run`` names it in ``problems``; else it refuses."""
    from dvc_monitor.repo.dvc import RemoteUnavailable

    remote_label = f"{remote[0]} ({remote[1]})"
    manifests: dict[str, bytes] = {}
    unknown = [o for o in objects if o.location == "unknown"]
    before = list(objects)  # gc: outputs alone are rebuilt without the remote
    only_outputs = all(o.role != "data" for o in unknown) and all(
        role != "data" for *_, role in pending_dirs)
    remote_failed = False
    try:
        if dvc.remote_root_missing():
            raise RemoteUnavailable(f"the DVC remote folder {remote[1]} does not exist")
        for path, oid, role in pending_dirs:
            raw = dvc.remote_manifest(oid)
            if raw is None:
                objects.append(ObjectNeed(path, oid, role, "missing"))
                continue
            objects.append(ObjectNeed(path, oid, role, "remote"))
            manifests[oid] = raw
            objects.extend(_entries(path, raw, role, workspace_dirs.get(path), dvc))
        ask = sorted({o.oid for o in objects if o.location == "unknown"})
        there = dvc.remote_has(ask)
    except RemoteUnavailable as exc:
        if only_outputs:  # every object not at hand is an output: dvc repro makes it
            objects = before + [ObjectNeed(p, oid, role, "missing")
                                for p, oid, role in pending_dirs]
            manifests.clear()
            if dry_run:
                problems.append(f"the DVC remote {remote_label} cannot be used: {exc}; "
                                "the outputs not in the local cache will be rebuilt")
            there = set()
        elif dry_run:
            remote_failed = True
            problems.append(f"the DVC remote {remote_label} cannot be used: {exc}; "
                            "objects not in the local cache are unchecked")
            objects += [ObjectNeed(p, oid, role, "unknown")
                        for p, oid, role in pending_dirs]
            there = set()
        else:
            raise RollbackError(
                f"{what} needs objects that are not in the local "
                f"cache and the DVC remote cannot be reached or used: {exc}; check "
                "the remote ('dvc remote list'), its credentials and the network, "
                "then run again (nothing was changed)"
            ) from None
    if not remote_failed:
        objects = [ObjectNeed(o.path, o.oid, o.role,
                              ("remote" if o.oid in there else "missing"))
                   if o.location == "unknown" else o for o in objects]
    return objects, manifests


# -- step 5: a retrain, and its trainer --------------------------------------------------


@dataclass(frozen=True)
class _Retrain:
    """Whether dvc repro must rebuild outputs, why, and on which trainer."""

    needed: bool
    reason: str
    run_cache: bool | None  # a run-cache entry for the model's stage exists
    trainer_differs: bool
    trainer: str | None  # what differs from the recorded trainer


ADOPTED_RETRAIN = ("its own pipeline retrains it, not known to be deterministic: if the "
                   "retrain gives another model, the rollback is undone")


def _plan_retrain(git: GitRepo, dvc, identity, rev: str, pdir: str, target_pl: Pipeline,
                  found: _Objects, adopted: bool = False) -> _Retrain:
    """A retrain is needed when an output is nowhere; it must run on the recorded trainer
    (an adopted model's own pipeline has none: its retrain is only verified)."""
    missing_outs = [o for o in found.objects if o.location == "missing"]
    model_stage = identity.stages[-1] if identity.stages else None
    run_cache = None
    entry = target_pl.lock.stage(model_stage) if model_stage and target_pl.lock else None
    if entry is not None:
        run_cache = dvc.run_cache_has(entry.raw)
    if missing_outs:
        remote_label = found.remote_label
        reason = (f"{some([o.path for o in missing_outs])} in neither the local cache "
                  f"nor {'the remote ' + remote_label if remote_label else 'a remote'}: "
                  "dvc repro rebuilds them" + ("" if not run_cache else
                                               " (a run-cache entry exists)"))
    else:
        reason = "every output is in the workspace, the local cache or the remote"
    if adopted and missing_outs:
        trainer_differs, trainer_note = False, ADOPTED_RETRAIN
    else:
        trainer_differs, trainer_note = _retrain_trainer(git, rev, pdir, target_pl) \
            if missing_outs else (False, None)
    return _Retrain(bool(missing_outs), reason, run_cache, trainer_differs, trainer_note)


# -- step 6: the plan --------------------------------------------------------------------


def _model_config(git: GitRepo, rev: str, pdir: str, problems: list[str]):
    """The model's ``monitor.yaml`` at the target (None: it has none): whether its own
    pipeline trains it (adopted) and the types its reviewers trust. One that cannot be
    read is named in ``problems``; the model file is then verified as canonical."""
    from dvc_monitor.model.data import config_at

    try:
        return config_at(git, rev, pdir)
    except DvcMonitorError as exc:
        problems.append(f"{exc}: its model file is verified as a canonical archive")
        return None


def _expected(target, identity, pdir: str, target_pl: Pipeline, model_path: str,
              adopted: bool, trusted: tuple[str, ...]) -> dict:
    """What verification compares the restored workspace with: id, model (and how its file
    is verified), data, params."""
    expected_data = {}
    for p, m in (target.data or {}).items():
        expected_data[p] = m
    if not expected_data:
        for p, m in identity.deps.items():
            rp = norm(pdir, p)
            if rp in target_pl.cached:
                expected_data[rp] = m
    return {
        "id": target.id or identity.id,
        "model": {model_path: target.model_md5 or identity.model_md5},
        "model_digest": {model_path: target.model_digest},
        "model_form": AS_WRITTEN if adopted else CANONICAL,
        "trusted_types": list(trusted),
        "data": expected_data,
        "params": identity.params,
    }


def _retrain_trainer(git: GitRepo, rev: str, pdir: str, pl: Pipeline) -> tuple[bool, str | None]:
    """Would a retrain run on another trainer than the one recorded at ``rev``?"""
    from dvc_monitor.model.trainer import compare_recorded

    return compare_recorded(recorded_trainer(git, rev, pdir, pl), f"{rev[:12]}:{pdir or '.'}")


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


"""gc that knows the registry: drop what no version needs, never the last copy of a version.

Rules (``dvc-monitor gc``):

- Inputs of every registered version are kept: the ``.dvc``-tracked data partitions and
  their ``.dir`` manifests (params live in git, which gc never touches).
- *Hot* versions keep everything: stage holders (unless ``keep_stages=False``) and the
  last ``keep_last`` registered versions of each model (newest semver first).
- *Cold* versions lose the local copies of their cached outputs (the model file, the
  split manifest, ...) when ``restorable.scan`` calls them rebuildable (inputs present,
  a deterministic pipeline, this install's trainer) *and* the DVC remote holds them: a
  rollback fetches them, or retrains and verifies without the remote. The remote keeps
  every object of every registered version, so an upgrade of the trainer (which makes a
  retrain give other bytes) never strands one. A cold version that is not rebuildable
  keeps everything; one whose inputs are gone stops gc.
- ``drop_rebuildable=True`` (``--drop-rebuildable``, opt-in, warned) also deletes the
  last copy of a cold rebuildable version's outputs: from the local cache when the
  remote lacks them, and from the remote with ``cloud``. Such a version then lives only
  as long as this exact trainer is installed.
- Everything else is dropped unless the workspace or a branch head refers to it (the
  set ``dvc gc -w -a`` keeps), i.e. ``dvc gc -w -a -T`` with the tags replaced by the
  registry's rule.
- ``cloud=True`` applies the same rule to the DVC remote.

The whole run holds the repository lock, so a concurrent rollback or register waits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dvc_monitor.errors import GcRefused, UsageError, some
from dvc_monitor.repo import cache as dvccache

DEFAULT_KEEP_LAST = 5
UNUSED = "unused"  # no version, branch head or workspace refers to it
COLD = "cold, copy on the remote"  # an output of a cold rebuildable version the remote holds
LAST_COPY = "cold, rebuildable, last copy"  # the same, dropped with drop_rebuildable


@dataclass(frozen=True)
class GcObject:
    """One object gc removes (or, with ``dry_run``, would remove)."""

    oid: str
    where: str  # "cache" or "remote"
    bytes: int
    reason: str  # COLD, LAST_COPY or UNUSED
    ref: str = ""  # NAME@vX.Y.Z of the cold version it belongs to ("" when unused)
    path: str = ""  # its workspace path in that version

    def to_json(self) -> dict:
        return {"oid": self.oid, "where": self.where, "bytes": self.bytes,
                "reason": self.reason, "version": self.ref or None, "path": self.path or None}


@dataclass
class GcResult:
    """What ``gc`` removed (or would remove) and what it kept."""

    dry_run: bool
    keep_last: int
    keep_stages: bool
    cloud: bool
    remote: str | None  # "name (url)" of the remote cleaned with ``cloud``
    drop_rebuildable: bool = False  # the last copy of rebuildable outputs may go
    hot: list[str] = field(default_factory=list)  # NAME@vX.Y.Z kept whole
    cold: list[str] = field(default_factory=list)  # outputs left the local cache
    kept_cold: list[str] = field(default_factory=list)  # cold but not rebuildable: kept
    # cold and rebuildable, but the remote lacks outputs: they stay in the local cache
    not_on_remote: list[str] = field(default_factory=list)
    last_copy: list[str] = field(default_factory=list)  # outputs now nowhere: retrain only
    remote_note: str | None = None  # why the remote could not be asked (then: kept)
    removed: list[GcObject] = field(default_factory=list)
    kept_objects: int = 0  # objects in the local cache that stay

    def freed(self, where: str) -> int:
        return sum(o.bytes for o in self.removed if o.where == where)

    def count(self, where: str) -> int:
        return sum(1 for o in self.removed if o.where == where)

    def to_json(self) -> dict:
        return {
            "dry_run": self.dry_run, "keep_last": self.keep_last,
            "keep_stages": self.keep_stages, "cloud": self.cloud, "remote": self.remote,
            "drop_rebuildable": self.drop_rebuildable, "hot": self.hot, "cold": self.cold,
            "kept_cold": self.kept_cold, "not_on_remote": self.not_on_remote,
            "last_copy": self.last_copy, "remote_note": self.remote_note,
            "removed": [o.to_json() for o in self.removed],
            "freed": {"cache": {"objects": self.count("cache"), "bytes": self.freed("cache")},
                      "remote": {"objects": self.count("remote"),
                                 "bytes": self.freed("remote")}},
            "kept_objects": self.kept_objects,
        }


# -- the plan ---------------------------------------------------------------------------


def _validate(keep_last) -> int:
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise UsageError(f"--keep-last must be 1 or more (got {str(keep_last)[:20]}): gc "
                         "always keeps at least the newest version of each model")
    return keep_last


def _refuse_if_rollback_pending(root) -> None:
    from dvc_monitor.repo.state import pending_journal

    if pending_journal(root) is not None:
        raise GcRefused("a rollback is unfinished (its journal is in .git/dvc-monitor/); "
                        "let it finish or run 'dvc-monitor recover', then run gc again; "
                        "nothing was deleted")


def _split_hot_cold(reg, names: list[str], keep_last: int, keep_stages: bool):
    """(every version of every model, hot (name, version) pairs, versions gc may thin)."""
    everything, hot, scope = [], set(), []
    for name in reg.models(include_deprecated=True):
        versions = reg.versions(name, include_inactive=True)
        everything.extend(versions)
        if name not in names:
            hot.update((name, v.version) for v in versions)
            continue
        registered = [v for v in versions if v.registered and v.active]
        hot.update((name, v.version) for v in registered[:keep_last])
        for v in versions:
            if not v.registered or (keep_stages and v.stages):
                hot.add((name, v.version))  # unregistered commits appear only with stages
        scope.extend(v for v in versions if (name, v.version) not in hot)
    return everything, hot, scope


def _expand_dirs(root: Path, oids: Iterable[str], dvc=None) -> set[str]:
    """``oids`` plus the entries of the ``.dir`` manifests among them."""
    from dvc_monitor.registry.restorable import manifest_entries

    out = set(oids)
    for oid in list(out):
        if not oid.endswith(".dir"):
            continue
        obj = dvccache.object_path(root, oid)
        raw = obj.read_bytes() if obj.is_file() else None
        if raw is None and dvc is not None:
            raw = dvc.remote_manifest(oid)
        out.update(md5 for _, md5 in manifest_entries(raw) or [])
    return out


def _local_objects(root: Path) -> dict[str, int]:
    """oid -> bytes of every object in the local cache."""
    base = dvccache.objects_dir(root)
    found = {}
    if not base.is_dir():
        return found
    for prefix in os.scandir(base):
        if not (prefix.is_dir() and len(prefix.name) == 2):
            continue
        for entry in os.scandir(prefix.path):
            if entry.is_file() and not entry.name.endswith(".tmp"):
                found[prefix.name + entry.name] = entry.stat().st_size
    return found


def gc(root: str | Path = ".", names: list[str] | None = None,
       keep_last: int = DEFAULT_KEEP_LAST, keep_stages: bool = True, cloud: bool = False,
       dry_run: bool = False, remote: str | None = None,
       progress: Callable | None = None, checkpoint: Callable[[str], None] | None = None,
       lock_timeout: float | None = None, drop_rebuildable: bool = False) -> GcResult:
    """Remove the DVC objects no registered version needs (see the module docstring).

    ``names`` limits which models' cold versions are thinned (other models keep all
    their objects). ``remote`` names the DVC remote (default: the default remote): it is
    asked which cold outputs it holds, and cleaned with ``cloud``. ``drop_rebuildable``
    also deletes the last copy of cold rebuildable outputs (``result.last_copy`` names
    those versions). ``checkpoint("gc-locked")`` is called once the lock is held (tests).
    """
    import contextlib

    from dvc_monitor.registry.state import Registry
    from dvc_monitor.repo import dvc as dvcops
    from dvc_monitor.repo.locking import DEFAULT_TIMEOUT, repo_lock

    keep_last = _validate(keep_last)
    step = progress or (lambda _msg: contextlib.nullcontext())
    _refuse_if_rollback_pending(root)
    reg = Registry.load(root)
    root = Path(reg.root)
    for n in names or []:
        reg.artifact(n)  # an unknown model is a clear error
    wanted = list(names) if names else reg.models(include_deprecated=True)

    with repo_lock(root, "gc", timeout=DEFAULT_TIMEOUT if lock_timeout is None
                   else lock_timeout):
        if checkpoint is not None:
            checkpoint("gc-locked")
        _refuse_if_rollback_pending(root)
        reg = Registry.load(root)  # as it is now that no one else writes
        with dvcops.session(root, remote) as dvc:
            there = dvc.remote()
            if cloud and there is None:
                raise UsageError("--cloud needs a DVC remote and none is configured; add one "
                                 "with 'dvc remote add -d NAME URL' (nothing was deleted)")
            result = GcResult(dry_run, keep_last, keep_stages, cloud,
                              f"{there[0]} ({there[1]})" if cloud and there else None,
                              drop_rebuildable)
            everything, hot, scope = _split_hot_cold(reg, wanted, keep_last, keep_stages)
            with step(f"Checking the objects of {len(everything)} version(s)"):
                state = _scan(root, everything, dvc if there else None, cloud, result)
            keep, cold_outputs = _keep_set(state, hot, scope, result)
            with step("Reading what the workspace and the branch heads use"):
                keep |= dvc.used_by_branches()
                keep = _expand_dirs(root, keep, dvc if cloud else None)
            # the remote keeps every object of every registered version, and the cache the
            # cold outputs the remote lacks, unless the last copy was asked for
            on_remote = {o.oid for v in state.versions for o in v.objects if o.remote}
            last = drop_rebuildable and cloud
            keep_cache, keep_remote = keep, keep
            if not drop_rebuildable:
                keep_cache = keep | (set(cold_outputs) - on_remote)
                keep_remote = keep | set(cold_outputs)
            local = _local_objects(root)
            result.removed = _doomed(local, keep_cache, cold_outputs, "cache",
                                     set() if last else on_remote)
            if cloud:
                with step(f"Listing the objects on {result.remote}"):
                    result.removed += _doomed(dvc.remote_objects(), keep_remote, cold_outputs,
                                              "remote", set())
            _account(state, result, set(cold_outputs) - keep)
            result.kept_objects = len(local) - result.count("cache")
            if not dry_run:
                with step(f"Removing {len(result.removed)} object(s)"):
                    _remove(root, dvc, result.removed)
    return result


def _scan(root: Path, everything: list, dvc, cloud: bool, result: GcResult):
    """Where every version's objects are; the remote is asked when there is one.

    Without ``cloud`` an unreachable remote is no error while every input is in the
    local cache: nothing is known to be on the remote, so cold outputs stay.
    """
    from dvc_monitor.registry.restorable import scan
    from dvc_monitor.repo.dvc import RemoteUnavailable

    if dvc is None:
        return scan(root, everything, None)
    try:
        return scan(root, everything, dvc)
    except RemoteUnavailable as exc:
        if cloud:
            raise
        state = scan(root, everything, None)
        if any(o.role == "data" and not o.local for v in state.versions for o in v.objects):
            raise exc from None
        result.remote_note = str(exc)
        return state


def _account(state, result: GcResult, candidates: set[str]) -> None:
    """Name the cold versions whose outputs stay local only, or are now nowhere."""
    cache = {o.oid for o in result.removed if o.where == "cache"}
    remote = {o.oid for o in result.removed if o.where == "remote"}
    cold = set(result.cold)
    for v in state.versions:
        ref = f"{v.name}@{v.version}"
        if ref not in cold:
            continue
        outs = [o for o in v.objects if o.oid in candidates]
        if any(o.local and o.oid not in cache and not o.remote for o in outs):
            result.not_on_remote.append(ref)
        if any((o.local or o.remote) and (not o.local or o.oid in cache)
               and (not o.remote or o.oid in remote) for o in outs):
            result.last_copy.append(ref)


def _keep_set(state, hot: set, scope: list, result: GcResult):
    """(oids to keep, oid -> (ref, path) of the outputs of rebuildable cold versions)."""
    cold_keys = {(v.name, v.version) for v in scope}
    keep: set[str] = set()
    cold_outputs: dict[str, tuple[str, str]] = {}
    missing = []
    unreadable = [f"{v.name}@{v.version} ({v.error})" for v in state.versions
                  if v.error is not None]
    if unreadable:  # its objects are unknown, so nothing could be kept for it
        raise GcRefused(f"cannot tell which DVC objects {some(unreadable, 2)} need(s): gc "
                        "would not know what to keep; nothing was deleted")
    for v in state.versions:
        ref = f"{v.name}@{v.version}"
        for o in v.objects:
            if o.role == "data":
                keep.add(o.oid)
        if (v.name, v.version) in hot:
            result.hot.append(ref)
        elif (v.name, v.version) not in cold_keys:
            continue
        elif v.can_rebuild:
            result.cold.append(ref)
            for o in v.objects:
                if o.role != "data":
                    cold_outputs.setdefault(o.oid, (ref, o.path))
            continue
        else:
            if any(o.role == "data" and o.nowhere for o in v.objects):
                missing.append(ref)
            result.kept_cold.append(ref)
        keep.update(o.oid for o in v.objects)
    if missing:
        raise GcRefused(
            f"the inputs of {some(missing)} are in neither the local cache nor the remote, "
            "so gc cannot drop their models; see 'dvc-monitor check', restore the data "
            "(dvc push from a machine that has it) or deregister them; nothing was deleted")
    return keep, cold_outputs


def _doomed(objects: dict[str, int], keep: set[str], cold_outputs: dict, where: str,
            copy_stays: set[str]) -> list[GcObject]:
    """The objects of ``objects`` not in ``keep``; ``copy_stays``: cold ones kept elsewhere."""
    out = []
    for oid in sorted(objects):
        if oid in keep:
            continue
        ref, path = cold_outputs.get(oid, ("", ""))
        reason = UNUSED if not ref else COLD if oid in copy_stays else LAST_COPY
        out.append(GcObject(oid, where, objects[oid], reason, ref, path))
    return out


def _remove(root: Path, dvc, removed: list[GcObject]) -> None:
    import contextlib

    for o in removed:
        if o.where == "cache":
            with contextlib.suppress(FileNotFoundError):
                dvccache.object_path(root, o.oid).unlink()
    remote = [o.oid for o in removed if o.where == "remote"]
    if remote:
        dvc.remote_delete(remote)

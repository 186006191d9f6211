"""gc that knows the registry: drop what no version needs, and what a cold version can rebuild.

Rules (``dvc-monitor gc``):

- Inputs of every registered version are kept: the ``.dvc``-tracked data partitions and
  their ``.dir`` manifests (params live in git, which gc never touches).
- *Hot* versions keep everything: stage holders (unless ``keep_stages=False``) and the
  last ``keep_last`` registered versions of each model (newest semver first).
- *Cold* versions lose their cached outputs (the model file, the split manifest, ...)
  only when ``restorable.scan`` calls them rebuildable: inputs present and a
  deterministic pipeline. Rolling back to one then retrains and verifies. A cold version
  that is not rebuildable keeps everything; one whose inputs are gone stops gc.
- Everything else is dropped unless the workspace or a branch head refers to it (the
  set ``dvc gc -w -a`` keeps), i.e. ``dvc gc -w -a -T`` with the tags replaced by the
  registry's rule.
- ``cloud=True`` applies the same keep set to the DVC remote.

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
COLD = "cold, rebuildable"  # an output of a cold version that check shows rebuildable


@dataclass(frozen=True)
class GcObject:
    """One object gc removes (or, with ``dry_run``, would remove)."""

    oid: str
    where: str  # "cache" or "remote"
    bytes: int
    reason: str  # COLD or UNUSED
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
    hot: list[str] = field(default_factory=list)  # NAME@vX.Y.Z kept whole
    cold: list[str] = field(default_factory=list)  # outputs dropped (rebuildable)
    kept_cold: list[str] = field(default_factory=list)  # cold but not rebuildable: kept
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
            "hot": self.hot, "cold": self.cold, "kept_cold": self.kept_cold,
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
    from dvc_monitor.rollback.journal import pending_journal

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
    from dvc_monitor.registry.restorable import _manifest_entries

    out = set(oids)
    for oid in list(out):
        if not oid.endswith(".dir"):
            continue
        obj = dvccache.object_path(root, oid)
        raw = obj.read_bytes() if obj.is_file() else None
        if raw is None and dvc is not None:
            raw = dvc.remote_manifest(oid)
        out.update(md5 for _, md5 in _manifest_entries(raw) or [])
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
       lock_timeout: float | None = None) -> GcResult:
    """Remove the DVC objects no registered version needs (see the module docstring).

    ``names`` limits which models' cold versions are thinned (other models keep all
    their objects). ``remote`` names the DVC remote for ``cloud`` (default: the default
    remote). ``checkpoint("gc-locked")`` is called once the lock is held (tests).
    """
    import contextlib

    from dvc_monitor.registry.restorable import scan
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
                              f"{there[0]} ({there[1]})" if cloud and there else None)
            everything, hot, scope = _split_hot_cold(reg, wanted, keep_last, keep_stages)
            with step(f"Checking the objects of {len(everything)} version(s)"):
                state = scan(root, everything, dvc if cloud else None)
                gone = [v for v in state.versions
                        if any(o.role == "data" and not o.local for o in v.objects)]
                if gone and there is not None and not cloud:  # inputs may be on the remote
                    state = scan(root, everything, dvc)
            keep, cold_outputs = _keep_set(state, hot, scope, result)
            with step("Reading what the workspace and the branch heads use"):
                keep |= dvc.used_by_branches()
                keep = _expand_dirs(root, keep, dvc if cloud else None)
            local = _local_objects(root)
            result.removed = _doomed(local, keep, cold_outputs, "cache")
            if cloud:
                with step(f"Listing the objects on {result.remote}"):
                    result.removed += _doomed(dvc.remote_objects(), keep, cold_outputs,
                                              "remote")
            result.kept_objects = len(local) - result.count("cache")
            if not dry_run:
                with step(f"Removing {len(result.removed)} object(s)"):
                    _remove(root, dvc, result.removed)
    return result


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


def _doomed(objects: dict[str, int], keep: set[str], cold_outputs: dict,
            where: str) -> list[GcObject]:
    out = []
    for oid in sorted(objects):
        if oid in keep:
            continue
        ref, path = cold_outputs.get(oid, ("", ""))
        out.append(GcObject(oid, where, objects[oid], COLD if ref else UNUSED, ref, path))
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

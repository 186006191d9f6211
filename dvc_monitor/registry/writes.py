"""Registry writes: register, promote, unassign, deregister, deprecate (annotated GTO tags)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Callable

from dvc_monitor.errors import (
    DirtyWorkTree,
    MissingLockFile,
    RegistryError,
    StalePipeline,
    UnknownModel,
    UsageError,
)
from dvc_monitor.model.files import AS_WRITTEN, CANONICAL, ModelFileCheck, accept_registration
from dvc_monitor.names import (
    bump_version,
    parse_semver,
    validate_artifact_name,
    validate_stage_name,
    validate_version,
)
from dvc_monitor.registry import tags as T
from dvc_monitor.registry.facts import Facts
from dvc_monitor.registry.facts import join_path
from dvc_monitor.registry.state import ArtifactState, Registry, data_folders, lightweight_warning
from dvc_monitor.registry.tags import Action
from dvc_monitor.registry.values import RESERVED_META, SCHEMA, Event, ModelVersion
from dvc_monitor.repo.git import GitRepo

# -- writes -----------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"dvc-monitor: warning: {message}", file=sys.stderr, flush=True)


def next_time(art: ArtifactState | None) -> tuple[int, int]:
    """(tagger seconds, time_ns) strictly after every event of the artifact."""
    now_ns = time.time_ns()
    last_s = art.max_tag_time if art else 0
    last_ns = art.max_time_ns if art else 0
    when = max(now_ns // 1_000_000_000, last_s + 1)
    t_ns = max(now_ns, last_ns + 1, when * 1_000_000_000)
    return when, t_ns


def _write(reg: Registry, name: str, tag: str, commit: str, summary: str, meta: dict,
           extra_meta: dict | None = None) -> None:
    when, t_ns = next_time(reg.artifact_or_none(name))
    block = {"schema": SCHEMA, **meta, "time_ns": t_ns}
    if extra_meta:
        for k, v in extra_meta.items():
            if k not in RESERVED_META:
                block[k] = v
    reg.git.create_annotated_tag(tag, commit, T.format_message(summary, block), when=when)
    reg.note_write(name, tag, when, t_ns)


def _find_event(reg: Registry, name: str, tag: str) -> Event:
    for ev in reg.history(name):
        if ev.tag == tag:
            return ev
    raise RegistryError(f"tag {tag} was written but cannot be read back")  # pragma: no cover


def _root(root: str | Path) -> Path:
    return GitRepo.discover(root).root


def register(root: str | Path, name: str, version: str | None = None, bump: str | None = None,
             message: str | None = None, *,
             warn: Callable[[str], None] | None = None, force: bool = False,
             extra_meta: dict | None = None) -> ModelVersion:
    """Register HEAD as a new version of ``name`` (tag ``NAME@vX.Y.Z``).
    ``extra_meta`` adds keys to the tag's block (e.g. ``{"retrain": {...}}``).

    Without ``version`` or ``bump``: the patch after the greatest version ever
    registered, ``v0.0.1`` for the first (as ``gto register``). ``bump`` on a first
    version gives v0.0.1 / v0.1.0 / v1.0.0.

    Phases, each refusing with its own message: check the arguments; under the
    repository lock, a clean HEAD; the version number; the model's pipeline at HEAD; its
    outputs up to date and in the DVC cache; the model file; then the tag.
    """
    from dvc_monitor.repo.locking import repo_lock

    warn = warn or _warn
    version = _checked_arguments(name, version, bump)
    root = _root(root)
    with repo_lock(root, "register"):
        reg = Registry.load(root)
        _warn_lightweight(reg, warn)
        head = _clean_head(reg.git)
        version = _new_version(reg, name, head, version, bump)
        facts, pipeline = _model_at(reg, name, head)
        _check_outputs(root, reg.git, head, name, facts, pipeline)
        checked = _accept_model(root, reg, name, version, facts, force, warn)
        tag = T.format_tag(T.TagName(name, Action.REGISTER, version=version))
        meta = {
            "event": "register",
            "version": version,
            "id": facts.identity.id,
            "model_path": facts.model_path,
            "model_md5": facts.identity.model_md5,
            "digest": checked.digest,
            # how the model file is verified: canonical, or as its own code wrote it
            "model_form": CANONICAL if checked.canonical else AS_WRITTEN,
            "lock": facts.lock_path,
            "data": data_folders(facts.identity, facts.lock_path),
            "metrics": facts.metrics,
        }
        summary = message or T.default_summary(T.TagName(name, Action.REGISTER, version=version))
        _write(reg, name, tag, head, summary, meta, extra_meta)
        reg.read_back(tag)
    return reg.resolve(name, version)


def _checked_arguments(name: str, version: str | None, bump: str | None) -> str | None:
    """Refuse a bad name, version or bump (before the lock); the version, normalized."""
    validate_artifact_name(name)
    if version is not None and bump is not None:
        raise UsageError("give either --version or --bump, not both")
    if bump is not None and bump not in ("major", "minor", "patch"):
        raise UsageError(f"invalid bump {bump!r}: use major, minor or patch")
    if version is not None:
        version = validate_version(version)
    return version


def _clean_head(git: GitRepo) -> str:
    """HEAD's commit; refused when there is none or the working tree has changes."""
    head = git.head()
    if head is None:
        raise RegistryError("the repository has no commits; commit the model first")
    status = git.status_porcelain()
    if status.strip():
        paths = [line[3:] for line in status.splitlines() if line.strip()]
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        raise DirtyWorkTree(f"the working tree has uncommitted changes ({shown}); "
                            "commit or stash them, then register")
    return head


def _new_version(reg: Registry, name: str, head: str, version: str | None,
                 bump: str | None) -> str:
    """The version to register at ``head``: ``version`` if it is new and greater than every
    version ever registered, else the bump (patch by default) of the greatest."""
    art = reg.artifact_or_none(name)
    states = art.versions if art else []
    ever = [v for v in states if not v.discovered]
    here = [v for v in ever if v.commit == head]
    if here:
        raise RegistryError(
            f"commit {head[:7]} already has {name} {here[0].version}"
            f"{'' if here[0].active else ' (deregistered)'}; a commit holds one version of "
            "a model (GTO refuses two): commit the new model first")
    names = [v.version for v in ever]
    greatest = max(names, key=parse_semver) if names else None
    if version is not None:
        if version in names:
            raise RegistryError(f"{name} {version} already exists; use a greater version "
                                f"or --bump (greatest so far: {greatest})")
        if greatest is not None and parse_semver(version) <= parse_semver(greatest):
            raise RegistryError(
                f"{name} {version} would go backwards: it must be greater than {greatest}, "
                "the greatest version ever registered (deregistered included)")
        return version
    if greatest is None:
        return bump_version(None, bump) if bump else "v0.0.1"
    return bump_version(greatest, bump or "patch")


def _model_at(reg: Registry, name: str, head: str) -> tuple[Facts, str]:
    """(the model's facts at ``head``, with an identity; its dvc.yaml)."""
    facts = reg.facts_at(name, head)  # through the fact cache
    if facts.identity is None:
        pipeline = _pipeline_file(facts.model_path)
        if not facts.declared and not facts.found_lock and \
                reg.git.read_blob(head, pipeline) is None:
            raise UnknownModel(f"no model '{name}' in this repository: no artifacts entry "
                               f"in dvc.yaml and no {pipeline}")
        if not facts.found_lock:
            raise MissingLockFile(f"no dvc.lock for {name} at HEAD; run 'dvc repro "
                                  f"{pipeline}' and commit dvc.lock")
        raise RegistryError(f"cannot register {name}: {facts.error}")
    pipeline = join_path(str(PurePosixPath(facts.lock_path).parent), "dvc.yaml") \
        if "/" in facts.lock_path else "dvc.yaml"
    return facts, pipeline


def _check_outputs(root: Path, git: GitRepo, head: str, name: str, facts: Facts,
                   pipeline: str) -> None:
    """Refuse a pipeline that is not up to date, or outputs missing from the DVC cache."""
    from dvc_monitor.repo import dvc as dvcops

    stale = dvcops.status(root, [pipeline])
    uncached = _not_in_cache(stale)
    if stale and uncached is not None:
        raise RegistryError(_missing_message(name, uncached, pipeline))
    if stale:
        raise StalePipeline(
            f"the pipeline of {name} is not up to date ({_status_summary(stale)}); run "
            f"'dvc repro {pipeline}', commit, then register")
    missing = _missing_from_cache(root, git, head, facts)
    if missing:
        raise RegistryError(_missing_message(name, missing, pipeline))


def _accept_model(root: Path, reg: Registry, name: str, version: str, facts: Facts,
                  force: bool, warn: Callable[[str], None]) -> ModelFileCheck:
    """The model file: a safe canonical archive; same id with other bytes is refused. Warns
    when other versions have the same id."""
    from dvc_monitor.model.state import read_state

    identity = facts.identity
    same = reg.versions_with_id(name, identity.id)  # through the fact cache
    config = read_state(root, name, reg.git.head()).config
    checked = accept_registration(root, facts.model_path, identity.model_md5, name, version,
                                  [(m.version, m.model_md5, m.model_digest)
                                   for m in (reg.resolve(name, v) for v in same)],
                                  force=force, warn=warn,
                                  trusted=config.trusted_types if config else (),
                                  as_written=bool(config and config.adopted))
    if same:
        warn(f"{name} {version} has the same id ({identity.short}) as "
             f"{', '.join(same)}: same params, data and code")
    return checked


def _warn_lightweight(reg: Registry, warn: Callable[[str], None]) -> None:
    """Writes ignore lightweight tags (counters, versions, stages), as GTO does: say so."""
    if reg.lightweight:
        warn(lightweight_warning(reg.lightweight))


def _pipeline_file(model_path: str | None) -> str:
    if not model_path or "/" not in model_path:
        return "dvc.yaml"
    return join_path(str(PurePosixPath(model_path).parent), "dvc.yaml")


def _not_in_cache(status: dict) -> list[str] | None:
    """The paths ``dvc status`` reports as "not in cache", when that is all it reports."""
    paths = []
    for changes in status.values():
        for change in changes if isinstance(changes, list) else [changes]:
            if not isinstance(change, dict):
                return None
            for detail in change.values():
                if not isinstance(detail, dict):
                    return None
                for path, state in detail.items():
                    if state != "not in cache":
                        return None
                    paths.append(path)
    return paths or None


def _missing_message(name: str, missing: list[str], pipeline: str) -> str:
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (f"outputs of {name} are not in the DVC cache ({shown}); run 'dvc pull' "
            f"(or 'dvc repro {pipeline}'), then register")


def _status_summary(status: dict) -> str:
    parts = []
    for target, changes in list(status.items())[:3]:
        what = []
        for change in changes if isinstance(changes, list) else [changes]:
            if isinstance(change, dict):
                for kind, detail in change.items():
                    if isinstance(detail, dict):
                        what += [f"{kind} {p}: {_state_text(s)}" for p, s in list(detail.items())[:2]]
                    else:
                        what.append(f"{kind}: {detail}")
            else:
                what.append(str(change))
        label = target.split(":")[-1]
        parts.append(f"{label}: {'; '.join(what[:3]) or 'changed'}")
    more = len(status) - 3
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _state_text(state: object) -> str:
    if isinstance(state, dict):
        return ", ".join(f"{k} {v}" for k, v in state.items())
    return str(state)


def _missing_from_cache(root: Path, git: GitRepo, head: str, facts: Facts) -> list[str]:
    """Cached outputs of the lineage whose content is not in the local DVC cache."""
    from dvc_monitor.repo import dvc as dvcops

    identity = facts.identity
    base = str(PurePosixPath(facts.lock_path).parent) if "/" in facts.lock_path else ""
    cache = Path(dvcops.md5_cache_dir(root))
    outs = {join_path(base, p): md5 for p, md5 in identity.outs.items()}
    tracked = set(git.run("ls-files", "-z", "--", *outs).split("\0")) if outs else set()
    missing = []
    for path, md5 in outs.items():
        if path in tracked or not md5:
            continue
        if not _in_cache(cache, md5):
            missing.append(path)
    return missing


def _in_cache(cache: Path, md5: str) -> bool:
    h = md5.split("+")[0]
    obj = cache / h[:2] / h[2:]
    if not obj.is_file():
        return False
    if not h.endswith(".dir"):
        return True
    try:
        entries = json.loads(obj.read_text())
    except (OSError, ValueError):
        return False
    for e in entries if isinstance(entries, list) else []:
        m = e.get("md5") if isinstance(e, dict) else None
        if not m or not (cache / m[:2] / m[2:]).is_file():
            return False
    return True


def promote(root: str | Path, name: str, version_ref: str, stage: str,
            message: str | None = None, extra_meta: dict | None = None, *,
            warn: Callable[[str], None] | None = None) -> Event:
    """Assign ``stage`` to a version (tag ``NAME#STAGE#N``), like ``gto assign``.

    The version then holds the stage for GTO too: it is the most recent assignment.
    Refused when the version already holds the stage or is deregistered.
    ``extra_meta`` adds keys to the tag's block (e.g. ``{"rollback": {...}}``).
    """
    from dvc_monitor.repo.locking import repo_lock

    validate_artifact_name(name)
    validate_stage_name(stage)
    root = _root(root)
    with repo_lock(root, "promote"):
        reg = Registry.load(root)
        _warn_lightweight(reg, warn or _warn)
        mv = reg.resolve(name, version_ref)
        if not mv.registered:
            raise RegistryError(f"{name} {mv.version} is not a registered version; register it "
                                "first")
        if not mv.active:
            raise RegistryError(f"{name} {mv.version} is deregistered; it cannot take a stage")
        holder = reg.stage_holder(name, stage)
        if holder is not None and holder.version == mv.version:
            raise RegistryError(f"{name} {mv.version} is already in stage '{stage}'")
        art = reg.artifact(name)
        counter = T.next_counter(art.tagnames, name)
        tn = T.TagName(name, Action.ASSIGN, stage=stage, counter=counter)
        tag = T.format_tag(tn)
        meta = {"event": "assign", "version": mv.version, "stage": stage, "id": mv.id,
                "previous": holder.version if holder is not None else None}
        summary = message or T.default_summary(tn, version=mv.version)
        _write(reg, name, tag, mv.commit, summary, meta, extra_meta)
    return reg.read_back(tag)


def unassign(root: str | Path, name: str, stage: str, version_ref: str | None = None,
             message: str | None = None) -> list[Event]:
    """Take ``stage`` away (tags ``NAME#STAGE!#N``).

    With a version: from that version. Without: from every version that has the stage
    active, so that the stage is empty for GTO too (GTO would otherwise fall back to an
    older version still assigned to it).
    """
    from dvc_monitor.repo.locking import repo_lock

    validate_artifact_name(name)
    validate_stage_name(stage)
    root = _root(root)
    with repo_lock(root, "unassign"):
        reg = Registry.load(root)
        art = reg.artifact(name)
        with_stage = [v for v in art.versions if v.active and stage in v.active_stages()]
        if version_ref is not None:
            mv = reg.resolve(name, version_ref)
            targets = [v for v in with_stage if v.version == mv.version and v.commit == mv.commit]
            if not targets:
                raise RegistryError(f"{name} {mv.version} is not in stage '{stage}'")
        else:
            targets = sorted(with_stage, key=lambda v: v.active_stages()[stage].order_key,
                             reverse=True)
            if not targets:
                raise RegistryError(f"no version of {name} is in stage '{stage}'")
        written = []
        for v in targets:
            counter = T.next_counter(art.tagnames, name)
            tn = T.TagName(name, Action.UNASSIGN, stage=stage, counter=counter)
            tag = T.format_tag(tn)
            summary = message or T.default_summary(tn, version=v.version)
            _write(reg, name, tag, v.commit, summary,
                   {"event": "unassign", "version": v.version, "stage": stage})
            written.append(tag)
    reg = Registry.load(root)
    return [_find_event(reg, name, t) for t in written]


def deregister(root: str | Path, name: str, version_ref: str,
               message: str | None = None) -> Event:
    """Deregister a version (tag ``NAME@vX.Y.Z!``). Its number is never reused."""
    from dvc_monitor.repo.locking import repo_lock

    validate_artifact_name(name)
    root = _root(root)
    with repo_lock(root, "deregister"):
        reg = Registry.load(root)
        mv = reg.resolve(name, version_ref)
        if not mv.registered:
            raise RegistryError(f"{name} {mv.version} is not a registered version")
        if not mv.active:
            raise RegistryError(f"{name} {mv.version} is already deregistered")
        tn = T.TagName(name, Action.DEREGISTER, version=mv.version)
        tag = T.format_tag(tn)
        if reg.git.ok("rev-parse", "-q", "--verify", f"refs/tags/{tag}"):
            raise RegistryError(f"tag {tag} exists already; {name} {mv.version} was "
                                "deregistered before")
        summary = message or T.default_summary(tn)
        _write(reg, name, tag, mv.commit, summary,
               {"event": "deregister", "version": mv.version, "id": mv.id,
                "stages": list(mv.stages)})
    return reg.read_back(tag)


def deprecate(root: str | Path, name: str, message: str | None = None) -> Event:
    """Deprecate a model (tag ``NAME@deprecated#N``); registering again revives it."""
    from dvc_monitor.repo.locking import repo_lock

    validate_artifact_name(name)
    root = _root(root)
    with repo_lock(root, "deprecate"):
        reg = Registry.load(root)
        art = reg.artifact(name)
        if art.deprecated:
            raise RegistryError(f"{name} is already deprecated")
        counter = T.next_counter(art.tagnames, name)
        tn = T.TagName(name, Action.DEPRECATE, counter=counter)
        tag = T.format_tag(tn)
        summary = message or T.default_summary(tn)
        _write(reg, name, tag, art.events[-1].commit, summary, {"event": "deprecate"})
    return reg.read_back(tag)


def record_verdict(root: str | Path, name: str, version_ref: str, evidence: dict,
                   message: str | None = None) -> Event:
    """Record a shadow verdict on a version (tag ``NAME@vX.Y.Z@shadow#N``, annotated, on
    the version's commit): ``evidence`` (JSON) is the block's ``shadow`` part. GTO skips
    the tag; ``history`` and ``Registry.verdicts`` list it."""
    from dvc_monitor.repo.locking import repo_lock

    validate_artifact_name(name)
    if not isinstance(evidence, dict):
        raise TypeError(f"evidence must be a dict, got {type(evidence).__name__}")
    root = _root(root)
    with repo_lock(root, "shadow verdict"):
        reg = Registry.load(root)
        mv = reg.resolve(name, version_ref)
        if not mv.registered:
            raise RegistryError(f"{name} {mv.version} is not a registered version; register it "
                                "first")
        counter = 1 + max((e.counter or 0 for e in reg.verdicts(name)), default=0)
        tn = T.TagName(name, Action.SHADOW, version=mv.version, counter=counter)
        tag = T.format_tag(tn)
        summary = message or T.default_summary(tn)
        _write(reg, name, tag, mv.commit, summary,
               {"event": "shadow", "version": mv.version, "id": mv.id}, {"shadow": evidence})
    return reg.read_back(tag)

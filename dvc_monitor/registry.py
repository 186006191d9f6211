"""The model registry: state built from git tags in one pass, and the writes that add tags.

Reading (``Registry.load``) costs one ``git for-each-ref`` and, for versions whose tags
carry no dvc-monitor block (lightweight tags, tags made by ``gto``), one batched
``git cat-file`` to compute their facts from ``dvc.lock`` at their commits. Nothing here
imports DVC at module level; only ``register`` calls into DVC (``dvc status``).

The state follows GTO 1.10.1 (``gto.base``) so that ``gto show`` and dvc-monitor agree:

* a version is *active* when its latest registration event is a registration;
* a version *holds* a stage when its latest event for that stage is an assignment and,
  among all active versions with that stage, its latest assignment is the most recent
  (``gto show``'s default ``--sort timestamp`` with one version per stage);
* a model is *deprecated* when its latest event of any kind is a deprecation.

Events are ordered by ``order_key``: the ``time_ns`` of our block when present (its
second always equals the tagger time), else tagger seconds; then the tag's ``#N``
counter; then GTO's action priority; then the tag name.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from dvc_monitor import tags as T
from dvc_monitor.errors import (
    AmbiguousVersion,
    DirtyWorkTree,
    DvcMonitorError,
    MissingLockFile,
    RegistryError,
    StalePipeline,
    UnknownModel,
    UnknownVersion,
    UsageError,
)
from dvc_monitor.gitrepo import GitRepo, TagRef
from dvc_monitor.identity import (
    ID_PREFIX,
    VersionIdentity,
    identity_from_lock,
    is_version_id,
    parse_yaml,
    short_id,
)
from dvc_monitor.tags import Action

SCHEMA = 1
MIN_SHORT_ID = 6
METRICS_FILE = "metrics.json"
_PREFERRED_METRICS = (
    "roc_auc", "average_precision", "f1", "precision", "recall", "alert_rate",
    "auc", "accuracy", "mape", "smape", "rmse", "mae", "r2", "brier", "log_loss",
)
_RESERVED_META = frozenset({"schema", "event", "time_ns", "version", "stage", "id"})


# -- data classes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One registry event, read from one git tag."""

    artifact: str
    action: Action
    version: str | None  # for stage events: the version at the tag's commit (as GTO)
    stage: str | None
    commit: str
    tag: str
    time: int  # tagger time, unix seconds
    order_key: tuple
    author: str
    author_email: str
    message: str  # the human part of the tag message (block removed)
    meta: dict | None  # our block, None for tags without one

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.time, tz=timezone.utc)

    @property
    def time_ns(self) -> int:
        return self.order_key[0]

    @property
    def counter(self) -> int | None:
        return None if self.order_key[1] < 0 else self.order_key[1]


@dataclass(frozen=True)
class ModelVersion:
    """A registered version of a model (or, as in GTO, an unregistered commit with stages)."""

    name: str
    version: str  # "vX.Y.Z"; the commit hexsha for an unregistered commit with stages
    commit: str
    id: str | None
    short_id: str | None
    identity: VersionIdentity | None  # filled by resolve/get/stage_holder; None in listings
    created_at: datetime
    author: str
    stages: tuple  # stages this version holds now (same as `gto show`)
    metrics: dict
    model_md5: str | None
    registered: bool
    active: bool  # registered and not deregistered (GTO's is_active)
    message: str
    events: tuple = ()
    author_email: str = ""
    updated_at: datetime | None = None  # time of the last event that touched it
    model_path: str | None = None  # repository-relative
    data: dict = field(default_factory=dict)  # data dependency (repo-relative) -> md5
    lock_path: str | None = None
    warning: str | None = None  # why id is None, if it is

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class _Facts:
    identity: VersionIdentity | None
    metrics: dict
    model_path: str | None
    lock_path: str | None
    error: str | None = None
    declared: bool = False  # an artifacts: entry names the model at that commit
    found_lock: bool = False  # some dvc.lock above the model path exists


@dataclass
class _Raw:
    ref: TagRef
    tag: T.TagName
    meta: dict | None
    order_key: tuple


@dataclass
class _VState:
    version: str
    commit: str
    discovered: bool
    direct: list = field(default_factory=list)  # registrations / deregistrations
    stage_events: dict = field(default_factory=dict)  # stage -> [Event]
    all_events: list = field(default_factory=list)

    @property
    def registered(self) -> bool:
        return any(e.action is Action.REGISTER for e in self.direct)

    @property
    def active(self) -> bool:
        if self.direct:
            return self.direct[-1].action is Action.REGISTER
        return bool(self.all_events)

    def active_stages(self) -> dict[str, Event]:
        """stage -> its latest assignment, for stages whose latest event is an assignment."""
        result = {}
        for stage, events in self.stage_events.items():
            if events and events[-1].action is Action.ASSIGN:
                result[stage] = events[-1]
        return result


@dataclass
class _Artifact:
    name: str
    versions: list = field(default_factory=list)  # [_VState] in creation order
    by_name: dict = field(default_factory=dict)
    by_commit: dict = field(default_factory=dict)  # commit -> [registered _VState]
    discovered: dict = field(default_factory=dict)  # commit -> _VState
    deprecations: list = field(default_factory=list)
    events: list = field(default_factory=list)  # every event, in order
    tagnames: list = field(default_factory=list)  # every parsed tag of this artifact
    max_tag_time: int = 0
    max_time_ns: int = 0

    @property
    def deprecated(self) -> bool:
        return bool(self.events) and self.events[-1].action is Action.DEPRECATE

    def holders(self) -> dict[str, _VState]:
        """stage -> the version holding it, as ``gto show`` computes it."""
        best: dict[str, tuple[tuple, _VState]] = {}
        for v in self.versions:
            if not v.active:
                continue
            for stage, ev in v.active_stages().items():
                if stage not in best or ev.order_key > best[stage][0]:
                    best[stage] = (ev.order_key, v)
        return {s: v for s, (_, v) in sorted(best.items(), key=lambda kv: kv[1][0])}


# -- the registry -----------------------------------------------------------------------


class Registry:
    """Registry state of every model in a repository, from its tags."""

    def __init__(self, git: GitRepo, artifacts: dict[str, _Artifact], warnings: list[str]):
        self.git = git
        self.root = git.root
        self.warnings = warnings
        self._artifacts = artifacts
        self._facts: dict[tuple[str, str], _Facts] = {}
        self._versions: dict[str, list[ModelVersion]] = {}
        self._by_state: dict[str, dict[int, ModelVersion]] = {}

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, root: str | Path = ".") -> "Registry":
        """Read every tag in one ``for-each-ref``; skip (with a warning) malformed ones."""
        git = GitRepo.discover(root)
        warnings: list[str] = []
        raws: list[_Raw] = []
        for ref in git.tags():
            tag = T.parse_tag(ref.name)
            if tag is None:
                if T.is_event_like(ref.name):
                    warnings.append(f"skipped tag '{ref.name}': not a valid GTO event tag")
                continue
            meta = T.parse_message(ref.message) if ref.annotated else None
            if meta is not None and (meta.get("schema") != SCHEMA
                                     or meta.get("event") != tag.action.value):
                meta = None  # someone else's block, or a copied message
            t_ns = ref.time * 1_000_000_000
            if meta is not None:
                ns = meta.get("time_ns")
                if isinstance(ns, int) and not isinstance(ns, bool) and ns // 1_000_000_000 == ref.time:
                    t_ns = ns
            counter = -1 if tag.counter is None else tag.counter
            raws.append(_Raw(ref, tag, meta, (t_ns, counter, tag.action.priority, ref.name)))
        raws.sort(key=lambda r: r.order_key)
        artifacts: dict[str, _Artifact] = {}
        for raw in raws:
            art = artifacts.get(raw.tag.artifact)
            if art is None:
                art = artifacts[raw.tag.artifact] = _Artifact(raw.tag.artifact)
            _apply(art, raw, warnings)
        return cls(git, artifacts, warnings)

    # -- models and versions ------------------------------------------------------------

    def models(self, include_deprecated: bool = True) -> list[str]:
        """Names of models with at least one registry event, sorted."""
        return sorted(n for n, a in self._artifacts.items()
                      if a.events and (include_deprecated or not a.deprecated))

    def is_deprecated(self, name: str) -> bool:
        return self._artifact(name).deprecated

    def versions(self, name: str, include_inactive: bool = False) -> list[ModelVersion]:
        """Versions of ``name``, newest semver first (unregistered commits with stages last).

        Without ``include_inactive``: the versions ``gto show NAME`` lists (deregistered
        ones left out).
        """
        result = self._all_versions(name)
        if not include_inactive:
            result = [v for v in result if v.active]
        return list(result)

    def resolve(self, name: str, ref: str) -> ModelVersion:
        """The version ``ref`` names: ``v1.2.0``, ``1.2.0``, ``latest``, a (short) id.

        Deregistered versions are found too (check ``active``); the returned version has
        ``identity`` filled in.
        """
        self._artifact(name)
        if not isinstance(ref, str) or not ref.strip():
            raise UsageError("give a version: vX.Y.Z, latest, or a version id")
        ref = ref.strip()
        allv = self._all_versions(name)
        if ref in ("latest", "greatest"):
            latest = self.latest(name)
            if latest is None:
                raise UnknownVersion(f"{name} has no registered versions; register one with "
                                     f"'dvc-monitor register {name}'")
            return self._with_identity(latest)
        if ref.startswith(ID_PREFIX) or _is_hex(ref):
            return self._with_identity(self._by_id(name, ref, allv))
        try:
            version = T.validate_version(ref)
        except DvcMonitorError:
            for v in allv:  # an unregistered commit with stages is named by its hexsha
                if not v.registered and v.version == ref:
                    return self._with_identity(v)
            raise UnknownVersion(
                f"'{ref}' is not a version of {name}: use vX.Y.Z, latest or a version id "
                f"(at least {MIN_SHORT_ID} hex digits); {_known(allv)}") from None
        for v in allv:
            if v.version == version:
                return self._with_identity(v)
        raise UnknownVersion(f"{name} has no version {version}; {_known(allv)}")

    def get(self, reference: str) -> ModelVersion:
        """``NAME`` (latest), ``NAME@v1.2.0``, ``NAME@latest``, ``NAME#STAGE``, ``NAME@<id>``."""
        if not isinstance(reference, str) or not reference:
            raise UsageError("give a model reference: NAME, NAME@vX.Y.Z, NAME@latest or NAME#STAGE")
        cut = min((i for i in (reference.find("@"), reference.find("#")) if i >= 0), default=-1)
        if cut < 0:
            return self.resolve(T.validate_artifact_name(reference), "latest")
        name, sep, rest = reference[:cut], reference[cut], reference[cut + 1:]
        T.validate_artifact_name(name)
        if not rest:
            raise UsageError(f"invalid reference {reference!r}: use NAME, NAME@vX.Y.Z, "
                             "NAME@latest, NAME@<id> or NAME#STAGE")
        if sep == "#":
            stage = T.validate_stage_name(rest)
            holder = self.stage_holder(name, stage)
            if holder is None:
                stages = sorted(self._artifact(name).holders())
                have = f"stages in use: {', '.join(stages)}" if stages else "no stage is assigned"
                raise UnknownVersion(f"no version of {name} is in stage '{stage}'; {have}")
            return holder
        return self.resolve(name, rest)

    def latest(self, name: str) -> ModelVersion | None:
        """The greatest active registered version (``gto show``'s "latest")."""
        for v in self._all_versions(name):
            if v.registered and v.active:
                return v
        return None

    def stage_holder(self, name: str, stage: str) -> ModelVersion | None:
        """The version in ``stage`` now: the same answer as ``gto show NAME#STAGE``."""
        art = self._artifact(name)
        holder = art.holders().get(stage)
        if holder is None:
            return None
        return self._with_identity(self._mv(name, holder))

    def stages(self, name: str) -> dict[str, ModelVersion]:
        """stage -> holder, for every stage in use."""
        return {s: self._mv(name, v) for s, v in self._artifact(name).holders().items()}

    def previous_in_stage(self, name: str, stage: str) -> ModelVersion | None:
        """The version that held ``stage`` before its current holder.

        Walks the stage's assignments from newest to oldest, skipping the current
        holder's version and versions deregistered since (they cannot take a stage).
        """
        art = self._artifact(name)
        holder = art.holders().get(stage)
        seen = {holder.version} if holder is not None else set()
        for ev in reversed(art.events):
            if ev.action is not Action.ASSIGN or ev.stage != stage or ev.version in seen:
                continue
            seen.add(ev.version)
            state = _state_of(art, ev)
            if state is not None and state.active:
                return self._with_identity(self._mv(name, state))
        return None

    def history(self, name: str | None = None) -> list[Event]:
        """Every event (of ``name``, or of every model), oldest first."""
        if name is not None:
            return list(self._artifact(name).events)
        events = [e for a in self._artifacts.values() for e in a.events]
        return sorted(events, key=lambda e: e.order_key)

    def events_of(self, mv: ModelVersion) -> list[Event]:
        return list(mv.events)

    def identity(self, mv: ModelVersion) -> VersionIdentity | None:
        return self._with_identity(mv).identity

    def facts_at(self, name: str, commit: str) -> _Facts:
        """Identity and metrics of ``name`` at any commit (one batched read)."""
        return self._read_facts(name, [commit])[commit]

    # -- internals ----------------------------------------------------------------------

    def _artifact(self, name: str) -> _Artifact:
        art = self._artifacts.get(name)
        if art is None or not art.events:
            if ":" not in name:
                T.validate_artifact_name(name)
            known = self.models()
            have = f"known models: {', '.join(known)}" if known else \
                "no model is registered in this repository yet"
            raise UnknownModel(f"unknown model '{name}'; {have}")
        return art

    def _all_versions(self, name: str) -> list[ModelVersion]:
        cached = self._versions.get(name)
        if cached is not None:
            return cached
        art = self._artifact(name)
        need = []
        for v in art.versions:
            meta = _reg_meta(v)
            if meta is None or not is_version_id(meta.get("id")):
                need.append(v.commit)
        if need:
            self._read_facts(name, need)
        holders = art.holders()
        held: dict[int, list[str]] = {}
        for stage, v in holders.items():
            held.setdefault(id(v), []).append(stage)
        built = [(v, self._build(name, v, tuple(held.get(id(v), ())))) for v in art.versions]
        self._by_state[name] = {id(v): mv for v, mv in built}
        semver = [mv for v, mv in built if not v.discovered]
        semver.sort(key=lambda m: T.parse_semver(m.version), reverse=True)
        others = sorted((mv for v, mv in built if v.discovered), key=lambda m: m.version,
                        reverse=True)
        self._versions[name] = semver + others
        return self._versions[name]

    def _mv(self, name: str, state: _VState) -> ModelVersion:
        self._all_versions(name)
        return self._by_state[name][id(state)]

    def _build(self, name: str, v: _VState, stages: tuple) -> ModelVersion:
        regs = [e for e in v.direct if e.action is Action.REGISTER]
        authoring = regs[0] if regs else (v.all_events[0] if v.all_events else v.direct[0])
        meta = _reg_meta(v)
        facts = None
        if meta is not None and is_version_id(meta.get("id")):
            vid = meta["id"]
            metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
            model_md5 = meta.get("model_md5") if isinstance(meta.get("model_md5"), str) else None
            model_path = meta.get("model_path") if isinstance(meta.get("model_path"), str) else None
            data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
            lock_path = meta.get("lock") if isinstance(meta.get("lock"), str) else None
            identity, warning = None, None
        else:
            facts = self._facts.get((name, v.commit))
            identity = facts.identity if facts else None
            vid = identity.id if identity else None
            metrics = facts.metrics if facts else {}
            model_md5 = identity.model_md5 if identity else None
            model_path = facts.model_path if facts else None
            lock_path = facts.lock_path if facts else None
            data = _repo_data(identity, lock_path)
            warning = facts.error if facts else None
        last = v.all_events[-1] if v.all_events else authoring
        return ModelVersion(
            name=name,
            version=v.version,
            commit=v.commit,
            id=vid,
            short_id=short_id(vid),
            identity=identity,
            created_at=authoring.created_at,
            author=authoring.author,
            stages=stages,
            metrics=metrics,
            model_md5=model_md5,
            registered=v.registered,
            active=v.active if v.registered else v.active and not v.direct,
            message=authoring.message,
            events=tuple(v.all_events),
            author_email=authoring.author_email,
            updated_at=last.created_at,
            model_path=model_path,
            data=data,
            lock_path=lock_path,
            warning=warning,
        )

    def _with_identity(self, mv: ModelVersion) -> ModelVersion:
        if mv.identity is not None:
            return mv
        facts = self._read_facts(mv.name, [mv.commit])[mv.commit]
        if facts.identity is None:
            return mv
        updates = {"identity": facts.identity}
        if mv.id is None:
            updates.update(id=facts.identity.id, short_id=facts.identity.short)
        if not mv.metrics and facts.metrics:
            updates["metrics"] = facts.metrics
        if mv.model_md5 is None:
            updates["model_md5"] = facts.identity.model_md5
        if not mv.data:
            updates["data"] = _repo_data(facts.identity, facts.lock_path)
        updates.setdefault("model_path", mv.model_path or facts.model_path)
        updates.setdefault("lock_path", mv.lock_path or facts.lock_path)
        return replace(mv, **updates)

    def _by_id(self, name: str, ref: str, allv: list[ModelVersion]) -> ModelVersion:
        prefix = ref[len(ID_PREFIX):] if ref.startswith(ID_PREFIX) else ref
        prefix = prefix.lower()
        if len(prefix) < MIN_SHORT_ID or not _is_hex(prefix):
            raise UsageError(f"'{ref}' is too short for a version id: give at least "
                             f"{MIN_SHORT_ID} hex digits")
        matches = [v for v in allv if v.id and v.id[len(ID_PREFIX):].startswith(prefix)]
        if not matches and not ref.startswith(ID_PREFIX):
            # an unregistered commit with stages is named by its commit hexsha (as in GTO)
            matches = [v for v in allv if not v.registered and v.version.startswith(prefix)]
            if len(matches) == 1:
                return matches[0]
            matches = []
        if not matches:
            raise UnknownVersion(f"no version of {name} has an id starting with '{prefix}'; "
                                 f"{_known(allv)}")
        ids = {v.id for v in matches}
        if len(ids) > 1:
            listed = ", ".join(f"{v.version} ({v.short_id})" for v in matches)
            raise AmbiguousVersion(f"'{prefix}' matches several versions of {name}: {listed}; "
                                   "give more digits")
        # issue 9: the same id registered twice (same content) must not pick one silently
        active = [v for v in matches if v.active] or matches
        if len(active) > 1:
            listed = ", ".join(v.version for v in active)
            raise AmbiguousVersion(f"'{prefix}' is the id of several versions of {name} "
                                   f"({listed}: the same content registered more than once); "
                                   f"name the version instead, e.g. {name}@{active[0].version}")
        return active[0]

    def _read_facts(self, name: str, commits: Iterable[str]) -> dict[str, _Facts]:
        """Identity and metrics of ``name`` at many commits, reading git in one batch."""
        wanted = list(dict.fromkeys(commits))
        todo = [c for c in wanted if (name, c) not in self._facts]
        if todo:
            for c, f in read_facts(self.git, name, todo).items():
                self._facts[(name, c)] = f
        return {c: self._facts[(name, c)] for c in wanted}


# -- replaying tags into state ----------------------------------------------------------


def _apply(art: _Artifact, raw: _Raw, warnings: list[str]) -> None:
    ref, tag = raw.ref, raw.tag
    art.tagnames.append(tag)
    art.max_tag_time = max(art.max_tag_time, ref.time)
    art.max_time_ns = max(art.max_time_ns, raw.order_key[0])

    def event(version: str | None) -> Event:
        return Event(
            artifact=tag.artifact, action=tag.action, version=version, stage=tag.stage,
            commit=ref.commit, tag=ref.name, time=ref.time, order_key=raw.order_key,
            author=ref.tagger_name, author_email=ref.tagger_email,
            message=T.message_summary(ref.message), meta=raw.meta,
        )

    if tag.action is Action.DEPRECATE:
        ev = event(None)
        art.deprecations.append(ev)
        art.events.append(ev)
        return
    if tag.action in (Action.REGISTER, Action.DEREGISTER):
        state = art.by_name.get(tag.version)
        if state is not None and state.commit != ref.commit:
            warnings.append(f"skipped tag '{ref.name}': {tag.artifact} {tag.version} is "
                            f"already registered at commit {state.commit[:7]}")
            return
        if state is None:
            state = _VState(tag.version, ref.commit, discovered=False)
            art.by_name[tag.version] = state
            art.by_commit.setdefault(ref.commit, []).append(state)
            art.versions.append(state)
        ev = event(tag.version)
        state.direct.append(ev)
        state.all_events.append(ev)
        art.events.append(ev)
        return
    # assignment / unassignment: the version is whatever is registered at that commit
    at_commit = art.by_commit.get(ref.commit, [])
    if len(at_commit) > 1:
        active = [v for v in at_commit if v.active]
        state = (active or at_commit)[-1]
        warnings.append(f"tag '{ref.name}': commit {ref.commit[:7]} has several versions of "
                        f"{tag.artifact} ({', '.join(v.version for v in at_commit)}); "
                        f"using {state.version} (GTO fails on this)")
    elif at_commit:
        state = at_commit[0]
    else:
        state = art.discovered.get(ref.commit)
        if state is None:
            state = _VState(ref.commit, ref.commit, discovered=True)
            art.discovered[ref.commit] = state
            art.versions.append(state)
    ev = event(state.version)
    state.stage_events.setdefault(tag.stage, []).append(ev)
    state.all_events.append(ev)
    art.events.append(ev)


def _state_of(art: _Artifact, ev: Event) -> _VState | None:
    for v in art.versions:
        if v.version == ev.version and v.commit == ev.commit:
            return v
    return None


def _reg_meta(v: _VState) -> dict | None:
    for e in v.direct:
        if e.action is Action.REGISTER and e.meta is not None:
            return e.meta
    return None


def _is_semver(text: str) -> bool:
    try:
        T.validate_version(text)
        return text.startswith("v")
    except DvcMonitorError:
        return False


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def _known(versions: list[ModelVersion]) -> str:
    names = [v.version for v in versions if v.registered]
    if not names:
        return "it has no registered versions"
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"versions: {shown}"


def _repo_data(identity: VersionIdentity | None, lock_path: str | None) -> dict:
    if identity is None:
        return {}
    base = str(PurePosixPath(lock_path).parent) if lock_path else ""
    return {_join(base, p): m for p, m in identity.data_deps.items()}


def _join(base: str, rel: str) -> str:
    return rel if base in ("", ".") else f"{base}/{rel}"


# -- facts from commits -----------------------------------------------------------------


def model_dirs(name: str) -> tuple[str, str, str]:
    """(folder of the dvc.yaml declaring NAME, artifact name in it, default model path)."""
    dirname, sep, base = name.rpartition(":")
    if sep:
        default = _join(dirname, f"{base}.skops")
        return dirname, base, default
    return "", name, f"models/{name}/model.skops"


def _parents(path: str) -> list[str]:
    """Folders from the nearest parent of ``path`` up to the root ("")."""
    parts = PurePosixPath(path).parts[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def read_facts(git: GitRepo, name: str, commits: list[str]) -> dict[str, _Facts]:
    """Facts of ``name`` at each commit, normally in one ``cat-file --batch`` call.

    The model path comes from the ``artifacts:`` entry of the dvc.yaml at that commit
    (fallback: ``models/NAME/model.skops``); its lock is the nearest ``dvc.lock`` above
    it with a stage producing it. A second batch is read only for artifacts declared at
    paths other than the default layout.
    """
    ydir, art_name, default_model = model_dirs(name)
    dvc_yaml = _join(ydir, "dvc.yaml")
    default_dir = str(PurePosixPath(default_model).parent)
    default_lock = _join(default_dir, "dvc.lock")
    default_metrics = _join(default_dir, METRICS_FILE)
    specs = []
    for c in commits:
        specs += (f"{c}:{dvc_yaml}", f"{c}:{default_lock}", f"{c}:{default_metrics}")
    blobs = git.read_blobs(specs)

    yaml_cache: dict[bytes, object] = {}
    model_paths: dict[str, str] = {}
    declared: dict[str, bool] = {}
    for c in commits:
        raw = blobs.get(f"{c}:{dvc_yaml}")
        path = _artifact_path(raw, art_name, ydir, yaml_cache)
        declared[c] = path is not None
        model_paths[c] = path or default_model
    extra = []
    for c in commits:
        mp = model_paths[c]
        if mp == default_model and blobs.get(f"{c}:{default_lock}") is not None:
            continue  # the usual layout: everything is read already
        for d in _parents(mp):
            extra.append(f"{c}:{_join(d, 'dvc.lock')}")
            extra.append(f"{c}:{_join(d, METRICS_FILE)}")
    if extra:
        blobs.update(git.read_blobs([s for s in extra if s not in blobs]))

    lock_cache: dict[tuple[bytes, str], VersionIdentity | Exception] = {}
    metrics_cache: dict[bytes, dict] = {}
    result: dict[str, _Facts] = {}
    for c in commits:
        mp = model_paths[c]
        identity = None
        lock_path = None
        error = None
        found_lock = False
        for d in _parents(mp):
            lp = _join(d, "dvc.lock")
            raw = blobs.get(f"{c}:{lp}")
            if raw is None:
                continue
            found_lock = True
            rel = mp[len(d) + 1:] if d else mp
            key = (raw, rel)
            got = lock_cache.get(key)
            if got is None:
                try:
                    got = identity_from_lock(raw, rel, source=f"{lp} at {c[:7]}")
                except DvcMonitorError as exc:
                    got = exc
                lock_cache[key] = got
            if isinstance(got, VersionIdentity):
                identity, lock_path, error = got, lp, None
                break
            if error is None:
                error = str(got)
        if identity is None and error is None:
            error = f"no dvc.lock for {mp} at commit {c[:7]}"
        metrics = {}
        if lock_path is not None:
            mraw = blobs.get(f"{c}:{_join(str(PurePosixPath(lock_path).parent), METRICS_FILE)}"
                             if "/" in lock_path else f"{c}:{METRICS_FILE}")
            if mraw is not None:
                if mraw not in metrics_cache:
                    metrics_cache[mraw] = flatten_metrics(mraw)
                metrics = metrics_cache[mraw]
        result[c] = _Facts(identity, metrics, mp, lock_path, error, declared[c], found_lock)
    return result


def _artifact_path(raw: bytes | None, art_name: str, ydir: str,
                   cache: dict[bytes, object]) -> str | None:
    if raw is None:
        return None
    if raw not in cache:
        try:
            cache[raw] = parse_yaml(raw.decode("utf-8"), "dvc.yaml")
        except (DvcMonitorError, UnicodeDecodeError):
            cache[raw] = None
    doc = cache[raw]
    if not isinstance(doc, dict):
        return None
    arts = doc.get("artifacts")
    entry = arts.get(art_name) if isinstance(arts, dict) else None
    path = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(path, str) or not path:
        return None
    if "://" in path:  # issue 9: a URL (GTO allows remote artifacts) is kept as written
        return path
    from posixpath import normpath
    path = normpath(_join(ydir, path.replace("\\", "/")))
    if path.startswith("../") or path.startswith("/"):
        return None
    return path


def flatten_metrics(raw: bytes | str | dict) -> dict:
    """Numeric metrics, nested keys joined with '.'; {} for anything unreadable."""
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    out: dict = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if value == value and value not in (float("inf"), float("-inf")):
                out[prefix] = value

    walk("", raw)
    return out


def key_metrics(metrics: dict, n: int = 3) -> dict:
    """The few metrics a table shows: well-known quality metrics first."""
    chosen = [k for k in _PREFERRED_METRICS if k in metrics][:n]
    if len(chosen) < n:
        chosen += [k for k in sorted(metrics) if k not in chosen][: n - len(chosen)]
    return {k: metrics[k] for k in chosen}


# -- writes -----------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"dvc-monitor: warning: {message}", file=sys.stderr, flush=True)


def _next_time(art: _Artifact | None) -> tuple[int, int]:
    """(tagger seconds, time_ns) strictly after every event of the artifact."""
    now_ns = time.time_ns()
    last_s = art.max_tag_time if art else 0
    last_ns = art.max_time_ns if art else 0
    when = max(now_ns // 1_000_000_000, last_s + 1)
    t_ns = max(now_ns, last_ns + 1, when * 1_000_000_000)
    return when, t_ns


def _write(reg: Registry, name: str, tag: str, commit: str, summary: str, meta: dict,
           extra_meta: dict | None = None) -> None:
    art = reg._artifacts.get(name)
    when, t_ns = _next_time(art)
    block = {"schema": SCHEMA, **meta, "time_ns": t_ns}
    if extra_meta:
        for k, v in extra_meta.items():
            if k not in _RESERVED_META:
                block[k] = v
    reg.git.create_annotated_tag(tag, commit, T.format_message(summary, block), when=when)
    # keep the in-memory clock moving for several writes under one lock
    if art is None:
        art = reg._artifacts[name] = _Artifact(name)
    art.max_tag_time = when
    art.max_time_ns = t_ns
    art.tagnames.append(T.parse_tag(tag))


def _find_event(reg: Registry, name: str, tag: str) -> Event:
    for ev in reg.history(name):
        if ev.tag == tag:
            return ev
    raise RegistryError(f"tag {tag} was written but cannot be read back")  # pragma: no cover


def _root(root: str | Path) -> Path:
    return GitRepo.discover(root).root


def register(root: str | Path, name: str, version: str | None = None, bump: str | None = None,
             message: str | None = None, *,
             warn: Callable[[str], None] | None = None) -> ModelVersion:
    """Register HEAD as a new version of ``name`` (tag ``NAME@vX.Y.Z``).

    Without ``version`` or ``bump``: the patch after the greatest version ever
    registered, ``v0.0.1`` for the first (as ``gto register``). ``bump`` on a first
    version gives v0.0.1 / v0.1.0 / v1.0.0.
    """
    from dvc_monitor.locking import repo_lock

    warn = warn or _warn
    T.validate_artifact_name(name)
    if version is not None and bump is not None:
        raise UsageError("give either --version or --bump, not both")
    if bump is not None and bump not in ("major", "minor", "patch"):
        raise UsageError(f"invalid bump {bump!r}: use major, minor or patch")
    if version is not None:
        version = T.validate_version(version)
    root = _root(root)
    with repo_lock(root, "register"):
        reg = Registry.load(root)
        git = reg.git
        head = git.head()
        if head is None:
            raise RegistryError("the repository has no commits; commit the model first")
        status = git.status_porcelain()
        if status.strip():
            paths = [line[3:] for line in status.splitlines() if line.strip()]
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            raise DirtyWorkTree(f"the working tree has uncommitted changes ({shown}); "
                                "commit or stash them, then register")
        art = reg._artifacts.get(name)
        states = art.versions if art else []
        ever = [v for v in states if not v.discovered]
        here = [v for v in ever if v.commit == head]
        if here:
            raise RegistryError(
                f"commit {head[:7]} already has {name} {here[0].version}"
                f"{'' if here[0].active else ' (deregistered)'}; a commit holds one version of "
                "a model (GTO refuses two): commit the new model first")
        names = [v.version for v in ever]
        greatest = max(names, key=T.parse_semver) if names else None
        if version is not None:
            if version in names:
                raise RegistryError(f"{name} {version} already exists; use a greater version "
                                    f"or --bump (greatest so far: {greatest})")
            if greatest is not None and T.parse_semver(version) <= T.parse_semver(greatest):
                raise RegistryError(
                    f"{name} {version} would go backwards: it must be greater than {greatest}, "
                    "the greatest version ever registered (deregistered included)")
        elif greatest is None:
            version = T.bump_version(None, bump) if bump else "v0.0.1"
        else:
            version = T.bump_version(greatest, bump or "patch")

        facts = read_facts(git, name, [head])[head]
        if facts.identity is None:
            pipeline = _pipeline_file(facts.model_path)
            if not facts.declared and not facts.found_lock and \
                    git.read_blob(head, pipeline) is None:
                raise UnknownModel(f"no model '{name}' in this repository: no artifacts entry "
                                   f"in dvc.yaml and no {pipeline}")
            if not facts.found_lock:
                raise MissingLockFile(f"no dvc.lock for {name} at HEAD; run 'dvc repro "
                                      f"{pipeline}' and commit dvc.lock")
            raise RegistryError(f"cannot register {name}: {facts.error}")
        identity = facts.identity
        pipeline = _join(str(PurePosixPath(facts.lock_path).parent), "dvc.yaml") \
            if "/" in facts.lock_path else "dvc.yaml"

        from dvc_monitor import dvcops

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

        same = [mv for mv in reg._all_versions(name) if mv.id == identity.id] if art else []
        if same:
            warn(f"{name} {version} has the same id ({identity.short}) as "
                 f"{', '.join(m.version for m in same)}: same params, data and code")
        tag = T.format_tag(T.TagName(name, Action.REGISTER, version=version))
        meta = {
            "event": "register",
            "version": version,
            "id": identity.id,
            "model_path": facts.model_path,
            "model_md5": identity.model_md5,
            "lock": facts.lock_path,
            "data": _repo_data(identity, facts.lock_path),
            "metrics": facts.metrics,
        }
        summary = message or T.default_summary(T.TagName(name, Action.REGISTER, version=version))
        _write(reg, name, tag, head, summary, meta)
    return Registry.load(root).resolve(name, version)


def _pipeline_file(model_path: str | None) -> str:
    if not model_path or "/" not in model_path:
        return "dvc.yaml"
    return _join(str(PurePosixPath(model_path).parent), "dvc.yaml")


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


def _missing_from_cache(root: Path, git: GitRepo, head: str, facts: _Facts) -> list[str]:
    """Cached outputs of the lineage whose content is not in the local DVC cache."""
    from dvc_monitor import dvcops

    identity = facts.identity
    base = str(PurePosixPath(facts.lock_path).parent) if "/" in facts.lock_path else ""
    cache = Path(dvcops.md5_cache_dir(root))
    outs = {_join(base, p): md5 for p, md5 in identity.outs.items()}
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
            message: str | None = None, extra_meta: dict | None = None) -> Event:
    """Assign ``stage`` to a version (tag ``NAME#STAGE#N``), like ``gto assign``.

    The version then holds the stage for GTO too: it is the most recent assignment.
    Refused when the version already holds the stage or is deregistered.
    ``extra_meta`` adds keys to the tag's block (e.g. ``{"rollback": {...}}``).
    """
    from dvc_monitor.locking import repo_lock

    T.validate_artifact_name(name)
    T.validate_stage_name(stage)
    root = _root(root)
    with repo_lock(root, "promote"):
        reg = Registry.load(root)
        mv = reg.resolve(name, version_ref)
        if not mv.registered:
            raise RegistryError(f"{name} {mv.version} is not a registered version; register it "
                                "first")
        if not mv.active:
            raise RegistryError(f"{name} {mv.version} is deregistered; it cannot take a stage")
        holder = reg.stage_holder(name, stage)
        if holder is not None and holder.version == mv.version:
            raise RegistryError(f"{name} {mv.version} is already in stage '{stage}'")
        art = reg._artifacts[name]
        counter = T.next_counter(art.tagnames, name)
        tn = T.TagName(name, Action.ASSIGN, stage=stage, counter=counter)
        tag = T.format_tag(tn)
        meta = {"event": "assign", "version": mv.version, "stage": stage, "id": mv.id,
                "previous": holder.version if holder is not None else None}
        summary = message or T.default_summary(tn, version=mv.version)
        _write(reg, name, tag, mv.commit, summary, meta, extra_meta)
    return _find_event(Registry.load(root), name, tag)


def unassign(root: str | Path, name: str, stage: str, version_ref: str | None = None,
             message: str | None = None) -> list[Event]:
    """Take ``stage`` away (tags ``NAME#STAGE!#N``).

    With a version: from that version. Without: from every version that has the stage
    active, so that the stage is empty for GTO too (GTO would otherwise fall back to an
    older version still assigned to it).
    """
    from dvc_monitor.locking import repo_lock

    T.validate_artifact_name(name)
    T.validate_stage_name(stage)
    root = _root(root)
    with repo_lock(root, "unassign"):
        reg = Registry.load(root)
        art = reg._artifact(name)
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
    from dvc_monitor.locking import repo_lock

    T.validate_artifact_name(name)
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
    return _find_event(Registry.load(root), name, tag)


def deprecate(root: str | Path, name: str, message: str | None = None) -> Event:
    """Deprecate a model (tag ``NAME@deprecated#N``); registering again revives it."""
    from dvc_monitor.locking import repo_lock

    T.validate_artifact_name(name)
    root = _root(root)
    with repo_lock(root, "deprecate"):
        reg = Registry.load(root)
        art = reg._artifact(name)
        if art.deprecated:
            raise RegistryError(f"{name} is already deprecated")
        counter = T.next_counter(art.tagnames, name)
        tn = T.TagName(name, Action.DEPRECATE, counter=counter)
        tag = T.format_tag(tn)
        summary = message or T.default_summary(tn)
        _write(reg, name, tag, art.events[-1].commit, summary, {"event": "deprecate"})
    return _find_event(Registry.load(root), name, tag)

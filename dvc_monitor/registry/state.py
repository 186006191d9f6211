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

Shadow verdicts (``NAME@vX.Y.Z@shadow#N``, ``Action.SHADOW``) are events of ours that GTO
skips: they are listed (``history``, ``verdicts``) and move the artifact's clock, but
change no state, take no part in the ``#N`` counters GTO computes, and are no version's
event.

Events are ordered by ``order_key``: the ``time_ns`` of our block when present (its
second always equals the tagger time), else tagger seconds; then the tag's ``#N``
counter; then GTO's action priority; then the tag name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

from dvc_monitor.errors import (
    AmbiguousVersion,
    DvcMonitorError,
    RegistryError,
    UnknownModel,
    UnknownVersion,
    UsageError,
)
from dvc_monitor.names import (
    parse_semver,
    validate_artifact_name,
    validate_stage_name,
    validate_version,
)
from dvc_monitor.model.files import AS_WRITTEN, CANONICAL
from dvc_monitor.registry import tags as T
from dvc_monitor.registry.blocks import block_problems, capped_names, printable, warning_lines
from dvc_monitor.registry.factcache import FactCache
from dvc_monitor.registry.facts import Facts
from dvc_monitor.registry.facts import join_path
from dvc_monitor.registry.identity import (
    ID_PREFIX,
    VersionIdentity,
    short_id,
)
from dvc_monitor.registry.tags import Action
from dvc_monitor.registry.values import MIN_SHORT_ID, SCHEMA, Event, ModelVersion
from dvc_monitor.repo.git import GitRepo, TagRef


@dataclass
class _Raw:
    ref: TagRef
    tag: T.TagName
    meta: dict | None
    order_key: tuple


@dataclass
class VersionState:
    """One version (or a commit with stage tags only) of an artifact, replayed from tags."""

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
class ArtifactState:
    """Every tag of one artifact, replayed: its versions, events, counters and clock."""

    name: str
    versions: list = field(default_factory=list)  # [VersionState] in creation order
    by_name: dict = field(default_factory=dict)
    by_commit: dict = field(default_factory=dict)  # commit -> [registered VersionState]
    discovered: dict = field(default_factory=dict)  # commit -> VersionState
    deprecations: list = field(default_factory=list)
    events: list = field(default_factory=list)  # every event, in order
    tagnames: list = field(default_factory=list)  # every parsed GTO tag of this artifact
    verdicts: list = field(default_factory=list)  # shadow verdict events, in order
    max_tag_time: int = 0
    max_time_ns: int = 0

    @property
    def deprecated(self) -> bool:
        gto = [e for e in self.events if e.action is not Action.SHADOW]
        return bool(gto) and gto[-1].action is Action.DEPRECATE

    def holders(self) -> dict[str, VersionState]:
        """stage -> the version holding it, as ``gto show`` computes it."""
        best: dict[str, tuple[tuple, VersionState]] = {}
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

    def __init__(self, git: GitRepo, artifacts: dict[str, ArtifactState], warnings: list[str]):
        self.git = git
        self.root = git.root
        self.warnings = warnings
        self._artifacts = artifacts
        self._facts: dict[tuple[str, str], Facts] = {}
        self._versions: dict[str, list[ModelVersion]] = {}
        self._by_state: dict[str, dict[int, ModelVersion]] = {}
        self._cache = FactCache(git)
        self._problems: dict[str, list[str]] = {}  # tag -> mismatches of its block
        self.lightweight: list[str] = []  # lightweight GTO-like tags, ignored as GTO does

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, root: str | Path = ".") -> "Registry":
        """Read every tag in one ``for-each-ref``; skip (with a warning) malformed ones."""
        git = GitRepo.discover(root)
        return cls.from_tags(git, git.tags())

    @classmethod
    def from_tags(cls, git: GitRepo, refs: Iterable[TagRef]) -> "Registry":
        """The registry view of ``refs`` (e.g. a remote's tags fetched to a mirror)."""
        warnings: list[str] = []
        lightweight: list[str] = []
        broken: dict[str, list[str]] = {}
        raws = _sorted_raws(refs, warnings, lightweight, broken)
        artifacts: dict[str, ArtifactState] = {}
        for _ in _replay(raws, artifacts, warnings):
            pass
        if lightweight:
            warnings.append(lightweight_warning(lightweight))
        warnings += warning_lines(broken)
        reg = cls(git, artifacts, warnings)
        reg.lightweight = lightweight
        return reg

    def read_back(self, tag: str) -> Event:
        """The event of a tag just written: that one ref is read and replayed (a write then
        costs the same whatever the number of versions)."""
        for ref in self.git.tags(f"refs/tags/{tag}", strip=2):
            raw = _raw_of(ref, self.warnings, self.lightweight, {}) if ref.name == tag else None
            if raw is None:
                continue
            name = raw.tag.artifact
            art = self._artifacts.setdefault(name, ArtifactState(name))
            _apply(art, raw, self.warnings)
            self._versions.pop(name, None)
            self._by_state.pop(name, None)
            if art.events and art.events[-1].tag == tag:
                return art.events[-1]
        raise RegistryError(f"tag {tag} was written but cannot be read back")

    # -- models and versions ------------------------------------------------------------

    def models(self, include_deprecated: bool = True) -> list[str]:
        """Names of models with at least one registry event, sorted."""
        return sorted(n for n, a in self._artifacts.items()
                      if a.events and (include_deprecated or not a.deprecated))

    def is_deprecated(self, name: str) -> bool:
        return self.artifact(name).deprecated

    def versions(self, name: str, include_inactive: bool = False) -> list[ModelVersion]:
        """Versions of ``name``, newest semver first (unregistered commits with stages last).

        Without ``include_inactive``: the versions ``gto show NAME`` lists (deregistered
        ones left out).
        """
        result = self.all_versions(name)
        if not include_inactive:
            result = [v for v in result if v.active]
        return list(result)

    def resolve(self, name: str, ref: str) -> ModelVersion:
        """The version ``ref`` names: ``v1.2.0``, ``1.2.0``, ``latest``, a (short) id.

        Deregistered versions are found too (check ``active``); the returned version has
        ``identity`` filled in.
        """
        self.artifact(name)
        if not isinstance(ref, str) or not ref.strip():
            raise UsageError("give a version: vX.Y.Z, latest, or a version id")
        ref = ref.strip()
        if ref in ("latest", "greatest"):
            latest = self.latest(name)
            if latest is None:
                raise UnknownVersion(f"{name} has no registered versions; register one with "
                                     f"'dvc-monitor register {name}'")
            return self._with_identity(latest)
        state = self.artifact(name).by_name.get(ref if ref.startswith("v") else f"v{ref}")
        if state is not None:  # vX.Y.Z: one version's facts, not every version's
            return self._with_identity(self._mv(name, state))
        allv = self.all_versions(name)
        if ref.startswith(ID_PREFIX) or _is_hex(ref):
            return self._with_identity(self._by_id(name, ref, allv))
        try:
            version = validate_version(ref)
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
            return self.resolve(validate_artifact_name(reference), "latest")
        name, sep, rest = reference[:cut], reference[cut], reference[cut + 1:]
        validate_artifact_name(name)
        if not rest:
            raise UsageError(f"invalid reference {reference!r}: use NAME, NAME@vX.Y.Z, "
                             "NAME@latest, NAME@<id> or NAME#STAGE")
        if sep == "#":
            stage = validate_stage_name(rest)
            holder = self.stage_holder(name, stage)
            if holder is None:
                stages = sorted(self.artifact(name).holders())
                have = f"stages in use: {', '.join(stages)}" if stages else "no stage is assigned"
                raise UnknownVersion(f"no version of {name} is in stage '{stage}'; {have}")
            return holder
        return self.resolve(name, rest)

    def latest(self, name: str) -> ModelVersion | None:
        """The greatest active registered version (``gto show``'s "latest")."""
        states = [v for v in self.artifact(name).versions
                  if not v.discovered and v.registered and v.active]
        if not states:
            return None
        return self._mv(name, max(states, key=lambda v: parse_semver(v.version)))

    def stage_holder(self, name: str, stage: str) -> ModelVersion | None:
        """The version in ``stage`` now: the same answer as ``gto show NAME#STAGE``."""
        art = self.artifact(name)
        holder = art.holders().get(stage)
        if holder is None:
            return None
        return self._with_identity(self._mv(name, holder))

    def stages(self, name: str) -> dict[str, ModelVersion]:
        """stage -> holder, for every stage in use."""
        return {s: self._mv(name, v) for s, v in self.artifact(name).holders().items()}

    def previous_in_stage(self, name: str, stage: str) -> ModelVersion | None:
        """The version that held ``stage`` before its current holder.

        Walks the stage's assignments from newest to oldest, skipping the current
        holder's version and versions deregistered since (they cannot take a stage).
        """
        art = self.artifact(name)
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
            return list(self.artifact(name).events)
        events = [e for a in self._artifacts.values() for e in a.events]
        return sorted(events, key=lambda e: e.order_key)

    def events_of(self, mv: ModelVersion) -> list[Event]:
        return list(mv.events)

    def identity(self, mv: ModelVersion) -> VersionIdentity | None:
        return self._with_identity(mv).identity

    def facts_at(self, name: str, commit: str) -> Facts:
        """Identity and metrics of ``name`` at any commit (one batched read)."""
        return self._read_facts(name, [commit])[commit]

    # -- internals ----------------------------------------------------------------------

    def artifact_or_none(self, name: str) -> ArtifactState | None:
        """The replayed tags of ``name``, or None when it has none (for the writes)."""
        return self._artifacts.get(name)

    def note_write(self, name: str, tag: str, when: int, t_ns: int) -> None:
        """Keep the in-memory clock and counters moving for several writes under one lock."""
        art = self._artifacts.get(name)
        if art is None:
            art = self._artifacts[name] = ArtifactState(name)
        art.max_tag_time = when
        art.max_time_ns = t_ns
        parsed = T.parse_tag(tag)
        if parsed is not None:
            art.tagnames.append(parsed)

    def verdicts(self, name: str, version: str | None = None) -> list[Event]:
        """The shadow verdicts on ``name`` (of ``version``), oldest first."""
        art = self._artifacts.get(name)
        return [e for e in (art.verdicts if art else [])
                if version is None or e.version == version]

    def artifact(self, name: str) -> ArtifactState:
        art = self._artifacts.get(name)
        if art is None or not art.events:
            if ":" not in name:
                validate_artifact_name(name)
            known = self.models()
            have = f"known models: {', '.join(known)}" if known else \
                "no model is registered in this repository yet"
            raise UnknownModel(f"unknown model '{name}'; {have}")
        return art

    def all_versions(self, name: str) -> list[ModelVersion]:
        cached = self._versions.get(name)
        if cached is not None:
            return cached
        art = self.artifact(name)
        # every version's facts, blocks or not: a block is checked against its commit
        self._read_facts(name, [v.commit for v in art.versions])
        holders = art.holders()
        held: dict[int, list[str]] = {}
        for stage, v in holders.items():
            held.setdefault(id(v), []).append(stage)
        built = [(v, self._build(name, v, tuple(held.get(id(v), ())))) for v in art.versions]
        self._by_state.setdefault(name, {}).update((id(v), mv) for v, mv in built)
        semver = [mv for v, mv in built if not v.discovered]
        semver.sort(key=lambda m: parse_semver(m.version), reverse=True)
        others = sorted((mv for v, mv in built if v.discovered), key=lambda m: m.version,
                        reverse=True)
        self._versions[name] = semver + others
        return self._versions[name]

    def _mv(self, name: str, state: VersionState) -> ModelVersion:
        """The version of one state: from the listing if built, else built alone (the
        writes and single lookups then read one commit's facts, whatever the count)."""
        built = self._by_state.setdefault(name, {})
        if id(state) not in built:
            self._read_facts(name, [state.commit])
            held = tuple(s for s, v in self.artifact(name).holders().items() if v is state)
            built[id(state)] = self._build(name, state, held)
        return built[id(state)]

    def _build(self, name: str, v: VersionState, stages: tuple) -> ModelVersion:
        regs = [e for e in v.direct if e.action is Action.REGISTER]
        authoring = regs[0] if regs else (v.all_events[0] if v.all_events else v.direct[0])
        # what the commit holds (facts are read before any build); a block is only checked
        facts = self._facts.get((name, v.commit))
        identity = facts.identity if facts else None
        vid = identity.id if identity else None
        metrics = facts.metrics if facts else {}
        model_md5 = identity.model_md5 if identity else None
        model_path = facts.model_path if facts else None
        lock_path = facts.lock_path if facts else None
        data = data_folders(identity, lock_path)
        warning = facts.error if facts else None
        regs_meta = [e for e in regs if e.meta is not None]
        problems = self._event_problems(name, regs_meta[0]) if regs_meta else []
        if problems:
            warning = "the tag's block does not match the commit: " + "; ".join(problems)
        model_digest = next((e.meta["digest"] for e in regs_meta
                             if isinstance(e.meta.get("digest"), str)), None)
        model_form = next((e.meta["model_form"] for e in regs_meta
                           if e.meta.get("model_form") in (CANONICAL, AS_WRITTEN)), None)
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
            model_digest=model_digest,
            model_form=model_form,
        )

    def check_blocks(self, events: Iterable[Event] | None = None) -> list[str]:
        """Check the blocks of ``events`` (default: every event) against their commits.

        Returns one warning line per mismatched tag (capped). The facts come through the
        fact cache, read in one batch per model, and only for tags that carry a block.
        """
        if events is None:
            events = [e for a in self._artifacts.values() for e in a.events]
        with_block = [e for e in events if e.meta is not None]
        by_model: dict[str, list[str]] = {}
        for ev in with_block:
            by_model.setdefault(ev.artifact, []).append(ev.commit)
        for name, commits in by_model.items():
            self._read_facts(name, commits)
        problems = {}
        for ev in with_block:
            found = self._event_problems(ev.artifact, ev)
            if found:
                problems[ev.tag] = found
        return warning_lines(problems)

    def _event_problems(self, name: str, ev: Event) -> list[str]:
        if ev.meta is None:
            return []
        if ev.tag not in self._problems:
            facts = None
            if "id" in ev.meta or "metrics" in ev.meta or "model_md5" in ev.meta:
                facts = self._read_facts(name, [ev.commit])[ev.commit]
            self._problems[ev.tag] = block_problems(ev, facts)
        return self._problems[ev.tag]

    def versions_with_id(self, name: str, version_id: str) -> list[str]:
        """Registered versions of ``name`` whose (computed) id is ``version_id``."""
        art = self.artifact_or_none(name)
        states = [v for v in art.versions if not v.discovered] if art else []
        facts = self._read_facts(name, [v.commit for v in states])
        return [v.version for v in states if facts[v.commit].identity is not None
                and facts[v.commit].identity.id == version_id]

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
            updates["data"] = data_folders(facts.identity, facts.lock_path)
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
        if len(matches) > 1:  # one id registered as several versions: never pick silently
            listed = ", ".join(v.version for v in matches)
            raise AmbiguousVersion(f"'{prefix}' is the id of several versions of {name} ({listed}: "
                                   "same params, data and code); name one by its version")
        return matches[0]

    def _read_facts(self, name: str, commits: Iterable[str]) -> dict[str, Facts]:
        """Identity and metrics of ``name`` at many commits, reading git in one batch."""
        wanted = list(dict.fromkeys(commits))
        todo = [c for c in wanted if (name, c) not in self._facts]
        if todo:
            for c, f in self._cache.facts(name, todo).items():
                self._facts[(name, c)] = f
        return {c: self._facts[(name, c)] for c in wanted}


# -- replaying tags into state ----------------------------------------------------------


def holders_before(refs: Iterable[TagRef], tags: Iterable[str]) -> dict[str, dict[str, str]]:
    """For each of ``tags`` (names of ``refs``): stage -> the version holding it just
    before that event, replaying ``refs`` in event order as the registry does (what a
    stage event finds when it lands on an origin that gets ``refs``)."""
    wanted = set(tags)
    warnings: list[str] = []
    out: dict[str, dict[str, str]] = {}
    for art, raw in _replay(_sorted_raws(refs, warnings, [], {}), {}, warnings):
        if raw.ref.name in wanted:
            out[raw.ref.name] = {stage: v.version for stage, v in art.holders().items()}
    return out


def _sorted_raws(refs: Iterable[TagRef], warnings: list[str], lightweight: list[str],
                 broken: dict[str, list[str]]) -> list[_Raw]:
    raws = [raw for ref in refs if (raw := _raw_of(ref, warnings, lightweight, broken))]
    return sorted(raws, key=lambda r: r.order_key)


def _replay(raws: list[_Raw], artifacts: dict[str, ArtifactState],
            warnings: list[str]) -> Iterator[tuple[ArtifactState, _Raw]]:
    """Apply ``raws`` (in order) to ``artifacts``; yields each before it is applied."""
    for raw in raws:
        art = artifacts.get(raw.tag.artifact)
        if art is None:
            art = artifacts[raw.tag.artifact] = ArtifactState(raw.tag.artifact)
        yield art, raw
        _apply(art, raw, warnings)


def _apply(art: ArtifactState, raw: _Raw, warnings: list[str]) -> None:
    ref, tag = raw.ref, raw.tag
    if tag.action is not Action.SHADOW:
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

    if tag.action is Action.SHADOW:
        ev = event(tag.version)
        art.verdicts.append(ev)
        art.events.append(ev)
        return
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
            state = VersionState(tag.version, ref.commit, discovered=False)
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
            state = VersionState(ref.commit, ref.commit, discovered=True)
            art.discovered[ref.commit] = state
            art.versions.append(state)
    ev = event(state.version)
    state.stage_events.setdefault(tag.stage, []).append(ev)
    state.all_events.append(ev)
    art.events.append(ev)


def _raw_of(ref: TagRef, warnings: list[str], lightweight: list[str],
            broken: dict[str, list[str]]) -> _Raw | None:
    """A GTO event tag with its (sound) block and order key; None for tags that are not."""
    tag = T.parse_tag(ref.name) or T.parse_verdict_tag(ref.name)
    if tag is None:
        if T.is_event_like(ref.name):
            warnings.append(f"skipped tag '{ref.name}': not a valid GTO event tag")
        return None
    if not ref.annotated:  # GTO ignores lightweight tags: so do we
        lightweight.append(ref.name)
        return None
    meta = T.parse_message(ref.message)
    if meta is None and T.has_block(ref.message):
        broken[ref.name] = ["its dvc-monitor block is not a valid JSON object (ignored)"]
    elif meta is not None and (meta.get("schema") != SCHEMA
                               or meta.get("event") != tag.action.value):
        broken[ref.name] = [f"its block is for schema {printable(meta.get('schema'))}, "
                            f"event {printable(meta.get('event'))} (ignored)"]
        meta = None
    t_ns = ref.time * 1_000_000_000
    if meta is not None:
        ns = meta.get("time_ns")
        if isinstance(ns, int) and not isinstance(ns, bool) and ns // 1_000_000_000 == ref.time:
            t_ns = ns
    counter = -1 if tag.counter is None else tag.counter
    return _Raw(ref, tag, meta, (t_ns, counter, tag.action.priority, ref.name))


def lightweight_warning(names: list[str]) -> str:
    """The one warning naming the lightweight tags that are ignored (as GTO ignores them)."""
    return (f"ignored {len(names)} lightweight tag(s), as GTO does: {capped_names(names)}; "
            "registry tags must be annotated (re-create them with 'git tag -a' or gto)")


def _state_of(art: ArtifactState, ev: Event) -> VersionState | None:
    for v in art.versions:
        if v.version == ev.version and v.commit == ev.commit:
            return v
    return None


def _is_semver(text: str) -> bool:
    try:
        validate_version(text)
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


def data_folders(identity: VersionIdentity | None, lock_path: str | None) -> dict:
    """The lineage's DVC-tracked folders (``.dir`` deps), repo path -> md5 (a register
    block's ``data``)."""
    if identity is None:
        return {}
    base = lock_path.rpartition("/")[0] if lock_path else ""  # PurePosixPath(..).parent
    return {join_path(base, p): m for p, m in identity.deps.items() if m and m.endswith(".dir")}



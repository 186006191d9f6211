"""Publishing the registry to a shared git origin and DVC remote: push, sync, renumbering.

``push`` first makes sure every DVC object the published versions need is on the DVC
remote (objects in the local cache are uploaded; an object that is nowhere is refused),
and only then pushes the registry tags in one ``git push --atomic``. Nothing is ever
forced: a tag name that someone else took on the origin in the meantime (two people
promoting at once both create ``NAME#STAGE#N``) is a *race*. The origin's tags are then
fetched into a mirror namespace (``refs/dvc-monitor/remotes/REMOTE/tags/*``, never over
local tags), the local unpublished event is re-created after theirs with GTO's counter
and a strictly later tagger time, and the push is retried (a bounded number of times).
Both events are kept; when the stage's holder on the origin changed in the meantime the
result says so.

``sync`` does the same renumbering without pushing, brings the origin's registry tags
into ``refs/tags`` (only names that are free locally) and reports what differs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, ContextManager, Iterable

from dvc_monitor.names import validate_artifact_name
from dvc_monitor.registry import tags as T
from dvc_monitor.errors import (
    DvcMonitorError,
    ExternalCommandError,
    MissingObjects,
    UsageError,
)
from dvc_monitor.repo.git import GitRepo, Identity, TagRef
from dvc_monitor.registry.tags import Action

MIRROR = "refs/dvc-monitor/remotes"
MAX_RETRIES = 3
_COUNTED = frozenset({Action.ASSIGN, Action.UNASSIGN, Action.DEPRECATE})


def mirror_namespace(remote: str) -> str:
    """Where the origin's tags are kept as last seen (``refs/dvc-monitor/remotes/R/tags``)."""
    return f"{MIRROR}/{remote}/tags"


class PublishError(DvcMonitorError):
    """A push was refused or could not be completed; nothing was half-published."""


# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Renumbered:
    """A local unpublished event re-created under a new name after the origin's."""

    old: str  # the local tag name someone else took on the origin
    new: str  # the name it has now
    theirs_by: str  # who made the origin's tag of that name
    stage: str | None
    version: str | None
    expected_holder: str | None  # who held the stage when the local event was made
    origin_holder: str | None  # who holds it on the origin (before the local event lands)

    @property
    def holder_changed(self) -> bool:
        return self.stage is not None and self.expected_holder != self.origin_holder

    @property
    def message(self) -> str:
        text = f"{self.old} was taken on the origin by {self.theirs_by}; yours is now {self.new}"
        if self.holder_changed:
            text += (f". Note: on the origin, stage '{self.stage}' moved from "
                     f"{self.expected_holder or 'nobody'} to {self.origin_holder or 'nobody'} "
                     f"meanwhile; your event lands after it, so {self.version} is the result")
        return text

    def to_json(self) -> dict:
        return {"old": self.old, "new": self.new, "theirs_by": self.theirs_by,
                "stage": self.stage, "version": self.version,
                "expected_holder": self.expected_holder, "origin_holder": self.origin_holder,
                "holder_changed": self.holder_changed, "message": self.message}


@dataclass
class PushResult:
    git_remote: str
    dvc_remote: str | None = None
    pushed: list[str] = field(default_factory=list)  # tags now published
    already: int = 0  # tags of these models the origin had already
    objects_needed: int = 0  # distinct objects the covered versions need
    objects_pushed: int = 0
    renumbered: list[Renumbered] = field(default_factory=list)
    allowed_missing: list[str] = field(default_factory=list)  # "NAME VERSION: path"
    attempts: int = 0
    branch: str | None = None  # the branch pushed (rollback --push)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"git_remote": self.git_remote, "dvc_remote": self.dvc_remote,
                "pushed": self.pushed, "already": self.already,
                "objects_needed": self.objects_needed, "objects_pushed": self.objects_pushed,
                "renumbered": [r.to_json() for r in self.renumbered],
                "allowed_missing": self.allowed_missing, "attempts": self.attempts,
                "branch": self.branch, "warnings": self.warnings}


@dataclass(frozen=True)
class StageDifference:
    name: str
    stage: str
    local: str | None  # holder in the local view
    origin: str | None  # holder on the origin

    def to_json(self) -> dict:
        return {"name": self.name, "stage": self.stage, "local": self.local,
                "origin": self.origin}


@dataclass
class SyncResult:
    git_remote: str
    fetched: list[str] = field(default_factory=list)  # origin tags now in refs/tags
    unpushed: list[str] = field(default_factory=list)  # local registry tags the origin lacks
    renumbered: list[Renumbered] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # collisions that cannot be renumbered
    differences: list[StageDifference] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.unpushed and not self.differences and not self.conflicts

    def to_json(self) -> dict:
        return {"git_remote": self.git_remote, "fetched": self.fetched,
                "unpushed": self.unpushed,
                "renumbered": [r.to_json() for r in self.renumbered],
                "conflicts": self.conflicts,
                "differences": [d.to_json() for d in self.differences],
                "identical": self.identical}


# -- helpers ----------------------------------------------------------------------------


def resolve_git_remote(git: GitRepo, name: str | None) -> str:
    """The git remote to use: ``name``, else ``origin``, else the only one."""
    if name is not None and (not name or name.startswith("-")):
        raise UsageError(f"invalid git remote {name[:40]!r}: give a remote name such as "
                         "origin ('git remote -v' lists them)")
    remotes = git.remotes()
    if not remotes:
        raise UsageError("this repository has no git remote; add the shared origin with "
                         "'git remote add origin URL', then push again")
    if name is None:
        if "origin" in remotes:
            return "origin"
        if len(remotes) == 1:
            return remotes[0]
        raise UsageError(f"several git remotes ({', '.join(remotes)}) and none is 'origin'; "
                         "choose one with --git-remote NAME")
    if name not in remotes:
        shown = name[:60].encode("unicode_escape").decode()
        raise UsageError(f"unknown git remote '{shown}' (remotes: {', '.join(remotes)}); "
                         "add it with 'git remote add NAME URL'")
    return name


def _noop_progress(message: str) -> ContextManager:
    return contextlib.nullcontext()


def _registry_refs(refs: Iterable[TagRef]) -> dict[str, tuple[TagRef, T.TagName]]:
    out = {}
    for ref in refs:
        tn = T.parse_tag(ref.name)
        if tn is not None:
            out[ref.name] = (ref, tn)
    return out


class _Views:
    """The local tags and the origin's (as last fetched to the mirror), with their oids."""

    def __init__(self, git: GitRepo, remote: str):
        self.git = git
        self.remote = remote
        self.ns = mirror_namespace(remote)
        self.reload()

    def reload(self) -> None:
        oids = self.git.ref_oids("refs/tags", self.ns)
        self.local_oid = {r[len("refs/tags/"):]: o for r, o in oids.items()
                          if r.startswith("refs/tags/")}
        self.origin_oid = {r[len(self.ns) + 1:]: o for r, o in oids.items()
                           if r.startswith(self.ns + "/")}
        self.local = _registry_refs(self.git.tags())
        self.origin = _registry_refs(self.git.tags(self.ns))

    def fetch(self) -> None:
        self.git.fetch_tags_into(self.remote, self.ns)
        self.reload()

    def unpublished(self, names: set[str] | None = None) -> list[str]:
        """Local registry tags (of ``names``) that the origin lacks or has differently."""
        return sorted(t for t, (_, tn) in self.local.items()
                      if (names is None or tn.artifact in names)
                      and self.origin_oid.get(t) != self.local_oid.get(t))

    def collisions(self, candidates: Iterable[str]) -> list[str]:
        return [t for t in candidates
                if t in self.origin_oid and self.origin_oid[t] != self.local_oid.get(t)]

    def origin_registry(self):
        from dvc_monitor.registry.state import Registry

        return Registry.from_tags(self.git, [ref for ref, _ in self.origin.values()])

    def merged_registry(self):
        """Origin's tags plus the local ones whose names the origin does not use."""
        from dvc_monitor.registry.state import Registry

        refs = [ref for ref, _ in self.origin.values()]
        refs += [ref for name, (ref, _) in self.local.items() if name not in self.origin]
        return Registry.from_tags(self.git, refs)


def _holders_for(views: _Views, origin_reg, tag: str):
    """(block, version, holder expected when the local event was made, origin's holder)."""
    ref, tn = views.local[tag]
    meta = T.parse_message(ref.message) if ref.annotated else None
    version = meta.get("version") if isinstance(meta, dict) else None
    expected = meta.get("previous") if isinstance(meta, dict) else None
    origin_holder = None
    if tn.stage is not None:
        with contextlib.suppress(DvcMonitorError):
            holder = origin_reg.stage_holder(tn.artifact, tn.stage)
            origin_holder = holder.version if holder is not None else None
        if tn.action is Action.UNASSIGN:
            expected = version  # it was in the stage when it was taken away
    return meta, version, expected, origin_holder


def _holder_changes(views: _Views, candidates: list[str]) -> list[str]:
    """Warnings for stage events (not colliding) made while the origin's holder changed.

    The holder an event finds on the origin is the one after the origin's events and the
    pushed events before it: a first push of a whole stage history to an empty origin
    finds every event's ``previous`` in place, and warns of nothing.
    """
    from dvc_monitor.registry.state import holders_before

    landing = [t for t in candidates if t in views.local and t not in views.origin_oid]
    assigns = [t for t in landing if views.local[t][1].action is Action.ASSIGN]
    refs = [ref for ref, _ in views.origin.values()] + [views.local[t][0] for t in landing]
    before = holders_before(refs, assigns)
    out = []
    for tag in assigns:
        ref, tn = views.local[tag]
        meta = T.parse_message(ref.message) if ref.annotated else None
        if not isinstance(meta, dict) or "previous" not in meta:
            continue
        expected, version = meta["previous"], meta.get("version")
        holder = before.get(tag, {}).get(tn.stage)
        if expected != holder:
            out.append(f"on the origin, stage '{tn.stage}' of {tn.artifact} moved from "
                       f"{expected or 'nobody'} to {holder or 'nobody'} since {tag} was made; "
                       f"it lands after that, so {version} is the result")
    return out


def _renumber(views: _Views, tag: str) -> Renumbered:
    """Re-create local tag ``tag`` (taken on the origin) after every event of its model."""
    from dvc_monitor.registry.writes import next_time

    ref, tn = views.local[tag]
    theirs, _ = views.origin[tag]
    if tn.action not in _COUNTED:
        raise PublishError(
            f"{tag} exists on the origin already, made by {theirs.tagger_name} at commit "
            f"{theirs.commit[:7]} (yours is at {ref.commit[:7]}); a version number cannot be "
            f"renumbered: delete yours with 'git tag -d {tag}', run 'dvc-monitor sync' and "
            "register again (the next version number is free)")
    merged = views.merged_registry()
    art = merged.artifact_or_none(tn.artifact)
    names = [t for _, t in views.local.values()] + [t for _, t in views.origin.values()]
    counter = T.next_counter(names, tn.artifact)
    taken = set(views.local_oid) | set(views.origin_oid)
    new = T.format_tag(replace(tn, counter=counter))
    while new in taken:
        counter += 1
        new = T.format_tag(replace(tn, counter=counter))
    when, t_ns = next_time(art)

    meta, version, expected, origin_holder = _holders_for(views, views.origin_registry(), tag)
    if meta is not None:
        meta = {**meta, "time_ns": t_ns, "renumbered_from": tag}
        if tn.action is Action.ASSIGN:
            meta["previous"] = origin_holder
        message = T.format_message(T.message_summary(ref.message), meta)
    else:
        message = ref.message or T.default_summary(tn, version=version)
    views.git.create_annotated_tag(new, ref.commit, message, when=when,
                                   tagger=Identity(ref.tagger_name, ref.tagger_email))
    views.git.delete_tag(tag)  # the new one exists: the event is kept under its new name
    views.git.create_ref(f"refs/tags/{tag}", views.origin_oid[tag])  # theirs, locally
    views.reload()
    return Renumbered(tag, new, f"{theirs.tagger_name} <{theirs.tagger_email}>", tn.stage,
                      version, expected, origin_holder)


def _resolve_collisions(views: _Views, candidates: list[str]) -> tuple[list[str], list[Renumbered]]:
    """Renumber colliding counter tags; returns (candidates after renaming, renumbered)."""
    renumbered = []
    out = []
    for tag in candidates:
        if tag in views.collisions([tag]):
            ref, tn = views.local[tag]
            theirs, _ = views.origin[tag]
            if tn.action is Action.DEREGISTER and theirs.commit == ref.commit:
                continue  # the same deregistration, made twice: the origin has it
            r = _renumber(views, tag)
            renumbered.append(r)
            out.append(r.new)
        else:
            out.append(tag)
    return out, renumbered


# -- objects ----------------------------------------------------------------------------


def _versions_of(reg, tag_names: Iterable[str]) -> list:
    """The registered versions that ``tag_names`` record events of (deprecations: none)."""
    wanted: dict[tuple[str, str], None] = {}
    events = {e.tag: e for e in reg.history()}
    for t in tag_names:
        ev = events.get(t)
        if ev is None or ev.version is None or ev.action is Action.DEREGISTER:
            continue
        wanted[(ev.artifact, ev.version)] = None
    result = []
    for name, version in wanted:
        for mv in reg.versions(name, include_inactive=True):
            if mv.version == version and mv.registered:
                result.append(mv)
    return result


def _publish_objects(root: Path, dvc, versions: list, publishing: set, allow_missing: bool,
                     result: PushResult, progress) -> None:
    """Upload every object the versions need that is in the local cache but not remote."""
    from dvc_monitor.registry.restorable import scan

    with progress(f"checking {len(versions)} version(s) on the DVC remote {result.dvc_remote}"):
        checked = scan(root, versions, dvc)
    for v in checked.versions:
        if v.error is not None and (v.name, v.version) in publishing:
            raise MissingObjects(f"{v.name} {v.version}: {v.error}; nothing was pushed")
        gone = v.nowhere
        if not gone:
            continue
        shown = ", ".join(f"{o.path} ({o.oid[:10]})" for o in gone[:3]) + (
            f" and {len(gone) - 3} more" if len(gone) > 3 else "")
        if (v.name, v.version) not in publishing:
            result.warnings.append(f"{v.name} {v.version} (already published) needs objects "
                                   f"that are nowhere: {shown}")
            continue
        if not allow_missing:
            hint = (" (they can be rebuilt: --allow-missing publishes the tags anyway)"
                    if v.can_rebuild else "")
            raise MissingObjects(
                f"{v.name} {v.version} needs objects that are in neither the local cache nor "
                f"the DVC remote: {shown}{hint}; run 'dvc repro' (or 'dvc pull' where they "
                "exist), then push again (nothing was pushed)")
        if not v.can_rebuild:
            raise MissingObjects(
                f"{v.name} {v.version} needs objects that are nowhere ({shown}) and cannot be "
                f"rebuilt ({v.why_not or 'an input is missing'}); --allow-missing is only for "
                "rebuildable versions (nothing was pushed)")
        result.allowed_missing += [f"{v.name} {v.version}: {o.path}" for o in gone]
    all_oids = {o.oid for v in checked.versions for o in v.objects}
    upload = sorted({o.oid for v in checked.versions for o in v.objects
                     if o.local and not o.remote})
    result.objects_needed = len(all_oids)
    if upload:
        with progress(f"pushing {len(upload)} object(s) to the DVC remote {result.dvc_remote}"):
            n, failed = dvc.push(upload)
        if failed:
            raise PublishError(
                f"{len(failed)} object(s) could not be uploaded to the DVC remote "
                f"{result.dvc_remote} (first: {failed[0]}); check the remote and push again "
                "(no tag was pushed)")
        result.objects_pushed = n


# -- push -------------------------------------------------------------------------------


def push(root: str | Path = ".", names: list[str] | None = None, *,
         git_remote: str | None = None, dvc_remote: str | None = None,
         tags: list[str] | None = None, allow_missing: bool = False,
         branch: bool = False, retries: int = MAX_RETRIES,
         progress: Callable[[str], ContextManager] | None = None) -> PushResult:
    """Publish registry tags (of ``names``, or of every model) with their objects.

    ``tags`` limits the push to those events (``--push`` on a write) and the registration
    tags of their versions. ``branch`` also pushes the current branch (fast-forward only;
    a warning otherwise).
    """
    from dvc_monitor.repo import dvc as dvcops
    from dvc_monitor.repo.locking import repo_lock
    from dvc_monitor.registry.state import Registry

    progress = progress or _noop_progress
    for n in names or []:
        validate_artifact_name(n)
    git = GitRepo.discover(root)
    remote = resolve_git_remote(git, git_remote)
    result = PushResult(git_remote=remote)
    with repo_lock(git.root, "push"):
        reg = Registry.load(git.root)
        selected = set(names) if names else None
        for n in names or []:
            reg.versions(n)  # an unknown model: one-line error
        views = _Views(git, remote)
        with progress(f"reading the registry tags of git remote '{remote}'"):
            views.fetch()
        if tags is not None:
            candidates = _with_registrations(views, reg, tags)
        else:
            candidates = views.unpublished(selected)
        covered = {tn.artifact for t, (_, tn) in views.local.items()}
        result.already = sum(1 for t, (_, tn) in views.local.items()
                             if (selected is None or tn.artifact in selected)
                             and views.origin_oid.get(t) == views.local_oid.get(t))

        # 1. objects, before any tag (a tag on the origin must find its objects)
        if tags is not None:
            versions = _versions_of(reg, candidates)
        else:
            versions = [mv for n in sorted(selected or covered) if n in reg.models()
                        for mv in reg.versions(n) if mv.registered]
        publishing = {(mv.name, mv.version) for mv in _versions_of(reg, candidates)}
        if versions:
            with dvcops.session(git.root, dvc_remote) as dvc:
                named = dvc.remote()
                if named is None:
                    raise PublishError(
                        "no DVC remote is configured, so the models and data cannot be "
                        "published; add one with 'dvc remote add -d storage s3://bucket/path' "
                        "(or give --dvc-remote NAME), then push again")
                result.dvc_remote = f"{named[0]} ({named[1]})"
                _publish_objects(git.root, dvc, versions, publishing, allow_missing, result,
                                 progress)

        # 2. the tags, atomically; a name taken meanwhile: renumber and retry
        result.warnings += _holder_changes(views, candidates)
        pending = candidates
        for attempt in range(1, retries + 2):
            result.attempts = attempt
            pending, renumbered = _resolve_collisions(views, pending)
            result.renumbered += renumbered
            if not pending:
                break
            with progress(f"pushing {len(pending)} tag(s) to git remote '{remote}'"):
                outcome = git.push_refs(remote, [f"refs/tags/{t}:refs/tags/{t}" for t in pending])
            if outcome.ok:
                result.pushed += pending
                for t in pending:
                    git.create_ref(f"{views.ns}/{t}", views.local_oid[t])
                break
            # a name taken meanwhile shows as "already exists" (seen before sending) or as a
            # failed ref update (both sent at once): either way the origin has it now
            views.fetch()
            if not views.collisions(pending):
                reasons = {r: w for r, w in outcome.rejected.items() if "atomic" not in w} \
                    or outcome.rejected
                ref, why = next(iter(reasons.items()))
                raise PublishError(
                    f"git remote '{remote}' refused {ref.rpartition('/')[2] or ref}: {why}; "
                    "nothing was pushed (the push is atomic): check the origin's tag rules "
                    "or ask its admin")
            if attempt > retries:
                raise PublishError(
                    f"the tags were taken on git remote '{remote}' {attempt} times in a row "
                    "(others are promoting now); run 'dvc-monitor push' again")
        if branch:
            _push_branch(git, remote, result)
    return result


def _with_registrations(views: _Views, reg, tags: list[str]) -> list[str]:
    """``tags`` plus the unpublished registration tags of the versions they concern."""
    unpublished = set(views.unpublished())
    out = dict.fromkeys(t for t in tags if t in unpublished)
    events = {e.tag: e for e in reg.history()}
    for t in tags:
        ev = events.get(t)
        if ev is None or ev.version is None:
            continue
        try:  # an unregistered commit with stages has its hexsha as version
            reg_tag = T.format_tag(T.TagName(ev.artifact, Action.REGISTER, version=ev.version))
        except DvcMonitorError:
            continue
        if reg_tag in unpublished:
            out[reg_tag] = None
    return sorted(out)


def _push_branch(git: GitRepo, remote: str, result: PushResult) -> None:
    name = git.branch()
    if name is None:
        result.warnings.append("HEAD is detached: no branch was pushed")
        return
    outcome = git.push_refs(remote, [f"refs/heads/{name}:refs/heads/{name}"], atomic=False)
    if outcome.ok:
        result.branch = name
    else:
        why = next(iter(outcome.rejected.values()))
        result.warnings.append(
            f"branch {name} was not pushed ({why}: not a fast-forward of {remote}/{name}); "
            f"run 'git pull --rebase {remote} {name}' and 'git push {remote} {name}'")


# -- sync -------------------------------------------------------------------------------


def sync(root: str | Path = ".", *, git_remote: str | None = None,
         progress: Callable[[str], ContextManager] | None = None) -> SyncResult:
    """Fetch the origin's registry tags without clobbering and renumber local collisions.

    Origin tags whose names are free locally are added to ``refs/tags``; a local
    unpublished event whose name the origin took is renumbered (as ``push`` does).
    """
    from dvc_monitor.repo.locking import repo_lock

    progress = progress or _noop_progress
    git = GitRepo.discover(root)
    remote = resolve_git_remote(git, git_remote)
    result = SyncResult(git_remote=remote)
    with repo_lock(git.root, "sync"):
        views = _Views(git, remote)
        with progress(f"fetching the registry tags of git remote '{remote}'"):
            views.fetch()
        for tag in views.collisions(sorted(views.local)):
            try:
                _, renumbered = _resolve_collisions(views, [tag])
                result.renumbered += renumbered
            except PublishError as exc:
                result.conflicts.append(str(exc))
        for tag in sorted(views.origin):
            if tag not in views.local_oid and git.create_ref(f"refs/tags/{tag}",
                                                             views.origin_oid[tag]):
                result.fetched.append(tag)
        views.reload()
        result.unpushed = views.unpublished()
        result.differences = _stage_differences(views)
    return result


def _stage_differences(views: _Views) -> list[StageDifference]:
    from dvc_monitor.registry.state import Registry

    local = Registry.from_tags(views.git, [ref for ref, _ in views.local.values()])
    origin = views.origin_registry()
    out = []
    for name in sorted(set(local.models()) | set(origin.models())):
        mine = _holders(local, name)
        theirs = _holders(origin, name)
        for stage in sorted(set(mine) | set(theirs)):
            if mine.get(stage) != theirs.get(stage):
                out.append(StageDifference(name, stage, mine.get(stage), theirs.get(stage)))
    return out


def _holders(reg, name: str) -> dict[str, str]:
    try:
        return {s: v.version for s, v in reg.stages(name).items()}
    except DvcMonitorError:
        return {}


# -- offline warning for versions / show ------------------------------------------------


def unpublished_stage_tags(root: str | Path) -> tuple[str, list[str]] | None:
    """(remote, local stage tags not on it as of the last push/sync), or None.

    One ``for-each-ref``, no network: compares against the mirror that ``push`` and
    ``sync`` keep. None when there is no mirror yet (never pushed or synced here).
    """
    try:
        oids = GitRepo(root).ref_oids("refs/tags", MIRROR)
    except ExternalCommandError:
        return None
    return unpublished_in(oids)


def unpublished_in(oids: dict[str, str]) -> tuple[str, list[str]] | None:
    """``unpublished_stage_tags`` over refs already read (``ref_oids("refs/tags", MIRROR)``)."""
    mirrors: dict[str, dict[str, str]] = {}
    for ref, oid in oids.items():
        if ref.startswith(MIRROR + "/"):
            rest = ref[len(MIRROR) + 1:]
            remote, sep, tag = rest.partition("/tags/")
            if sep:
                mirrors.setdefault(remote, {})[tag] = oid
    if not mirrors:
        return None
    remote = "origin" if "origin" in mirrors else sorted(mirrors)[0]
    seen = mirrors[remote]
    missing = []
    for ref, oid in oids.items():
        if not ref.startswith("refs/tags/") or "#" not in ref:  # only stage tags have '#'
            continue
        tag = ref[len("refs/tags/"):]
        if seen.get(tag) == oid:
            continue
        tn = T.parse_tag(tag)
        if tn is not None and tn.stage is not None:
            missing.append(tag)
    return remote, sorted(missing)


def unpublished_warning(found: tuple[str, list[str]] | None) -> str | None:
    """The warning line about unpublished stage tags, or None when there are none."""
    if not found or not found[1]:
        return None
    remote, tags = found
    shown = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
    return (f"{len(tags)} stage tag(s) are not on {remote} (as of the last push or sync): "
            f"{shown}; publish them with 'dvc-monitor push'")

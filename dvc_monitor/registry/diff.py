"""What changed in a model between two revisions, or a revision and the workspace.

``diff_revisions(root, name, base_rev, head_rev_or_None) -> ModelDiff`` compares what
defines the model (params, data partitions, code deps and commands, from ``dvc.lock``)
and its metrics. Revisions are read from git in one batch; the workspace side is read
from disk. Partition lists (the ``.dir`` manifests of data folders) are read straight
from the local DVC cache; nothing here imports DVC.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dvc_monitor.errors import DvcMonitorError, UnknownVersion, shown
from dvc_monitor.repo.git import GitRepo, check_rev
from dvc_monitor.model.data import partitions_of

_MISSING = object()


@dataclass(frozen=True)
class ParamChange:
    key: str  # "params.yaml:train.n_estimators"
    base: Any  # None when absent on that side
    head: Any
    status: str  # "changed" | "added" | "removed"


@dataclass(frozen=True)
class CodeChange:
    path: str  # a dep path (repository-relative) or "cmd:<stage>"
    base: str | None
    head: str | None
    status: str  # "changed" | "added" | "removed"


@dataclass(frozen=True)
class DataChange:
    path: str  # the data folder, repository-relative
    base: str | None  # .dir md5
    head: str | None


@dataclass(frozen=True)
class MetricRow:
    name: str
    base: float | None
    head: float | None
    delta: float | None


@dataclass(frozen=True)
class Side:
    """One side of a diff: a commit (or the workspace) and what defines the model there."""

    label: str  # what the user gave: "v0.2.0", "HEAD", "workspace"
    commit: str | None  # None for the workspace
    version: str | None  # registered version at that commit, if any
    id: str | None
    model_md5: str | None
    error: str | None = None


@dataclass(frozen=True)
class ModelDiff:
    name: str
    base: Side
    head: Side
    params_changed: list = field(default_factory=list)  # [ParamChange]
    partitions_added: list = field(default_factory=list)  # repo-relative file paths
    partitions_removed: list = field(default_factory=list)
    partitions_changed: list = field(default_factory=list)  # same path, new content
    data_changed: list = field(default_factory=list)  # [DataChange]
    code_changed: list = field(default_factory=list)  # [CodeChange]
    metrics: list = field(default_factory=list)  # [MetricRow], every metric of either side
    notes: list = field(default_factory=list)  # e.g. partition lists missing from the cache

    @property
    def same_id(self) -> bool:
        return self.base.id is not None and self.base.id == self.head.id

    @property
    def metrics_changed(self) -> list:
        return [m for m in self.metrics if m.base != m.head]

    @property
    def changed(self) -> bool:
        return bool(self.params_changed or self.partitions_added or self.partitions_removed
                    or self.partitions_changed or self.data_changed or self.code_changed
                    or self.metrics_changed or self.base.model_md5 != self.head.model_md5)

    def to_json(self) -> dict:
        return self.to_dict()

    def to_dict(self) -> dict:
        return asdict(self) | {"same_id": self.same_id}

    # -- rendering ----------------------------------------------------------------------

    def _title(self) -> str:
        return f"{self.name}: {_side(self.base)} → {_side(self.head)}"

    def to_text(self) -> str:
        out = [self._title()]
        out.append(f"  id: {_short(self.base.id)} → {_short(self.head.id)}"
                   + ("  (same id)" if self.same_id else ""))
        out.append(f"  model md5: {self.base.model_md5 or '-'} → {self.head.model_md5 or '-'}")
        for side in (self.base, self.head):
            if side.error:
                out.append(f"  note: {side.label}: {side.error}")
        if self.params_changed:
            out.append("params:")
            out += [f"  {p.key}: {_fmt(p.base)} → {_fmt(p.head)}" for p in self.params_changed]
        if self.partitions_added or self.partitions_removed or self.partitions_changed:
            out.append("data partitions:")
            out += [f"  + {p}" for p in self.partitions_added]
            out += [f"  - {p}" for p in self.partitions_removed]
            out += [f"  ~ {p}" for p in self.partitions_changed]
        elif self.data_changed:
            out.append("data:")
            out += [f"  {d.path}: {d.base or '-'} → {d.head or '-'}" for d in self.data_changed]
        if self.code_changed:
            out.append("code:")
            out += [f"  {c.path}: {c.status}" for c in self.code_changed]
        if self.metrics:
            out.append("metrics:")
            for m in self.metrics:
                out.append(f"  {m.name}: {_fmt(m.base)} → {_fmt(m.head)}"
                           + (f"  ({_delta(m.delta)})" if m.delta is not None else ""))
        if not self.changed:
            out.append("no changes")
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)

    def to_markdown(self) -> str:
        out = [f"### {_md(self._title())}", ""]
        out.append(f"Version id: `{_short(self.base.id)}` → `{_short(self.head.id)}`"
                   + (" (same id: same params, data and code)" if self.same_id else ""))
        out.append("")
        for side in (self.base, self.head):
            if side.error:
                out += [f"> **Note:** {_md(side.label)}: {_md(side.error)}", ""]
        if self.metrics:
            out += ["| metric | base | head | Δ |", "|---|---:|---:|---:|"]
            out += [f"| {_md(m.name)} | {_fmt(m.base)} | {_fmt(m.head)} | "
                    f"{_delta(m.delta) if m.delta is not None else ''} |" for m in self.metrics]
            out.append("")
        if self.params_changed:
            out += ["| param | base | head |", "|---|---|---|"]
            out += [f"| `{_md(p.key)}` | {_md(_fmt(p.base))} | {_md(_fmt(p.head))} |"
                    for p in self.params_changed]
            out.append("")
        if self.partitions_added or self.partitions_removed or self.partitions_changed:
            out += ["| data partition | change |", "|---|---|"]
            out += [f"| `{_md(p)}` | added |" for p in self.partitions_added]
            out += [f"| `{_md(p)}` | removed |" for p in self.partitions_removed]
            out += [f"| `{_md(p)}` | changed |" for p in self.partitions_changed]
            out.append("")
        elif self.data_changed:
            out += ["| data | base | head |", "|---|---|---|"]
            out += [f"| `{_md(d.path)}` | `{d.base or '-'}` | `{d.head or '-'}` |"
                    for d in self.data_changed]
            out.append("")
        if self.code_changed:
            out += ["| code | change |", "|---|---|"]
            out += [f"| `{_md(c.path)}` | {c.status} |" for c in self.code_changed]
            out.append("")
        if not self.changed:
            out += ["No changes.", ""]
        out += [f"> {_md(n)}" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"


def _side(s: Side) -> str:
    if s.commit is None:
        return "workspace"
    label = s.version or s.label
    return f"{label} ({s.commit[:7]})" if label != s.commit else s.commit[:7]


def _short(vid: str | None) -> str:
    from dvc_monitor.registry.identity import short_id

    return short_id(vid) or "-"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _delta(value: float) -> str:
    return f"{value:+.6g}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# -- the diff ---------------------------------------------------------------------------


@dataclass
class _State:
    identity: Any  # VersionIdentity | None
    metrics: dict
    lock_path: str | None
    error: str | None
    model_path: str | None = None  # repository-relative


def diff_revisions(root: str | Path, name: str, base_rev: str,
                   head_rev: str | None = None) -> ModelDiff:
    """Diff ``name`` between git revision ``base_rev`` and ``head_rev`` (None: workspace)."""
    git = GitRepo.discover(root)
    base_commit = _commit(git, base_rev)
    head_commit = _commit(git, head_rev) if head_rev is not None else None
    return _diff(git, name, base_rev, base_commit, head_rev, head_commit)


def diff_refs(root: str | Path, name: str, base: str, head: str | None = None) -> ModelDiff:
    """Like ``diff_revisions``, but A and B may also name versions: ``v1.2.0``,
    ``latest``, a version id, ``#STAGE``; anything else is a git revision."""
    git = GitRepo.discover(root)
    loaded: list = []
    base_commit = _resolve_ref(git, name, base, loaded)
    head_commit = _resolve_ref(git, name, head, loaded) if head is not None else None
    return _diff(git, name, base, base_commit, head, head_commit)


def _resolve_ref(git: GitRepo, name: str, ref: str, loaded: list) -> str:
    from dvc_monitor.registry.state import Registry

    check_rev(ref)
    looks_like_version = ref in ("latest", "greatest") or ref.startswith(("#", "@", "sha256:")) \
        or re.fullmatch(r"v?\d+\.\d+\.\d+([-+].*)?", ref) is not None
    is_hex = re.fullmatch(r"[0-9a-fA-F]{6,64}", ref) is not None
    if looks_like_version or is_hex:
        try:
            if not loaded:
                loaded.append(Registry.load(git.root))
            reg = loaded[0]
            if ref.startswith("#"):
                return reg.get(f"{name}{ref}").commit
            return reg.resolve(name, ref.lstrip("@")).commit
        except DvcMonitorError:
            if looks_like_version and not is_hex:
                raise
    return _commit(git, ref)


def _commit(git: GitRepo, rev: str) -> str:
    commit = git.resolve(rev)
    if commit is None:
        raise UnknownVersion(f"{shown(rev)} names no version and no git commit")
    return commit


def _diff(git: GitRepo, name: str, base_label: str, base_commit: str,
          head_label: str | None, head_commit: str | None) -> ModelDiff:
    from dvc_monitor.registry.facts import read_facts

    commits = [c for c in (base_commit, head_commit) if c is not None]
    facts = read_facts(git, name, commits)
    states = {c: _State(f.identity, f.metrics, f.lock_path, f.error, f.model_path)
              for c, f in facts.items()}
    base = states[base_commit]
    head = states[head_commit] if head_commit is not None else workspace_state(git.root, name)
    versions = _versions_at(git, name, commits)
    base_side = _make_side(base_label, base_commit, versions.get(base_commit), base)
    head_side = _make_side(head_label or "workspace", head_commit,
                           versions.get(head_commit) if head_commit else None, head)
    notes: list[str] = []
    if head_commit is None:
        notes += _workspace_notes(git.root, head)

    params = _params_diff(base.identity.params if base.identity else {},
                          head.identity.params if head.identity else {})
    bdeps = _repo_deps(base)
    hdeps = _repo_deps(head)
    code: list[CodeChange] = []
    data: list[DataChange] = []
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    bsets: dict[str, dict[str, tuple[str, str]]] = {}  # group -> key -> (shown path, md5)
    hsets: dict[str, dict[str, tuple[str, str]]] = {}
    broken: set[str] = set()
    for path in sorted(set(bdeps) | set(hdeps)):
        b, h = bdeps.get(path), hdeps.get(path)
        if b == h:
            continue
        is_dir = (b or "").endswith(".dir") or (h or "").endswith(".dir")
        if not is_dir:
            code.append(CodeChange(path, b, h, _status(b, h)))
            continue
        data.append(DataChange(path, b, h))
        bparts, bnote = dir_partitions(git, name, path, b, base_commit) if b else ([], None)
        hparts, hnote = dir_partitions(git, name, path, h, head_commit) if h else ([], None)
        for note in (bnote, hnote):
            if note and f"{path}: {note}" not in notes:
                notes.append(f"{path}: {note}")
        group = _partition_group(path)
        if bparts is None or hparts is None:
            broken.add(group)
            continue
        for side, parts in ((bsets, bparts), (hsets, hparts)):
            side.setdefault(group, {}).update(
                {_partition_key(path, p["relpath"]): (f"{path}/{p['relpath']}", p["md5"])
                 for p in parts})
    # a model's data/ and segments/ are one set of partitions (a seal moves files from one
    # to the other, keeping their names): compared by partition name
    for group in sorted((set(bsets) | set(hsets)) - broken):
        bmap, hmap = bsets.get(group, {}), hsets.get(group, {})
        added += sorted(hmap[k][0] for k in set(hmap) - set(bmap))
        removed += sorted(bmap[k][0] for k in set(bmap) - set(hmap))
        changed += sorted(hmap[k][0] for k in set(bmap) & set(hmap) if bmap[k][1] != hmap[k][1])
    tracked = _git_model_change(git, base_commit, head_commit, base, head)
    if tracked is not None:
        code.append(tracked)
    bcmds = base.identity.cmds if base.identity else {}
    hcmds = head.identity.cmds if head.identity else {}
    for stage in sorted(set(bcmds) | set(hcmds)):
        b, h = bcmds.get(stage), hcmds.get(stage)
        if b != h:
            code.append(CodeChange(f"cmd:{stage}", b, h, _status(b, h)))

    return ModelDiff(
        name=name, base=base_side, head=head_side, params_changed=params,
        partitions_added=added, partitions_removed=removed, partitions_changed=changed,
        data_changed=data, code_changed=code, metrics=_metric_rows(base.metrics, head.metrics),
        notes=notes,
    )


def _git_model_change(git: GitRepo, base_commit: str, head_commit: str | None,
                      base: _State, head: _State) -> CodeChange | None:
    """A model file that git tracks itself (no dvc.lock records it on a side): a change of
    its git blob, or None. Without this a diff of two such versions said "no changes"."""
    if base.identity is not None and head.identity is not None:
        return None
    path = head.model_path or base.model_path
    if not path or "://" in path:
        return None
    b, h = _blob_id(git, base_commit, path), _blob_id(git, head_commit, path)
    return None if b == h else CodeChange(path, b, h, _status(b, h))


def _blob_id(git: GitRepo, commit: str | None, path: str) -> str | None:
    """The git object id of ``path`` at ``commit`` (None: the file in the work tree)."""
    if commit is None:
        if not (git.root / path).is_file():
            return None
        return git.run("hash-object", "--", path).strip()
    return git.run("rev-parse", "-q", "--verify", f"{commit}:{path}", check=False).strip() or None


def _status(b: Any, h: Any) -> str:
    return "added" if b is None else "removed" if h is None else "changed"


def _make_side(label: str, commit: str | None, version: str | None, st: _State) -> Side:
    return Side(label=label, commit=commit, version=version,
                id=st.identity.id if st.identity else None,
                model_md5=st.identity.model_md5 if st.identity else None, error=st.error)


def _versions_at(git: GitRepo, name: str, commits: list[str]) -> dict[str, str]:
    """Registered version of ``name`` at each commit (tags only, no registry load)."""
    from dvc_monitor.registry import tags as T

    result = {}
    wanted = set(commits)
    for ref in git.tags():
        if ref.commit not in wanted or not ref.annotated:  # GTO ignores lightweight tags
            continue
        tag = T.parse_tag(ref.name)
        if tag and tag.artifact == name and tag.action is T.Action.REGISTER:
            result[ref.commit] = tag.version
    return result


def _repo_deps(st: _State) -> dict[str, str]:
    if st.identity is None:
        return {}
    base = str(PurePosixPath(st.lock_path).parent) if st.lock_path and "/" in st.lock_path else ""
    return {(f"{base}/{p}" if base else p): m for p, m in st.identity.deps.items()}


def _params_diff(base: dict, head: dict) -> list[ParamChange]:
    b = dict(_flat_params(base))
    h = dict(_flat_params(head))
    out = []
    for key in sorted(set(b) | set(h)):
        bv, hv = b.get(key, _MISSING), h.get(key, _MISSING)
        if bv == hv and type(bv) is type(hv):
            continue
        status = "added" if bv is _MISSING else "removed" if hv is _MISSING else "changed"
        out.append(ParamChange(key, None if bv is _MISSING else bv,
                               None if hv is _MISSING else hv, status))
    return out


def _flat_params(params: dict):
    for fname, values in params.items():
        if not isinstance(values, dict):
            yield f"{fname}", values
            continue
        yield from _flat(values, f"{fname}:")


def _flat(d: dict, prefix: str):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _metric_rows(base: dict, head: dict) -> list[MetricRow]:
    rows = []
    for key in list(dict.fromkeys(list(base) + list(head))):
        b, h = base.get(key), head.get(key)
        delta = None
        if isinstance(b, (int, float)) and isinstance(h, (int, float)):
            delta = h - b
            if isinstance(delta, float):
                delta = round(delta, 12)
        rows.append(MetricRow(key, b, h, delta))
    return rows


# -- the workspace ----------------------------------------------------------------------


def workspace_state(root: Path, name: str) -> _State:
    """Identity and metrics of ``name`` from the files on disk (committed or not), located
    by ``model.revision`` (the artifact declaration and the stage that outputs it)."""
    from dvc_monitor.model.revision import read_models
    from dvc_monitor.registry.facts import flatten_metrics
    from dvc_monitor.registry.identity import identity_from_lock
    from dvc_monitor.registry.values import METRICS_FILE
    from dvc_monitor.repo.dvcfiles import norm

    git = GitRepo(root)
    m = read_models(git, name, [None])[None]
    if m.lock_path is None:
        return _State(None, {}, None, m.problem or f"no dvc.lock for {m.model_path} in the "
                      "workspace", m.model_path)
    d = m.pipeline_dir
    rel = m.model_path[len(d) + 1:] if d else m.model_path
    try:
        identity = identity_from_lock((Path(root) / m.lock_path).read_bytes(), rel,
                                      source=m.lock_path)
    except DvcMonitorError as exc:
        return _State(None, {}, None, str(exc), m.model_path)
    mfile = Path(root) / norm(d or ".", METRICS_FILE)
    metrics = flatten_metrics(mfile.read_bytes()) if mfile.is_file() else {}
    return _State(identity, metrics, m.lock_path, None, m.model_path)


def _workspace_notes(root: Path, st: _State) -> list[str]:
    """Warn when the workspace files moved on from its dvc.lock (repro not run)."""
    if st.identity is None or st.lock_path is None:
        return []
    from dvc_monitor.repo.dvcfiles import MISSING, dvc_file_md5, load_lock, param_value, parse_yaml

    base = Path(root) / (str(PurePosixPath(st.lock_path).parent) if "/" in st.lock_path else "")
    notes = []
    for fname, values in st.identity.params.items():
        f = base / fname
        if not f.is_file() or not isinstance(values, dict):
            continue
        try:
            current = parse_yaml(f.read_text(), fname) if fname.endswith((".yaml", ".yml")) \
                else json.loads(f.read_text()) if fname.endswith(".json") else None
        except (DvcMonitorError, ValueError, OSError):
            continue
        if not isinstance(current, dict):
            continue
        for key, value in values.items():
            now = param_value(current, key)
            if now is not MISSING and now != value:
                notes.append(f"{fname} differs from dvc.lock ({key}); run 'dvc repro' to "
                             "make the workspace a version")
                break
    for path, md5 in st.identity.deps.items():
        dvcfile = base / f"{path}.dvc"
        if dvcfile.is_file():
            try:
                cur = dvc_file_md5(load_lock(dvcfile.read_bytes(), str(dvcfile)))
            except DvcMonitorError:
                continue
            if cur and cur != md5:
                notes.append(f"{path}.dvc differs from dvc.lock; run 'dvc repro' to make the "
                             "workspace a version")
    return notes


# -- partitions from the local DVC cache ------------------------------------------------


def _partition_group(path: str) -> str:
    """The set a data dependency's partitions belong to: a model's ``data`` and
    ``segments`` folders are one set (its folder); any other folder is its own."""
    from dvc_monitor.model.layout import ModelLayout

    parent, _, base = path.rpartition("/")
    return parent if base in (ModelLayout.DATA, ModelLayout.SEGMENTS) else path


def _partition_key(path: str, relpath: str) -> str:
    """Partitions of a model's data are matched by file name, wherever they are sealed."""
    return PurePosixPath(relpath).name if _partition_group(path) != path else relpath


def dir_partitions(git: GitRepo, name: str, path: str, md5: str,
                   commit: str | None) -> tuple[list | None, str | None]:
    """``partitions_of`` for a data dependency at ``path`` (repo-relative) of model ``name``
    at ``commit`` (None: the workspace). For a ``segments`` folder, whose own ``.dir`` hash
    DVC keeps no manifest for, the partitions of the sealed segments that the folder's
    ``sNNNN.dvc`` files record, with ``sNNNN/`` in their relpath."""
    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.model.segments import sealed_at

    parent, _, base = path.rpartition("/")
    sealed = sealed_at(git, commit, ModelLayout(name, folder=parent)) \
        if base == ModelLayout.SEGMENTS else {}
    if not sealed:
        return partitions_of(git.root, md5)
    out: list = []
    for folder, seg_md5 in sealed.items():
        parts, note = partitions_of(git.root, seg_md5 or "")
        if parts is None:
            return None, note
        seg = folder.rpartition("/")[2]
        out += [{"relpath": f"{seg}/{p['relpath']}", "md5": p["md5"]} for p in parts]
    return out, None

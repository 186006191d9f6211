"""What is model NAME at revision REV (or in the workspace)? The one reader of that question.

``read_model(root, name, rev)`` (one model, one revision) and ``read_models(git, name,
commits)`` (many commits, read in a few ``git cat-file --batch`` calls) answer it with a
``ModelAtRevision``:

* the declaration: the ``artifacts:`` entry of the root ``dvc.yaml`` (GTO name ``NAME``)
  or of a nested one (``path/to/dvc.yaml:NAME``); without one, dvc-monitor's own layout
  ``models/NAME/`` when it is there;
* the stage that outputs the artifact path, found through ``dvc.lock`` (and ``dvc.yaml``)
  whatever the stage is called and whatever its ``wdir``;
* the pipeline folder, its params, deps, outs and metrics files;
* the dvc-monitor kind config (``monitor.yaml`` beside that pipeline) when present;
* the model file's format, by its magic bytes (never loaded): only a skops archive is a
  format dvc-monitor loads safely; a pickle or joblib file never is.

Problems that make the answer unusable (a ``dvc.yaml`` that is not valid YAML, an
artifact no stage produces, two stages claiming one output) are kept in ``problem``;
``require()`` turns them into a one-line error. Nothing here imports DVC.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from dvc_monitor.errors import (
    DvcMonitorError,
    TemplateError,
    UnknownModel,
    UsageError,
    shown,
)
from dvc_monitor.repo.dvcfiles import Lock, inside, norm, parse_yaml, read_lock, stage_wdir
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.values import JsonValue

DVC_YAML = "dvc.yaml"
DVC_LOCK = "dvc.lock"
MONITOR = "monitor.yaml"
SAFE_FORMATS = frozenset({"skops"})


@dataclass(frozen=True)
class MetricsFile(JsonValue):
    """A metrics file of the pipeline: in git (``cache: false``) or a DVC output."""

    path: str  # repo-relative
    cached: bool  # a DVC output (in the cache, not in git)
    md5: str | None = None  # from dvc.lock, for a cached one


@dataclass(frozen=True)
class ModelAtRevision(JsonValue):
    """Model ``name`` at ``commit`` (None: the workspace), located from its declaration."""

    name: str
    commit: str | None
    declared_in: str | None  # the dvc.yaml whose artifacts: entry names it (None: default layout)
    model_path: str  # repo-relative
    pipeline_dir: str  # folder of the dvc.yaml/dvc.lock whose stage outputs the model ("" = root)
    stage: str | None  # that stage, whatever its name
    wdir: str  # its wdir, repo-relative
    lock_path: str | None
    model_md5: str | None
    params: tuple[str, ...] = ()  # params files (repo-relative)
    deps: tuple[str, ...] = ()  # the pipeline's deps (repo-relative)
    outs: tuple[str, ...] = ()  # the pipeline's outs (repo-relative)
    metrics: tuple[MetricsFile, ...] = ()
    monitor: str | None = None  # monitor.yaml beside the pipeline, when present
    model_format: str = "unknown"  # skops | pickle | joblib | zip | empty | unknown | missing
    problem: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def gto_name(self) -> str:
        """The name GTO and DVC give the artifact (``path/to/dvc.yaml:NAME`` when nested)."""
        if self.declared_in in (None, DVC_YAML) or ":" in self.name:
            return self.name
        return f"{self.declared_in}:{self.name}"

    @property
    def loads_safely(self) -> bool:
        return self.model_format in SAFE_FORMATS

    @property
    def is_monitor_model(self) -> bool:
        """A model dvc-monitor trained: it has a kind config beside its pipeline."""
        return self.monitor is not None

    @property
    def dvc_yaml(self) -> str:
        return norm(self.pipeline_dir, DVC_YAML)

    def file(self, rel: str) -> str:
        """A file of the pipeline folder, repo-relative."""
        return norm(self.pipeline_dir, rel)

    def require(self) -> "ModelAtRevision":
        if self.problem:
            raise TemplateError(self.problem)
        return self

    def to_json(self) -> dict:
        out = super().to_json()
        out.update(gto_name=self.gto_name, loads_safely=self.loads_safely,
                   dvc_yaml=self.dvc_yaml)
        return out


# -- formats ----------------------------------------------------------------------------


def format_note(m: ModelAtRevision) -> str | None:
    """Why the model file is not loaded, for a reader that skips it (None: it loads)."""
    base = posixpath.basename(m.model_path)
    if m.model_format in ("pickle", "joblib"):
        return f"{base} is a {m.model_format}: not loaded (dvc-monitor never unpickles)"
    if m.model_format == "missing":
        return f"{base} is not in the local DVC cache: not inspected"
    if m.model_format != "skops":
        return f"{base} is not a skops archive ({m.model_format}): not loaded"
    return None


# -- reading ----------------------------------------------------------------------------


def model_dirs(name: str) -> tuple[str, str, str]:
    """(folder of the dvc.yaml declaring NAME, artifact name in it, default model path).

    ``NAME`` may be GTO's ``path/to/dvc.yaml:NAME`` or ``path/to:NAME``.
    """
    dirname, sep, base = name.rpartition(":")
    if sep:
        if dirname.endswith(DVC_YAML):
            dirname = posixpath.dirname(dirname)
        return norm(dirname) if dirname else "", base, norm(dirname or ".", f"{base}.skops")
    return "", name, f"models/{name}/model.skops"


def parents(path: str) -> list[str]:
    """Folders from the nearest parent of ``path`` up to the root ("")."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), -1, -1)]


def artifact_path(doc: Any, art_name: str, ydir: str) -> str | None:
    """The repo-relative path an ``artifacts:`` entry gives ``art_name`` (None: not declared)."""
    arts = doc.get("artifacts") if isinstance(doc, dict) else None
    entry = arts.get(art_name) if isinstance(arts, dict) else None
    path = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(path, str) or not path:
        return None
    if "://" in path:  # a URL (GTO allows remote artifacts) is kept as written
        return path
    path = norm(ydir or ".", path)
    return path if inside(path) else None


class _Yaml:
    """Parsed YAML blobs, cached by content (the same dvc.yaml repeats across commits)."""

    def __init__(self) -> None:
        self.cache: dict[tuple[bytes, str], Any] = {}

    def __call__(self, raw: bytes | None, source: str) -> Any:
        if raw is None:
            return None
        key = (raw, source)
        if key not in self.cache:
            try:
                self.cache[key] = parse_yaml(raw.decode("utf-8"), source)
            except UnicodeDecodeError:
                self.cache[key] = DvcMonitorError(f"{source} is not valid YAML: not UTF-8 text")
            except DvcMonitorError as exc:
                self.cache[key] = exc
        return self.cache[key]


def read_model(root: str | Path, name: str, rev: str | None = None) -> ModelAtRevision:
    """Model ``name`` at git revision ``rev`` (None or ``workspace``: the files on disk)."""
    git = GitRepo.discover(root)
    if rev is None or rev == "workspace":
        return read_models(git, name, [None])[None]
    commit = git.resolve(rev)  # checks the text first (repo/git.py check_rev)
    if commit is None:
        raise UsageError(f"unknown revision {shown(rev)}; use a branch, tag or commit")
    return read_models(git, name, [commit])[commit]


def read_models(git: GitRepo, name: str, commits: Iterable[str | None],
                extra: Iterable[str] = ()) -> dict[str | None, ModelAtRevision]:
    """``name`` at each commit (None: the workspace), in two batched reads (one when the
    model is where the default layout puts it).

    ``extra`` names more pipeline-folder files to read in the first batch.
    """
    commits = list(dict.fromkeys(commits))
    ydir, art_name, default_model = model_dirs(name)
    declaring = norm(ydir or ".", DVC_YAML)
    default_dir = posixpath.dirname(default_model)
    files = (DVC_YAML, DVC_LOCK, MONITOR, *extra)
    first = [declaring] + [norm(default_dir, f) for f in files]
    blobs = _read(git, commits, {c: first for c in commits})
    yaml = _Yaml()

    located: dict[str | None, tuple[str | None, str, str | None]] = {}
    for c in commits:
        doc = yaml(blobs[c].get(declaring), f"{declaring}{_at(c)}")
        if isinstance(doc, DvcMonitorError):
            located[c] = (None, default_model, str(doc))
            continue
        path = artifact_path(doc, art_name, ydir)
        located[c] = (declaring if path else None, path or default_model, None)
    second = {}
    for c in commits:
        mp = located[c][1]
        want = [norm(d or ".", f) for d in parents(mp) for f in files]
        want = [w for w in want if w not in blobs[c]]
        if want:
            second[c] = want
    if second:
        for c, got in _read(git, list(second), second).items():
            blobs[c].update(got)
    return {c: _locate(git, name, c, *located[c], blobs[c], yaml) for c in commits}


def _at(commit: str | None) -> str:
    return " in the workspace" if commit is None else f" at {commit[:7]}"


def _read(git: GitRepo, commits: list[str | None],
          paths: dict[str | None, list[str]]) -> dict[str | None, dict[str, bytes | None]]:
    out: dict[str | None, dict[str, bytes | None]] = {c: {} for c in commits}
    specs = [f"{c}:{p}" for c in commits if c is not None for p in paths.get(c, ())]
    got = git.read_blobs(specs) if specs else {}
    for c in commits:
        for p in paths.get(c, ()):
            if c is None:
                f = git.root / p
                out[c][p] = f.read_bytes() if f.is_file() else None
            else:
                out[c][p] = got.get(f"{c}:{p}")
    return out


def _locate(git: GitRepo, name: str, commit: str | None, declared: str | None, mp: str,
            problem: str | None, blobs: dict[str, bytes | None], yaml: _Yaml) -> ModelAtRevision:
    where = _at(commit)
    base = dict(name=name, commit=commit, declared_in=declared, model_path=mp)
    if problem:
        return ModelAtRevision(**base, pipeline_dir=posixpath.dirname(mp), stage=None,
                               wdir=posixpath.dirname(mp), lock_path=None, model_md5=None,
                               problem=problem)
    found: list[tuple[str, str, Lock | None, dict]] = []  # (dir, stage, lock, yaml doc)
    first_problem = None
    for d in parents(mp):
        yraw = blobs.get(norm(d or ".", DVC_YAML))
        lraw = blobs.get(norm(d or ".", DVC_LOCK))
        if yraw is None and lraw is None:
            continue
        ydoc = yaml(yraw, f"{norm(d or '.', DVC_YAML)}{where}")
        if isinstance(ydoc, DvcMonitorError):
            first_problem = first_problem or str(ydoc)
            continue
        ydoc = ydoc if isinstance(ydoc, dict) else {}
        lock: Lock | None = None
        if lraw is not None:
            try:
                lock = read_lock(lraw, f"{norm(d or '.', DVC_LOCK)}{where}")
            except DvcMonitorError as exc:
                first_problem = first_problem or str(exc)
        claims = _producers(d, ydoc, lock, mp)
        if len(claims) > 1:
            return _broken(base, mp, f"two stages claim {mp}: {claims[0]} and {claims[1]} "
                           f"(in {norm(d or '.', DVC_YAML)}{where}); keep one output per path")
        if claims:
            found.append((d, claims[0], lock, ydoc))
            break
    if not found:
        if first_problem:
            return _broken(base, mp, first_problem)
        if declared is None:
            return _broken(base, mp, f"no model {name!r}{where}: no dvc.yaml declares it under "
                           f"'artifacts:' and no stage outputs {mp}", unknown=True)
        return _broken(base, mp, f"artifact {name!r} ({mp}) is declared but no stage of "
                       f"any dvc.yaml above it outputs it{where}; add it to a stage's outs")
    d, stage, lock, ydoc = found[0]
    lock_path = norm(d or ".", DVC_LOCK) if lock is not None else None
    params, deps, outs, metrics = _files(d, ydoc, lock)
    md5 = next((o.md5 for o in _lock_outs(d, ydoc, lock) if o.path == mp), None)
    monitor = norm(d or ".", MONITOR)
    return ModelAtRevision(
        **base, pipeline_dir=d, stage=stage, wdir=norm(d or ".", stage_wdir(ydoc, stage)),
        lock_path=lock_path, model_md5=md5, params=params, deps=deps, outs=outs,
        metrics=metrics, monitor=monitor if blobs.get(monitor) is not None else None,
        model_format=_model_format(git, commit, mp, md5),
    )


def _broken(base: dict, mp: str, problem: str, unknown: bool = False) -> ModelAtRevision:
    return ModelAtRevision(**base, pipeline_dir=posixpath.dirname(mp), stage=None,
                           wdir=posixpath.dirname(mp), lock_path=None, model_md5=None,
                           problem=problem, notes=("unknown",) if unknown else ())


def _entry_paths(entries: Any) -> list[tuple[str, dict]]:
    """``outs:``/``deps:``/``metrics:`` entries of a dvc.yaml stage: (path, options)."""
    out = []
    for e in entries or []:
        if isinstance(e, str):
            out.append((e, {}))
        elif isinstance(e, dict):
            for k, v in e.items():
                out.append((str(k), v if isinstance(v, dict) else {}))
    return out


def _producers(d: str, ydoc: dict, lock: Lock | None, mp: str) -> list[str]:
    """Stages of the pipeline in folder ``d`` that output ``mp`` (dvc.yaml and dvc.lock)."""
    claims: list[str] = []
    ystages = ydoc.get("stages") if isinstance(ydoc.get("stages"), dict) else {}
    for stage, body in ystages.items():
        if not isinstance(body, dict):
            continue
        wdir = norm(d or ".", stage_wdir(ydoc, str(stage)))
        kinds = ("outs", "metrics", "plots")
        if any(norm(wdir or ".", p) == mp for k in kinds for p, _ in _entry_paths(body.get(k))):
            claims.append(str(stage))
    for o in _lock_outs(d, ydoc, lock):
        if o.path == mp and o.stage not in claims and o.stage.split("@")[0] not in claims:
            claims.append(o.stage)
    return claims


@dataclass(frozen=True)
class _Out:
    stage: str
    path: str
    md5: str | None


def _lock_outs(d: str, ydoc: dict, lock: Lock | None) -> list[_Out]:
    """Every output ``lock`` records, repo-relative, with its stage and md5."""
    outs = []
    for stage, body in (lock.stages if lock is not None else {}).items():
        wdir = norm(d or ".", stage_wdir(ydoc, stage))
        outs += [_Out(stage, norm(wdir or ".", o.path), o.md5) for o in body.outs]
    return outs


def _files(d: str, ydoc: dict, lock: Lock | None):
    """(params files, deps, outs, metrics files) of the whole pipeline in folder ``d``."""
    params: list[str] = []
    deps: list[str] = []
    outs: list[str] = []
    metrics: dict[str, MetricsFile] = {}
    md5s = {o.path: o.md5 for o in _lock_outs(d, ydoc, lock)}
    ystages = ydoc.get("stages") if isinstance(ydoc.get("stages"), dict) else {}
    for stage, body in ystages.items():
        if not isinstance(body, dict):
            continue
        wdir = norm(d or ".", stage_wdir(ydoc, str(stage)))
        for p in body.get("params") or []:
            if isinstance(p, dict):
                params += [norm(wdir or ".", str(k)) for k in p]
            elif "params.yaml" not in params:
                params.append(norm(wdir or ".", "params.yaml"))
        deps += [norm(wdir or ".", p) for p, _ in _entry_paths(body.get("deps"))]
        outs += [norm(wdir or ".", p) for p, _ in _entry_paths(body.get("outs"))]
        for p, opts in _entry_paths(body.get("metrics")):
            path = norm(wdir or ".", p)
            cached = opts.get("cache", True) is not False
            metrics[path] = MetricsFile(path, cached, md5s.get(path) if cached else None)
    for p in ydoc.get("metrics") or []:  # top-level metrics: files in git or outs
        if isinstance(p, str):
            path = norm(d or ".", p)
            cached = path in md5s
            metrics.setdefault(path, MetricsFile(path, cached, md5s.get(path)))
    return (tuple(dict.fromkeys(params)), tuple(dict.fromkeys(deps)),
            tuple(dict.fromkeys(outs)), tuple(metrics.values()))


def declared_metrics(d: str, ydoc: dict, lock: Lock | None) -> tuple[MetricsFile, ...]:
    """The metrics files the dvc.yaml ``ydoc`` in folder ``d`` declares (stage ``metrics:``
    and top-level ``metrics:``), repo-relative, cached or in git."""
    return _files(d, ydoc if isinstance(ydoc, dict) else {}, lock)[3]


def _model_format(git: GitRepo, commit: str | None, mp: str, md5: str | None) -> str:
    """The model file's format from its magic bytes (``model.files.sniff_format``): the
    workspace file, else its cache object, else the blob git keeps."""
    from dvc_monitor.model.files import sniff_file, sniff_format
    from dvc_monitor.repo.cache import object_path

    candidates = []
    if commit is None:
        candidates.append(git.root / mp)
    if md5:
        candidates.append(object_path(git.root, md5))
    for path in candidates:
        try:
            return sniff_file(path)
        except OSError:
            continue
    if commit is not None and not md5:  # a model file kept in git
        raw = git.read_blobs([f"{commit}:{mp}"]).get(f"{commit}:{mp}")
        if raw is not None:
            return sniff_format(raw)
    return "missing"


def read_blobs_at(git: GitRepo, commit: str | None, paths: list[str]) -> dict[str, bytes | None]:
    """Files at ``commit`` (None: the workspace) in one batch: path -> bytes (None: absent)."""
    return _read(git, [commit], {commit: paths})[commit]


def metrics_of(git: GitRepo, m: ModelAtRevision) -> tuple[dict, list[str]]:
    """The readable metrics of the pipeline (file -> parsed JSON/YAML) and why others are not.

    Git-tracked metrics files are read from git (or disk); cached ones from the local
    DVC cache by the md5 dvc.lock records. Nothing is fetched.
    """
    import json

    from dvc_monitor.repo.cache import object_path

    inline = [f.path for f in m.metrics if not f.cached or m.commit is None]
    blobs = read_blobs_at(git, m.commit, inline) if inline else {}
    out: dict = {}
    skipped: list[str] = []
    for f in m.metrics:
        raw = blobs.get(f.path)
        if raw is None and f.cached and f.md5:
            p = object_path(git.root, f.md5)
            raw = p.read_bytes() if p.is_file() else None
        if raw is None:
            skipped.append(f"metrics are in a DVC output that is not in the cache ({f.path})"
                           if f.cached else f"{f.path} is missing")
            continue
        try:
            doc = json.loads(raw) if f.path.endswith(".json") else \
                parse_yaml(raw.decode("utf-8"), f.path)
        except (ValueError, DvcMonitorError):
            skipped.append(f"{f.path} is not valid JSON/YAML: not read")
            continue
        if isinstance(doc, dict):
            out[f.path] = doc
    return out, skipped


def require_model(m: ModelAtRevision) -> ModelAtRevision:
    """``m``, or a one-line error: ``UnknownModel`` when nothing names it, else ``TemplateError``."""
    if m.problem and "unknown" in m.notes:
        raise UnknownModel(m.problem)
    return m.require()

"""A model's state at a revision, read without checkout: its pipeline files, its model and
its data.

A *revision* is a git revision (branch, tag, commit) or ``None`` for the workspace.
``read_state`` reads a model's small files at a revision (``monitor.yaml``, ``params.yaml``,
``dvc.lock``, ``data.dvc``, ``metrics.json``) with one ``git cat-file --batch`` call, after
``model.revision`` located the model. ``load_model`` and ``load_data`` get the model file
and the data partitions of that revision from the DVC cache by the md5s recorded in git,
fetching the missing objects from the DVC remote for that revision only. Nothing here
changes the workspace: no checkout, no ``dvc pull``; a fetch only adds objects to
``.dvc/cache``.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from dvc_monitor.errors import (
    DvcMonitorError,
    ExternalCommandError,
    MissingObjects,
    SchemaError,
    TemplateError,
    UnknownModel,
    UsageError,
    shown,
)
from dvc_monitor.model.data import ModelConfig
from dvc_monitor.model.layout import MODELS_DIR, ModelLayout
from dvc_monitor.repo.cache import object_path, objects_dir
from dvc_monitor.repo.dvcfiles import Lock, dvc_file_md5, parse_yaml
from dvc_monitor.repo.git import GitRepo

if TYPE_CHECKING:  # pandas/numpy are imported lazily
    import pandas as pd

    from dvc_monitor.kinds import Kind
    from dvc_monitor.model.revision import ModelAtRevision

WORKSPACE = "workspace"

# -- revisions --------------------------------------------------------------------------


@dataclass
class ModelState:
    """One model's pipeline files at one revision (``commit`` is None for the workspace)."""

    root: Path
    name: str
    rev: str | None
    commit: str | None
    config: ModelConfig | None
    params: dict
    lock: dict | None  # its dvc.lock as parsed (``parsed_lock`` is the typed view)
    metrics: dict | None
    model_md5: str | None
    data_md5: str | None
    metrics_text: str | None = None
    metrics_raw: bytes | None = None
    notes: list[str] = field(default_factory=list)
    model: "ModelAtRevision | None" = None  # where the model is (model.revision)
    skipped: list[str] = field(default_factory=list)  # what a reader could not use, and why

    @property
    def layout(self) -> ModelLayout:
        return ModelLayout(self.name, folder=self.model.pipeline_dir if self.model else None)

    @property
    def model_path(self) -> str:
        return self.model.model_path if self.model else self.layout.model

    @property
    def is_monitor_model(self) -> bool:
        """A model dvc-monitor trained (it has a kind config); others are reviewed in part."""
        return self.config is not None

    @property
    def kind(self) -> str:
        return self.config.kind if self.config is not None else "external"

    @property
    def spec(self) -> "Kind":
        """The ``Kind`` that scores this model (its adopted form for an adopted model)."""
        if self.config is None:
            require_trained(self)
        return self.config.spec

    @property
    def adopted(self) -> bool:
        """Trained by its user's own pipeline, declared with ``dvc-monitor adopt``."""
        return self.config is not None and self.config.adopted

    @property
    def trusted_types(self) -> tuple[str, ...]:
        """The types beyond dvc-monitor's allow-list its ``monitor.yaml`` trusts."""
        return self.config.trusted_types if self.config is not None else ()

    @property
    def reference_path(self) -> str | None:
        """An adopted model's reference rows (repo-relative), when ``monitor.yaml`` names
        them; a ``TemplateError`` for a path that leaves the repository."""
        if self.config is None or not self.config.reference:
            return None
        rel = posixpath.normpath(posixpath.join(self.layout.dir, self.config.reference))
        if rel == ".." or rel.startswith("../"):
            raise TemplateError(f"{self.layout.monitor} at {self.label}: reference "
                                f"{shown(self.config.reference)} is outside the repository")
        return rel

    @property
    def is_workspace(self) -> bool:
        return self.commit is None

    @property
    def label(self) -> str:
        """How the revision is shown: ``workspace`` or ``REV (abc1234)``."""
        if self.commit is None:
            return WORKSPACE
        short = self.commit[:7]
        if self.rev and self.rev != self.commit and not self.commit.startswith(self.rev):
            return f"{self.rev} ({short})"
        return short

    def lock_params(self, stage: str) -> dict | None:
        """The ``params.yaml`` section ``stage`` that dvc.lock records for that stage (None:
        not recorded)."""
        lock = self.parsed_lock
        return lock.stage_params(stage) if lock is not None else None

    @property
    def parsed_lock(self) -> Lock | None:
        """Its dvc.lock, typed (None: there is none)."""
        return Lock.from_dict(self.lock) if self.lock is not None else None

    @property
    def holdout_rule(self) -> dict:
        """The prepare params the recorded split was made with (dvc.lock, else params.yaml)."""
        rule = self.lock_params("prepare")
        return rule if rule is not None else dict(self.params.get("prepare") or {})

    @property
    def evaluate_params(self) -> dict:
        rule = self.lock_params("evaluate")
        return rule if rule is not None else dict(self.params.get("evaluate") or {})


def resolve_commit(root: str | Path, rev: str) -> str:
    """The commit ``rev`` names, or a one-line ``UsageError``."""
    commit = GitRepo(root).resolve(rev)  # checks the text first (repo/git.py check_rev)
    if commit is None:
        raise UsageError(f"unknown revision {shown(rev)}; use a branch, tag or commit of this "
                         "repository")
    return commit


def read_state(root: str | Path, name: str, rev: str | None) -> ModelState:
    """Model ``name``'s pipeline files at ``rev`` (None = workspace), read without checkout.

    The model is located by ``model.revision`` (its artifact declaration and the stage
    that outputs it), so any layout works, from any folder of the repository. A model
    without a dvc-monitor kind config (``monitor.yaml``) gets ``config`` None and its
    readable metrics, with what was skipped in ``skipped``.
    """
    from dvc_monitor.model.revision import format_note, metrics_of, read_models, require_model

    git = GitRepo.discover(root)
    root = git.root
    if rev is None or rev == WORKSPACE:
        commit, where = None, "the workspace"
    else:
        commit, where = resolve_commit(root, rev), f"revision {rev}"
    model = read_models(git, name, [commit])[commit]
    if model.problem and "unknown" in model.notes:
        raise UnknownModel(f"{where} has no model {name!r} (no dvc.yaml declares it and "
                           f"models/{name}/ is not there); pick a revision that has it "
                           "with --base/--head")
    require_model(model)
    layout = ModelLayout(name, folder=model.pipeline_dir)
    paths = {"monitor": layout.monitor, "params": layout.params, "data": layout.data_dvc,
             "metrics": layout.metrics}
    if model.lock_path:
        paths["lock"] = model.lock_path
    if commit is None:
        raw = {key: ((root / rel).read_bytes() if (root / rel).is_file() else None)
               for key, rel in paths.items()}
    else:
        blobs = git.read_blobs(f"{commit}:{rel}" for rel in paths.values())
        raw = {key: blobs[f"{commit}:{rel}"] for key, rel in paths.items()}
    raw.setdefault("lock", None)
    texts = {k: None if v is None else v.decode("utf-8", errors="replace") for k, v in raw.items()}
    config = None
    skipped: list[str] = []
    if texts["monitor"] is not None:
        config = ModelConfig.from_text(texts["monitor"], f"{layout.monitor} at {where}")
    params = _yaml(texts["params"], layout.params, where) or {}
    lock = _yaml(texts["lock"], model.lock_path or layout.dvc_lock, where)
    data_dvc = _yaml(texts["data"], layout.data_dvc, where)
    metrics = None
    if config is None or config.adopted:  # its own pipeline's metrics, what can be read
        note = format_note(model) if config is None else None
        if note:
            skipped.append(note)
        files, why = metrics_of(git, model)
        skipped += why
        if files:
            metrics = files[next(iter(files))] if len(files) == 1 else files
        texts["metrics"] = raw["metrics"] = None
    elif texts["metrics"] is not None:
        try:
            metrics = json.loads(texts["metrics"])
        except ValueError:
            raise TemplateError(f"{layout.metrics} at {where} is not valid JSON") from None
        if not isinstance(metrics, dict):
            raise TemplateError(f"{layout.metrics} at {where} is not a JSON object")
    return ModelState(
        root=root, name=name, rev=None if commit is None else rev, commit=commit,
        config=config, params=params if isinstance(params, dict) else {},
        lock=lock if isinstance(lock, dict) else None, metrics=metrics,
        model_md5=model.model_md5, data_md5=dvc_file_md5(data_dvc),
        metrics_text=texts["metrics"], metrics_raw=raw["metrics"], model=model,
        skipped=skipped,
    )


def require_trained(state: ModelState, what: str | None = None, *,
                    error: type[DvcMonitorError] = UnknownModel, lead: str = "",
                    then: str = "train it with dvc-monitor ('dvc-monitor init'), or review "
                                "it with 'dvc-monitor report'") -> ModelState:
    """``state``, or the one-line refusal of a model dvc-monitor did not train (no kind
    config, so nothing to score or watch it with): what score, watch, serve, gate and
    compare say. ``what`` names it (default ``NAME at REV``); ``error``, ``lead`` and
    ``then`` are the command's exit code, its lead-in and the next step it suggests."""
    if state.is_monitor_model:
        return state
    why = state.skipped[0] if state.skipped else "its model file is not loaded"
    raise error(f"{lead}{what or f'{state.name} at {state.label}'} is not a model dvc-monitor "
                f"trained (no {state.layout.monitor}; {why}); {then}")


def refuse_adopted(root: str | Path, name: str, doing: str, then: str) -> None:
    """Raise the one line for a command that works only on models dvc-monitor's own stages
    train (``doing``: what it does) when ``name`` is an adopted model; ``then``: what to
    do instead. Returns when it is not one (the caller says what it says today)."""
    try:
        state = read_state(root, name, None)
    except DvcMonitorError:
        return
    if state.adopted:
        raise UsageError(f"{name} is trained by its own pipeline (adopted with "
                         f"'dvc-monitor adopt'), so dvc-monitor does not {doing}; {then}")


def _yaml(text: str | None, rel: str, where: str) -> Any:
    if text is None:
        return None
    try:
        return parse_yaml(text, f"{rel} at {where}")
    except DvcMonitorError as exc:
        raise TemplateError(str(exc)) from None


def list_models(root: str | Path) -> list[str]:
    """Models of the workspace: every ``models/NAME/monitor.yaml`` (NAME may contain '/'),
    then every artifact the root ``dvc.yaml`` declares, in any layout."""
    root = GitRepo.discover(root).root
    names = []
    base = root / MODELS_DIR
    if base.is_dir():
        for path in sorted(base.rglob(ModelLayout.MONITOR)):
            rel = path.parent.relative_to(base).as_posix()
            if rel != "." and "/data/" not in f"/{rel}/":
                names.append(rel)
    dvc_yaml = root / "dvc.yaml"
    if dvc_yaml.is_file():
        try:
            doc = parse_yaml(dvc_yaml.read_text(errors="replace"), "dvc.yaml")
        except DvcMonitorError as exc:
            raise TemplateError(str(exc)) from None
        arts = doc.get("artifacts") if isinstance(doc, dict) else None
        if isinstance(arts, dict):
            names += [str(n) for n in arts if str(n) not in names]
    return names


def resolve_name(root: str | Path, name: str | None) -> str:
    """``name`` itself, or the only model of the repository when ``name`` is None."""
    if name is not None:
        if ":" not in name:
            ModelLayout(name)  # validates
        return name
    names = list_models(root)
    if len(names) == 1:
        return names[0]
    if not names:
        raise UnknownModel("this repository has no model (no dvc.yaml 'artifacts:' entry); "
                           "create one with 'dvc-monitor init --template KIND --name NAME'")
    raise UsageError(f"this repository has {len(names)} models ({', '.join(names)}); "
                     "name the one to use")


# -- DVC cache --------------------------------------------------------------------------


def _fetch(root: Path, commit: str | None, targets: list[str]) -> None:
    """``dvc fetch`` of ``targets`` as recorded at ``commit`` (None: the workspace's).

    Only adds objects to the cache; the workspace is never touched.
    """
    import contextlib
    import io
    import logging
    import os

    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    # DVC's own warnings (e.g. "missing cache files") would repeat what we report.
    loggers = [logging.getLogger(n) for n in ("dvc", "dvc_data", "dvc_objects")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()), Repo(str(root)) as repo:
            # At a revision DVC reads that commit's git tree, whose root is "/": a path
            # of the work tree there is "no such output" (seen with dvc 3.67).
            paths = [f"/{t}" if commit else os.path.relpath(root / t) for t in targets]
            repo.fetch(targets=paths, revs=[commit] if commit else None,
                       workspace=commit is None)
    except DvcException as exc:  # a remote that is not reachable or lacks the objects
        first = " ".join(str(exc).split()) or type(exc).__name__
        raise ExternalCommandError(f"dvc fetch failed: {first}") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def cache_objects(state: ModelState, md5s: list[str], target: str,
                  what: str) -> dict[str, bytes]:
    """The DVC cache objects ``md5s`` of ``state``'s revision (md5 -> bytes), fetching the
    missing ones for ``target`` once; ``what`` names them in the error when they are
    nowhere."""
    root = state.root
    objects = objects_dir(root)
    missing = [m for m in md5s if not (objects / m[:2] / m[2:]).is_file()]
    if missing:
        from dvc_monitor.repo import dvc as dvcops

        objects = Path(dvcops.md5_cache_dir(root))  # DVC's own answer (any config level)
        missing = [m for m in md5s if not (objects / m[:2] / m[2:]).is_file()]
    if missing:
        try:
            _fetch(root, state.commit, [target])
        except ExternalCommandError as exc:
            raise MissingObjects(
                f"{what} at {state.label} is not in the local DVC cache and could not be "
                f"fetched ({exc}); run 'dvc fetch --rev {state.commit or 'HEAD'}' with a "
                "reachable remote"
            ) from None
        still = [m for m in missing if not (objects / m[:2] / m[2:]).is_file()]
        if still:
            raise MissingObjects(
                f"{what} at {state.label} (md5 {still[0]}) is in neither the local DVC cache "
                "nor the remote; push it from a machine that has it ('dvc push')"
            )
    return {m: (objects / m[:2] / m[2:]).read_bytes() for m in md5s}


# -- models and data --------------------------------------------------------------------


def load_model(state: ModelState) -> Any:
    """The model of ``state``, loaded safely (skops, our trusted-type list; never pickle).

    The workspace's model file is used as it is (a note is added when it differs from
    dvc.lock); a revision's model comes from the DVC cache by the md5 its dvc.lock records.
    """
    from dvc_monitor.model.files import file_md5, load_model_bytes
    from dvc_monitor.model.files import load_model as load_file

    layout = state.layout
    rel = state.model_path
    if state.model is not None and state.model.model_format in ("pickle", "joblib"):
        raise UnknownModel(f"{rel} at {state.label} is a {state.model.model_format}: "
                           f"dvc-monitor never loads one; {SKOPS_ADVICE}")
    trusted = state.trusted_types
    loaded = None
    if state.is_workspace:
        path = state.root / rel
        if path.is_file():
            if state.model_md5 and file_md5(path) != state.model_md5:
                state.notes.append(f"the workspace {rel} differs from dvc.lock "
                                   "(run 'dvc repro' before reviewing)")
            loaded = load_file(path, trusted=trusted)
    if loaded is None:
        if not state.model_md5:
            raise UnknownModel(
                f"{state.model.lock_path if state.model else layout.dvc_lock} at {state.label} "
                "records no trained model; run 'dvc repro' and commit dvc.lock"
            )
        data = cache_objects(state, [state.model_md5], rel, rel)[state.model_md5]
        loaded = load_model_bytes(data, state.model_md5, source=f"{rel} at {state.label}",
                                  trusted=trusted)
    if not state.adopted:
        return loaded
    return bind_adopted(state, loaded)


SKOPS_ADVICE = ("save it with skops instead: skops.io.dump(model, \"model.skops\") in your "
                "training script, and declare model.skops under artifacts:")


def bind_adopted(state: ModelState, estimator: Any) -> Any:
    """An adopted model's estimator, checked for the methods its kind needs and bound to
    what scoring needs (``kinds.adopted``: threshold, a forecast's interval)."""
    spec = state.spec
    missing = spec.missing_methods(estimator, state.config)
    if missing:
        raise TemplateError(f"{state.model_path} at {state.label} is a "
                            f"{type(estimator).__name__} without {', '.join(missing)}, which "
                            f"its kind ({spec.name}) needs; adopt it as another kind")
    reference = load_reference(state) if spec.binds_reference and state.reference_path else None
    return spec.bind(estimator, state.config, reference)


# -- reference rows of an adopted model ---------------------------------------------------

ROW_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def read_rows_file(handle, name: str, source: str) -> "pd.DataFrame":
    """Rows of one CSV (plain or gzip) or Parquet file, by its name's suffix."""
    import pandas as pd

    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(handle)
        return pd.read_csv(handle, compression="gzip" if name.endswith(".gz") else None)
    except ImportError as exc:
        raise TemplateError(f"{source}: {' '.join(str(exc).split())}") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise SchemaError(f"{source} cannot be read as rows ({detail}); give a CSV or Parquet "
                          "file") from None


def load_reference(state: ModelState) -> "pd.DataFrame":
    """An adopted model's reference rows at ``state``'s revision: its ``reference`` file, or
    every CSV/Parquet file of its folder, git-tracked or DVC-tracked (read through DVC:
    from the cache, fetched from the remote when missing). The workspace's are read from
    disk."""
    import pandas as pd

    rel = state.reference_path
    if rel is None:
        raise UsageError(f"{state.name} has no reference data (its {state.layout.monitor} "
                         "names no reference:); adopt it again with --reference PATH (for "
                         "example your test split) and commit it")
    where = f"{rel} at {state.label}"
    if state.is_workspace:
        path = state.root / rel
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(ROW_SUFFIXES))
            frames = [read_rows_file(p, p.name, f"{rel}/{p.relative_to(path).as_posix()}")
                      for p in files]
        elif path.is_file():
            frames = [read_rows_file(path, path.name, where)]
        else:
            raise TemplateError(f"the reference {where} does not exist; run 'dvc pull' (or "
                                "'dvc repro') to make it, or fix reference: in "
                                f"{state.layout.monitor}")
    else:
        frames = _reference_at_revision(state, rel, where)
    if not frames:
        raise TemplateError(f"the reference {where} holds no CSV or Parquet file")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _reference_at_revision(state: ModelState, rel: str, where: str) -> list["pd.DataFrame"]:
    import contextlib
    import io
    import logging

    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException

    loggers = [logging.getLogger(n) for n in ("dvc", "dvc_data", "dvc_objects")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            fs = DVCFileSystem(str(state.root), rev=state.commit)
            if not fs.exists(rel):
                raise TemplateError(f"the reference {where} does not exist (neither git nor DVC "
                                    "tracks it there); commit it, or fix reference: in "
                                    f"{state.layout.monitor}")
            names = ([n for n in sorted(fs.find(rel)) if n.endswith(ROW_SUFFIXES)]
                     if fs.isdir(rel) else [rel])
            frames = []
            for name in names:
                with fs.open(name, "rb") as handle:
                    frames.append(read_rows_file(handle, name, f"{name} at {state.label}"))
            return frames
    except DvcMonitorError:
        raise
    except (DvcException, OSError) as exc:
        first = " ".join(str(exc).split()) or type(exc).__name__
        raise MissingObjects(f"the reference {where} could not be read ({first}); run "
                             f"'dvc fetch --rev {state.commit}' with a reachable remote") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def holdout_data(state: ModelState) -> "Split":
    """The rows a version is judged on: an adopted model's reference rows, else its data
    cut by its recorded holdout rule (``split_data``)."""
    if state.adopted:
        import pandas as pd

        return Split(load_reference(state), pd.DataFrame())
    return split_data(state, load_data(state))


def load_data(state: ModelState) -> "pd.DataFrame":
    """All data partitions of ``state`` with their ``_row`` keys (see ``data.read_partitions``):
    those of its sealed segments (their ``.dvc`` files at that revision) and of ``data/``."""
    from dvc_monitor.model.data import partition_files, read_partitions
    from dvc_monitor.model.segments import sealed_at

    layout = state.layout
    folders = (state.root / layout.data, state.root / layout.segments)
    if state.is_workspace and partition_files(*folders):
        return read_partitions(*folders)
    if not state.data_md5 or not state.data_md5.endswith(".dir"):
        raise UnknownModel(f"{layout.data_dvc} at {state.label} tracks no data directory; "
                           f"add data with 'dvc-monitor ingest {state.name} FILE'")
    what = f"the data of {state.name}"
    sources = {**sealed_at(GitRepo(state.root), state.commit, layout),
               layout.data: state.data_md5}
    with tempfile.TemporaryDirectory(prefix="dvc-monitor-data-") as tmp:
        for target, md5 in sources.items():
            if not md5 or not md5.endswith(".dir"):
                raise UnknownModel(f"{target}.dvc at {state.label} tracks no data directory; "
                                   "restore it from git")
            listing_raw = cache_objects(state, [md5], target, what)[md5]
            try:
                listing = json.loads(listing_raw)
                entries = [(str(e["relpath"]), str(e["md5"])) for e in listing]
            except (ValueError, KeyError, TypeError):
                raise MissingObjects(f"the DVC cache entry for {what} at {state.label} is "
                                     "corrupt; remove it from .dvc/cache and fetch again") from None
            blobs = cache_objects(state, sorted({m for _, m in entries}), target, what)
            for relpath, md5 in entries:
                rel = PurePosixPath(relpath)
                if rel.is_absolute() or ".." in rel.parts or len(rel.parts) != 1:
                    continue  # partitions are top-level files; ignore anything else
                (Path(tmp) / rel.name).write_bytes(blobs[md5])
        return read_partitions(tmp)


def ensure_data_manifest(state: ModelState) -> None:
    """Fetch the ``.dir`` manifests of ``state``'s data (and sealed segments) when the local
    cache lacks them.

    After ``dvc pull`` in CI only the workspace's objects are local; the base revision's
    manifests are what list its partitions. Best effort: a failure leaves the diff's note.
    """
    from dvc_monitor.model.segments import sealed_at

    sources = {state.layout.data: state.data_md5}
    try:
        sources.update(sealed_at(GitRepo(state.root), state.commit, state.layout))
    except DvcMonitorError:
        pass
    for target, md5 in sources.items():
        if not md5 or not md5.endswith(".dir") or object_path(state.root, md5).is_file():
            continue
        try:
            cache_objects(state, [md5], target, f"the data of {state.name}")
        except DvcMonitorError:
            pass


@dataclass
class Split:
    """A revision's data cut by its recorded holdout rule."""

    holdout: "pd.DataFrame"
    history: "pd.DataFrame"


def split_data(state: ModelState, df: "pd.DataFrame") -> Split:
    """``df`` cut into holdout and history by the holdout rule ``state`` recorded."""
    module = state.spec
    try:
        mask = module.holdout_mask(df, state.holdout_rule)
    except (KeyError, ValueError, TypeError) as exc:
        raise TemplateError(f"the holdout rule of {state.name} at {state.label} is not "
                            f"usable ({exc}); check 'prepare:' in {state.layout.params}") from None
    return Split(df[mask].reset_index(drop=True), df[~mask].reset_index(drop=True))


def check_fits(config: ModelConfig, df: "pd.DataFrame", source: str, who: str) -> None:
    """Refuse data that lacks a column the model ``who`` needs, or has non-numbers in one.

    Extra columns are allowed (production extracts often carry ids). A one-line
    ``SchemaError`` names the first problem.
    """
    import numpy as np
    import pandas as pd

    from dvc_monitor.errors import SchemaError

    missing = [c for c in config.features if c not in df.columns]
    if config.label and config.label_required and config.label not in df.columns:
        missing.append(config.label)
    if missing:
        needs = ", ".join(config.features)
        if config.label and config.label_required:
            needs += f" and the label {config.label}"
        raise SchemaError(f"{source} does not fit {who}: missing column(s) "
                          f"{', '.join(missing)}; the model needs {needs}")
    if len(df) == 0:
        raise SchemaError(f"{source} has no rows")
    needed = list(config.features)
    if config.label and config.label in df.columns and (
            config.label_required or df[config.label].notna().all()):
        needed.append(config.label)
    for col in needed:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna().to_numpy() | np.isinf(values.to_numpy(dtype=float))
        if bad.any():
            row = int(bad.nonzero()[0][0])
            raise SchemaError(
                f"{source} does not fit {who}: column {col!r} has a non-numeric or missing "
                f"value {df[col].iloc[row]!r} on data row {row + 1}"
            )

"""``dvc-monitor adopt``: declare a model its user's own pipeline trains as a monitored model.

The model is found as every command finds it (``model.revision``: its ``artifacts:``
entry and the stage that outputs it). ``adopt`` checks at once what it can, each failure
one line that says what to do, and only then writes ``monitor.yaml`` beside the pipeline
(the same file the templates use), for the user to review and commit:

1. the kind, the features and the trusted type names are well formed;
2. the model file is in the workspace and is a skops archive (a pickle is never loaded:
   the one-line change to the training script is printed instead);
3. its types are on dvc-monitor's allow-list or listed with ``--trust``;
4. the estimator has the methods the kind needs, and was fitted on the features given;
5. the reference rows exist, carry the features (and the label), and the estimator scores
   them: their metrics are shown.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path

from dvc_monitor.errors import (
    DvcMonitorError,
    SchemaError,
    TemplateError,
    UnknownModel,
    UnsafeModelFile,
    UsageError,
    shown,
)
from dvc_monitor.kinds import KINDS, kind_for
from dvc_monitor.model.data import DEFAULT_INTERVAL, DOTTED_NAME, ModelConfig
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.values import JsonValue

HEADER = ("# dvc-monitor: this model is trained by its own pipeline and monitored by "
          "dvc-monitor.\n# Written by 'dvc-monitor adopt'; review it (trusted_types above "
          "all) and commit it.\n")


@dataclass(frozen=True)
class AdoptResult(JsonValue):
    """What ``adopt`` wrote and checked."""

    name: str
    kind: str
    monitor: str  # the monitor.yaml written (repo-relative)
    model_path: str
    features: tuple[str, ...]
    label: str | None
    reference: str | None  # repo-relative
    threshold: float | None
    trusted_types: tuple[str, ...]
    checks: tuple[str, ...]  # what was checked, one line each
    reference_metrics: dict | None  # the model's metrics on the reference rows
    updated: bool  # an earlier adopt's monitor.yaml was replaced
    next_steps: tuple[str, ...]


def parse_features(features: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``a,b,c`` or a list -> the feature names; one line for an empty or repeated one."""
    items = features.split(",") if isinstance(features, str) else list(features)
    names = tuple(str(f).strip() for f in items)
    if not names or any(not n for n in names):
        raise UsageError("--features needs the comma-separated names of the columns the model "
                         "reads, e.g. --features amount,hour,distance")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"--features names {shown(dup[0])} twice; list each column once")
    return names


def adopt(root: str | Path, name: str, kind: str, features: str | list[str] | tuple[str, ...],
          *, label: str | None = None, reference: str | Path | None = None,
          threshold: float | None = None, trust: list[str] | tuple[str, ...] = (),
          interval: float | None = None) -> AdoptResult:
    """Declare ``name``, an artifact its own pipeline trains, as a monitored ``kind`` model.

    ``reference`` is a file or folder of rows (absolute, or relative to the repository
    root). Writes ``monitor.yaml`` beside the pipeline only when every check passes.
    """
    from dvc_monitor.model.revision import read_models, require_model

    if ":" in name:
        raise UsageError(f"{shown(name)} names an artifact of a nested dvc.yaml (GTO's "
                         "PATH:NAME), which a registry tag cannot hold yet; declare it in the "
                         "root dvc.yaml's artifacts: (path: PATH/model.skops) and adopt NAME")
    if kind not in KINDS:
        raise UsageError(f"unknown kind {shown(kind)}; expected one of {', '.join(KINDS)}")
    spec = kind_for(kind, adopted=True)
    names = parse_features(features)
    trusted = _trusted(trust)
    if threshold is not None and (isinstance(threshold, bool) or not math.isfinite(threshold)):
        raise UsageError(f"--threshold must be a number, not {shown(threshold)}")
    if interval is not None and not 0 < interval < 1:
        raise UsageError(f"--interval must be a share between 0 and 1 (e.g. 0.9), not "
                         f"{shown(interval)}")
    if label is not None and label in names:
        raise UsageError(f"the label {shown(label)} is also a feature; a model may not read "
                         "its own answer")
    git = GitRepo.discover(root)
    root = git.root
    model = read_models(git, name, [None])[None]
    if model.problem and "unknown" in model.notes:
        raise UnknownModel(f"this repository has no model {shown(name)}: declare it under "
                           "artifacts: in the dvc.yaml whose stage writes it, then adopt it")
    require_model(model)
    layout = ModelLayout(name, folder=model.pipeline_dir)
    previous = _previous(root, layout, name)
    checks = [f"{model.model_path}: the artifact {name}, written by stage "
              f"{model.stage or '?'} of {posixpath.join(model.pipeline_dir, 'dvc.yaml')}"]

    estimator = _load_estimator(root, model.model_path, trusted, checks)
    config = ModelConfig(kind=kind, name=name, features=names, label=label,
                         label_required=False, adopted=True, threshold=threshold,
                         interval=DEFAULT_INTERVAL if interval is None else float(interval),
                         trusted_types=trusted)
    missing = spec.missing_methods(estimator, config)
    if missing:
        raise TemplateError(f"{model.model_path} holds a {type(estimator).__name__}, which has "
                            f"no {', '.join(missing)}: {article(kind)} {kind} model needs it; "
                            "adopt it as "
                            "another kind (--kind)")
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and sorted(map(str, fitted)) != sorted(names):
        raise SchemaError(f"{model.model_path} was fitted on the columns "
                          f"{shown(','.join(map(str, fitted)))}, not on --features "
                          f"{shown(','.join(names))}; give the columns it was fitted on")
    checks.append(f"the {type(estimator).__name__} has the methods {article(kind)} {kind} model "
                  "needs")

    rel_ref, metrics = None, None
    if reference is not None:
        rel_ref = _repo_path(root, reference)
        metrics = _check_reference(root, rel_ref, config, estimator, spec, model.outs, checks)
    stored = replace(config, reference=posixpath.relpath(rel_ref, layout.dir) if rel_ref else None)
    _write_monitor(root / layout.monitor, stored)
    monitor = layout.monitor
    return AdoptResult(
        name=name, kind=kind, monitor=monitor, model_path=model.model_path, features=names,
        label=label, reference=rel_ref, threshold=threshold, trusted_types=trusted,
        checks=tuple(checks), reference_metrics=metrics, updated=previous,
        next_steps=(f"git add {monitor} && git commit -m 'Monitor {name} with dvc-monitor'",
                    f"dvc-monitor register {name}"),
    )


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _trusted(trust) -> tuple[str, ...]:
    for item in trust:
        if not isinstance(item, str) or not DOTTED_NAME.match(item):
            raise UsageError(f"--trust {shown(item)} is not a dotted type name (e.g. "
                             "sklearn.neighbors._kd_tree.KDTree)")
    return tuple(sorted(set(trust)))


def _previous(root: Path, layout: ModelLayout, name: str) -> bool:
    """True when ``monitor.yaml`` is an earlier ``adopt`` of this model; refuse to overwrite
    one dvc-monitor's own stages train, or another model's."""
    path = root / layout.monitor
    if not path.is_file():
        return False
    try:
        existing = ModelConfig.from_text(path.read_text(errors="replace"), layout.monitor)
    except DvcMonitorError:
        raise TemplateError(f"{layout.monitor} exists and is not a dvc-monitor model file; "
                            "move it away, then adopt again") from None
    if not existing.adopted:
        raise UsageError(f"{name} is already a model dvc-monitor trains ({layout.monitor}); "
                         "there is nothing to adopt")
    if existing.name and existing.name != name:
        raise UsageError(f"{layout.monitor} already adopts {shown(existing.name)}; one "
                         "pipeline folder holds one adopted model")
    return True


def _load_estimator(root: Path, model_path: str, trusted: tuple[str, ...], checks: list[str]):
    from dvc_monitor.model.files import (
        inspect_model_file,
        load_model,
        sniff_file,
    )
    from dvc_monitor.model.state import SKOPS_ADVICE

    path = root / model_path
    if not path.is_file():
        raise TemplateError(f"{model_path} is not in the workspace; run 'dvc repro' (or "
                            "'dvc pull') to make it, then adopt it")
    fmt = sniff_file(path)
    if fmt in ("pickle", "joblib"):
        raise UnsafeModelFile(f"{model_path} is a {fmt}, which dvc-monitor never loads (loading "
                              f"one runs code); {SKOPS_ADVICE}")
    check = inspect_model_file(path, trusted=trusted, as_written=True)
    if check.untrusted:
        listed = " ".join(f"--trust {t}" for t in check.untrusted)
        raise UnsafeModelFile(f"{model_path} holds types outside dvc-monitor's allow-list: "
                              f"{', '.join(check.untrusted)}; if you trust them, adopt again "
                              f"with {listed}")
    if not check.safe:
        raise UnsafeModelFile(f"{check.reason}; save the model with skops.io.dump")
    checks.append(f"{model_path} is a skops archive"
                  + (f" (trusted by you: {', '.join(trusted)})" if trusted else
                     " of types on dvc-monitor's allow-list"))
    return load_model(path, trusted=trusted)


def _repo_path(root: Path, reference: str | Path) -> str:
    path = Path(reference)
    path = path if path.is_absolute() else root / path
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"the reference {shown(str(reference))} is outside the repository; "
                         "keep the reference rows in it (git or DVC tracked)") from None
    return rel


def _check_reference(root: Path, rel: str, config: ModelConfig, estimator, spec, outs,
                     checks: list[str]) -> dict:
    import pandas as pd

    from dvc_monitor.kinds.common import clean_number
    from dvc_monitor.model.state import ROW_SUFFIXES, read_rows_file

    path = root / rel
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(ROW_SUFFIXES))
    elif path.is_file():
        files = [path]
    else:
        raise UsageError(f"the reference {shown(rel)} does not exist; give a file or folder of "
                         "rows (e.g. your test split), after 'dvc repro' or 'dvc pull'")
    if not files:
        raise SchemaError(f"the reference {shown(rel)} holds no CSV or Parquet file")
    frames = [read_rows_file(p, p.name, p.relative_to(root).as_posix()) for p in files]
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    missing = [c for c in config.columns if c not in rows.columns]
    if missing:
        raise SchemaError(f"the reference {shown(rel)} lacks the column(s) "
                          f"{shown(', '.join(missing))}; its columns are "
                          f"{shown(', '.join(map(str, rows.columns)))}")
    if len(rows) == 0:
        raise SchemaError(f"the reference {shown(rel)} has no rows")
    try:
        bound = spec.bind(estimator, config, rows)
        metrics, _ = spec.evaluate(bound, rows, config, {})
    except DvcMonitorError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise SchemaError(f"the model could not score the reference {shown(rel)} ({detail}); "
                          "do its columns fit the model?") from None
    tracked = _tracked(root, rel, outs)
    checks.append(f"the reference {rel}: {len(rows)} rows with the features"
                  + (" and the label" if config.label else "")
                  + (f", {tracked}" if tracked else
                     "; not tracked yet: 'git add' or 'dvc add' it before you commit"))
    return clean_number(metrics)


def _tracked(root: Path, rel: str, outs) -> str | None:
    """How ``rel`` is tracked: "tracked by git", "tracked by DVC", or None."""
    inside = lambda d: rel == d or rel.startswith(d.rstrip("/") + "/")  # noqa: E731
    if any(inside(o) for o in outs):
        return "a DVC output of the pipeline"
    parts = rel.split("/")
    for i in range(len(parts), 0, -1):
        if (root / ("/".join(parts[:i]) + ".dvc")).is_file():
            return "tracked by DVC"
    if GitRepo(root).ok("ls-files", "--error-unmatch", "--", rel):
        return "tracked by git"
    return None


def _write_monitor(path: Path, config: ModelConfig) -> None:
    import os

    import yaml

    text = HEADER + yaml.safe_dump(config.to_yaml(), sort_keys=False, default_flow_style=False)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TemplateError(f"cannot write {path.name}: {exc.strerror or exc}") from None

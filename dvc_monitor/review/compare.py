"""``dvc-monitor compare``: several registered versions of one model, evaluated on the same data.

Each version's model file is loaded safely (``modelio``: skops with our trusted-type
list) from the DVC cache by the md5 its ``dvc.lock`` records, fetched from the remote
when missing; the workspace is never changed. The data is a CSV file (``--data``: a
holdout or fresh production data) or, by default, the holdout rows of the workspace's
data (the rows no version trained on: the holdout rule is stable per row).

Every version is scored with the same evaluation settings (the workspace's
``evaluate:`` params), so the numbers are comparable. ``--best`` names the winner by
``--metric`` (default: the kind's primary metric, ``Kind.primary_metric``). For anomaly
data without labels only label-free numbers exist (alert rate, score quantiles), and
``--best`` is refused for a metric that needs labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_monitor.errors import DvcMonitorError, UnknownModel, UsageError
from dvc_monitor.kinds import Kind, kind_for, metric_directions
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.values import JsonValue


@dataclass
class VersionResult:
    ref: str  # as given on the command line
    version: str  # vX.Y.Z, or "workspace"
    commit: str | None
    id: str | None
    model_md5: str | None
    metrics: dict
    rank: int | None = None


@dataclass
class CompareResult(JsonValue):
    name: str
    kind: str
    data: str  # where the rows came from
    rows: int
    labelled: bool
    metric: str | None  # the ranking metric (None: cannot rank on this data)
    direction: str | None
    best: str | None  # version of the winner (when ranked)
    tie: list[str] = field(default_factory=list)  # versions tied with the winner
    versions: list[VersionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    adopted: bool = False  # trained by its own pipeline (scored through its own methods)


def _split_ref(ref: str) -> tuple[str | None, str]:
    """("NAME", rest) for ``NAME@x`` / ``NAME#x``, else (None, ref)."""
    cut = min((i for i in (ref.find("@"), ref.find("#")) if i > 0), default=-1)
    if cut < 0:
        return None, ref
    return ref[:cut], ref[cut:]


def resolve_versions(root: Path, name: str, refs: list[str]) -> list[tuple[str, Any]]:
    """(ref, ModelVersion or None for the workspace) for each reference, or a one-line error."""
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.review.revision import WORKSPACE

    if not refs:
        raise UsageError("give at least one version to compare, e.g. v1.0.0 v1.1.0")
    for ref in refs:
        other, _ = _split_ref(ref)
        if other is not None and other != name:
            raise UsageError(f"{ref!r} is a version of {other!r}, not of {name!r}; "
                             "compare versions of one model at a time")
    registry = None
    out = []
    seen: dict[str, str] = {}
    for ref in refs:
        if ref == WORKSPACE:
            mv = None
            key = WORKSPACE
        else:
            if registry is None:
                registry = Registry.load(root)
                if name not in registry.models():
                    raise UnknownModel(f"model {name!r} has no registered versions here; "
                                       f"register one with 'dvc-monitor register {name}'")
            _, rest = _split_ref(ref)
            mv = registry.get(f"{name}{rest}") if rest[:1] in ("@", "#") \
                else registry.resolve(name, ref)
            key = f"{mv.version}"
        if key in seen:
            raise UsageError(f"{ref!r} and {seen[key]!r} are the same version ({key}); "
                             "list each version once")
        seen[key] = ref
        out.append((ref, mv))
    return out


def load_rows(root: Path, name: str, data: str | Path | None, kind: "str | Kind"):
    """(rows, history, description): the rows to evaluate on, and the rows before them
    (for a kind that needs history)."""
    from dvc_monitor.model.data import read_batch
    from dvc_monitor.model import state as model_state

    spec = kind_for(kind)
    if data is None:
        state = model_state.read_state(root, name, None)
        split = model_state.split_data(state, model_state.load_data(state))
        history = split.history if spec.needs_history else None
        return split.holdout, history, "holdout rows of the workspace data"
    path = Path(data)
    if not path.is_absolute():
        path = Path.cwd() / path
    df = read_batch(path)
    df.insert(0, "_row", [f"{path.name}:{i}" for i in range(len(df))])
    history = None
    if spec.needs_history and spec.time_column in df.columns:
        history = _history_before(root, name, df, spec.time_column)
    return df, history, str(data)


def _history_before(root: Path, name: str, df, time_column: str):
    """The workspace's rows before the first time of ``df`` (lag features need them)."""
    import pandas as pd

    from dvc_monitor.model import state as model_state

    try:
        state = model_state.read_state(root, name, None)
        past = model_state.load_data(state)
    except DvcMonitorError:  # no workspace data: the first hours of df serve as history
        return None
    first = pd.to_numeric(df[time_column], errors="coerce").min()
    past = past[past[time_column] < first]
    return past.reset_index(drop=True) if len(past) else None


def _numeric(df, columns):
    import pandas as pd

    out = df.copy()
    for col in columns:
        if col in out.columns:
            out[col] = pd.to_numeric(out[col])
    return out


def compare(root: str | Path, name: str, refs: list[str], data: str | Path | None = None,
            metric: str | None = None, best: bool = False) -> CompareResult:
    """Evaluate the versions ``refs`` of ``name`` on the same rows; see the module doc."""
    from dvc_monitor.model import state as model_state
    from dvc_monitor.evaluation import scoring
    from dvc_monitor.kinds.common import labels_of
    from dvc_monitor.review import samedata

    started = time.perf_counter()
    root = GitRepo.discover(root).root
    name = model_state.resolve_name(root, name)
    resolved = resolve_versions(root, name, refs)
    states = [(ref, mv, model_state.read_state(root, name, None if mv is None else mv.commit))
              for ref, mv in resolved]
    latest_mv, latest = _latest(states)
    # versions registered before the model was adopted are judged as the newest one
    states = [(ref, mv, samedata.judged_as_head(state, latest, "the newest version's"))
              for ref, mv, state in states]
    for _, _, state in states:
        model_state.require_trained(state, error=UsageError, lead=f"cannot compare {name}: ",
                                     then="use 'dvc-monitor report' or 'dvc-monitor diff' for its "
                                    "params, data and metrics")
    kinds = {s.kind for _, _, s in states}
    if len(kinds) > 1:
        raise UsageError(f"the versions of {name} are of different kinds "
                         f"({', '.join(sorted(kinds))}); they cannot be compared")
    kind = kinds.pop()
    spec = latest.spec  # an adopted model's kind is its adopted form
    if data is None and latest.adopted:  # the reference rows of the newest version compared
        rows, history = model_state.holdout_data(latest).holdout, None
        source = (f"reference rows {latest.reference_path} of "
                  f"{latest_mv.version if latest_mv else model_state.WORKSPACE}")
    else:
        rows, history, source = load_rows(root, name, data, spec)
    for ref, mv, state in states:
        model_state.check_fits(state.config, rows, source,
                               f"{name} {mv.version if mv else model_state.WORKSPACE}")
        rows = _numeric(rows, state.config.columns)
    directions = metric_directions(spec)
    # One evaluation setting for every version: the workspace's, else the newest listed
    # (none for an adopted model: its params.yaml is its own pipeline's).
    if latest.adopted:
        eval_params: dict = {}
    else:
        try:
            eval_params = model_state.read_state(root, name, None).evaluate_params
        except UnknownModel:
            eval_params = states[-1][2].evaluate_params

    config = states[-1][2].config
    labels = labels_of(rows, config) if config.label else None
    labelled = not spec.uses_labels or (labels is not None
                                        and 0 < int(labels.sum()) < len(labels))

    metric = metric or spec.primary_metric
    problem = _ranking_problem(spec, metric, directions, labelled)
    if problem and best:
        raise UsageError(problem)

    results = []
    models: dict[str, Any] = {}
    for ref, mv, state in states:
        key = state.model_md5 or f"workspace:{ref}"
        if key not in models:
            models[key] = model_state.load_model(state)
        metrics = scoring.evaluate_on(state.spec, models[key], state.config, rows, eval_params,
                                     history)
        results.append(VersionResult(
            ref=ref, version=mv.version if mv else model_state.WORKSPACE,
            commit=state.commit, id=mv.id if mv else None,
            model_md5=state.model_md5, metrics=metrics,
        ))
    if not problem and not any(metric in r.metrics for r in results):
        problem = f"no version recorded {metric!r} on this data"
        if best:
            raise UsageError(problem)
    result = CompareResult(
        name=name, kind=kind, adopted=latest.adopted, data=source, rows=int(len(rows)), labelled=labelled,
        metric=None if problem else metric, direction=None if problem else directions[metric],
        best=None, versions=results,
    )
    notes = [n for _, _, s in states for n in s.notes]
    if problem:
        notes.append(f"not ranked: {problem}")
    else:
        _rank(result)
    result.notes = notes
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _latest(states: list) -> tuple[Any, Any]:
    """(version, state) of the newest of the compared versions: the workspace (version
    None) when listed, else the greatest registered version, else the last listed."""
    from dvc_monitor.names import parse_semver

    for _, mv, state in states:
        if mv is None:
            return None, state
    registered = [(mv, state) for _, mv, state in states if mv.registered]
    if registered:
        return max(registered, key=lambda pair: parse_semver(pair[0].version))
    return states[-1][1], states[-1][2]


def _ranking_problem(kind: Kind, metric: str, directions: dict, labelled: bool) -> str | None:
    if metric not in directions:
        ranked = [m for m, d in directions.items() if d]
        return (f"unknown metric {metric!r} for a {kind.name} model; rank by one of "
                f"{', '.join(ranked)}")
    if directions[metric] is None:
        ranked = [m for m, d in directions.items() if d]
        return (f"{metric} has no better direction, so it cannot pick a winner; rank by one "
                f"of {', '.join(ranked)}")
    if metric in kind.label_metrics and not labelled:
        return (f"{metric} needs labels and this data has none (or only one class); compare "
                "label-free numbers without --best, or pass --data with labelled rows")
    return None


def _rank(result: CompareResult) -> None:
    higher = result.direction == "higher"
    scored = [r for r in result.versions if isinstance(r.metrics.get(result.metric), (int, float))]
    order = sorted(scored, key=lambda r: -r.metrics[result.metric] if higher
                   else r.metrics[result.metric])  # stable: ties keep the order given
    rank = 0
    previous = None
    for i, r in enumerate(order):
        value = r.metrics[result.metric]
        if previous is None or abs(value - previous) > 1e-12:
            rank = i + 1
            previous = value
        r.rank = rank
    if order:
        result.best = order[0].version
        result.tie = [r.version for r in order[1:] if r.rank == 1]


def table(result: CompareResult) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) for the CLI table: one row per version (``--json`` has every number)."""
    directions = metric_directions(kind_for(result.kind, adopted=result.adopted))
    present = list(dict.fromkeys(k for r in result.versions for k in r.metrics))
    ordered = ([result.metric] if result.metric in present else []) + \
        [m for m in directions if m in present and m != result.metric]
    if not result.labelled or len(ordered) < 3:  # label-free: show the score quantiles too
        ordered += [m for m in present if m not in directions and m != "n_holdout"]
    columns = ["version", "commit", *ordered, "rank"]
    rows = []
    for r in result.versions:
        rows.append([
            r.version, (r.commit or "workspace")[:7],
            *[_fmt(r.metrics.get(m)) for m in ordered],
            "-" if r.rank is None else (f"{r.rank} best" if r.version == result.best
                                        else str(r.rank)),
        ])
    return columns, rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

"""``dvc-monitor watch REF --data PATH``: measure windows read from CSV files with a
registered version and decide what to do, with the engine of ``monitoring.engine``.

Versions are loaded from the repository without touching the workspace; the rules are
the workspace's ``watch:`` section. With ``rollback=True`` a ``rollback`` decision runs
the atomic, verified rollback (``engine.act``) with a message that names the breach.

This module is also where the monitoring names the API lists are found.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from dvc_monitor.errors import UsageError, WatchActionFailed
from dvc_monitor.monitoring.engine import (
    AlarmChecks,
    Watcher,
    act,
    decide,
    evaluate_windows,
)
from dvc_monitor.monitoring.results import Decision, Subject, WatchResult, WindowResult
from dvc_monitor.monitoring.windows import (
    Window,
    check_window,
    read_windows,
    usable_rows,
    with_context,
)

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.kinds import Kind
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.registry.values import ModelVersion

# what ``api`` lists from here (the engine, its values and windows are also found in
# monitoring.engine, monitoring.results and monitoring.windows)
__all__ = [
    "Decision", "Subject", "WatchResult", "Watcher", "Window", "WindowResult", "decide",
    "evaluate_windows", "read_windows", "watch", "WindowSource",
]


@dataclass
class _Watched:
    """What ``watch REF`` watches: the version, its stage, and the workspace's rules."""

    root: Path
    registry: "Registry"
    mv: "ModelVersion"
    stage: str | None
    state: Any  # the version's review state
    rules: "WatchRules"
    kind: "Kind"  # the workspace's kind (its spec)
    note: str | None  # the rules are the template's defaults
    params: str  # where the rules are read from

    @property
    def name(self) -> str:
        return self.mv.name


class WindowSource(Protocol):
    """Windows measured elsewhere than in this process (``integrations.dask``): ``watch``
    asks it for the windows (their rows read only if a candidate must be judged on them)
    and for their results (``engine.count_window`` on the parts, ``engine.judge_window``
    of the counts added up)."""

    def windows(self, window: int | None, check: Callable[["pd.DataFrame"], None]) -> list[Window]:
        """The windows, each ``window`` rows (None: all rows one window); ``check``
        refuses columns the model cannot read (pass it an empty frame of the columns)."""
        ...

    def measure(self, subject: Subject, windows: list[Window], rules: "WatchRules",
                labels: str | None, progress: Callable[[str], None]) -> list[WindowResult]:
        """Each window's result, measured by ``subject``."""
        ...


def watch(root: str | Path, ref: str, data: "str | Path | WindowSource",
          window: int | None = None, labels: str | None = None, rollback: bool = False,
          output: str | Path | None = None, plots: bool = True,
          progress: Callable[[str], None] | None = None, retrain: bool = False,
          candidate_stage: str = "staging",
          retrain_report: str | Path | None = None) -> WatchResult:
    """``dvc-monitor watch REF --data PATH``: see the module docstring and
    ``monitoring.engine``. ``data`` may also be a ``WindowSource`` (a Dask job).

    Nothing in the repository changes unless ``rollback`` is set and the decision is
    ``rollback``. A rollback that cannot run (a dirty tree, no earlier holder) raises
    ``WatchActionFailed`` carrying the result. With ``retrain`` and a ``retrain``
    decision, a candidate is trained on the live windows on a branch of its own, registered
    in ``candidate_stage`` and reviewed (``monitoring.retrain``; ``retrain_report``: where
    its report goes); ``result.retrained`` says what was made.
    """
    from dvc_monitor.model import state as model_state

    say = progress or (lambda _m: None)
    watched = _resolve(root, ref)
    if retrain:
        _check_candidate_stage(candidate_stage, watched.stage)
    if window is not None:
        check_window(window, watched.rules, watched.params)
    source = None if isinstance(data, (str, Path)) else data
    what = "the data"
    if source is None and window is not None and streams(data, watched.state.spec):
        from dvc_monitor.monitoring.streaming import StreamingWindows

        source, what = StreamingWindows(data), Path(data).name
    elif source is not None and watched.state.spec.needs_history:
        raise UsageError(f"{watched.mv.ref} is a {watched.state.spec.name} model: a row is "
                         "scored from the rows before it, which another partition holds; "
                         "watch it without --engine dask")
    if source is None:
        windows = _read(watched, data, window, labels)
    else:
        windows = source.windows(window, lambda rows: _check(watched, rows, what, labels))
    loader = _loader(watched, say)
    subject = loader(watched.mv.version)
    kind = subject.spec
    if kind.needs_history:
        windows = with_context(windows, model_state.load_data(watched.state).drop(columns="_row"),
                               kind.time_column)
    checks = AlarmChecks.of(watched.registry, subject, watched.stage, watched.rules, loader)
    say(f"Watching {watched.name} {watched.mv.version} on {len(windows)} window(s)")
    measured = (None if source is None
                else source.measure(subject, windows, watched.rules, labels, say))
    result = evaluate_windows(loader, windows, watched.rules, watched.mv.version,
                              checks.candidates, watched.stage, labels, say, checks.hold,
                              checks.screen, measured)
    _add_notes(result, watched, subject)
    failed = _act(watched.root, result, watched.stage) if rollback else None
    if retrain and result.decision == "retrain":
        from dvc_monitor.monitoring.retrain import retrain_candidate

        made = retrain_candidate(watched.root, result, windows, watched.rules, subject,
                                 stage=candidate_stage, labels=labels, output=retrain_report,
                                 plots=plots, progress=say)
        result.retrained = made.to_json()
    if output:
        from dvc_monitor.monitoring.report import write_report

        write_report(result, output, plots=plots)
    if failed is not None:
        raise failed
    return result


def streams(data: str | Path, kind: "Kind") -> bool:
    """Whether ``watch --data DATA --window N`` reads ``DATA`` in chunks
    (``monitoring.streaming``): one file, of a kind that scores a row without the rows
    before it. A folder is one window per file (or per ``N`` rows of each), read whole."""
    return Path(data).is_file() and not kind.needs_history


def _check_candidate_stage(stage: str, watched: str | None) -> None:
    from dvc_monitor.errors import UsageError
    from dvc_monitor.names import validate_stage_name

    validate_stage_name(stage)
    if stage == watched:
        raise UsageError(f"the candidate stage must not be the watched stage {watched}: a "
                         "retrain never touches it; give --candidate-stage staging")


def _resolve(root: str | Path, ref: str) -> _Watched:
    """The version ``ref`` names, its stage, and the rules; a model dvc-monitor did not
    train has no rules and no scorer: refused before anything is read."""
    from dvc_monitor.monitoring.rules import rules_of
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.repo.git import GitRepo
    from dvc_monitor.model import state as model_state

    root = GitRepo.discover(root).root
    registry = Registry.load(root)
    mv = registry.get(ref)
    name = mv.name
    stage = ref.split("#", 1)[1] if "#" in ref else (mv.stages[0] if len(mv.stages) == 1 else None)
    state = model_state.require_trained(model_state.read_state(root, name, mv.commit), mv.ref)
    workspace = model_state.require_trained(model_state.read_state(root, name, None),
                                            f"{name} in the workspace")
    rules, note = rules_of(workspace.params, workspace.spec, workspace.layout.params)
    return _Watched(root, registry, mv, stage, state, rules, workspace.spec, note,
                    workspace.layout.params)


def _read(watched: _Watched, data: str | Path, window: int | None,
          labels: str | None) -> list[Window]:
    """The windows of ``data``, checked before any model is loaded: a missing column fails
    fast."""
    windows = read_windows(data, window)
    for w in windows:
        _check(watched, w.rows, f"window {w.name}", labels)
    return windows


def _check(watched: _Watched, rows: "pd.DataFrame", source: str, labels: str | None) -> None:
    """Refuse ``rows`` that lack a column the version reads (``SchemaError``)."""
    config = replace(watched.state.config, label_required=False)
    usable_rows(config, rows, source, f"{watched.name} {watched.mv.version}", labels,
                watched.kind)


def _loader(watched: _Watched, say: Callable[[str], None]) -> Callable[[str], Subject]:
    """``version -> Subject``, each version loaded once from its commit."""
    from dvc_monitor.monitoring.shadow import subject_loader

    return subject_loader(watched.root, watched.registry, watched.name, watched.state, say)


def _add_notes(result: WatchResult, watched: _Watched, subject: Subject) -> None:
    """The notes under a result: default rules, skipped rows, skipped candidates, a
    computed profile."""
    from dvc_monitor.evaluation.profiles import COMPUTED

    if watched.note:
        result.notes.append(watched.note)
    result.notes += [n for n in (w.skip_note() for w in result.windows) if n]
    if any(c.check == "metrics" for c in result.candidates):
        what = ("scores a worse primary metric than the holder on the holder's reference rows"
                if subject.config.adopted else "recorded a worse primary metric than the holder")
        result.notes.append(f"a candidate that {what} is skipped; 'allow_worse_metrics: true' "
                            "in watch: accepts it")
    if subject.profile.source == COMPUTED and subject.config.adopted:
        result.notes.append(f"{watched.mv.version}'s profile was computed from its reference "
                            f"rows ({watched.state.reference_path})")
    elif subject.profile.source == COMPUTED:
        result.notes.append(f"{watched.mv.version} has no reference.json; its profile was "
                            "computed from its holdout")


def _act(root: Path, result: WatchResult, stage: str | None) -> WatchActionFailed | None:
    """Act on the decision (``engine.act``); the error to raise when it cannot."""
    acted = act(root, result, stage)
    if acted.action == "no_holder":
        return WatchActionFailed(
            f"cannot roll back {result.name}: stage {stage or '(none)'} has no earlier "
            f"holder than {result.version}; decision: retrain", result)
    if acted.action == "no_stage":
        return WatchActionFailed(f"cannot roll back {result.name} {result.version}: it holds no "
                                 "single stage; watch NAME#STAGE", result)
    if acted.action == "failed":
        return WatchActionFailed(f"{acted.error} (decision: rollback to {result.target})",
                                 result, exit_code=acted.error.exit_code)
    return None

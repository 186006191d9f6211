"""``watch``: measure live windows with a registered version and decide what to do.

The core is pure and reusable (a server feeds it its own traffic windows)::

    watcher = Watcher(subject, rules)          # one version, its profile, the rules
    result = watcher.observe(window)           # -> WindowResult (measures, breaches, alarm)
    if result.alarm:                           # judge the candidates on the same windows
        decide(watcher.breaching_streak(result), those_windows, model_loader, candidates, rules)

    evaluate_windows(model_loader, windows, rules, current, candidates) -> WatchResult

``model_loader(version)`` returns a ``Subject`` (the version's model and reference
profile); ``windows`` are ``Window`` objects (rows, and for a forecaster the rows that
precede them). A row whose feature is not a finite number, or whose label is not 0 or 1,
is skipped and counted (``WindowResult.skipped``); a window left with fewer than the rules'
``min_rows`` rows is "too few rows": shown, never judged (no breach, no alarm, and it
neither extends nor breaks a streak). The decision:

- ``ok``: no ``failure_limit`` consecutive windows breached a rule;
- ``rollback``: the first candidate (earlier holders of the stage, most recent first,
  skipping the current version) that passes every rule on the same breaching windows
  is the ``target``;
- ``retrain``: rules are breached and no candidate passes (the inputs drifted: the
  feature PSIs name the features);
- ``hold``: the stage was rolled back automatically less than ``min_interval`` ago; no
  candidate is judged and nothing changes.

Candidates that ``trust.screen`` rejects (rolled back from, or a worse recorded primary
metric) are listed as skipped, with the check that decided, and never scored.

``watch`` (below) is the command: it reads the windows from CSV files, loads versions
from the repository without touching the workspace, and with ``rollback=True`` calls the
atomic, verified rollback with a message that names the breach.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from dvc_monitor.errors import DvcMonitorError, SchemaError, UsageError, WatchActionFailed

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.model.data import ModelConfig
    from dvc_monitor.evaluation.profiles import Profile
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.monitoring.trust import Hold

DECISIONS = ("ok", "rollback", "retrain", "hold")
CONTEXT_ROWS = 2000  # forecast: rows before a window kept for its lags


# -- value objects ----------------------------------------------------------------------


@dataclass
class Window:
    """Rows to measure; ``context``: the rows just before them (forecast lags)."""

    name: str
    rows: "pd.DataFrame"
    context: "pd.DataFrame | None" = None


@dataclass
class Subject:
    """One loaded version: what scores a window and what it is compared with."""

    name: str
    version: str
    kind: str
    config: "ModelConfig"
    model: Any
    profile: "Profile"


@dataclass
class Breach:
    measure: str
    rule: str
    limit: float
    value: float
    reference: float | None
    detail: str


@dataclass
class WindowResult:
    index: int
    window: str
    rows: int
    measures: dict
    feature_psi: dict
    breaches: list[Breach] = field(default_factory=list)
    streak: int = 0  # consecutive breaching windows ending here (counted ones)
    alarm: bool = False  # the streak reached failure_limit here
    cooling: bool = False  # inside a cooldown: not counted
    too_few_rows: bool = False  # fewer rows than the rules' min_rows: not judged
    skipped: dict = field(default_factory=dict)  # reason -> rows left out of the window

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    @property
    def status(self) -> str:
        """What a table shows: too few rows, ALARM, breach or ok (and a cooldown)."""
        if self.too_few_rows:
            return "too few rows"
        status = "ALARM" if self.alarm else ("breach" if self.breached else "ok")
        return status + (" (cooldown)" if self.cooling else "")

    def skip_note(self) -> str | None:
        """``window W: N row(s) skipped (why)``, when rows were left out."""
        if not self.skipped:
            return None
        n = sum(self.skipped.values())
        why = "; ".join(f"{k}: {v}" if len(self.skipped) > 1 else k
                        for k, v in self.skipped.items())
        return f"window {self.window}: {n} row{'s' if n != 1 else ''} skipped ({why})"


@dataclass
class CandidateResult:
    version: str
    passed: bool
    profile: str  # where its reference profile came from
    windows: list[WindowResult]  # on the breaching windows
    failures: list[str]
    check: str = "rules"  # which check decided: rules | rolled_back_from | metrics
    skipped: str | None = None  # why it was not scored (trust.screen)


@dataclass
class WatchResult:
    name: str
    kind: str
    stage: str | None
    version: str  # the version watched
    decision: str  # ok | rollback | retrain | hold
    target: str | None
    rules: dict
    windows: list[WindowResult]
    alarm_window: int | None  # index of the window where the alarm went off
    breaching_windows: list[str]
    breaches: list[Breach]  # on the breaching windows
    candidates: list[CandidateResult]
    drifted_features: dict  # feature -> largest PSI on the breaching windows (retrain)
    evidence: str
    profile: str  # where the watched version's reference profile came from
    rolled_back: dict | None = None  # {"commit", "tag", "message", "verified"} after --rollback
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    hold: dict | None = None  # decision hold: Hold.to_json()
    rollback: Any = field(default=None, repr=False, compare=False)  # the RollbackResult

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        out = to_jsonable(replace(self, rollback=None))
        out.pop("rollback")
        return out


# -- measuring --------------------------------------------------------------------------


def measure_window(subject: Subject, window: Window, rules: "WatchRules", index: int,
                   labels: str | None = None) -> WindowResult:
    """Score ``window`` with ``subject`` and apply ``rules`` (no streak logic). Rows that
    cannot be judged are skipped (``usable_rows``); with fewer than ``rules.min_rows``
    rows left, or scored, the result is ``too_few_rows`` and carries no measures."""
    from dvc_monitor.review.gate import MetricRow, check
    from dvc_monitor.evaluation.measures import directions, measure
    from dvc_monitor.evaluation.scoring import score_rows

    config = subject.config
    who = f"{subject.name} {subject.version}"
    rows, y, skipped = usable_rows(config, window.rows, f"window {window.name}", who,
                                   labels, subject.kind)
    if len(rows) < rules.min_rows:
        return WindowResult(index, window.name, int(len(rows)), {}, {}, too_few_rows=True,
                            skipped=skipped)
    scored = score_rows(subject.kind, subject.model, config, rows, window.context)
    if len(scored.score) == 0:
        raise SchemaError(f"window {window.name}: no row could be scored by {who} "
                          "(a forecaster needs the hours before the window)")
    if len(scored.score) < rules.min_rows:
        return WindowResult(index, window.name, int(len(scored.score)), {}, {},
                            too_few_rows=True, skipped=skipped)
    values, psis = measure(subject.kind, subject.profile, scored, rows, y)
    dirs = directions(subject.kind)
    result = WindowResult(index, window.name, int(len(scored.score)), values, psis,
                          skipped=skipped)
    for t in rules.thresholds:
        value = values.get(t.metric)
        if value is None:
            continue  # not measurable on this window (no labels)
        base = 0.0 if t.metric.startswith("psi_") else subject.profile.measures.get(t.metric)
        delta = None if base is None else value - base
        c = check(t, MetricRow(t.metric, base, value, delta, dirs.get(t.metric)))
        if c.status == "fail":
            result.breaches.append(Breach(t.metric, t.rule, t.limit, value, base, c.detail))
    return result


def usable_rows(config: "ModelConfig", rows: "pd.DataFrame", source: str, who: str,
                labels: str | None = None, kind: str | None = None):
    """``(rows, labels, skipped)``: the rows of a window that can be judged, their 0/1
    labels (None: the window is unlabelled) and ``{reason: rows}`` left out.

    A missing feature column (or an explicit ``labels`` column) is a ``SchemaError``: the
    file is wrong. A row whose feature is missing, NaN, infinite or not a number, or whose
    label is not 0 or 1, is left out and counted under its first reason. Without
    ``labels``, a window whose label column is absent or has an empty cell is unlabelled
    (labels arrive late); with ``labels``, a row without one is left out.
    """
    import numpy as np
    import pandas as pd

    from dvc_monitor.model.state import check_fits

    if any(c not in rows.columns for c in config.features):
        check_fits(replace(config, label_required=False), rows, source, who)  # names them
    if labels and labels not in rows.columns:
        raise SchemaError(f"{source} has no label column {labels!r}; drop --labels or add "
                          "the column")
    keep = np.ones(len(rows), dtype=bool)
    skipped: dict[str, int] = {}

    def drop(bad, reason: str) -> None:
        new = bad & keep
        if new.any():
            skipped[reason] = skipped.get(reason, 0) + int(new.sum())
            keep[new] = False

    for col in config.features:
        given = rows[col]
        values = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float)
        missing = given.isna().to_numpy()
        drop(missing, f"{col} is missing or NaN")
        drop(np.isnan(values) & ~missing, f"{col} is not a number")
        drop(np.isinf(values), f"{col} is infinite")
    label = labels or config.label
    y = None
    if kind != "forecast" and label and label in rows.columns and (
            labels or rows[label].notna().all()):
        given = rows[label]
        values = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float)
        drop(given.isna().to_numpy(), f"{label} is missing")
        drop(~np.isin(values, (0, 1)), f"{label} is not 0 or 1")
        y = values[keep].astype(int)
    if keep.all():
        return rows, y, skipped
    return rows[keep].reset_index(drop=True), y, skipped


class Watcher:
    """Streaming rule state for one version: feed it windows one by one.

    ``observe`` measures a window and counts consecutive breaches; when the count
    reaches ``failure_limit`` the result has ``alarm`` set. After ``acted()`` (or an
    alarm, with ``cooldown``) the next ``cooldown`` windows are measured but not counted.
    """

    def __init__(self, subject: Subject, rules: "WatchRules", labels: str | None = None):
        self.subject = subject
        self.rules = rules
        self.labels = labels
        self.streak = 0
        self.cooling = 0
        self.seen = 0
        self.history: list[WindowResult] = []

    def observe(self, window: Window) -> WindowResult:
        result = measure_window(self.subject, window, self.rules, self.seen, self.labels)
        self.seen += 1
        if result.too_few_rows:  # not judged: the streak and a cooldown stand still
            result.streak = self.streak
            self.history.append(result)
            return result
        if self.cooling > 0:
            self.cooling -= 1
            result.cooling = True
            self.streak = 0
        elif result.breached:
            self.streak += 1
            if self.streak >= self.rules.failure_limit:
                result.alarm = True
                self.acted()
        else:
            self.streak = 0
        result.streak = self.streak if not result.alarm else self.rules.failure_limit
        self.history.append(result)
        return result

    def acted(self) -> None:
        """An alarm was handled: start the cooldown and reset the streak."""
        self.streak = 0
        self.cooling = self.rules.cooldown

    def breaching_streak(self, result: WindowResult) -> list[WindowResult]:
        """The ``failure_limit`` windows that raised the alarm ``result`` (windows with too
        few rows between them are not part of it)."""
        end = self.history.index(result) + 1
        judged = [r for r in self.history[:end] if not r.too_few_rows]
        return judged[-self.rules.failure_limit:]


def judge_candidate(subject: Subject, windows: Sequence[Window], rules: "WatchRules",
                    indices: Sequence[int], labels: str | None = None) -> CandidateResult:
    """Does ``subject`` pass every rule on each of ``windows``?"""
    results = [measure_window(subject, w, rules, i, labels) for w, i in zip(windows, indices)]
    failures = [f"{b.detail} on window {r.window}" for r in results for b in r.breaches]
    failures += [f"too few rows scored on window {r.window}" for r in results if r.too_few_rows]
    return CandidateResult(subject.version, not failures, subject.profile.source, results,
                           failures)


@dataclass
class Decision:
    """What to do about an alarm: ``rollback`` to ``target``, or ``retrain``."""

    decision: str
    target: str | None
    candidates: list[CandidateResult]
    drifted_features: dict


def decide(streak: Sequence[WindowResult], windows: Sequence[Window],
           model_loader: Callable[[str], Subject], candidates: Sequence[str],
           rules: "WatchRules", labels: str | None = None,
           progress: Callable[[str], None] | None = None,
           screen: Callable[[str], tuple[str, str] | None] | None = None,
           hold: "Hold | None" = None) -> Decision:
    """Judge ``candidates`` (most recent first) on the breaching ``windows`` of ``streak``
    (``Watcher.breaching_streak``; ``windows[i]`` is the window of ``streak[i]``).
    ``screen(version)`` (``trust.screen``) skips a candidate before it is scored; with a
    ``hold`` (``trust.hold_of``) the decision is ``hold`` and nothing is judged."""
    if hold is not None:
        return Decision("hold", None, [], drifted_features(streak, rules))
    say = progress or (lambda _m: None)
    judged: list[CandidateResult] = []
    decision, target = "retrain", None
    idx = [r.index for r in streak]
    for version in candidates:
        skip = screen(version) if screen is not None else None
        if skip is not None:
            check, why = skip
            say(f"Skipping candidate {version}: {why}")
            judged.append(CandidateResult(version, False, "", [], [why], check, why))
            continue
        say(f"Scoring candidate {version} on windows {', '.join(r.window for r in streak)}")
        verdict = judge_candidate(model_loader(version), windows, rules, idx, labels)
        judged.append(verdict)
        if verdict.passed:
            decision, target = "rollback", version
            break
    return Decision(decision, target, judged, drifted_features(streak, rules))


def drifted_features(streak: Sequence[WindowResult], rules: "WatchRules") -> dict:
    """feature -> its largest PSI above the rules' limit on the breaching windows."""
    limit = _psi_limit(rules)
    drifted: dict[str, float] = {}
    for r in streak:
        for feature, value in r.feature_psi.items():
            if value > limit:
                drifted[feature] = max(value, drifted.get(feature, 0.0))
    return dict(sorted(drifted.items(), key=lambda kv: -kv[1]))


def evaluate_windows(model_loader: Callable[[str], Subject], windows: Sequence[Window],
                     rules: "WatchRules", current: str, candidates: Sequence[str] = (),
                     stage: str | None = None, labels: str | None = None,
                     progress: Callable[[str], None] | None = None,
                     hold: "Hold | None" = None,
                     screen: Callable[[str], tuple[str, str] | None] | None = None
                     ) -> WatchResult:
    """Measure ``windows`` with version ``current`` and decide (see the module docstring).
    ``hold``: an alarm is decided ``hold``; ``screen``: see ``decide``."""
    started = time.monotonic()
    subject = model_loader(current)
    watcher = Watcher(subject, rules, labels)
    alarm = None
    for window in windows:
        result = watcher.observe(window)
        if result.alarm and alarm is None:
            alarm = result
    verdict = Decision("ok", None, [], {})
    streak: list[WindowResult] = []
    if alarm is not None:
        streak = watcher.breaching_streak(alarm)
        verdict = decide(streak, [windows[r.index] for r in streak], model_loader, candidates,
                         rules, labels, progress, screen, hold)
    result = WatchResult(
        name=subject.name, kind=subject.kind, stage=stage, version=current,
        decision=verdict.decision, target=verdict.target, rules=rules.to_json(),
        windows=watcher.history, alarm_window=None if alarm is None else alarm.index,
        breaching_windows=[r.window for r in streak],
        breaches=[b for r in streak for b in r.breaches], candidates=verdict.candidates,
        drifted_features=verdict.drifted_features, evidence="", profile=subject.profile.source,
        hold=hold.to_json() if hold is not None and alarm is not None else None,
    )
    result.evidence = evidence(result)
    result.seconds = time.monotonic() - started
    return result


def _psi_limit(rules: "WatchRules") -> float:
    limits = [t.limit for t in rules.thresholds if t.metric == "psi_features" and t.rule == "max"]
    return min(limits) if limits else 0.25


def evidence(result: WatchResult) -> str:
    """One paragraph: what breached where, and why the decision follows."""
    if result.decision == "ok":
        n = len(result.windows)
        worst = sum(1 for w in result.windows if w.breached)
        small = sum(1 for w in result.windows if w.too_few_rows)
        text = (f"{result.name} {result.version}: {n} window(s), {worst} breached a rule, "
                f"never {result.rules['failure_limit']} in a row")
        if small:
            text += (f"; {small} had too few rows to judge (fewer than "
                     f"{result.rules['min_rows']})")
        return text
    seen: dict[str, list[str]] = {}
    for w in result.windows:
        if w.window in result.breaching_windows:
            for b in w.breaches:
                seen.setdefault(f"{b.measure} {b.rule} {b.limit:g}", []).append(
                    f"{b.value:.4g} on {w.window}")
    parts = [f"{rule} breached ({'; '.join(vals)})" for rule, vals in seen.items()]
    text = f"{result.name} {result.version}: " + ", ".join(parts)
    skipped = [f"{c.version} skipped: {c.skipped}" for c in result.candidates if c.skipped]
    if result.decision == "hold":
        text += f"; hold: {result.hold['reason'] if result.hold else 'a rollback ran recently'}"
    elif result.decision == "rollback":
        text += f"; {result.target} passes every rule on the same windows"
        text += "".join(f"; {s}" for s in skipped)
    else:
        tried = ", ".join(f"{c.version} skipped: {c.skipped}" if c.skipped else c.version
                          for c in result.candidates) or "no earlier holder"
        text += f"; no candidate passes ({tried})"
        if result.drifted_features:
            text += "; drifted features: " + ", ".join(
                f"{k} (PSI {v:.3g})" for k, v in result.drifted_features.items())
    return text


# -- windows from files -----------------------------------------------------------------


def check_window(rows: int, rules: "WatchRules", params: str, flag: str = "--window") -> None:
    """Refuse windows of ``rows`` rows that could never be judged (fewer than the rules'
    ``min_rows``): a one-line ``UsageError`` that says how to go on."""
    if rows < 1:
        raise UsageError(f"{flag} must be at least 1 row, got {rows}")
    if rows < rules.min_rows:
        raise UsageError(f"{flag} {rows} is below the {rules.min_rows} rows a window needs to "
                         f"be judged; use {flag} {rules.min_rows} or more, or lower "
                         f"watch.min_rows in {params}")


def read_windows(path: str | Path, window_rows: int | None = None) -> list[Window]:
    """A CSV file or a folder of CSV files (sorted by name): each file is one window, or
    chunks of ``window_rows`` rows when given."""
    from dvc_monitor.model.data import read_batch

    path = Path(path)
    if window_rows is not None and window_rows < 1:
        raise UsageError(f"--window must be at least 1 row, got {window_rows}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise UsageError(f"{path} has no .csv files; give a CSV file or a folder of them")
    elif path.is_file():
        files = [path]
    else:
        raise UsageError(f"{path}: no such file or folder")
    windows = []
    for f in files:
        frame = read_batch(f)
        if len(frame) == 0:
            raise SchemaError(f"window {f.name} has no rows; remove it or add rows")
        if window_rows is None:
            windows.append(Window(f.name, frame))
            continue
        for start in range(0, len(frame), window_rows):
            part = frame.iloc[start:start + window_rows].reset_index(drop=True)
            windows.append(Window(f"{f.name}[{start}:{start + len(part)}]", part))
    return windows


def with_context(windows: list[Window], before: "pd.DataFrame") -> list[Window]:
    """Forecast windows with the rows that precede each (``before``, then the numeric rows
    of earlier windows: a skipped row is no lag either)."""
    import numpy as np
    import pandas as pd

    out = []
    tail = before
    for w in windows:
        ctx = tail[~tail["timestamp"].isin(w.rows["timestamp"])] if len(tail) else tail
        out.append(Window(w.name, w.rows, ctx.tail(CONTEXT_ROWS).reset_index(drop=True)))
        rows = w.rows[list(before.columns.intersection(w.rows.columns))].apply(
            pd.to_numeric, errors="coerce")
        rows = rows[np.isfinite(rows.to_numpy(dtype=float)).all(axis=1)]
        tail = pd.concat([tail, rows], ignore_index=True).tail(CONTEXT_ROWS)
    return out


# -- the command ------------------------------------------------------------------------


def candidates_for(registry, name: str, stage: str | None, current: str) -> list[str]:
    """Earlier holders of ``stage``, most recent first, skipping ``current`` and versions
    deregistered since."""
    from dvc_monitor.registry.tags import Action

    if stage is None:
        return []
    seen, out = {current}, []
    for ev in reversed(registry.history(name)):
        if ev.action is not Action.ASSIGN or ev.stage != stage or ev.version in seen:
            continue
        seen.add(ev.version)
        try:
            mv = registry.resolve(name, ev.version)
        except DvcMonitorError:
            continue
        if mv.active:
            out.append(mv.version)
    return out


def watch(root: str | Path, ref: str, data: str | Path, window: int | None = None,
          labels: str | None = None, rollback: bool = False, output: str | Path | None = None,
          plots: bool = True, progress: Callable[[str], None] | None = None) -> WatchResult:
    """``dvc-monitor watch REF --data PATH``: see the module docstring.

    Nothing in the repository changes unless ``rollback`` is set and the decision is
    ``rollback``. A rollback that cannot run (a dirty tree, no earlier holder) raises
    ``WatchActionFailed`` carrying the result.
    """
    from dvc_monitor.model import state as model_state
    from dvc_monitor.repo.git import GitRepo
    from dvc_monitor.evaluation.profiles import COMPUTED, load_profile
    from dvc_monitor.monitoring.rules import rules_of
    from dvc_monitor.monitoring.trust import trust_checks
    from dvc_monitor.registry.state import Registry

    say = progress or (lambda _m: None)
    root = GitRepo.discover(root).root
    registry = Registry.load(root)
    mv = registry.get(ref)
    name = mv.name
    stage = ref.split("#", 1)[1] if "#" in ref else (mv.stages[0] if len(mv.stages) == 1 else None)
    # a model dvc-monitor did not train has no rules and no scorer: refused before reading
    watched = model_state.require_trained(model_state.read_state(root, name, mv.commit), mv.ref)
    workspace = model_state.require_trained(model_state.read_state(root, name, None),
                                            f"{name} in the workspace")
    rules, note = rules_of(workspace.params, workspace.kind, workspace.layout.params)
    if window is not None:
        check_window(window, rules, workspace.layout.params)
    windows = read_windows(data, window)
    config = replace(watched.config, label_required=False)
    for w in windows:  # before any model is loaded: a missing column fails fast
        usable_rows(config, w.rows, f"window {w.name}", f"{name} {mv.version}", labels,
                    workspace.kind)
    states: dict[str, Any] = {}

    def loader(version: str) -> Subject:
        if version not in states:
            target = registry.resolve(name, version)
            say(f"Loading {name} {target.version}")
            state = (watched if target.commit == mv.commit
                     else model_state.read_state(root, name, target.commit))
            model = model_state.load_model(state)
            states[version] = (state, Subject(name, target.version, state.kind, state.config,
                                              model, load_profile(state, model)))
        return states[version][1]

    subject = loader(mv.version)
    if subject.kind == "forecast":
        state = states[mv.version][0]
        windows = with_context(windows, model_state.load_data(state).drop(columns="_row"))
    candidates = candidates_for(registry, name, stage, mv.version)
    hold, screen = trust_checks(registry, name, stage, mv.version, subject.kind, rules)
    say(f"Watching {name} {mv.version} on {len(windows)} window(s)")
    result = evaluate_windows(loader, windows, rules, mv.version, candidates, stage, labels,
                              say, hold, screen)
    if note:
        result.notes.append(note)
    result.notes += [n for n in (w.skip_note() for w in result.windows) if n]
    if any(c.check == "metrics" for c in result.candidates):
        result.notes.append("a candidate that recorded a worse primary metric than the holder "
                            "is skipped; 'allow_worse_metrics: true' in watch: accepts it")
    if subject.profile.source == COMPUTED:
        result.notes.append(f"{mv.version} has no reference.json; its profile was computed "
                            "from its holdout")
    failed = None
    if rollback:
        try:
            _act(root, result, stage)
        except WatchActionFailed as exc:
            failed = exc
    if output:
        from dvc_monitor.monitoring.report import write_report

        write_report(result, output, plots=plots)
    if failed is not None:
        raise failed
    return result


MAX_MESSAGE = 2000


def rollback_message(result: WatchResult) -> str:
    text = f"watch: {result.evidence}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def _act(root: Path, result: WatchResult, stage: str | None) -> None:
    from dvc_monitor.monitoring.trust import AUTOMATIC
    from dvc_monitor.rollback.transaction import rollback as do_rollback

    if result.decision in ("ok", "hold"):
        return
    if result.decision == "retrain":
        if not result.candidates:
            raise WatchActionFailed(
                f"cannot roll back {result.name}: stage {stage or '(none)'} has no earlier "
                f"holder than {result.version}; decision: retrain", result)
        return
    if stage is None:
        raise WatchActionFailed(f"cannot roll back {result.name} {result.version}: it holds no "
                                "single stage; watch NAME#STAGE", result)
    message = rollback_message(result)
    try:
        done = do_rollback(root, result.name, to=result.target, stage=stage, message=message,
                           trigger=AUTOMATIC)
    except DvcMonitorError as exc:
        raise WatchActionFailed(f"{exc} (decision: rollback to {result.target})", result,
                                exit_code=exc.exit_code) from None
    result.rollback = done
    result.rolled_back = {"commit": done.commit, "tag": done.tag, "message": message,
                          "verified": bool(done.proof and done.proof.ok)}

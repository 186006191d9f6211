"""The watch engine: measure windows with one version, decide on an alarm, and act.

``watch`` (windows read from files) and ``serve --watch`` (windows cut from the server's
own traffic) both drive it::

    engine = Engine(subject, rules, labels)       # one version, its profile, the rules
    result = engine.observe(window)               # -> WindowResult (measures, breaches, alarm)
    if result.alarm:
        checks = AlarmChecks.of(registry, subject, stage, rules, model_loader)
        outcome = engine.respond(result, checks, stage, model_loader)  # -> WatchResult
        acted = act(root, outcome, stage)          # the one rollback path

``model_loader(version)`` returns a ``Subject`` (the version's model and reference
profile). A row whose feature is not a finite number, or whose label is not 0 or 1, is
skipped and counted (``WindowResult.skipped``); a window left with fewer than the rules'
``min_rows`` rows is "too few rows": shown, never judged (no breach, no alarm, and it
neither extends nor breaks a streak). The decision on an alarm (``failure_limit``
consecutive breaching windows):

- ``ok``: no alarm;
- ``rollback``: the first candidate (earlier holders of the stage, most recent first,
  skipping the current version) that passes every rule on the same breaching windows
  is the ``target``;
- ``retrain``: rules are breached and no candidate passes (the inputs drifted: the
  feature PSIs name the features);
- ``hold``: the stage was rolled back automatically less than ``min_interval`` ago; no
  candidate is judged and nothing changes.

Candidates that ``trust.screen`` rejects (rolled back from, or a worse recorded primary
metric) are listed as skipped, with the check that decided, and never scored. ``act``
runs the atomic, verified rollback of a ``rollback`` decision, recorded as automatic
(``trust.AUTOMATIC``) with a message that names the breach.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from dvc_monitor.errors import DvcMonitorError, SchemaError
from dvc_monitor.monitoring.results import (
    Breach,
    CandidateResult,
    Decision,
    Subject,
    WatchResult,
    WindowResult,
    evidence,
)
from dvc_monitor.monitoring.windows import Window, usable_rows

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.evaluation.measures import WindowCounts
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.monitoring.trust import Hold
    from dvc_monitor.rollback.transaction import RollbackResult

MAX_MESSAGE = 2000  # characters of a rollback's message

Loader = Callable[[str], Subject]  # version -> its Subject
Screen = Callable[[str], "tuple[str, str] | None"]  # trust.screen


# -- measuring --------------------------------------------------------------------------


def measure_window(subject: Subject, window: Window, rules: "WatchRules", index: int,
                   labels: str | None = None) -> WindowResult:
    """Score ``window`` with ``subject`` and apply ``rules`` (no streak logic). Rows that
    cannot be judged are skipped (``usable_rows``); with fewer than ``rules.min_rows``
    rows left, or scored, the result is ``too_few_rows`` and carries no measures."""
    counts = count_window(subject, window.rows, window.name, labels, window.context,
                          min_rows=rules.min_rows)
    return judge_window(subject, counts, rules, index, window.name)


def count_window(subject: Subject, rows: "pd.DataFrame", name: str, labels: str | None = None,
                 context: "pd.DataFrame | None" = None, with_labels: bool | None = None,
                 min_rows: int = 0) -> "WindowCounts":
    """The counts (``measures.WindowCounts``) of window ``name``'s ``rows``, or of a part
    of them (``with_labels``: whether the whole window is labelled, ``windows.labelled``):
    the usable rows scored by ``subject``. Fewer than ``min_rows`` usable rows are not
    scored (the window is too small to judge)."""
    from dvc_monitor.evaluation.measures import WindowCounts, window_counts
    from dvc_monitor.evaluation.scoring import score_rows

    who = f"{subject.name} {subject.version}"
    spec = subject.spec
    rows, y, skipped = usable_rows(subject.config, rows, f"window {name}", who, labels, spec,
                                   with_labels)
    if len(rows) < max(min_rows, 1):
        return WindowCounts(rows=len(rows), skipped=skipped)
    scored = score_rows(spec, subject.model, subject.config, rows, context)
    counts = window_counts(spec, subject.profile, scored, rows, y)
    counts.skipped = skipped
    return counts


def judge_window(subject: Subject, counts: "WindowCounts", rules: "WatchRules", index: int,
                 name: str) -> WindowResult:
    """The result of window ``name`` (number ``index``) from its ``counts``: too few rows,
    or its measures and the ``rules`` it breaches."""
    from dvc_monitor.evaluation.measures import directions, measures_of
    from dvc_monitor.review.gate import MetricRow, check

    skipped = counts.skipped
    if counts.rows < rules.min_rows:
        return WindowResult(index, name, int(counts.rows), {}, {}, too_few_rows=True,
                            skipped=skipped)
    if counts.scored == 0:
        raise SchemaError(f"window {name}: no row could be scored by {subject.name} "
                          f"{subject.version} (a forecaster needs the hours before the window)")
    if counts.scored < rules.min_rows:
        return WindowResult(index, name, int(counts.scored), {}, {},
                            too_few_rows=True, skipped=skipped)
    spec = subject.spec
    values, psis = measures_of(spec, subject.profile, counts)
    dirs = directions(spec)
    result = WindowResult(index, name, int(counts.scored), values, psis, skipped=skipped)
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

    def observe(self, window: Window, measured: WindowResult | None = None) -> WindowResult:
        """``measured``: the window's result, measured elsewhere (``judge_window`` of
        counts added up on a cluster)."""
        result = measured or measure_window(self.subject, window, self.rules, self.seen,
                                            self.labels)
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


class Engine:
    """Watch, decide and act for one version, fed windows one by one.

    ``observe`` measures a window (``Watcher``) and keeps the judged windows a streak can
    be made of; ``respond`` decides an alarm on those windows and builds the
    ``WatchResult``; ``act`` (below) carries the decision out.
    """

    def __init__(self, subject: Subject, rules: "WatchRules", labels: str | None = None):
        self.watcher = Watcher(subject, rules, labels)
        self.windows: list[Window] = []  # the last failure_limit judged windows

    @property
    def subject(self) -> Subject:
        return self.watcher.subject

    @property
    def rules(self) -> "WatchRules":
        return self.watcher.rules

    def observe(self, window: Window, measured: WindowResult | None = None) -> WindowResult:
        """Measure ``window``; see ``Watcher.observe``."""
        result = self.watcher.observe(window, measured)
        if not result.too_few_rows:  # the windows a streak is made of
            self.windows = (self.windows + [window])[-self.rules.failure_limit:]
        return result

    def respond(self, alarm: WindowResult | None, checks: "AlarmChecks", stage: str | None,
                model_loader: Loader, windows: Sequence[Window] | None = None,
                shown: Sequence[WindowResult] | None = None,
                progress: Callable[[str], None] | None = None) -> WatchResult:
        """The decision on ``alarm`` (None: ``ok``), as a ``WatchResult``.

        ``windows``: the windows of the alarm's streak (default: the last ones observed,
        right for an alarm just raised); ``shown``: the windows the result lists (default:
        the streak)."""
        streak = self.watcher.breaching_streak(alarm) if alarm is not None else []
        verdict = Decision("ok", None, [], {})
        if alarm is not None:
            if windows is None:
                windows = self.windows[-len(streak):]
            verdict = decide(streak, windows, model_loader, checks.candidates, self.rules,
                             self.watcher.labels, progress, checks.screen, checks.hold)
        return outcome(self.subject, self.rules, stage, alarm, streak, verdict,
                       checks.hold, list(streak if shown is None else shown))


def outcome(subject: Subject, rules: "WatchRules", stage: str | None,
            alarm: WindowResult | None, streak: Sequence[WindowResult], verdict: Decision,
            hold: "Hold | None", windows: list[WindowResult]) -> WatchResult:
    """The ``WatchResult`` of ``verdict`` on the ``streak`` that raised ``alarm``."""
    result = WatchResult(
        name=subject.name, kind=subject.kind, stage=stage, version=subject.version,
        decision=verdict.decision, target=verdict.target, rules=rules.to_json(),
        windows=windows, alarm_window=None if alarm is None else alarm.index,
        breaching_windows=[r.window for r in streak],
        breaches=[b for r in streak for b in r.breaches], candidates=verdict.candidates,
        drifted_features=verdict.drifted_features, evidence="", profile=subject.profile.source,
        hold=hold.to_json() if hold is not None and alarm is not None else None,
    )
    result.evidence = evidence(result)
    return result


def evaluate_windows(model_loader: Loader, windows: Sequence[Window],
                     rules: "WatchRules", current: str, candidates: Sequence[str] = (),
                     stage: str | None = None, labels: str | None = None,
                     progress: Callable[[str], None] | None = None,
                     hold: "Hold | None" = None, screen: Screen | None = None,
                     measured: Sequence[WindowResult] | None = None) -> WatchResult:
    """Measure ``windows`` with version ``current`` and decide on the first alarm (see the
    module docstring). ``hold``: an alarm is decided ``hold``; ``screen``: see ``decide``;
    ``measured``: the windows' results, measured elsewhere (a window's rows are then
    read only to judge candidates on an alarm's streak)."""
    started = time.monotonic()
    engine = Engine(model_loader(current), rules, labels)
    alarm, streak = None, None
    for i, window in enumerate(windows):
        result = engine.observe(window, None if measured is None else measured[i])
        if result.alarm and alarm is None:
            alarm, streak = result, list(engine.windows)  # the windows that raised it
    result = engine.respond(alarm, AlarmChecks(list(candidates), hold, screen), stage,
                            model_loader, streak, engine.watcher.history, progress)
    result.seconds = time.monotonic() - started
    return result


# -- deciding ---------------------------------------------------------------------------


def judge_candidate(subject: Subject, windows: Sequence[Window], rules: "WatchRules",
                    indices: Sequence[int], labels: str | None = None) -> CandidateResult:
    """Does ``subject`` pass every rule on each of ``windows``?"""
    results = [measure_window(subject, w, rules, i, labels) for w, i in zip(windows, indices)]
    failures = [f"{b.detail} on window {r.window}" for r in results for b in r.breaches]
    failures += [f"too few rows scored on window {r.window}" for r in results if r.too_few_rows]
    return CandidateResult(subject.version, not failures, subject.profile.source, results,
                           failures)


def decide(streak: Sequence[WindowResult], windows: Sequence[Window],
           model_loader: Loader, candidates: Sequence[str], rules: "WatchRules",
           labels: str | None = None, progress: Callable[[str], None] | None = None,
           screen: Screen | None = None, hold: "Hold | None" = None) -> Decision:
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


def _psi_limit(rules: "WatchRules") -> float:
    limits = [t.limit for t in rules.thresholds if t.metric == "psi_features" and t.rule == "max"]
    return min(limits) if limits else 0.25


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


@dataclass
class AlarmChecks:
    """What an alarm is decided with: the ``candidates`` (earlier holders of the stage,
    most recent first) and the trust checks (``hold``, the candidate ``screen``). Without
    a stage there are none: an alarm is decided ``retrain``."""

    candidates: list[str] = field(default_factory=list)
    hold: "Hold | None" = None
    screen: Screen | None = None

    @classmethod
    def of(cls, registry, subject: Subject, stage: str | None, rules: "WatchRules",
           model_loader: Loader | None = None) -> "AlarmChecks":
        """The checks for an alarm on ``subject``, the holder of ``stage``, now
        (``model_loader``: how the trust checks load a candidate they must measure)."""
        from dvc_monitor.monitoring.trust import trust_checks

        hold, screen = trust_checks(registry, subject, stage, rules, model_loader)
        return cls(candidates_for(registry, subject.name, stage, subject.version), hold,
                   screen)


# -- acting -----------------------------------------------------------------------------


@dataclass
class Acted:
    """What ``act`` did about a decision.

    ``action``: ``none`` (ok, or retrain with candidates), ``held`` (a hold),
    ``no_holder`` (retrain and the stage has no earlier holder), ``no_stage`` (rollback,
    but the version holds no single stage), ``moved`` (the stage is held by another
    version now), ``rolled_back`` or ``failed`` (``error``: why)."""

    action: str
    holder: str | None = None  # moved: the stage's holder now
    error: DvcMonitorError | None = None
    rollback: "RollbackResult | None" = None


def rollback_message(result: WatchResult) -> str:
    """The message of an automatic rollback: ``watch:`` and the evidence (capped)."""
    text = f"watch: {result.evidence}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def act(root: str | Path, result: WatchResult, stage: str | None,
        registry=None) -> Acted:
    """Carry out ``result.decision`` on ``stage``: a ``rollback`` runs the atomic, verified
    rollback to ``result.target`` (trigger ``trust.AUTOMATIC``, ``rollback_message``) and
    records it in ``result.rollback`` and ``result.rolled_back``; nothing else changes the
    repository. With ``registry``, a stage no longer held by ``result.version`` is not
    rolled back (``moved``)."""
    if result.decision == "hold":
        return Acted("held")
    if result.decision == "retrain":
        return Acted("none" if result.candidates else "no_holder")
    if result.decision != "rollback":
        return Acted("none")
    if stage is None:
        return Acted("no_stage")
    if registry is not None:
        holder = registry.get(f"{result.name}#{stage}").version
        if holder != result.version:
            return Acted("moved", holder=holder)
    return _roll_back(Path(root), result, stage)


def _roll_back(root: Path, result: WatchResult, stage: str) -> Acted:
    from dvc_monitor.monitoring.trust import AUTOMATIC
    from dvc_monitor.rollback.transaction import rollback

    message = rollback_message(result)
    try:
        done = rollback(root, result.name, to=result.target, stage=stage, message=message,
                        trigger=AUTOMATIC)
    except DvcMonitorError as exc:
        return Acted("failed", error=exc)
    result.rollback = done
    result.rolled_back = {"commit": done.commit, "tag": done.tag, "message": message,
                          "verified": bool(done.proof and done.proof.ok)}
    return Acted("rolled_back", rollback=done)

"""``serve --watch``: the model's ``watch:`` rules on the server's own live traffic.

The request path only appends the scored rows to a buffer (``LiveWatch.add``). Every
``window`` rows of one version make a ``Window`` that a background thread feeds to a
``monitoring.engine.Engine`` built for the version being served (rebuilt when the
``Follower`` swaps in another one; a cooldown carries over). ``/metrics`` and ``/health``
show the last window's measures, the breaches and the last decision. A ``--window`` below
the rules' ``min_rows`` is refused at start; a window with too few rows (the rules changed
at a swap) is shown as such and never judged, as in ``watch``.

With ``auto_rollback``, an alarm (``failure_limit`` consecutive breaching windows) runs
the decision of ``watch`` (``monitoring.engine``: the earlier holders of the stage, most
recent first, scored on the same breaching windows) in that thread. A ``rollback``
decision runs the engine's atomic, verified rollback of the stage (``engine.act``, the
message ``watch --rollback`` writes); the Follower's next poll then swaps in the new
holder. ``retrain``, or no earlier holder, changes nothing and is reported. The checks
of ``monitoring.trust`` keep the traffic from steering it: within ``min_interval`` of the
stage's last automatic rollback an alarm is decided ``hold``; a version rolled back from,
or with a worse recorded primary metric, is skipped. Only the server's part is here: its
traffic cut into windows, the swap, the metrics and ``/health``. Nothing here runs in a
request.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dvc_monitor.errors import DvcMonitorError, UsageError
from dvc_monitor.monitoring.results import DECISIONS

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.monitoring.engine import Acted, Engine
    from dvc_monitor.monitoring.results import Subject, WatchResult, WindowResult
    from dvc_monitor.monitoring.trust import Hold
    from dvc_monitor.production.loader import LoadedModel

DEFAULT_WATCH_WINDOW = 500  # rows per live window
QUEUED_WINDOWS = 8  # windows waiting for the watch thread; more are dropped (and counted)
RECENT_WINDOWS = 50  # the last windows' measures kept for the page (GET /, /status)


def watch_stage(ref: str, auto_rollback: bool, is_url: bool, workers: int) -> str | None:
    """The stage ``serve --watch`` may roll back (None without ``auto_rollback``), or a
    one-line ``UsageError`` for a combination that cannot work."""
    if not auto_rollback:
        return None
    if is_url:
        raise UsageError("--auto-rollback needs a local repository: a clone of a URL is "
                         "read-only here; serve --repo PATH, or drop --auto-rollback")
    if workers > 1:
        raise UsageError("--auto-rollback runs in one process; use --workers 1")
    if "#" not in ref:
        raise UsageError(f"--auto-rollback rolls back a stage; serve NAME#STAGE, not {ref!r}")
    return ref.split("#", 1)[1]


@dataclass
class LiveDecision:
    """The last decision of the live watch, and what was done about it."""

    decision: str  # ok | rollback | retrain | hold
    version: str  # the version watched
    target: str | None = None
    windows: list[str] = field(default_factory=list)  # the breaching windows
    evidence: str = ""
    action: str = "none"  # none | rolled_back | failed | held | report_only
    message: str = ""
    commit: str | None = None
    tag: str | None = None
    reason: str = ""  # the check that decided: the hold, or the candidates' verdicts
    skipped: list[str] = field(default_factory=list)  # "v1.0.0 skipped: ..."

    def to_json(self) -> dict:
        return {"decision": self.decision, "version": self.version, "target": self.target,
                "windows": self.windows, "evidence": self.evidence, "action": self.action,
                "message": self.message, "commit": self.commit, "tag": self.tag,
                "reason": self.reason, "skipped": self.skipped}


class _WatchMetrics:
    """The watch's Prometheus metrics, in the app's registry."""

    def __init__(self, registry):
        from prometheus_client import Counter, Gauge

        r = registry
        self.measure = Gauge("dvc_monitor_watch_measure",
                             "A watch measure on the last full live window",
                             ["model", "version", "measure"], registry=r)
        self.feature_psi = Gauge("dvc_monitor_watch_feature_psi",
                                 "PSI of one feature on the last full live window",
                                 ["model", "version", "feature"], registry=r)
        self.windows = Counter("dvc_monitor_watch_windows", "Live windows measured",
                               ["model", "version"], registry=r)
        self.breaches = Counter("dvc_monitor_watch_breaches",
                                "Rule breaches on live windows, by measure",
                                ["model", "version", "measure"], registry=r)
        self.streak = Gauge("dvc_monitor_watch_streak",
                            "Consecutive breaching live windows (alarm at failure_limit)",
                            ["model"], registry=r)
        self.alarms = Counter("dvc_monitor_watch_alarms", "Alarms (failure_limit breaching "
                              "windows in a row)", ["model", "version"], registry=r)
        self.decision = Gauge("dvc_monitor_watch_decision",
                              "The last decision of the live watch (1; the others 0)",
                              ["decision"], registry=r)
        self.decisions = Counter("dvc_monitor_watch_decisions",
                                 "Decisions of the live watch on alarms, hold included",
                                 ["decision"], registry=r)
        self.actions = Counter("dvc_monitor_watch_actions",
                               "What the live watch did about an alarm",
                               ["action"], registry=r)
        self.dropped = Counter("dvc_monitor_watch_dropped_windows",
                               "Live windows not measured (the watch thread was behind)",
                               registry=r)
        self.too_few = Counter("dvc_monitor_watch_too_few_rows_windows",
                               "Live windows with fewer rows than min_rows: never judged",
                               ["model", "version"], registry=r)
        for d in DECISIONS:
            self.decision.labels(d).set(1 if d == "ok" else 0)

    def decided(self, decision: str) -> None:
        self.decisions.labels(decision).inc()
        for d in DECISIONS:
            self.decision.labels(d).set(1 if d == decision else 0)


class LiveWatch:
    """Windows of live rows, measured by an ``Engine`` for the version served."""

    def __init__(self, root: str | Path, window: int, registry, serving,
                 stage: str | None = None, labels: str | None = None,
                 retrain: str | None = None):
        if window < 1:
            raise UsageError(f"--window must be at least 1 row, got {window}")
        self.root = Path(root)
        self.window = window
        self.serving = serving  # () -> the LoadedModel served now
        self.stage = stage  # set: auto-rollback of this stage
        self.labels = labels
        self.retrain = retrain  # set: on a retrain decision, a candidate in this stage
        self.last_retrain: dict | None = None
        self.metrics = _WatchMetrics(registry)
        self.last_window: dict | None = None
        self.recent: collections.deque = collections.deque(maxlen=RECENT_WINDOWS)
        self.last_decision: LiveDecision | None = None
        self.error: str | None = None
        self._rows: list = []
        self._rows_version: str | None = None
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUED_WINDOWS)
        self._engine: "Engine | None" = None
        self._context: "Lags | None" = None  # forecast: the rows before the next window
        self._pending: str | None = None  # a rollback done, waiting for the swap
        self._retraining: threading.Thread | None = None
        self._thread: threading.Thread | None = None

    # -- the request path: append only ------------------------------------------------

    def add(self, loaded: "LoadedModel", rows: list) -> None:
        """Buffer the rows ``loaded`` just scored; queue each full window."""
        if loaded is not self.serving():
            return  # a request that finished on the model just swapped out
        full = []
        with self._lock:
            if loaded.version != self._rows_version:
                self._rows, self._rows_version = [], loaded.version
            self._rows.extend(rows)
            while len(self._rows) >= self.window:
                full.append(self._rows[:self.window])
                del self._rows[:self.window]
        for chunk in full:
            try:
                self._queue.put_nowait((loaded, chunk))
            except queue.Full:
                self.metrics.dropped.inc()

    def prepare(self, loaded: "LoadedModel") -> None:
        """Build the engine of the first version (its rules and reference profile); refuse
        a window too small for its rules to judge."""
        self._rebuild(loaded, strict=True)

    # -- the watch thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dvc-monitor-watch",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        run_queue(self._queue, self.measure, self._report)

    def _report(self, error: str | None) -> None:
        self.error = error
        if error:
            _say(f"watch: {error}")

    def measure(self, loaded: "LoadedModel", rows: list) -> "WindowResult":
        """Measure one window of rows scored by ``loaded``; act on an alarm."""
        from dvc_monitor.monitoring.windows import Window
        from dvc_monitor.production.scoring import to_frame

        engine = self._engine
        if engine is None or engine.subject.version != loaded.version:
            engine = self._rebuild(loaded)
        frame = to_frame(rows, "the live window")
        index = engine.watcher.seen
        window = Window(f"live#{index + 1}", frame,
                        None if self._context is None else self._context.before(frame))
        result = engine.observe(window)
        self._record(engine.subject, result)
        if result.alarm:
            self._alarm(engine, result)
        return result

    def _rebuild(self, loaded: "LoadedModel", strict: bool = False) -> "Engine":
        from dvc_monitor.monitoring.engine import Engine
        from dvc_monitor.monitoring.windows import check_window
        from dvc_monitor.model import state as model_state

        workspace = model_state.read_state(self.root, loaded.name, None)
        rules = workspace_rules(self.root, loaded.name, workspace)
        if strict:
            check_window(self.window, rules, workspace.layout.params)
        elif self.window < rules.min_rows:
            _say(f"watch: windows of {self.window} rows are below watch.min_rows "
                 f"{rules.min_rows} for {loaded.version}: they are shown as too few rows and "
                 "never judged")
        subject = self._subject(loaded)
        engine = Engine(subject, rules, self.labels)
        if self._engine is not None:  # a swap does not end a cooldown
            engine.watcher.cooling = self._engine.watcher.cooling
        if self._pending == loaded.version:
            self._pending = None
        self._engine = engine
        self._context = Lags.of(self.root, loaded)
        return engine

    def _subject(self, loaded: "LoadedModel") -> "Subject":
        return subject_of(self.root, loaded)

    def _record(self, subject: "Subject", result: "WindowResult") -> None:
        """The window's measures in the metrics and in ``last_window``."""
        from dvc_monitor.kinds.common import clean_number

        m, name, version = self.metrics, subject.name, subject.version
        m.windows.labels(name, version).inc()
        if result.too_few_rows:
            m.too_few.labels(name, version).inc()
        for measure, value in result.measures.items():
            m.measure.labels(name, version, measure).set(float("nan") if value is None
                                                         else value)
        for feature, value in result.feature_psi.items():
            m.feature_psi.labels(name, version, feature).set(value)
        for b in result.breaches:
            m.breaches.labels(name, version, b.measure).inc()
        m.streak.labels(name).set(result.streak)
        self.last_window = {
            "window": result.window, "version": version, "rows": result.rows,
            "measures": clean_number(result.measures),
            "breaches": [b.detail for b in result.breaches],
            "streak": result.streak, "alarm": result.alarm, "cooling": result.cooling,
            "status": result.status, "too_few_rows": result.too_few_rows,
            "skipped": result.skipped,
        }
        self.recent.append(self.last_window)

    def _alarm(self, engine: "Engine", result: "WindowResult") -> None:
        """Decide the alarm ``result`` and act on it (with a stage to roll back)."""
        from dvc_monitor.monitoring.engine import AlarmChecks, act
        from dvc_monitor.registry.state import Registry

        subject = engine.subject
        self.metrics.alarms.labels(subject.name, subject.version).inc()
        if self._pending is not None:  # rolled back already; the swap has not happened yet
            self.metrics.actions.labels("waiting_for_swap").inc()
            return
        registry, checks, loader = None, AlarmChecks(), self._loader(subject)
        if self.stage is not None:
            registry = Registry.load(self.root)
            checks = AlarmChecks.of(registry, subject, self.stage, engine.rules, loader)
        outcome = engine.respond(result, checks, self.stage, loader)
        done = _live_decision(outcome, checks.hold)
        if self.stage is None:
            done.action = "report_only"
        else:
            self._acted(outcome, act(self.root, outcome, self.stage, registry), done)
        done.reason = done.reason or done.message or done.evidence
        if self.retrain is not None and done.decision == "retrain":
            self._retrain(engine, outcome)
        self.last_decision = done
        self.metrics.decided(done.decision)
        self.metrics.actions.labels(done.action).inc()
        _say(f"watch: {done.decision}"
             + (f" -> {done.target}" if done.target else "") + f" ({done.action}): "
             + (done.message or done.evidence))

    def _acted(self, outcome: "WatchResult", acted: "Acted", done: LiveDecision) -> None:
        """What the engine did (``engine.act``), in ``done``'s action and message."""
        if acted.action == "held":
            done.action, done.message = "held", f"hold: {outcome.hold['reason']}"
        elif acted.action == "no_holder":
            done.message = f"stage {self.stage} has no earlier holder than {outcome.version}"
        elif acted.action == "moved":
            done.message = (f"{self.stage} is held by {acted.holder} now, not "
                            f"{outcome.version}; waiting for the swap")
        elif acted.action == "failed":
            done.action, done.message = "failed", f"the rollback failed: {acted.error}"
        elif acted.action == "rolled_back":
            self._pending = outcome.target
            done.action = "rolled_back"
            done.commit, done.tag = acted.rollback.commit, acted.rollback.tag
            done.message = (f"rolled {outcome.name} {self.stage} back to {outcome.target} in "
                            f"commit {acted.rollback.commit[:7]}; the next poll swaps it in")

    def _retrain(self, engine: "Engine", outcome: "WatchResult") -> None:
        """``serve --watch --retrain``: a candidate made from the alarm's windows, in its own
        thread (``monitoring.retrain.retrain_candidate``); one at a time, and at most one
        per ``min_interval`` from one served version (read from the registrations' blocks,
        so it holds across restarts)."""
        windows = engine.windows[-len(outcome.breaching_windows):]
        if self._retraining is not None and self._retraining.is_alive():
            return self._retrained("busy", outcome.version, "a retrain is running already")
        held = retrain_hold(self.root, outcome.name, outcome.version,
                            engine.rules.min_interval)
        if held:
            return self._retrained("held", outcome.version, held)
        self._retrained("running", outcome.version, f"retraining {outcome.name} on "
                        f"{len(windows)} live window(s) ({sum(len(w.rows) for w in windows)} "
                        "rows)")
        self._retraining = threading.Thread(
            target=self._run_retrain, args=(engine, outcome, list(windows)),
            name="dvc-monitor-retrain", daemon=True)
        self._retraining.start()

    def _run_retrain(self, engine: "Engine", outcome: "WatchResult", windows: list) -> None:
        from dvc_monitor.monitoring.retrain import retrain_candidate

        try:
            made = retrain_candidate(self.root, outcome, windows, engine.rules, engine.subject,
                                     stage=self.retrain, labels=self.labels)
        except Exception as exc:  # one line, counted; serving goes on
            text = str(exc) if isinstance(exc, DvcMonitorError) else \
                f"{type(exc).__name__}: {exc}"
            self._retrained("failed", outcome.version, text)
            return
        self._retrained("registered", outcome.version,
                        f"retrained {made.name} {made.version} ({made.commit[:7]}, branch "
                        f"{made.branch}) in {made.stage}; report {made.report}", made.version)

    def _retrained(self, status: str, version: str, message: str,
                   candidate: str | None = None) -> None:
        self.last_retrain = {"status": status, "from": version, "candidate": candidate,
                             "message": message}
        self.metrics.actions.labels(f"retrain_{status}").inc()
        _say(f"watch: retrain: {status}: {message}")

    def _loader(self, current: "Subject"):
        from dvc_monitor.production.loader import load_version
        from dvc_monitor.registry.state import Registry

        subjects = {current.version: current}

        def load(version: str) -> "Subject":
            if version not in subjects:
                mv = Registry.load(self.root).resolve(current.name, version)
                subjects[version] = self._subject(load_version(self.root, mv))
            return subjects[version]

        return load

    def to_json(self) -> dict[str, Any]:
        watcher = self._engine.watcher if self._engine is not None else None
        with self._lock:
            buffered = len(self._rows)
        return {
            "window": self.window, "auto_rollback": self.stage is not None,
            "stage": self.stage, "rows_buffered": buffered,
            "version": watcher.subject.version if watcher else None,
            "windows": watcher.seen if watcher else 0,
            "rules": watcher.rules.to_json() if watcher else None,
            "streak": watcher.streak if watcher else 0,
            "cooling": watcher.cooling if watcher else 0,
            "last_window": self.last_window,
            "last_decision": None if self.last_decision is None else self.last_decision.to_json(),
            "retrain": self.retrain, "last_retrain": self.last_retrain,
            "error": self.error,
        }


def run_queue(items: queue.Queue, handle: Callable[..., object],
              report: Callable[[str | None], None]) -> None:
    """A background thread's loop: ``handle(*item)`` for each item of ``items`` until a
    None; ``report`` gets the one line of what an item raised (None: it went well). The
    loop keeps going whatever one item did."""
    while True:
        item = items.get()
        if item is None:
            return
        try:
            handle(*item)
        except DvcMonitorError as exc:
            report(str(exc))
        except Exception as exc:  # keep going whatever one item did
            report(f"{type(exc).__name__}: {exc}")
        else:
            report(None)


class Lags:
    """A forecast's live windows need the rows before them (their lags): first the data
    the version was trained on, then each window as it is measured."""

    def __init__(self, rows: "pd.DataFrame", time_column: str):
        self.rows, self.time_column = rows, time_column

    @classmethod
    def of(cls, root: str | Path, loaded: "LoadedModel") -> "Lags | None":
        """The lags of ``loaded``'s windows; None for a kind that needs no history."""
        from dvc_monitor.model import state as model_state

        kind = loaded.spec
        if not kind.needs_history:
            return None
        state = model_state.read_state(root, loaded.name, loaded.commit)
        return cls(model_state.load_data(state).drop(columns="_row"), kind.time_column)

    def before(self, frame: "pd.DataFrame") -> "pd.DataFrame":
        """The rows before the window ``frame``; the window joins them."""
        import pandas as pd

        from dvc_monitor.monitoring.windows import CONTEXT_ROWS, Window, with_context

        [window] = with_context([Window("live", frame)], self.rows, self.time_column)
        columns = list(self.rows.columns.intersection(frame.columns))
        self.rows = pd.concat([window.context, frame[columns]],
                              ignore_index=True).tail(CONTEXT_ROWS)
        return window.context


def retrain_hold(root: str | Path, name: str, version: str, min_interval: int) -> str | None:
    """Why no retrain from ``version`` may start now (one was registered from it less than
    ``min_interval`` seconds ago), or None."""
    import time

    from dvc_monitor.registry.state import Registry

    if min_interval <= 0:
        return None
    for ev in reversed(Registry.load(root).history(name)):
        block = (ev.meta or {}).get("retrain") if isinstance(ev.meta, dict) else None
        if isinstance(block, dict) and block.get("from") == version:
            if time.time() < ev.time + min_interval:
                return (f"{ev.version} was retrained from {version} at {ev.tag} less than "
                        f"min_interval ago; no other retrain from it before then")
            return None
    return None


def subject_of(root: str | Path, loaded: "LoadedModel") -> "Subject":
    """What the watch engine measures with: ``loaded`` and its reference profile."""
    from dvc_monitor.evaluation.profiles import load_profile
    from dvc_monitor.monitoring.results import Subject
    from dvc_monitor.model.state import read_state

    state = read_state(root, loaded.name, loaded.commit)
    return Subject(loaded.name, loaded.version, loaded.kind, loaded.config, loaded.model,
                   load_profile(state, loaded.model), state)


def workspace_rules(root: str | Path, name: str, workspace=None):
    """The ``watch:`` rules of model ``name`` as its params in the workspace say now
    (``workspace``: its ``ModelState`` when read already)."""
    from dvc_monitor.model import state as model_state
    from dvc_monitor.monitoring.rules import rules_of

    if workspace is None:
        workspace = model_state.read_state(root, name, None)
    rules, _note = rules_of(workspace.params, workspace.spec, workspace.layout.params)
    return rules


def _live_decision(outcome: "WatchResult", hold: "Hold | None") -> LiveDecision:
    """The decision on an alarm as ``/health`` shows it (before anything is done)."""
    done = LiveDecision(outcome.decision, outcome.version, outcome.target,
                        outcome.breaching_windows, outcome.evidence)
    done.skipped = [f"{c.version} skipped: {c.skipped}" for c in outcome.candidates
                    if c.skipped]
    done.reason = hold.reason if hold else "; ".join(
        done.skipped + [f"{c.version} {'passes' if c.passed else 'fails'} the rules"
                        for c in outcome.candidates if not c.skipped])
    return done


def _say(text: str) -> None:
    print(f"dvc-monitor: {text}", file=sys.stderr, flush=True)

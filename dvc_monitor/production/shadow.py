"""``serve NAME#prod --shadow NAME#staging``: a candidate scores the live traffic beside
the served version, off the request path, and never answers a request.

The request path only offers what it just scored (the rows and the served version's
scores and alerts) to a bounded queue (``--shadow-queue`` requests): when the queue is
full the offer is dropped and counted (``dvc_monitor_shadow_dropped_total``), so a slow
shadow never delays a response. A background thread (at nice ``SHADOW_NICE``: it takes
the CPU the requests leave) scores the requests waiting with the shadow in one model call
(``LoadedModel.score_detail``) and collects whole requests into windows of at least
``window`` rows. Each window is measured by two ``monitoring.engine.Engine``s with the
same ``watch:`` rules (those of the model's params in the workspace): one for the served
version, one for the shadow (a forecast's windows come with the rows before them: the
shadow's training data, then the windows before). A ``ShadowWindow`` holds both ``WindowResult``s, the alert
rates, the share of rows whose alerts agree and quantiles of both score distributions.

The shadow follows its own reference: ``follower`` (a ``server.Follower`` of the shadow's
reference) swaps a new holder in; a window never mixes versions (the rows buffered for
another pair of versions are dropped at a swap).

Public hooks for what records a verdict later: ``ShadowScorer.windows()`` (the last
windows, oldest first) and ``ShadowScorer.subscribe(callback)`` (called with each new
``ShadowWindow`` in the shadow thread).
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dvc_monitor.errors import UsageError, shown

if TYPE_CHECKING:
    from dvc_monitor.monitoring.engine import Engine
    from dvc_monitor.monitoring.results import WindowResult
    from dvc_monitor.production.loader import LoadedModel

DEFAULT_SHADOW_QUEUE = 256  # requests waiting for the shadow; more are dropped (and counted)
RECENT_WINDOWS = 50  # shadow windows kept for /shadow, the page and windows()
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BATCH_REQUESTS = 64  # queued requests the shadow scores in one model call, at most
SHADOW_NICE = 19  # the shadow thread's nice value: it gets the CPU the requests leave
# The share of the time the shadow may work: after each batch it rests (busy / SHARE -
# busy), its queue filling meanwhile. It scores in the serving process, so its work holds
# the GIL the requests need: a shadow that kept up with every request would delay them;
# under load it samples the traffic instead (the requests it misses are counted).
SHADOW_SHARE = 0.25


def check_shadow(ref: str, shadow: str, queue_size: int) -> None:
    """A one-line ``UsageError`` for a ``--shadow`` that cannot work beside ``ref``."""
    if queue_size < 1:
        raise UsageError(f"--shadow-queue must be at least 1 request, got {queue_size}")
    name, other = _name_of(ref), _name_of(shadow)
    if name != other:
        raise UsageError(f"--shadow {shown(shadow, 80)} names model {shown(other, 60)}, but "
                         f"{name} is served; shadow another version of {name} "
                         f"(e.g. --shadow {name}#staging)")


def _name_of(ref: str) -> str:
    for sep in ("#", "@"):
        if sep in ref:
            return ref.split(sep, 1)[0]
    return ref


def score_summary(scores) -> dict:
    """The mean and ``QUANTILES`` of a window's scores (None for an empty window)."""
    import numpy as np

    from dvc_monitor.kinds.common import clean_number

    values = np.asarray(scores, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": None, **{f"p{round(q * 100):02d}": None for q in QUANTILES}}
    quantiles = np.quantile(values, QUANTILES)
    return clean_number({"mean": float(values.mean()),
                         **{f"p{round(q * 100):02d}": float(v)
                            for q, v in zip(QUANTILES, quantiles)}})


@dataclass
class ShadowWindow:
    """One window of live rows scored by the served version and by the shadow."""

    index: int
    window: str  # shadow#N
    time: str  # when it closed (UTC, ISO)
    rows: int
    prod_version: str
    shadow_version: str
    prod_alert_rate: float | None
    shadow_alert_rate: float | None
    agreement: float | None  # share of rows whose alerts agree (None: nothing to compare)
    compared: int  # rows the agreement is over
    prod_scores: dict
    shadow_scores: dict
    prod: "WindowResult"  # the watch: rules on the served version
    shadow: "WindowResult"  # the same rules on the shadow

    @property
    def judged(self) -> bool:
        return not self.shadow.too_few_rows

    @property
    def shadow_passed(self) -> bool:
        """The shadow passed every rule on this window (a window too small: not judged)."""
        return self.judged and not self.shadow.breached

    def to_json(self) -> dict:
        from dvc_monitor.kinds.common import clean_number

        return clean_number({
            "index": self.index, "window": self.window, "time": self.time, "rows": self.rows,
            "prod_version": self.prod_version, "shadow_version": self.shadow_version,
            "alert_rate": {"prod": self.prod_alert_rate, "shadow": self.shadow_alert_rate},
            "agreement": self.agreement, "compared": self.compared,
            "scores": {"prod": self.prod_scores, "shadow": self.shadow_scores},
            "prod": _result_json(self.prod), "shadow": _result_json(self.shadow),
            "shadow_passed": self.shadow_passed,
        })


def _result_json(result: "WindowResult") -> dict:
    return {"status": result.status, "rows": result.rows, "measures": result.measures,
            "breaches": [b.detail for b in result.breaches], "streak": result.streak,
            "alarm": result.alarm, "too_few_rows": result.too_few_rows}


class _ShadowMetrics:
    """The shadow's Prometheus metrics, in the app's registry."""

    def __init__(self, registry):
        from prometheus_client import Counter, Gauge

        r = registry
        self.info = Gauge("dvc_monitor_shadow_info", "The shadow version scoring beside the "
                          "served one (1)", ["model", "version"], registry=r)
        self.rows = Counter("dvc_monitor_shadow_rows", "Rows scored by the shadow",
                            ["model", "version"], registry=r)
        self.dropped = Counter("dvc_monitor_shadow_dropped", "Requests the shadow did not "
                               "score: its queue was full (the response was not delayed)",
                               registry=r)
        self.dropped_rows = Counter("dvc_monitor_shadow_dropped_rows",
                                    "Rows the shadow did not score (its queue was full)",
                                    registry=r)
        self.errors = Counter("dvc_monitor_shadow_errors", "Requests or windows the shadow "
                              "could not score or measure", registry=r)
        self.windows = Counter("dvc_monitor_shadow_windows", "Live windows scored by both",
                               ["model"], registry=r)
        self.alert_rate = Gauge("dvc_monitor_shadow_alert_rate",
                                "Alert rate on the last shadow window, of the served "
                                "version (role=prod) and of the shadow (role=shadow)",
                                ["model", "role", "version"], registry=r)
        self.agreement = Gauge("dvc_monitor_shadow_agreement",
                               "Share of rows of the last shadow window whose alerts agree",
                               ["model"], registry=r)
        self.score = Gauge("dvc_monitor_shadow_score",
                           "Score distribution on the last shadow window (mean, quantiles)",
                           ["model", "role", "stat"], registry=r)
        self.measure = Gauge("dvc_monitor_shadow_measure",
                             "A watch measure on the last shadow window, by role",
                             ["model", "role", "measure"], registry=r)
        self.breaches = Counter("dvc_monitor_shadow_breaches", "Rule breaches on shadow "
                                "windows, by role and measure",
                                ["model", "role", "measure"], registry=r)
        self.passing = Gauge("dvc_monitor_shadow_passing", "1 when the shadow passed every "
                             "watch: rule on the last judged window, 0 when not",
                             ["model"], registry=r)
        self.queued = Gauge("dvc_monitor_shadow_queue", "Requests waiting for the shadow",
                            registry=r)


class ShadowScorer:
    """The shadow: a bounded queue fed by the request path, scored in its own thread."""

    def __init__(self, root: str | Path, follower, registry, window: int,
                 queue_size: int = DEFAULT_SHADOW_QUEUE, ref: str | None = None):
        if window < 1:
            raise UsageError(f"--window must be at least 1 row, got {window}")
        self.root = Path(root)
        self.follower = follower  # follows the shadow's reference; .current is the shadow
        self.ref = ref or follower.current.ref
        self.window = window
        self.capacity = queue_size
        self.registry = registry  # the app's Prometheus registry
        self.metrics = _ShadowMetrics(registry)
        self.recorder = None  # what records the verdicts (production.autopromote)
        self.metrics.queued.set_function(lambda: self._queue.qsize())
        self.error: str | None = None
        self.counts = {"offered": 0, "dropped": 0, "dropped_rows": 0, "scored_rows": 0,
                       "errors": 0}
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._recent: collections.deque = collections.deque(maxlen=RECENT_WINDOWS)
        self._listeners: list[Callable[[ShadowWindow], None]] = []
        self._pair: tuple[str, str] | None = None  # (served, shadow) versions buffered
        self._buffer: list[tuple[list, Any, Any, Any, Any]] = []
        self._buffered = 0
        self._engines: dict[str, "Engine"] = {}  # role -> engine of the version measured
        self._lags: dict[str, Any] = {}  # forecast: the rows before the next window, by version
        self._index = 0
        self._thread: threading.Thread | None = None
        self._resting = threading.Event()  # set: stop resting (the server stops)
        self._info: tuple | None = None
        self._shown(follower.current)

    # -- the request path: one put, never a wait -------------------------------------------

    def offer(self, loaded: "LoadedModel", rows, scores) -> None:
        """Queue the rows ``loaded`` just scored (and its ``Scores``) for the shadow; drop
        and count them when the queue is full."""
        self.counts["offered"] += 1
        try:
            self._queue.put_nowait((loaded, rows, scores.score, scores.alert))
        except queue.Full:
            self.counts["dropped"] += 1
            self.counts["dropped_rows"] += len(scores.score)
            self.metrics.dropped.inc()
            self.metrics.dropped_rows.inc(len(scores.score))

    # -- public hooks ----------------------------------------------------------------------

    def windows(self) -> list[ShadowWindow]:
        """The last ``RECENT_WINDOWS`` shadow windows, oldest first (each with the served
        version's and the shadow's ``WindowResult``: ``.prod``, ``.shadow``)."""
        with self._lock:
            return list(self._recent)

    def subscribe(self, callback: Callable[[ShadowWindow], None]) -> None:
        """Call ``callback(window)`` in the shadow thread for every new window."""
        self._listeners.append(callback)

    def attach(self, recorder) -> None:
        """Hand every new window to ``recorder`` (``offer``), started and stopped with the
        shadow; ``GET /shadow`` shows it under ``recording``."""
        self.recorder = recorder
        self.subscribe(recorder.offer)

    def verdict(self) -> dict:
        """The rules' verdict on the current shadow, over the windows kept."""
        shadow = self.follower.current
        mine = [w for w in self.windows() if w.shadow_version == shadow.version]
        judged = [w for w in mine if w.judged]
        passed = sum(1 for w in judged if w.shadow_passed)
        engine = self._engines.get("shadow")
        streak = engine.watcher.streak if engine is not None else 0
        if not judged:
            status = "no judged window yet"
        elif passed == len(judged):
            status = "passes"
        else:
            status = "breaches"
        return {"version": shadow.version, "status": status, "windows": len(mine),
                "judged": len(judged), "passed": passed, "breached": len(judged) - passed,
                "streak": streak, "alarm": any(w.shadow.alarm for w in judged),
                "summary": (f"{shadow.version} passed every watch: rule on {passed} of "
                            f"{len(judged)} judged window(s)" if judged else
                            f"{shadow.version}: no window judged yet")}

    # -- the shadow thread -----------------------------------------------------------------

    def start(self) -> None:
        self.follower.start()
        if self.recorder is not None:
            self.recorder.start()
        self._thread = threading.Thread(target=self._loop, name="dvc-monitor-shadow",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.follower.stop()
        self._resting.set()
        if self._thread is not None:
            while True:  # make room for the end marker: what is queued is not scored
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put(None)
            self._thread.join(timeout=60)
        if self.recorder is not None:
            self.recorder.stop()

    def _loop(self) -> None:
        from dvc_monitor.production.watching import run_queue

        _lower_priority()
        run_queue(_Batches(self._queue), self._paced, self._report)

    def _paced(self, items: list) -> list[ShadowWindow]:
        """``score_many``, then a rest that keeps the shadow's work to ``SHADOW_SHARE`` of
        the time."""
        started = time.monotonic()
        try:
            return self.score_many(items)
        finally:
            busy = time.monotonic() - started
            self._resting.wait(busy * (1 / SHADOW_SHARE - 1))

    def _report(self, message: str | None) -> None:
        self.error = message
        if message is None:
            return
        self.counts["errors"] += 1
        self.metrics.errors.inc()
        print(f"dvc-monitor: shadow: {message}", file=sys.stderr, flush=True)

    def score_many(self, items: list) -> list[ShadowWindow]:
        """Score the rows of the requests waiting (``offer``'s tuples) with the shadow in
        one model call; measure each window they complete."""
        shadow = self.follower.current
        self._shown(shadow)
        requests = [(loaded, _records(rows), ps, pa) for loaded, rows, ps, pa in items]
        scored = _score_split(shadow, [rows for _, rows, _, _ in requests])
        rows_scored = sum(len(s.score) for s in scored)
        self.counts["scored_rows"] += rows_scored
        self.metrics.rows.labels(shadow.name, shadow.version).inc(rows_scored)
        windows = []
        for (loaded, rows, prod_score, prod_alert), scores in zip(requests, scored):
            pair = (loaded.version, shadow.version)
            with self._lock:
                if pair != self._pair:
                    self._pair, self._buffer, self._buffered = pair, [], 0
                self._buffer.append((rows, prod_score, prod_alert, scores.score, scores.alert))
                self._buffered += len(rows)
                full = self._buffer if self._buffered >= self.window else None
                if full is not None:
                    self._buffer, self._buffered = [], 0
            if full is not None:
                windows.append(self._measure(loaded, shadow, full))
        return windows

    def _measure(self, loaded: "LoadedModel", shadow: "LoadedModel",
                 parts: list) -> ShadowWindow:
        import numpy as np
        import pandas as pd

        from dvc_monitor.monitoring.windows import Window

        rows = [row for part in parts for row in part[0]]
        prod_score = np.concatenate([p[1] for p in parts])
        prod_alert = np.concatenate([p[2] for p in parts])
        shadow_score = np.concatenate([p[3] for p in parts])
        shadow_alert = np.concatenate([p[4] for p in parts])
        same = [(p[2], p[4]) for p in parts if len(p[2]) == len(p[4])]  # aligned rows only
        compared = sum(len(a) for a, _ in same)
        agreed = sum(int((np.asarray(a, bool) == np.asarray(b, bool)).sum()) for a, b in same)
        self._index += 1
        name = f"shadow#{self._index}"
        frame = pd.DataFrame.from_records(rows)
        window = Window(name, frame, self._before(shadow, frame))
        prod_result = self._engine("prod", loaded).observe(window)
        shadow_result = self._engine("shadow", shadow).observe(window)
        result = ShadowWindow(
            self._index, name, datetime.now(timezone.utc).isoformat(timespec="seconds"),
            len(rows), loaded.version, shadow.version, _rate(prod_alert), _rate(shadow_alert),
            agreed / compared if compared else None, compared, score_summary(prod_score),
            score_summary(shadow_score), prod_result, shadow_result)
        with self._lock:
            self._recent.append(result)
        self._record(result, loaded.name)
        for listener in list(self._listeners):
            listener(result)
        return result

    def _before(self, shadow: "LoadedModel", frame):
        """Forecast: the rows before the window (its lags), from the shadow's data on;
        None for a kind that needs no history."""
        from dvc_monitor.production.watching import Lags

        if shadow.version not in self._lags:
            self._lags = {shadow.version: Lags.of(self.root, shadow)}
        lags = self._lags[shadow.version]
        return None if lags is None else lags.before(frame)

    def _engine(self, role: str, loaded: "LoadedModel") -> "Engine":
        """The engine measuring ``loaded`` (built again when the version changed)."""
        from dvc_monitor.monitoring.engine import Engine
        from dvc_monitor.production.watching import subject_of, workspace_rules

        engine = self._engines.get(role)
        if engine is None or engine.subject.version != loaded.version:
            rules = workspace_rules(self.root, loaded.name)
            engine = Engine(subject_of(self.root, loaded), rules)
            self._engines[role] = engine
        return engine

    def _record(self, w: ShadowWindow, model: str) -> None:
        m = self.metrics
        m.windows.labels(model).inc()
        for role, version, rate, stats, result in (
                ("prod", w.prod_version, w.prod_alert_rate, w.prod_scores, w.prod),
                ("shadow", w.shadow_version, w.shadow_alert_rate, w.shadow_scores, w.shadow)):
            m.alert_rate.labels(model, role, version).set(_nan(rate))
            for stat, value in stats.items():
                m.score.labels(model, role, stat).set(_nan(value))
            for measure, value in result.measures.items():
                m.measure.labels(model, role, measure).set(_nan(value))
            for b in result.breaches:
                m.breaches.labels(model, role, b.measure).inc()
        m.agreement.labels(model).set(_nan(w.agreement))
        if w.judged:
            m.passing.labels(model).set(1 if w.shadow_passed else 0)

    def _shown(self, shadow: "LoadedModel") -> None:
        """Point ``dvc_monitor_shadow_info`` at ``shadow``."""
        labels = (shadow.name, shadow.version)
        if labels == self._info:
            return
        if self._info is not None:
            self.metrics.info.remove(*self._info)
        self._info = labels
        self.metrics.info.labels(*labels).set(1)

    def rules(self) -> dict | None:
        engine = self._engines.get("shadow")
        return engine.rules.to_json() if engine is not None else None

    def to_json(self, limit: int = RECENT_WINDOWS) -> dict:
        """What ``GET /shadow`` answers."""
        shadow = self.follower.current
        with self._lock:
            buffered = self._buffered
        windows = self.windows()[-limit:] if limit else []
        return {
            "ref": self.ref, "version": shadow.version, "id": shadow.id,
            "readiness": self.follower.readiness().to_json(),
            "last_reload": self.follower.last.to_json(),
            "window": self.window, "rows_buffered": buffered,
            "queue": {"waiting": self._queue.qsize(), "capacity": self.capacity},
            **self.counts, "error": self.error, "rules": self.rules(),
            "verdict": self.verdict(),
            "recording": None if self.recorder is None else self.recorder.to_json(),
            "last_window": windows[-1].to_json() if windows else None,
            "windows": [w.to_json() for w in windows],
        }


def _lower_priority() -> None:
    """Let this thread have the CPU only when the request path does not want it (Linux
    schedules threads apart: a nice value of ``SHADOW_NICE`` for this one alone)."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: the default priority
        pass


class _Batches:
    """A queue's items taken in batches: ``get`` waits for one item, then takes those
    already waiting too (at most ``BATCH_REQUESTS``); None at the end marker."""

    def __init__(self, items: queue.Queue):
        self.items = items

    def get(self):
        first = self.items.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < BATCH_REQUESTS:
            try:
                item = self.items.get_nowait()
            except queue.Empty:
                break
            if item is None:  # the end: put it back for the next get
                self.items.put(None)
                break
            batch.append(item)
        return (batch,)


def _score_split(shadow: "LoadedModel", requests: list[list]) -> list:
    """The shadow's ``Scores`` of each request's rows, in one model call when its kind
    scores each row on its own (one score per row), else request by request."""
    if len(requests) == 1 or shadow.spec.needs_history:
        return [shadow.score_detail(rows, "the shadowed rows") for rows in requests]
    from dvc_monitor.production.scoring import Scores

    whole = shadow.score_detail([row for rows in requests for row in rows],
                                "the shadowed rows")
    if len(whole.score) != sum(map(len, requests)):
        return [shadow.score_detail(rows, "the shadowed rows") for rows in requests]
    out, start = [], 0
    for rows in requests:
        end = start + len(rows)
        out.append(Scores(whole.results[start:end], whole.score[start:end],
                          whole.alert[start:end]))
        start = end
    return out


def _records(rows) -> list:
    """The rows as a list of objects (a protocol may hand a DataFrame)."""
    if isinstance(rows, list):
        return rows
    return rows.to_dict("records")


def _rate(alerts) -> float | None:
    import numpy as np

    return float(np.asarray(alerts, dtype=bool).mean()) if len(alerts) else None


def _nan(value) -> float:
    return float("nan") if value is None else float(value)

"""``dvc-monitor serve``: an ASGI scoring service (Starlette on uvicorn) that follows a stage.

One ``Follower`` per process holds the served ``LoadedModel``. A background thread
looks at the reference every ``poll`` seconds: for a URL, one ``git ls-remote`` and a
``git fetch`` into the cached clone only when the origin's refs moved; then the registry
is read again only when its tags' files changed (a few ``stat`` calls). When the holder
changes it loads and verifies the new version off the request path (or takes the standby:
the stage's previous holder, loaded in advance, so a rollback needs no load), then swaps
one reference: a request reads that reference once, so it finishes on the model it
started with. A version that fails to load or verify is not swapped in; it is tried again
on later polls, after a delay that doubles up to ``RETRY_MAX`` seconds, and swapped in once
it loads. While the served version is not the reference's holder, ``/health`` says
``degraded`` and ``/ready`` answers 503.

A request body is read up to ``max_body`` bytes, then parsed, cut down to the model's
columns and scored in a worker thread (at most ``SCORING_THREADS`` at once), never on the
event loop. A client that hangs up before its body is complete is counted as status 499.

Routes: ``POST /score`` (``{"rows": [...]}``), ``GET /health``, ``GET /ready``,
``GET /version``, ``POST /reload``, ``GET /metrics`` (Prometheus text, one registry per
app: no global state); ``GET /`` (the page, ``page``), ``GET /status`` (the JSON behind
it) and ``GET /shadow`` (``serve --shadow``: ``shadow.ShadowScorer``, fed after each
response is scored, off the request path); the Open Inference Protocol (V2: ``GET /v2``,
``/v2/health/live``, ``/v2/health/ready``, ``GET /v2/models/{name}[/versions/{v}]``,
``.../ready``, ``POST .../infer``, JSON or binary tensors); MLflow's scoring protocol
(``POST /invocations``, ``GET /ping``). Each protocol's bodies are read and written by
``protocols``, and errors come in its own shape; all of them score through one path
(``_Service.score``): the same schema checks, model, metrics, live watch and
``X-Model-Version`` header. Concurrent requests' checked rows are scored together in one
model call (``batching.Batcher``; ``--max-batch-delay``, ``--max-batch-rows``).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

from dvc_monitor.errors import DvcMonitorError
from dvc_monitor.production.loader import (
    LoadedModel, fetch_registry, load_version, refs_stamp, registry_git_dir, resolve,
    resolve_with_previous,
)
from dvc_monitor.production import protocols
from dvc_monitor.production.protocols import ProtocolError, cap
from dvc_monitor.production.shadow import DEFAULT_SHADOW_QUEUE
from dvc_monitor.production.scoring import fit_model_rows, score_fitted_many, select_columns

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.production.scoring import Scores

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_POLL = 2.0
DEFAULT_MAX_BODY = 4 * 1024 * 1024  # bytes
DEFAULT_WINDOW = 1000  # rows the live gauges look at
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ROUTES = ("POST /score, GET /health, GET /ready, GET /version, GET /metrics, POST /reload, "
          "GET /v2, GET /v2/health/live, GET /v2/health/ready, GET /v2/models/{name}, "
          "GET /v2/models/{name}/ready, POST /v2/models/{name}/infer, POST /invocations, "
          "GET /ping, GET /shadow, GET /status, GET /")
RETRY_MAX = 60.0  # seconds between two tries of a refused version, at most
SCORING_THREADS = 4  # requests parsed and scored at once; the others wait their turn
CLIENT_CLOSED = 499  # the status counted for a client that hung up before its body ended
DEFAULT_MAX_BATCH_DELAY = 2.0  # milliseconds a request may wait for others to batch with
DEFAULT_MAX_BATCH_ROWS = 4096  # rows scored in one model call, at most


@dataclass(frozen=True)
class ServeSettings:
    """What a worker needs to build its app (picklable: ``--workers`` spawns processes)."""

    ref: str
    root: str  # the repository, or the cached clone of a URL
    is_url: bool = False
    poll: float = DEFAULT_POLL
    max_body: int = DEFAULT_MAX_BODY
    window: int = DEFAULT_WINDOW
    watch_window: int | None = None  # serve --watch: rows per live window
    watch_stage: str | None = None  # serve --auto-rollback: the stage it may roll back
    max_batch_delay: float = DEFAULT_MAX_BATCH_DELAY  # milliseconds; 0: no batching
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    shadow_ref: str | None = None  # serve --shadow: the candidate scoring beside the served
    shadow_queue: int = DEFAULT_SHADOW_QUEUE  # requests waiting for the shadow, at most
    shadow_window: int | None = None  # rows per shadow window (None: the watch default)
    verdict_windows: int = 3  # serve --windows: judged shadow windows per verdict
    auto_promote_stage: str | None = None  # serve --auto-promote: the stage it promotes to
    retrain_stage: str | None = None  # serve --watch --retrain: the candidates' stage


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one look at the registry."""

    result: str  # loaded, unchanged, swapped, refused, error
    time: str
    version: str | None = None  # the version looked at
    message: str = ""

    def to_json(self) -> dict:
        return {"result": self.result, "time": self.time, "version": self.version,
                "message": self.message}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _key(mv) -> tuple:
    return (mv.name, mv.version, mv.commit, mv.model_md5)


# -- metrics ----------------------------------------------------------------------------


class Metrics:
    """The Prometheus metrics of one app, in a registry of its own."""

    def __init__(self, window: int):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter("dvc_monitor_requests", "HTTP requests by path and status",
                                ["path", "status"], registry=r)
        self.latency = Histogram("dvc_monitor_request_duration_seconds",
                                 "Time to answer a request, by path", ["path"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.rows = Counter("dvc_monitor_rows_scored", "Rows scored, by model version",
                            ["model", "version"], registry=r)
        self.model_info = Gauge("dvc_monitor_model_info", "The model version being served (1)",
                                ["model", "version", "id"], registry=r)
        self.reloads = Counter("dvc_monitor_reloads", "Registry checks by result "
                               "(swapped, refused, error, unchanged)", ["result"], registry=r)
        self.reload_ok = Gauge("dvc_monitor_last_reload_ok",
                               "1 when the last reload check succeeded, 0 when it failed "
                               "or refused a version", registry=r)
        self.ready = Gauge("dvc_monitor_ready", "1 when the version served is the holder of "
                           "the reference (GET /ready answers 200), 0 when not", registry=r)
        self.live_alert_rate = Gauge("dvc_monitor_live_alert_rate",
                                     "Share of alerts (forecast: anomalies) in the last scored rows",
                                     ["model", "kind"], registry=r)
        self.live_mean_score = Gauge("dvc_monitor_live_mean_score",
                                     "Mean score in the last scored rows (anomaly score, forecast "
                                     "error over interval half-width, risk probability)",
                                     ["model", "kind"], registry=r)
        self.batch_rows = Histogram("dvc_monitor_batch_rows",
                                    "Rows scored in one model call (serve batches concurrent "
                                    "requests)", registry=r,
                                    buckets=tuple(2 ** i for i in range(13)))
        self.batch_requests = Histogram("dvc_monitor_batch_requests",
                                        "Requests scored in one model call", registry=r,
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.fetches = Counter("dvc_monitor_registry_fetches", "git fetch runs into the cached "
                               "clone of a URL (a poll that finds the origin's refs unchanged "
                               "runs none)", registry=r)
        self.registry_reads = Counter("dvc_monitor_registry_reads", "Full reads of the registry "
                                      "(a poll that finds the tags unchanged reads none)",
                                      registry=r)
        self.live_rows = Gauge("dvc_monitor_live_window_rows", "Rows in the live window",
                               ["model", "kind"], registry=r)
        self._window: collections.deque = collections.deque(maxlen=window)
        self._lock = threading.Lock()
        self._info_labels: tuple | None = None

    def serving(self, loaded: LoadedModel) -> None:
        """Point model_info and the live gauges at ``loaded``; the window starts afresh."""
        with self._lock:
            if self._info_labels is not None:
                self.model_info.remove(*self._info_labels)
            self._info_labels = (loaded.name, loaded.version, loaded.id or "")
            self.model_info.labels(*self._info_labels).set(1)
            self._window.clear()
        labels = (loaded.name, loaded.kind)
        self.live_alert_rate.labels(*labels).set_function(lambda: self._stat(1))
        self.live_mean_score.labels(*labels).set_function(lambda: self._stat(0))
        self.live_rows.labels(*labels).set_function(lambda: len(self._window))

    def observe_rows(self, loaded: LoadedModel, scores, alerts) -> None:
        self.rows.labels(loaded.name, loaded.version).inc(len(scores))
        with self._lock:
            if self._info_labels is None or self._info_labels[1] != loaded.version:
                return  # a request that finished on the model just swapped out
            self._window.extend(zip(scores.tolist(), alerts.tolist()))

    def _stat(self, index: int) -> float:
        with self._lock:
            if not self._window:
                return float("nan")
            return sum(float(item[index]) for item in self._window) / len(self._window)

    def reloaded(self, result: ReloadResult) -> None:
        self.reloads.labels(result.result).inc()
        if result.result in ("refused", "error"):
            self.reload_ok.set(0)
        elif result.result in ("swapped", "unchanged", "loaded"):
            self.reload_ok.set(1)


# -- following the stage ----------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A holder of the reference that failed to load or verify, and when to try it again."""

    key: tuple
    version: str
    attempts: int
    retry_at: float  # time.monotonic()
    message: str


@dataclass(frozen=True)
class Readiness:
    """Whether the version served is the one the reference names (``/health``, ``/ready``)."""

    ready: bool
    version: str  # served
    holder: str  # the version the reference named at the last look
    reason: str | None = None
    attempts: int = 0  # tries of the holder that failed
    retry_in: float | None = None  # seconds until the next try

    @property
    def status(self) -> str:
        return "ok" if self.ready else "degraded"

    def to_json(self) -> dict:
        return {"status": self.status, "ready": self.ready, "reason": self.reason,
                "holder": self.holder, "attempts": self.attempts, "retry_in": self.retry_in}


def _loaded_key(loaded: LoadedModel) -> tuple:
    return (loaded.name, loaded.version, loaded.commit, loaded.md5)


class Follower:
    """The served model, and the loop that swaps in a new holder of the reference."""

    def __init__(self, settings: ServeSettings, first: LoadedModel, metrics: Metrics):
        self.settings = settings
        self.current = first  # read once per request; replaced by one assignment
        self.metrics = metrics
        self.last = ReloadResult("loaded", _now(), first.version, f"loaded {first.ref}")
        self.refusal: Refusal | None = None  # the holder, while it cannot be swapped in
        self._check_lock = threading.Lock()
        self._git_dir: Path | None = None  # where the registry's tags are stored
        self._seen: tuple | None = None  # (refs_stamp, holder, previous holder) at that stamp
        self.standby: LoadedModel | None = None  # verified, kept for a swap with no load
        self._unloadable: tuple | None = None  # a previous holder that failed to load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.serving(first)
        metrics.reloaded(self.last)
        metrics.ready.set(1)

    def check(self, force: bool = False) -> ReloadResult:
        """Look at the registry once; load, verify and swap when the holder changed.

        A version refused before is tried again once its delay is over (it doubles after
        each failed try, up to ``RETRY_MAX``), or at once with ``force`` (``POST /reload``).
        """
        with self._check_lock:
            result = self._check(force)
            if result is None:  # a refused holder still waiting for its next try
                return self.last
            self.last = result
            self.metrics.reloaded(result)
            self.metrics.ready.set(1 if self.readiness().ready else 0)
            return result

    def _check(self, force: bool) -> ReloadResult | None:
        root = Path(self.settings.root)
        current = self.current
        try:
            if self.settings.is_url and fetch_registry(root):
                self.metrics.fetches.inc()
            mv = self._holder(root, force)
        except DvcMonitorError as exc:
            return ReloadResult("error", _now(), None,
                                f"could not read the registry ({exc}); still serving {current.ref}")
        key = _key(mv)
        refusal = self.refusal if self.refusal is not None and self.refusal.key == key else None
        if key == _loaded_key(current):
            self.refusal = None
            return ReloadResult("unchanged", _now(), mv.version, f"serving {current.ref}")
        if refusal is not None and not force and time.monotonic() < refusal.retry_at:
            return None
        try:
            standby = self.standby
            new = standby if standby is not None and _loaded_key(standby) == key \
                else load_version(root, mv)
        except DvcMonitorError as exc:
            attempts = 1 + (refusal.attempts if refusal else 0)
            delay = min(self.settings.poll * 2 ** attempts, max(RETRY_MAX, self.settings.poll))
            message = (f"{mv.ref} was not swapped in: {exc}; still serving {current.ref} "
                       f"(try {attempts}; the next in {delay:.0f} s)")
            self.refusal = Refusal(key, mv.version, attempts, time.monotonic() + delay, message)
            return ReloadResult("refused", _now(), mv.version, message)
        self.current = new
        self.standby = current  # the way back, should this change be undone
        self.refusal = None
        self.metrics.serving(new)
        return ReloadResult("swapped", _now(), new.version, f"swapped {current.ref} for {new.ref}")

    def _holder(self, root: Path, force: bool):
        """The version the reference names now. The registry is read again only when its
        tags' files changed since the last read (``refs_stamp``: a few ``stat`` calls, no
        git process, so a poll that finds nothing new costs next to nothing), or with
        ``force``. The stamp is taken before the read: a tag written meanwhile is seen at
        the next poll."""
        if self._git_dir is None:
            self._git_dir = registry_git_dir(root)
        stamp = refs_stamp(self._git_dir)
        if force or self._seen is None or self._seen[0] != stamp:
            self.metrics.registry_reads.inc()
            self._seen = (stamp, *resolve_with_previous(root, self.settings.ref))
        return self._seen[1]

    def warm(self) -> None:
        """Load the stage's previous holder as the standby, if it is not already: the
        version ``rollback --previous`` would bring back is then swapped in without a
        load (a rollback is when a fast switch matters most). Costs one more model in
        memory; a version that cannot be loaded is simply not kept."""
        with self._check_lock:
            seen, standby = self._seen, self.standby
            previous = seen[2] if seen is not None else None
            if previous is None or _key(previous) == _loaded_key(self.current):
                return
            if standby is not None and _key(previous) == _loaded_key(standby):
                return
            if self._unloadable == _key(previous):
                return  # tried already, and it did not load: its swap will say why
            try:
                self.standby = load_version(Path(self.settings.root), previous)
            except DvcMonitorError:
                self._unloadable = _key(previous)

    def readiness(self) -> Readiness:
        """Ready when no holder of the reference is waiting to be swapped in (a registry
        that cannot be read keeps the last holder it named)."""
        current, refusal = self.current, self.refusal
        if refusal is None:
            return Readiness(True, current.version, current.version)
        wait = max(0.0, round(refusal.retry_at - time.monotonic(), 1))
        return Readiness(False, current.version, refusal.version, refusal.message,
                         refusal.attempts, wait)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dvc-monitor-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.poll):
            before = self.last
            try:
                result = self.check()
            except Exception as exc:  # keep following whatever one look did
                result = ReloadResult("error", _now(), None, f"{type(exc).__name__}: {exc}")
                self.last = result
                self.metrics.reloaded(result)
            if result is not before and result.result in ("swapped", "refused", "error"):
                print(f"dvc-monitor: {result.time} {result.result}: {result.message}",
                      file=sys.stderr, flush=True)
            if result.result in ("swapped", "unchanged"):
                try:
                    self.warm()
                except Exception:  # the standby only saves time; serving goes on without
                    self.standby = None


# -- the app ----------------------------------------------------------------------------


def _error(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": cap(message), "status": status}, status_code=status)


async def _read_body(request, limit: int) -> bytes:
    """The request body, refused (413) beyond ``limit`` bytes without reading it all;
    a client that hangs up before its body is complete: ``ProtocolError`` 499."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, f"the request body is {declared} bytes; the limit is {limit}. "
                                 "Send fewer rows per request")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ProtocolError(413, f"the request body is over the limit of {limit} "
                                         "bytes; send fewer rows per request")
            chunks.append(chunk)
    except ClientDisconnect:  # nobody to answer: counted, and said in one line
        client = request.client
        who = f"{client.host}:{client.port}" if client else "a client"
        print(f"dvc-monitor: {who} hung up before its request body was complete "
              f"({request.method} {request.url.path}); counted as status {CLIENT_CLOSED}",
              file=sys.stderr, flush=True)
        raise ProtocolError(CLIENT_CLOSED, "the client hung up") from None
    return b"".join(chunks)


ROWS_HINT = 'send {"rows": [{column: value, ...}, ...]}'


def _rows_of(body: bytes) -> list:
    doc = protocols.loads(body, "request body", ROWS_HINT)
    if not isinstance(doc, dict) or "rows" not in doc:
        raise ProtocolError(400, 'the request body must be a JSON object {"rows": [...]}')
    rows = doc["rows"]
    if not isinstance(rows, list):
        raise ProtocolError(400, '"rows" must be a list of objects (column: value)')
    if not rows:
        raise ProtocolError(422, '"rows" is empty; send at least one row')
    return rows


def check_and_score(loaded: LoadedModel, rows, source: str) -> tuple[object, "Scores"]:
    """Check ``rows`` against the model's schema and score them (CPU work: run it in a
    worker thread). ``rows``: a list of JSON row objects, a DataFrame, or a function of
    the model that parses a body into one of them. Returns the rows the live watch sees
    (the model's columns) and the scores; ``ProtocolError`` for a bad body."""
    kept, fitted = check_rows(loaded, rows, source)
    return kept, score_batch(loaded, [fitted])[0]


def check_rows(loaded: LoadedModel, rows, source: str) -> tuple[object, "pd.DataFrame"]:
    """``check_and_score`` without the scoring: the rows the live watch sees and the
    checked numeric rows (``scoring.fit_rows``); ``ProtocolError`` for a bad body."""
    try:
        if callable(rows):
            rows = rows(loaded)
        if isinstance(rows, list):
            rows = select_columns(rows, loaded.config, source)
        return rows, fit_model_rows(loaded, rows, source)
    except DvcMonitorError as exc:  # SchemaError: a missing or non-numeric column
        raise ProtocolError(422, str(exc)) from None


def score_batch(loaded: LoadedModel, frames: list) -> list:
    """The ``Scores`` of each request's checked rows, scored in one model call."""
    try:
        return score_fitted_many(loaded, frames)
    except DvcMonitorError as exc:
        raise ProtocolError(422, str(exc)) from None


def _watched_rows(loaded: LoadedModel, rows) -> list:
    """The rows as the live watch takes them: objects of the model's columns."""
    if isinstance(rows, list):
        return rows
    keep = [c for c in loaded.config.columns if c in rows.columns]
    return rows[keep].to_dict("records")


def score_response(loaded: LoadedModel, results: list[dict]) -> dict:
    """The document ``POST /score`` and ``score --json`` answer with."""
    return {"model": loaded.name, "version": loaded.version, "id": loaded.id, "results": results}


def _path_label(path: str, known: frozenset[str]) -> str:
    """The metrics label of a request path: a route, a V2 model route with its name
    folded (``/v2/models/*/infer``), or ``other``: the label set stays bounded."""
    if path in known:
        return path
    if path.startswith("/v2/models/"):
        tail = next((t for t in ("/infer", "/ready") if path.endswith(t)), "")
        return "/v2/models/*" + tail
    return "other"


class _Observe:
    """ASGI middleware: count every HTTP request and time it, by path and status."""

    def __init__(self, app, metrics: Metrics, known: frozenset[str]):
        self.app, self.metrics, self.known = app, metrics, known

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = _path_label(scope["path"], self.known)
        status = {"code": 500}
        started = time.perf_counter()

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)
            self.metrics.requests.labels(path, str(status["code"])).inc()


class _Service:
    """What one app serves with: the settings, the follower of the reference (which holds
    the served model), the app's metrics and the live watch (``serve --watch``)."""

    def __init__(self, settings: ServeSettings, first: LoadedModel | None = None,
                 shadow_first: LoadedModel | None = None):
        if first is None:
            first = load_version(settings.root, resolve(settings.root, settings.ref))
        self.settings = settings
        self.metrics = Metrics(settings.window)
        self.follower = Follower(settings, first, self.metrics)
        self.shadow = self._shadow(shadow_first) if settings.shadow_ref else None
        self.live = None
        if settings.watch_window:
            from dvc_monitor.production.watching import LiveWatch

            self.live = LiveWatch(settings.root, settings.watch_window, self.metrics.registry,
                                  lambda: self.follower.current, stage=settings.watch_stage,
                                  retrain=settings.retrain_stage)
            self.live.prepare(first)  # bad watch: rules fail here, before the server starts
        self.limiters: list = []  # the scoring threads' limiter, made in the event loop
        self.history = None  # the stage history the page shows (page.StageHistory)
        self.batchers: list = []  # the batcher, made in the event loop (none: delay 0)

    async def score(self, rows, source: str = "the request") -> tuple[LoadedModel, "Scores"]:
        """Score a request's rows on the served model: the one scoring path of every
        protocol. ``rows``: a list of JSON row objects, a DataFrame, or a function of the
        model parsing a body into one (run in the worker thread, off the event loop).
        Checks the schema (``ProtocolError`` 422), scores in a worker thread (at most
        ``SCORING_THREADS`` at once), counts the rows and feeds the live watch. Returns
        the model the request was scored on, whatever a swap does meanwhile."""
        import anyio
        import anyio.to_thread

        if not self.limiters:
            self.limiters.append(anyio.CapacityLimiter(SCORING_THREADS))
        loaded = self.follower.current  # read once: this request's model
        batcher = self._batcher(loaded)
        if batcher is None:
            kept, scores = await anyio.to_thread.run_sync(check_and_score, loaded, rows,
                                                           source, limiter=self.limiters[0])
        else:  # rows checked alone (a bad request fails alone), then scored in a batch
            batcher.expect()
            try:
                kept, fitted = await anyio.to_thread.run_sync(check_rows, loaded, rows, source,
                                                               limiter=self.limiters[0])
            except BaseException:
                batcher.forget()
                raise
            scores = await batcher.submit(loaded, fitted, len(fitted))
        self.metrics.observe_rows(loaded, scores.score, scores.alert)
        if self.live is not None:
            self.live.add(loaded, _watched_rows(loaded, kept))
        if self.shadow is not None:
            self.shadow.offer(loaded, kept, scores)
        return loaded, scores

    def _shadow(self, first: LoadedModel | None):
        """``serve --shadow``: the shadow, following its own reference (its own
        ``Follower``, whose metrics stay out of the app's registry)."""
        import dataclasses

        from dvc_monitor.production.autopromote import attach_recorder
        from dvc_monitor.production.shadow import ShadowScorer
        from dvc_monitor.production.watching import DEFAULT_WATCH_WINDOW

        settings = self.settings
        own = dataclasses.replace(settings, ref=settings.shadow_ref, shadow_ref=None)
        if first is None:
            first = load_version(settings.root, resolve(settings.root, own.ref))
        follower = Follower(own, first, Metrics(settings.window))
        scorer = ShadowScorer(settings.root, follower, self.metrics.registry,
                              settings.shadow_window or DEFAULT_WATCH_WINDOW,
                              settings.shadow_queue, own.ref)
        attach_recorder(scorer, settings)  # its verdicts become tags (a local repository)
        return scorer


    def _batcher(self, loaded: LoadedModel):
        """The batcher, or None: batching off (``--max-batch-delay 0``), or a kind whose
        rows are scored from the rows before them (a forecast: never mixed)."""
        if self.settings.max_batch_delay <= 0 or loaded.spec.needs_history:
            return None
        if not self.batchers:
            from dvc_monitor.production.batching import Batcher

            self.batchers.append(Batcher(self._score_batch, self.settings.max_batch_delay / 1000,
                                         self.settings.max_batch_rows))
        return self.batchers[0]

    async def _score_batch(self, loaded: LoadedModel, frames: list) -> list:
        """Score the checked rows of several requests in one model call (worker thread)."""
        import anyio.to_thread

        scores = await anyio.to_thread.run_sync(score_batch, loaded, frames,
                                                limiter=self.limiters[0])
        self.metrics.batch_rows.observe(sum(len(frame) for frame in frames))
        self.metrics.batch_requests.observe(len(frames))
        return scores


def _version_header(loaded: LoadedModel) -> dict:
    return {"X-Model-Version": loaded.version}


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dvc-monitor")
    except PackageNotFoundError:
        return "unknown"


V2_ACTIONS = {"": ("metadata", "GET"), "/ready": ("ready", "GET"), "/infer": ("infer", "POST")}


class _Endpoints:
    """The handlers of the routes, over one ``_Service``: each reads its protocol's body
    (``protocols``), scores through ``_Service.score`` and answers in its protocol."""

    def __init__(self, service: _Service):
        self.service = service

    async def score(self, request):
        from starlette.responses import JSONResponse

        try:
            body = await _read_body(request, self.service.settings.max_body)
            loaded, scores = await self.service.score(lambda model: _rows_of(body))
        except ProtocolError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse(score_response(loaded, scores.results),
                            headers=_version_header(loaded))

    # -- Open Inference Protocol (V2) ----------------------------------------------------

    def _v2_json(self, doc: dict, status: int = 200):
        from starlette.responses import JSONResponse

        return JSONResponse(doc, status_code=status,
                            headers=_version_header(self.service.follower.current))

    async def v2_server(self, request):
        return self._v2_json(protocols.v2_server_metadata(_package_version()))

    async def v2_live(self, request):
        return self._v2_json({"live": True})

    async def v2_ready(self, request):
        ready = self.service.follower.readiness().ready
        return self._v2_json({"ready": ready}, 200 if ready else 503)

    async def v2_model(self, request):
        """``/v2/models/{name}[/versions/{version}][/ready|/infer]``: the name may hold
        '/', so the path is matched against the served model's name."""
        loaded = self.service.follower.current
        try:
            action = self._v2_action(loaded, request.path_params["rest"], request.method)
        except ProtocolError as exc:
            return self._v2_json(protocols.v2_error(exc.message), exc.status)
        spec = loaded.spec
        if action == "metadata":
            return self._v2_json(protocols.v2_metadata(
                loaded.name, loaded.version, protocols.input_columns(spec, loaded.config),
                spec.result_fields, loaded.kind))
        if action == "ready":
            ready = self.service.follower.readiness().ready
            return self._v2_json({"name": loaded.name, "ready": ready}, 200 if ready else 503)
        return await self._v2_infer(request)

    def _v2_action(self, loaded: LoadedModel, rest: str, method: str) -> str:
        from dvc_monitor.errors import shown

        name = loaded.name
        if rest != name and not rest.startswith(name + "/"):
            raise ProtocolError(404, f"no model {shown(rest, 60)}; this server serves {name}")
        tail = rest[len(name):]
        if tail.startswith("/versions/"):
            version, _, after = tail[len("/versions/"):].partition("/")
            if version != loaded.version:
                raise ProtocolError(404, f"version {shown(version, 40)} of {name} is not "
                                         f"served; this server serves {loaded.version}")
            tail = "/" + after if after else ""
        if tail not in V2_ACTIONS:
            raise ProtocolError(404, f"no such path under model {name}: {shown(tail, 60)}; "
                                     "use /v2/models/{name}, .../ready or .../infer")
        action, allowed = V2_ACTIONS[tail]
        if method != allowed:
            raise ProtocolError(405, f"{method} is not allowed on this path; use {allowed}")
        return action

    async def _v2_infer(self, request):
        from starlette.responses import Response

        header = request.headers.get(protocols.V2_HEADER_LENGTH)
        parsed: list = []

        def parse(model: LoadedModel):
            parsed.append(protocols.v2_request(
                body, header, protocols.input_columns(model.spec, model.config),
                model.spec.result_fields))
            return parsed[0].rows

        try:
            body = await _read_body(request, self.service.settings.max_body)
            loaded, scores = await self.service.score(parse)
            content, headers = protocols.v2_response(
                loaded.name, loaded.version, parsed[0], loaded.spec.result_fields,
                scores.results)
        except ProtocolError as exc:
            return self._v2_json(protocols.v2_error(exc.message), _v2_status(exc.status))
        return Response(content, headers={**headers, **_version_header(loaded)})

    # -- MLflow's scoring protocol -------------------------------------------------------

    async def invocations(self, request):
        from starlette.responses import JSONResponse

        content_type = request.headers.get("content-type")

        def parse(model: LoadedModel):
            return protocols.mlflow_rows(body, content_type,
                                         protocols.input_columns(model.spec,
                                                                 model.config))

        try:
            body = await _read_body(request, self.service.settings.max_body)
            loaded, scores = await self.service.score(parse)
        except ProtocolError as exc:
            return JSONResponse(protocols.mlflow_error(exc.message),
                                status_code=_mlflow_status(exc.status),
                                headers=_version_header(self.service.follower.current))
        return JSONResponse({"predictions": scores.results}, headers=_version_header(loaded))

    async def ping(self, request):
        from starlette.responses import Response

        return Response("\n", media_type="application/json",
                        headers=_version_header(self.service.follower.current))

    async def health(self, request):
        from starlette.responses import JSONResponse

        svc = self.service
        loaded = svc.follower.current
        last = svc.follower.last
        readiness = svc.follower.readiness().to_json()  # status: ok, or degraded and why
        watching = {} if svc.live is None else {"watch": svc.live.to_json()}
        standby = svc.follower.standby
        return JSONResponse({**readiness, "ref": svc.settings.ref, **loaded.to_json(),
                             "standby": standby.version if standby is not None else None,
                             "last_reload": last.to_json(), **watching},
                            headers={"X-Model-Version": loaded.version})

    async def ready(self, request):
        from starlette.responses import JSONResponse

        svc = self.service
        loaded = svc.follower.current
        readiness = svc.follower.readiness()
        return JSONResponse({**readiness.to_json(), "ref": svc.settings.ref,
                             "version": loaded.version},
                            status_code=200 if readiness.ready else 503,
                            headers={"X-Model-Version": loaded.version})

    async def version(self, request):
        from starlette.responses import JSONResponse

        loaded = self.service.follower.current
        return JSONResponse({"model": loaded.name, "version": loaded.version, "id": loaded.id,
                             "pid": os.getpid()},  # which process (--workers) answered
                            headers={"X-Model-Version": loaded.version})

    async def reload(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        follower = self.service.follower
        result = await run_in_threadpool(follower.check, True)
        loaded = follower.current
        status = 200 if result.result in ("swapped", "unchanged") else 409
        return JSONResponse({**result.to_json(), "serving": loaded.version}, status_code=status,
                            headers={"X-Model-Version": loaded.version})

    async def prometheus(self, request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.responses import Response

        return Response(generate_latest(self.service.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    async def shadow(self, request):
        from starlette.responses import JSONResponse

        svc = self.service
        if svc.shadow is None:
            return _error(404, "no shadow: serve with --shadow NAME#STAGE (or a version) "
                               "to score a candidate beside the served version")
        return JSONResponse(svc.shadow.to_json(), headers=_version_header(svc.follower.current))

    async def status(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        from dvc_monitor.production import page

        svc = self.service
        loaded = svc.follower.current
        if svc.history is None:
            svc.history = page.StageHistory(svc.settings.root, loaded.name)
        history = await run_in_threadpool(svc.history.events)
        doc = {**svc.follower.readiness().to_json(), "ref": svc.settings.ref,
               **loaded.to_json(), "last_reload": svc.follower.last.to_json()}
        return JSONResponse(page.status(doc, history, svc.shadow, svc.live),
                            headers=_version_header(loaded))

    async def page(self, request):
        from starlette.responses import HTMLResponse

        from dvc_monitor.production.page import PAGE

        return HTMLResponse(PAGE, headers={
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; connect-src 'self'; "
                                       "img-src 'self' data:",
            "Cache-Control": "no-store"})

    def routes(self) -> list:
        from starlette.routing import Route

        return [
            Route("/", self.page, methods=["GET"]),
            Route("/status", self.status, methods=["GET"]),
            Route("/shadow", self.shadow, methods=["GET"]),
            Route("/score", self.score, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/ready", self.ready, methods=["GET"]),
            Route("/version", self.version, methods=["GET"]),
            Route("/reload", self.reload, methods=["POST"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
            Route("/v2", self.v2_server, methods=["GET"]),
            Route("/v2/health/live", self.v2_live, methods=["GET"]),
            Route("/v2/health/ready", self.v2_ready, methods=["GET"]),
            Route("/v2/models/{rest:path}", self.v2_model, methods=["GET", "POST"]),
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/ping", self.ping, methods=["GET"]),
        ]


def _v2_status(status: int) -> int:
    """A V2 error status: a request the schema refuses is a bad request (400)."""
    return 400 if status == 422 else status


def _mlflow_status(status: int) -> int:
    """An MLflow error status: 400 (BAD_REQUEST), but a body too large (413), a content
    type not spoken (415) or a client gone (499) keep theirs."""
    return status if status in (413, 415, CLIENT_CLOSED) else 400


async def _http_error(request, exc):
    """A 404, 405 (or other HTTP error) as the service's one-line JSON error."""
    if exc.status_code == 404:
        return _error(404, f"no such path {request.url.path!r}; this service answers {ROUTES}")
    if exc.status_code == 405:
        return _error(405, f"{request.method} is not allowed on {request.url.path}; "
                           f"this service answers {ROUTES}")
    return _error(exc.status_code, str(exc.detail))


async def _server_error(request, exc: Exception):
    return _error(500, f"internal error: {type(exc).__name__}: {exc}")


def _lifespan(service: _Service):
    """The app's lifespan: follow the reference (and watch) while the server runs."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.follower.start()
        if service.live is not None:
            service.live.start()
        if service.shadow is not None:
            service.shadow.start()
        try:
            yield
        finally:
            service.follower.stop()
            if service.live is not None:
                service.live.stop()
            if service.shadow is not None:
                service.shadow.stop()
            print(f"dvc-monitor: stopped serving {service.follower.current.ref}",
                  file=sys.stderr, flush=True)

    return lifespan


def create_app(settings: ServeSettings, first: LoadedModel | None = None,
               shadow_first: LoadedModel | None = None):
    """The Starlette app serving ``settings.ref`` (loads it when ``first`` is None; the
    shadow of ``settings.shadow_ref`` likewise from ``shadow_first``)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware

    service = _Service(settings, first, shadow_first)
    routes = _Endpoints(service).routes()
    app = Starlette(
        routes=routes, lifespan=_lifespan(service),
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        middleware=[Middleware(_Observe, metrics=service.metrics,
                               known=frozenset(r.path for r in routes))],
    )
    app.state.follower = service.follower
    app.state.watch = service.live
    app.state.shadow = service.shadow
    return app


def _server_class():
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM/SIGINT that shut it down gracefully ends the
        process with exit code 0 (uvicorn re-raises the signal after shutting down)."""

        @contextlib.contextmanager
        def capture_signals(self):
            saved = {sig: signal.signal(sig, self.handle_exit)
                     for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in saved.items():
                    signal.signal(sig, handler)

    return Server


def _Server(config):
    return _server_class()(config)


def _worker_app(settings: ServeSettings):
    """The app of one ``--workers`` process (module-level, so it pickles)."""
    return create_app(settings)


def serve(settings: ServeSettings, first: LoadedModel, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, workers: int = 1,
          shadow_first: LoadedModel | None = None) -> None:
    """Run the service until SIGTERM/SIGINT (uvicorn finishes requests in flight first)."""
    import functools

    import uvicorn

    common = dict(host=host, port=port, log_level="warning", access_log=False,
                  timeout_graceful_shutdown=30, lifespan="on")
    if workers <= 1:
        config = uvicorn.Config(create_app(settings, first, shadow_first), **common)
        _Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(functools.partial(_worker_app, settings), factory=True,
                            workers=workers, **common)
    sock = config.bind_socket()
    Multiprocess(config, sockets=[sock]).run()

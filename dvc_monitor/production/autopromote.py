"""What ``serve --shadow`` records, and ``serve --auto-promote``.

**Shadow verdicts.** A ``VerdictRecorder`` subscribes to the ``ShadowScorer``: each window
it measures is queued (never in a request: the shadow thread hands it on) for the
recorder's own thread, which writes a shadow verdict tag (``monitoring.shadow.
record_shadow_verdict``: ``NAME@vX.Y.Z@shadow#N``, under the repository's lock) holding
the windows since the last verdict. The cadence is the only path from traffic to the
repository, and it is rate-limited:

- a verdict is written when ``every`` (``--windows``, default 3) judged windows of one
  shadow version are waiting, and
- at most one verdict per ``interval`` seconds (``VERDICT_INTERVAL``, 60) per server
  process; the windows that arrive meanwhile wait for the next one (at most
  ``MAX_WINDOWS`` of them, the oldest dropped and counted).

So whatever the traffic, one server writes at most one tag a minute (plus one stage tag
per ``min_interval`` with ``--auto-promote``). Windows where the shadow is the served
version prove nothing and are not recorded; windows of a shadow that was swapped out
before its verdict are dropped (counted). A failure to record (a locked or read-only
repository, a full disk) is one line on stderr and a count
(``dvc_monitor_shadow_verdict_failures_total``); the windows are tried again with the
next verdict; serving goes on. A registry read from a git URL is a cached clone: nothing
is recorded there (``serve`` says so at start); serve the repository's path to record.

**Auto-promotion** (``auto_promote``: the served stage): after each verdict, the shadow
is promoted to the stage the server follows through ``promote --if-better`` (its newest
``every`` judged windows passed every ``watch:`` rule, and the ``gate:`` against the
holder passes), subject to the checks of an automatic rollback (``monitoring.trust``):
no automatic promotion within ``min_interval`` of the stage's last automatic change
(rollback or promotion), and never a version a rollback moved the stage away from (until
a person assigns it again). The stage tag's block says ``"automatic": true`` with the
evidence; the server's ``Follower`` swaps the new holder in at its next poll. A version
whose gate failed is not tried again by this process (its recorded metrics do not
change).
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_monitor.errors import DvcMonitorError, GateFailed, NotProven, one_line

if TYPE_CHECKING:
    from dvc_monitor.production.shadow import ShadowScorer, ShadowWindow

DEFAULT_VERDICT_WINDOWS = 3  # judged windows per verdict (serve --windows)
VERDICT_INTERVAL = 60.0  # seconds between two verdicts of one server process, at least
MAX_WINDOWS = 200  # windows waiting for a verdict, at most (the oldest are dropped)
QUEUED = 64  # windows waiting for the recorder's thread


def check_auto_promote(ref: str, shadow: str | None, is_url: bool, workers: int) -> str:
    """The stage ``serve --auto-promote`` promotes to, or a one-line ``UsageError``."""
    from dvc_monitor.errors import UsageError, shown

    if shadow is None:
        raise UsageError("--auto-promote promotes the shadow: give --shadow NAME#STAGE "
                         "(e.g. --shadow NAME#staging)")
    if is_url:
        raise UsageError("--auto-promote needs a local repository: a clone of a URL is "
                         "read-only here; serve --repo PATH, or drop --auto-promote")
    if workers > 1:
        raise UsageError("--auto-promote runs in one process; use --workers 1")
    if "#" not in ref:
        raise UsageError(f"--auto-promote promotes to the stage served; serve NAME#STAGE, "
                         f"not {shown(ref, 80)}")
    return ref.split("#", 1)[1]


class VerdictRecorder:
    """Shadow windows into verdict tags (and, with ``promote_to``, promotions)."""

    def __init__(self, root: str | Path, name: str, served_stage: str | None, registry,
                 every: int = DEFAULT_VERDICT_WINDOWS, interval: float = VERDICT_INTERVAL,
                 promote_to: str | None = None):
        from prometheus_client import Counter

        self.root = Path(root)
        self.name = name
        self.stage = served_stage  # the stage of the served reference (the verdicts' "stage")
        self.every = every
        self.interval = interval
        self.promote_to = promote_to
        self.counts = {"verdicts": 0, "failures": 0, "dropped_windows": 0, "promotions": 0}
        self.last_verdict: str | None = None
        self.last_error: str | None = None
        self.last_promotion: dict | None = None  # {"status", "version", "message", "tag"}
        self._pending: collections.deque = collections.deque()
        self._version: str | None = None
        self._last_time: float | None = None
        self._gate_failed: set[str] = set()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUED)
        self._thread: threading.Thread | None = None
        r = registry
        self._verdicts = Counter("dvc_monitor_shadow_verdicts", "Shadow verdict tags written",
                                 registry=r)
        self._failures = Counter("dvc_monitor_shadow_verdict_failures", "Shadow verdicts "
                                 "or automatic promotions that could not be written",
                                 registry=r)
        self._promotions = Counter("dvc_monitor_auto_promotions", "What serve --auto-promote "
                                   "did after a verdict", ["result"], registry=r)

    # -- the shadow thread hands windows on ------------------------------------------------

    def offer(self, window: "ShadowWindow") -> None:
        try:
            self._queue.put_nowait(window)
        except queue.Full:
            self.counts["dropped_windows"] += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dvc-monitor-verdicts",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)

    # -- the recorder's thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._wait())
            except queue.Empty:
                item = False  # the interval passed: record what waits
            if item is None:
                return
            try:
                if item is not False:
                    self._add(item)
                if self._due():
                    self._record()
            except Exception as exc:  # keep serving whatever a record did
                self._failed("could not record a shadow verdict", exc)

    def _wait(self) -> float | None:
        if not self._judged() or self._last_time is None:
            return None
        return max(0.05, self._last_time + self.interval - time.monotonic())

    def _add(self, w: "ShadowWindow") -> None:
        if w.shadow_version == w.prod_version:
            return  # the shadow is the served version: nothing to prove
        if w.shadow_version != self._version:
            self.counts["dropped_windows"] += len(self._pending)
            self._pending.clear()
            self._version = w.shadow_version
        self._pending.append(w)
        while len(self._pending) > MAX_WINDOWS:
            self._pending.popleft()
            self.counts["dropped_windows"] += 1

    def _judged(self) -> int:
        return sum(1 for w in list(self._pending) if w.judged)  # a copy: /shadow reads it too

    def _due(self) -> bool:
        if self._judged() < self.every:
            return False
        return self._last_time is None or time.monotonic() - self._last_time >= self.interval

    def _record(self) -> None:
        from dvc_monitor.monitoring.shadow import record_shadow_verdict
        from dvc_monitor.production.watching import workspace_rules

        windows = list(self._pending)
        version = windows[-1].shadow_version
        self._last_time = time.monotonic()  # a failure waits for the interval too
        event = record_shadow_verdict(
            self.root, self.name, version, [w.shadow for w in windows],
            workspace_rules(self.root, self.name), holder=windows[-1].prod_version,
            stage=self.stage, holder_windows=[w.prod for w in windows], source="serve")
        self._pending.clear()
        self.counts["verdicts"] += 1
        self._verdicts.inc()
        self.last_verdict, self.last_error = event.tag, None
        _say(f"recorded {event.tag}: {event.message.splitlines()[0] if event.message else ''}")
        if self.promote_to is not None:
            self._promote(version)

    def _promote(self, version: str) -> None:
        """``promote --if-better`` of ``version`` to the served stage, with the checks of
        an automatic rollback first."""
        from dvc_monitor.monitoring.promotion import promote_if_better
        from dvc_monitor.monitoring.trust import promotion_hold, rolled_back_from
        from dvc_monitor.production.watching import workspace_rules
        from dvc_monitor.registry.state import Registry
        from dvc_monitor.repo.locking import repo_lock

        stage = self.promote_to
        if version in self._gate_failed:
            return
        with repo_lock(self.root, "auto-promote"):
            reg = Registry.load(self.root)
            holder = reg.stage_holder(self.name, stage)
            if holder is not None and holder.version == version:
                return
            events = reg.history(self.name)
            hold = promotion_hold(events, stage, workspace_rules(self.root, self.name)
                                  .min_interval)
            moved = rolled_back_from(events, stage, version)
            if hold is not None:
                return self._promoted("held", version, f"hold: {hold.reason}")
            if moved is not None:
                return self._promoted("skipped", version, f"{version} was rolled back from "
                                      f"({moved.tag}); a person's promote makes it a "
                                      "candidate again")
            try:
                done = promote_if_better(
                    self.root, self.name, version, stage, self.every,
                    message=(f"serve --auto-promote: {self.name} {version} passed every watch "
                             f"rule on its last {self.every} shadowed live window(s)"
                             + (f" and the gate against {holder.version}" if holder else "")),
                    extra={"automatic": True, "trigger": "serve", "from":
                           holder.version if holder else None})
            except NotProven as exc:
                return self._promoted("not_proven", version, str(exc))
            except GateFailed as exc:
                self._gate_failed.add(version)
                return self._promoted("gate_failed", version, str(exc))
        self.counts["promotions"] += 1
        self._promoted("promoted", version, f"promoted {self.name} {version} to {stage} "
                       f"({done.tag}); the next poll swaps it in", done.tag)

    def _promoted(self, status: str, version: str, message: str, tag: str | None = None):
        self.last_promotion = {"status": status, "version": version, "message": message,
                               "tag": tag}
        self._promotions.labels(status).inc()
        _say(f"auto-promote: {status}: {one_line(message, 400)}")

    def _failed(self, what: str, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, DvcMonitorError) else f"{type(exc).__name__}: {exc}"
        self.last_error = one_line(text, 400)
        self.counts["failures"] += 1
        self._failures.inc()
        _say(f"shadow verdict: {what}: {self.last_error}")

    def to_json(self) -> dict:
        return {"every": self.every, "interval": self.interval,
                "waiting": len(self._pending), "judged_waiting": self._judged(),
                **self.counts, "last_verdict": self.last_verdict, "error": self.last_error,
                "auto_promote": self.promote_to, "last_promotion": self.last_promotion}


def attach_recorder(scorer: "ShadowScorer", settings) -> None:
    """Give ``scorer`` its ``VerdictRecorder`` (a local repository only; ``settings``: the
    server's ``ServeSettings``)."""
    if settings.is_url:
        return
    ref = settings.ref
    stage = ref.split("#", 1)[1] if "#" in ref else None
    recorder = VerdictRecorder(settings.root, scorer.follower.current.name, stage,
                               scorer.registry, settings.verdict_windows,
                               promote_to=settings.auto_promote_stage)
    scorer.attach(recorder)


def _say(text: str) -> None:
    print(f"dvc-monitor: {text}", file=sys.stderr, flush=True)

"""Checks that keep live traffic from steering an automatic rollback.

``watch --rollback`` and ``serve --auto-rollback`` apply them before any candidate is
scored on the breaching windows (``engine.decide``), so rows crafted to make one version
alert cannot flip a stage back and forth:

- **hold**: at most one automatic rollback of a stage within the ``min_interval`` of the
  ``watch:`` rules, measured from the tag time of the last one (read from the registry, so
  it holds across processes and restarts); a further alarm is decided ``hold``;
- **rolled back from**: a version a rollback moved the stage away from is no candidate
  until a person assigns it the stage again (``promote``, or a manual ``rollback``);
- **metrics**: a candidate whose recorded primary metric (the kind's ``primary_metric``) is
  worse than the holder's is no candidate, unless ``allow_worse_metrics: true``. The
  versions of an adopted model are measured instead, both on the same rows (the holder's
  reference rows): an earlier version is rolled back to only when it is no worse there.

Everything is read from the registry's events and the rollback blocks of their tags
(``registry.blocks.rollback_block``). A forged block can only hold a rollback back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from dvc_monitor.kinds import Kind
    from dvc_monitor.monitoring.results import Subject
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.registry.values import Event

AUTOMATIC = "watch"  # the trigger the rollbacks of watch record in their tag's block
EPS = 1e-12  # metric differences below this are ties


@dataclass(frozen=True)
class Hold:
    """Why an alarm changes nothing: the stage was rolled back automatically too recently."""

    stage: str
    tag: str  # the last automatic rollback's stage tag
    at: int  # its tag time (unix seconds)
    until: int  # no other automatic rollback before this time
    reason: str

    def to_json(self) -> dict:
        return {"stage": self.stage, "tag": self.tag, "at": _iso(self.at),
                "until": _iso(self.until), "reason": self.reason}


def last_automatic_rollback(events: Sequence["Event"], stage: str) -> "Event | None":
    """The newest stage tag of ``stage`` written by an automatic rollback."""
    from dvc_monitor.registry.blocks import rollback_block

    for ev in reversed(events):
        block = rollback_block(ev)
        if ev.stage == stage and block is not None and block.get("trigger") == AUTOMATIC:
            return ev
    return None


def hold_of(events: Sequence["Event"], stage: str, min_interval: int,
            now: float | None = None) -> Hold | None:
    """The hold on ``stage`` now, or None when an automatic rollback may run."""
    last = last_automatic_rollback(events, stage) if min_interval > 0 else None
    return _held(last, stage, min_interval, now, "rolled back automatically",
                 "no other automatic rollback")


def _held(last: "Event | None", stage: str, min_interval: int, now: float | None,
          what: str, until_what: str) -> Hold | None:
    """The hold of ``min_interval`` after ``last`` (an automatic change of ``stage``)."""
    if last is None:
        return None
    until = last.time + min_interval
    if (time.time() if now is None else now) >= until:
        return None
    return Hold(stage, last.tag, last.time, until,
                f"{stage} was {what} at {_iso(last.time)} ({last.tag}); min_interval "
                f"{duration(min_interval)}: {until_what} before {_iso(until)}")


def last_automatic_promotion(events: Sequence["Event"], stage: str) -> "Event | None":
    """The newest stage tag of ``stage`` written by an automatic promotion
    (``serve --auto-promote``: its block's ``if_better`` says ``"automatic": true``)."""
    from dvc_monitor.registry.tags import Action

    for ev in reversed(events):
        block = (ev.meta or {}).get("if_better") if isinstance(ev.meta, dict) else None
        if ev.action is Action.ASSIGN and ev.stage == stage and isinstance(block, dict) \
                and block.get("automatic") is True:
            return ev
    return None


def promotion_hold(events: Sequence["Event"], stage: str, min_interval: int,
                   now: float | None = None) -> Hold | None:
    """The hold on an automatic promotion to ``stage`` now: within ``min_interval`` of the
    stage's last automatic change (an automatic rollback or an automatic promotion)."""
    if min_interval <= 0:
        return None
    found = [ev for ev in (last_automatic_rollback(events, stage),
                           last_automatic_promotion(events, stage)) if ev is not None]
    if not found:
        return None
    return _held(max(found, key=lambda ev: ev.time), stage, min_interval, now,
                 "changed automatically", "no automatic promotion")


def rolled_back_from(events: Sequence["Event"], stage: str, version: str) -> "Event | None":
    """The rollback that moved ``stage`` away from ``version``, unless a person assigned
    ``stage`` to ``version`` after it (``events`` oldest first)."""
    from dvc_monitor.registry.blocks import rollback_block
    from dvc_monitor.registry.tags import Action

    found = None
    for ev in events:
        if ev.action is not Action.ASSIGN or ev.stage != stage:
            continue
        block = rollback_block(ev)
        if block is not None and block.get("from") == version:
            found = ev
        elif found is not None and ev.version == version and (
                block is None or block.get("trigger") != AUTOMATIC):
            found = None
    return found


def worse_metric(kind: "str | Kind", candidate: Mapping, holder: Mapping,
                 where: str = "") -> str | None:
    """``"f1 0.48 < holder's 0.64"`` when the ``candidate`` metrics hold a worse primary
    metric (the ``kind``'s: pass the model's ``spec``) than the ``holder``'s; None when it
    is as good, or either lacks it. ``where`` is added to the reason (the rows measured)."""
    from dvc_monitor.kinds import KINDS, kind_for

    spec = kind_for(kind) if not isinstance(kind, str) or kind in KINDS else None
    metric = spec.primary_metric if spec else None
    direction = spec.metric_directions.get(metric) if spec and metric else None
    mine, theirs = candidate.get(metric), holder.get(metric)
    if direction is None or not _number(mine) or not _number(theirs) \
            or abs(mine - theirs) <= EPS:
        return None
    if direction == "higher" and mine < theirs:
        return f"{metric} {mine:.4g} < holder's {theirs:.4g}{where}"
    if direction == "lower" and mine > theirs:
        return f"{metric} {mine:.4g} > holder's {theirs:.4g}{where}"
    return None


# The reason's tail when both versions were measured on the holder's reference rows.
ON_THE_SAME_ROWS = " on the holder's reference rows"

MetricsOf = Callable[[str], Mapping]  # version -> its metrics


def recorded_metrics(registry, name: str) -> MetricsOf:
    """``version -> the metrics the registry recorded for it`` (its evaluate stage's)."""
    return lambda version: registry.resolve(name, version).metrics


def metrics_on_same_rows(holder: "Subject", loader: "Callable[[str], Subject]") -> MetricsOf:
    """``version -> its metrics on the holder's reference rows``: each version's own model
    and config on the same rows (read once), each version measured once. What an adopted
    model's versions are compared by: the metrics its own pipeline records are its own,
    measured on whatever data each version's pipeline chose. A version that cannot be
    measured there has no metrics (so it is not skipped for them)."""
    from dvc_monitor.errors import DvcMonitorError
    from dvc_monitor.evaluation.scoring import evaluate_on
    from dvc_monitor.model.state import holdout_data

    measured: dict[str, Mapping] = {}
    rows: list = []

    def metrics(version: str) -> Mapping:
        if version not in measured:
            if not rows:
                rows.append(holdout_data(holder.state).holdout)
            subject = holder if version == holder.version else loader(version)
            try:
                measured[version] = evaluate_on(subject.spec, subject.model, subject.config,
                                                rows[0], {})
            except DvcMonitorError:
                measured[version] = {}
        return measured[version]

    return metrics


def screen(registry, name: str, stage: str, holder: str, kind: "str | Kind",
           rules: "WatchRules", metrics: MetricsOf | None = None,
           where: str = "") -> Callable[[str], tuple[str, str] | None]:
    """``check(version)``: None for a candidate that may be scored, else (the check that
    decided, why), e.g. ``("rolled_back_from", "rolled back from at ...")``. ``metrics``
    gives a version's metrics (default: those the registry recorded); ``where`` says
    which rows they were measured on."""
    events = registry.history(name)
    metrics_of = metrics or recorded_metrics(registry, name)

    def check(version: str) -> tuple[str, str] | None:
        ev = rolled_back_from(events, stage, version)
        if ev is not None:
            return ("rolled_back_from",
                    f"rolled back from at {_iso(ev.time)} ({ev.tag}); a person's promote to "
                    f"{stage} makes it a candidate again")
        if not rules.allow_worse_metrics:
            why = worse_metric(kind, metrics_of(version), metrics_of(holder), where)
            if why:
                return "metrics", why
        return None

    return check


def trust_checks(registry, subject: "Subject", stage: str | None, rules: "WatchRules",
                 loader: "Callable[[str], Subject] | None" = None
                 ) -> tuple[Hold | None, Callable | None]:
    """The hold on ``stage`` now and the candidate ``screen`` for ``subject``, its holder;
    neither without a stage. The versions of an adopted model are compared on the holder's
    reference rows (``metrics_on_same_rows``, with ``loader``: version -> its ``Subject``),
    the others by the metrics the registry recorded."""
    if stage is None:
        return None, None
    name = subject.name
    metrics, where = None, ""
    if subject.config.adopted and loader is not None and subject.state is not None:
        metrics, where = metrics_on_same_rows(subject, loader), ON_THE_SAME_ROWS
    return (hold_of(registry.history(name), stage, rules.min_interval),
            screen(registry, name, stage, subject.version, subject.spec, rules, metrics, where))


def duration(seconds: int) -> str:
    """``3600`` -> ``1h``, ``90`` -> ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x

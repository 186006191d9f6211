"""The quality gate: fail when a metric regresses beyond a threshold the repository declares.

Thresholds live in the model's own ``params.yaml`` under ``gate:``. No stage lists that
section in its ``params:``, so changing a threshold never changes the version id::

    gate:
      roc_auc: {max_drop: 0.02}          # absolute: head may be at most 0.02 below base
      f1: {max_drop_pct: 10}             # relative: at most 10 % of the base value
      brier: {max_increase: 0.01}
      alert_rate: {max_change: 0.01}     # either way (metrics with no better direction)
      mae: {max: 25.0}                   # a bound on the head value itself

Rules (several may be combined on one metric; each must hold):

=================  ==========================================================  ============
rule               fails when                                                  metrics
=================  ==========================================================  ============
max_drop           base - head > limit                                         higher / none
max_drop_pct       (base - head) / abs(base) * 100 > limit                     higher / none
max_increase       head - base > limit                                         lower / none
max_increase_pct   (head - base) / abs(base) * 100 > limit                     lower / none
max_change         abs(head - base) > limit                                    all
max_change_pct     abs(head - base) / abs(base) * 100 > limit                  all
min / max          head < limit / head > limit                                 all
=================  ==========================================================  ============

A drop of a lower-is-better metric is an improvement, so ``max_drop`` on ``brier`` is a
configuration error (and so is ``max_increase`` on ``roc_auc``). Directions come from
the model kind's ``METRIC_DIRECTIONS``. A threshold on a metric the kind does not know
and neither revision recorded is an error (exit 2). A known metric that neither
revision measured (e.g. ``roc_auc`` of an anomaly model trained without labels) is
reported as not measured and does not fail the gate; a metric the base measured but the
head no longer does fails it.

The numbers compared are the recorded ``metrics.json`` of base and head, the same
numbers ``dvc metrics diff BASE`` prints.

An adopted model (``dvc-monitor adopt``: its own pipeline trains it) records no
metrics.json of ours. Its gate evaluates both versions on the head's reference rows
(``monitor.yaml`` ``reference:``; ``samedata``) and compares those numbers. Its rules come
from the same ``gate:`` section of the pipeline's params.yaml; without one, a default gate
applies: each of the kind's ``gate_metrics`` may get at most ``DEFAULT_MAX_WORSE_PCT`` %
worse than the base, by its direction. So the gate always decides (exit 0 or 5), unless
the model names no reference rows (exit 6, saying to adopt it with ``--reference``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dvc_monitor.errors import GateFailed, GateUndecided, StalePipeline, UsageError

EPS = 1e-9  # metrics.json values are rounded to 6 digits

RULES: dict[str, tuple[str, ...]] = {
    # rule -> the directions it may be used with ("none" = no better direction)
    "max_drop": ("higher", "none"),
    "max_drop_pct": ("higher", "none"),
    "max_increase": ("lower", "none"),
    "max_increase_pct": ("lower", "none"),
    "max_change": ("higher", "lower", "none"),
    "max_change_pct": ("higher", "lower", "none"),
    "min": ("higher", "lower", "none"),
    "max": ("higher", "lower", "none"),
}


@dataclass(frozen=True)
class Threshold:
    metric: str
    rule: str
    limit: float

    def describe(self) -> str:
        unit = " %" if self.rule.endswith("_pct") else ""
        return f"{self.rule} {_fmt(self.limit)}{unit}"


@dataclass
class MetricRow:
    """One metric of base and head, as ``dvc metrics diff`` shows it (delta = head - base)."""

    metric: str
    base: float | None
    head: float | None
    delta: float | None
    direction: str | None  # "higher", "lower" or None

    @property
    def change(self) -> str:
        """better / worse / unchanged / "" (no direction or a missing value)."""
        if self.delta is None or self.direction is None:
            return ""
        if abs(self.delta) <= EPS:
            return "unchanged"
        good = self.delta > 0 if self.direction == "higher" else self.delta < 0
        return "better" if good else "worse"


@dataclass
class Check:
    metric: str
    threshold: str
    status: str  # "pass", "fail", "not measured", "no base value"
    detail: str


@dataclass
class GateResult:
    name: str
    kind: str
    base: str
    head: str
    thresholds_from: str
    rows: list[MetricRow]
    checks: list[Check]
    declared: bool  # False: the model has no gate section
    notes: list[str] = field(default_factory=list)
    # what the rows compare: "recorded" (both revisions' metrics.json) or "reference" (an
    # adopted model: both versions evaluated on the head's reference rows)
    measured_on: str = "recorded"
    default_rules: bool = False  # no gate: section, so the kind's default thresholds apply

    @property
    def enforced(self) -> bool:
        """Some threshold applies (declared, or the default of an adopted model)."""
        return self.declared or self.default_rules

    @property
    def passed(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        return to_jsonable(self) | {"passed": self.passed}

    def status_of(self, metric: str) -> str:
        """fail / pass / "" for the report's metrics table."""
        states = {c.status for c in self.checks if c.metric == metric}
        if "fail" in states:
            return "fail"
        return "pass" if "pass" in states else ""


def metric_rows(base: dict | None, head: dict | None, directions: dict[str, str | None]) -> list[MetricRow]:
    """Every numeric metric of either side, in the order ``dvc metrics diff`` sorts them."""
    from dvc_monitor.registry.facts import flatten_metrics

    # nested metrics are flattened with '.', as dvc metrics diff shows them
    base, head = flatten_metrics(base or {}), flatten_metrics(head or {})
    names = sorted(k for k in {**base, **head}
                   if _is_number(base.get(k)) or _is_number(head.get(k)))
    rows = []
    for name in names:
        b = base[name] if _is_number(base.get(name)) else None
        h = head[name] if _is_number(head.get(name)) else None
        delta = h - b if b is not None and h is not None else None
        rows.append(MetricRow(name, b, h, delta, directions.get(name)))
    return rows


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_gate(section: Any, kind: str, known: set[str], directions: dict[str, str | None],
               source: str, key: str = "gate", records: str = "records") -> list[Threshold]:
    """The thresholds of a ``gate:`` section (or another section of the same syntax, named
    ``key``, e.g. ``watch:``); a one-line ``UsageError`` for anything wrong."""
    if section is None:
        return []
    if not isinstance(section, dict):
        raise UsageError(f"{source}: '{key}:' must map metric names to rules, e.g. "
                         f"'{key}: {{roc_auc: {{max_drop: 0.02}}}}'")
    out = []
    for metric, rules in section.items():
        metric = str(metric)
        if metric not in known:
            raise UsageError(
                f"{source}: {key} threshold on unknown metric {metric!r}; the {kind} model "
                f"{records}: {', '.join(sorted(known))}"
            )
        if not isinstance(rules, dict) or not rules:
            raise UsageError(f"{source}: {key}.{metric} must be a mapping of rules, e.g. "
                             f"'{metric}: {{max_change: 0.01}}'; rules: {', '.join(RULES)}")
        direction = directions.get(metric) or "none"
        for rule, limit in rules.items():
            rule = str(rule)
            if rule not in RULES:
                raise UsageError(f"{source}: {key}.{metric}: unknown rule {rule!r}; "
                                 f"use one of {', '.join(RULES)}")
            if direction not in RULES[rule]:
                better = "higher" if direction == "higher" else "lower"
                fix = "max_drop" if direction == "higher" else "max_increase"
                raise UsageError(
                    f"{source}: {key}.{metric}.{rule} never catches a regression: {better} "
                    f"{metric} is better; use {fix}, max_change, min or max"
                )
            if not _is_number(limit):
                raise UsageError(f"{source}: {key}.{metric}.{rule} must be a number, "
                                 f"got {limit!r}")
            if rule.startswith("max_") and limit < 0:
                raise UsageError(f"{source}: {key}.{metric}.{rule} must not be negative, "
                                 f"got {limit!r}")
            out.append(Threshold(metric, rule, float(limit)))
    return out


def check(threshold: Threshold, row: MetricRow | None) -> Check:
    """Apply one threshold to a metric row."""
    t = threshold
    base = row.base if row else None
    head = row.head if row else None
    if head is None:
        if base is None:
            return Check(t.metric, t.describe(), "not measured",
                         "neither revision measured it")
        return Check(t.metric, t.describe(), "fail",
                     f"{t.metric} was {_fmt(base)} at base but is not measured at head")
    if t.rule in ("min", "max"):
        bad = head < t.limit - EPS if t.rule == "min" else head > t.limit + EPS
        word = "below the minimum" if t.rule == "min" else "above the maximum"
        detail = f"{t.metric} is {_fmt(head)}, {word} {_fmt(t.limit)}" if bad \
            else f"{_fmt(head)} within {t.rule} {_fmt(t.limit)}"
        return Check(t.metric, t.describe(), "fail" if bad else "pass", detail)
    if base is None:
        return Check(t.metric, t.describe(), "no base value", "the base did not measure it")
    delta = head - base
    if t.rule.startswith("max_drop"):
        amount, verb = base - head, "dropped"
    elif t.rule.startswith("max_increase"):
        amount, verb = head - base, "rose"
    else:
        amount, verb = abs(delta), "changed"
    if t.rule.endswith("_pct"):
        if abs(base) <= EPS:
            bad = amount > EPS
            shown = "from 0"
        else:
            pct = amount / abs(base) * 100
            bad = pct > t.limit + 1e-7
            shown = f"{pct:.2f} %"
    else:
        bad = amount > t.limit + EPS
        shown = _fmt(amount)
    if bad:
        detail = (f"{t.metric} {verb} by {shown} ({_fmt(base)} -> {_fmt(head)}), "
                  f"more than {t.describe()}")
    else:
        detail = f"{_fmt(base)} -> {_fmt(head)} within {t.describe()}"
    return Check(t.metric, t.describe(), "fail" if bad else "pass", detail)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.6g}"


# -- running the gate -------------------------------------------------------------------


def evaluate_gate(root, name: str | None = None, base: str | None = None,
                  head: str | None = None, thresholds_from: str = "head",
                  allow_stale: bool = False) -> GateResult:
    """Compare base and head metrics against the declared thresholds (never raises GateFailed).

    ``head`` None means the workspace. ``thresholds_from`` picks whose ``gate:`` section
    applies: ``head`` (default) or ``base`` (a pull request cannot loosen its own gate).
    """
    from pathlib import Path

    from dvc_monitor.review import revision as review

    if thresholds_from not in ("head", "base"):
        raise UsageError(f"--thresholds-from must be 'head' or 'base', got {thresholds_from!r}")
    base_state, head_state = review.read_base_and_head(Path(root), name, base, head)
    return gate_states(base_state, head_state, thresholds_from, allow_stale)


def gate_states(base_state, head_state, thresholds_from: str = "head",
                allow_stale: bool = False, measured=None) -> GateResult:
    """``evaluate_gate`` on two ``model.state.ModelState`` already read.

    An adopted model has no metrics.json of ours: both versions are evaluated on the
    head's reference rows (``measured``: a ``samedata.BothOnSameRows`` already computed,
    else computed here), and without a ``gate:`` section the kind's default thresholds
    apply (``default_thresholds``)."""
    from dvc_monitor.model import state as model_state
    from dvc_monitor.review import revision as review
    from dvc_monitor.review import samedata

    name = head_state.name
    base_state = samedata.judged_as_head(base_state, head_state)
    for state in (base_state, head_state):
        model_state.require_trained(state, error=GateUndecided, lead="cannot decide: ",
                                    then="review it with 'dvc-monitor report'")
    if base_state.kind != head_state.kind:
        raise UsageError(f"{name} is a {base_state.kind} model at {base_state.label} but a "
                         f"{head_state.kind} model at {head_state.label}; they cannot be gated")
    adopted = head_state.adopted
    if adopted and head_state.reference_path is None:
        raise GateUndecided(
            f"cannot decide: {name} at {head_state.label} names no reference rows to evaluate "
            f"both versions on (no reference: in {head_state.layout.monitor}); run "
            f"'dvc-monitor adopt {name} --reference PATH' with its other options (for example "
            "your test split) and commit monitor.yaml")
    if not adopted and base_state.metrics is None:
        raise UsageError(f"{name} has no {base_state.layout.metrics} at {base_state.label}; "
                         "pick a base revision where the pipeline ran (--base)")
    if not adopted and head_state.metrics is None:
        raise StalePipeline(f"{name} has no {head_state.layout.metrics} at {head_state.label}; "
                            f"run 'dvc repro {head_state.layout.dvc_yaml}' first")
    stale = review.staleness(head_state)
    notes = list(base_state.notes)
    if stale:
        what = "model file of" if adopted else "metrics of"
        message = (f"the {what} {name} at {head_state.label} may be out of date "
                   f"({'; '.join(stale)}); run 'dvc repro {head_state.layout.dvc_yaml}' first")
        if not allow_stale:
            raise StalePipeline(message)
        notes.append(message)
    directions = dict(head_state.spec.metric_directions)
    if adopted:
        if measured is None:
            measured = samedata.both_on_same_rows(base_state, head_state)
        rows = metric_rows(_without_counts(measured.base_metrics),
                           _without_counts(measured.head_metrics), directions)
    else:
        rows = metric_rows(base_state.metrics, head_state.metrics, directions)
    owner = head_state if thresholds_from == "head" else base_state
    section = owner.params.get("gate")
    known = set(directions) | {r.metric for r in rows}
    source = f"{owner.layout.params} at {owner.label}"
    thresholds = parse_gate(section, owner.kind, known, directions, source)
    default_rules = adopted and section is None
    if default_rules:
        thresholds = default_thresholds(head_state.spec, rows)
        notes.append(f"{name} declares no gate: thresholds in {owner.layout.params}: the "
                     f"default gate applies ({', '.join(head_state.spec.gate_metrics)} may "
                     f"get at most {DEFAULT_MAX_WORSE_PCT:g} % worse than the base); add a "
                     "gate: section to choose your own")
    if adopted:
        notes.append(measured_note(measured))
    other = base_state if owner is head_state else head_state
    if (other.params.get("gate") or None) != (section or None):
        notes.append(f"the gate: section differs between base and head; "
                     f"thresholds are read from the {thresholds_from}")
    by_metric = {r.metric: r for r in rows}
    checks = [check(t, by_metric.get(t.metric)) for t in thresholds]
    return GateResult(
        name=name, kind=head_state.kind, base=base_state.label, head=head_state.label,
        thresholds_from=thresholds_from, rows=rows, checks=checks,
        declared=section is not None, notes=notes,
        measured_on="reference" if adopted else "recorded", default_rules=default_rules,
    )


# The default gate of an adopted model without a gate: section: no metric of its kind's
# ``gate_metrics`` may get worse by more than this share of its base value.
DEFAULT_MAX_WORSE_PCT = 5.0


def default_thresholds(kind, rows: list[MetricRow]) -> list[Threshold]:
    """The default gate (an adopted model that declares none): each of the kind's
    ``gate_metrics`` that the base measured may get worse, by its direction, by at most
    ``DEFAULT_MAX_WORSE_PCT`` of its base value (``max_drop_pct`` / ``max_increase_pct``)."""
    measured = {r.metric for r in rows if r.base is not None}
    rules = {"higher": "max_drop_pct", "lower": "max_increase_pct"}
    return [Threshold(metric, rules[kind.metric_directions[metric]], DEFAULT_MAX_WORSE_PCT)
            for metric in kind.gate_metrics if metric in measured]


def measured_note(measured) -> str:
    """The note that says which rows an adopted model's gate evaluated both versions on."""
    return f"both versions evaluated on the head's {measured.source}: {len(measured.rows)} rows"


def _without_counts(metrics: dict) -> dict:
    """Metrics without ``n_holdout`` (the number of rows, the same on both sides)."""
    return {k: v for k, v in metrics.items() if k != "n_holdout"}


def gate(root, name: str | None = None, base: str | None = None, head: str | None = None,
         thresholds_from: str = "head") -> GateResult:
    """``evaluate_gate``, raising ``GateFailed`` (exit 1) when a threshold is exceeded."""
    result = evaluate_gate(root, name, base, head, thresholds_from)
    raise_if_failed(result)
    return result


def raise_if_failed(result: GateResult) -> None:
    if result.passed:
        return
    reasons = "; ".join(c.detail for c in result.failures)
    raise GateFailed(f"quality gate failed for {result.name} ({result.base} -> {result.head}): "
                     f"{reasons}")

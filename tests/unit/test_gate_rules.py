"""The quality gate's rules on given metric values: thresholds, directions, and the rows
``dvc metrics diff`` would show."""

from __future__ import annotations

import pytest

from dvc_monitor.errors import UsageError
from dvc_monitor.kinds import metric_directions
from dvc_monitor.review.gate import MetricRow, Threshold, check, metric_rows, parse_gate

DIRS = metric_directions("risk")


def row(metric, base, head):
    return MetricRow(metric, base, head, None if base is None or head is None else head - base,
                     DIRS.get(metric))


@pytest.mark.parametrize("threshold, r, status", [
    (Threshold("roc_auc", "max_drop", 0.01), row("roc_auc", 0.90, 0.895), "pass"),
    (Threshold("roc_auc", "max_drop", 0.01), row("roc_auc", 0.90, 0.88), "fail"),
    (Threshold("roc_auc", "max_drop", 0.01), row("roc_auc", 0.90, 0.99), "pass"),
    (Threshold("roc_auc", "max_drop", 0.02), row("roc_auc", 0.90, 0.88), "pass"),  # at the limit
    (Threshold("brier", "max_increase", 0.01), row("brier", 0.02, 0.04), "fail"),
    (Threshold("brier", "max_increase_pct", 50), row("brier", 0.02, 0.029), "pass"),
    (Threshold("brier", "max_increase_pct", 50), row("brier", 0.02, 0.031), "fail"),
    (Threshold("positive_rate", "max_change", 0.05), row("positive_rate", 0.3, 0.24), "fail"),
    (Threshold("positive_rate", "max_change_pct", 10), row("positive_rate", 0.3, 0.28), "pass"),
    (Threshold("roc_auc", "min", 0.9), row("roc_auc", None, 0.89), "fail"),
    (Threshold("brier", "max", 0.05), row("brier", None, 0.04), "pass"),
    (Threshold("roc_auc", "max_drop", 0.01), row("roc_auc", None, 0.9), "no base value"),
    (Threshold("roc_auc", "max_drop", 0.01), row("roc_auc", 0.9, None), "fail"),
    (Threshold("roc_auc", "max_drop", 0.01), None, "not measured"),
])
def test_each_threshold_rule_passes_or_fails_a_metric_change(threshold, r, status):
    assert check(threshold, r).status == status


def test_parse_gate_directions():
    known = set(DIRS)
    parsed = parse_gate({"roc_auc": {"max_drop": 0.01, "min": 0.9}, "positive_rate":
                         {"max_increase": 0.1, "max_drop": 0.1}}, "risk", known, DIRS, "p")
    assert [(t.metric, t.rule) for t in parsed] == [
        ("roc_auc", "max_drop"), ("roc_auc", "min"),
        ("positive_rate", "max_increase"), ("positive_rate", "max_drop")]
    with pytest.raises(UsageError, match="higher roc_auc is better; use max_drop"):
        parse_gate({"roc_auc": {"max_increase_pct": 1}}, "risk", known, DIRS, "p")
    with pytest.raises(UsageError, match="lower brier is better; use max_increase"):
        parse_gate({"brier": {"max_drop": 1}}, "risk", known, DIRS, "p")


def test_metric_rows_match_dvc_semantics():
    rows = metric_rows({"a": 0.1, "n": 5, "nested": {"x": 1.5}, "s": "text"},
                       {"a": 0.3, "n": 5, "nested": {"x": 1.0}, "new": 2.0}, {"a": "higher"})
    by = {r.metric: r for r in rows}
    assert set(by) == {"a", "n", "nested.x", "new"}
    assert by["a"].delta == 0.3 - 0.1 and by["a"].change == "better"
    assert by["n"].delta == 0 and by["nested.x"].delta == -0.5
    assert by["new"].base is None and by["new"].delta is None

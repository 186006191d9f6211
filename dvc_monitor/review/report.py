"""``dvc-monitor report``: a markdown review of a model change, for a pull-request comment.

The report compares a *base* revision with a *head* (a revision or the workspace):

* what changed: params, data partitions added/removed, code dependencies (``diffing``);
* the recorded metrics of both sides with deltas, the numbers ``dvc metrics diff BASE``
  prints, each marked better/worse by the metric's direction and checked against the
  model's ``gate:`` thresholds;
* both models scored on the *same rows* (the head's holdout): the metrics of each, and
  label-free comparisons: alert rate change, overlap of the top-k rows each flags, the
  KS statistic and the PSI of the score distributions;
* PNG plots next to the markdown file.

The base model is read from the DVC cache by the md5 its ``dvc.lock`` records (fetched
from the remote when missing); nothing is checked out and the workspace is not changed,
except for the report files that ``-o`` asks for.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_monitor.errors import UsageError
from dvc_monitor.kinds import kind_for, metric_directions

PSI_STABLE, PSI_MODERATE = 0.1, 0.25
# The share of rows each kind flags, which the report's "alert rate" row shows.
_ALERT_RATE_METRICS = ("alert_rate", "anomaly_rate", "positive_rate")


@dataclass
class SameData:
    """Both models on the head's holdout rows."""

    rows: int
    labelled: bool
    base_metrics: dict
    head_metrics: dict
    shift: Any  # scoring.ScoreShift


@dataclass
class Report:
    name: str
    kind: str
    base: str
    head: str
    base_commit: str | None
    head_commit: str | None
    metrics: list  # gate.MetricRow
    gate: Any  # gate.GateResult
    changes: Any  # diffing.ModelDiff
    same_data: SameData | None
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what was not reviewed, and why
    markdown: str = ""
    plots_url: str | None = None  # embed images as <plots_url>/<file>
    plots_artifact: str | None = None  # do not embed; link to where the files are attached
    seconds: float = 0.0

    def to_json(self) -> dict:
        """The report's numbers as plain JSON (metrics rows match ``dvc metrics diff``)."""
        from dvc_monitor.values import to_jsonable

        return {
            "name": self.name, "kind": self.kind, "base": self.base, "head": self.head,
            "base_commit": self.base_commit, "head_commit": self.head_commit,
            "metrics": [{"metric": m.metric, "base": m.base, "head": m.head, "delta": m.delta,
                         "direction": m.direction, "change": m.change,
                         "gate": self.gate.status_of(m.metric) if self.gate else ""}
                        for m in self.metrics],
            "gate": self.gate.to_json() if self.gate else None,
            "same_data": to_jsonable(self.same_data),
            "changes": (self.changes.to_dict() if hasattr(self.changes, "to_dict")
                        else to_jsonable(self.changes)),
            "plots": self.plots, "notes": self.notes, "skipped": self.skipped,
            "seconds": self.seconds,
        }


def build_report(root: str | Path, name: str | None = None, base: str | None = None,
                 head: str | None = None, output: str | Path | None = None,
                 plots: bool = True, top_k: int | None = None, plots_url: str | None = None,
                 plots_artifact: str | None = None) -> Report:
    """Build the report; with ``output``, write it there and the PNG plots next to it.

    Images are linked relative to the markdown file, or as ``plots_url/FILE`` (e.g. a CI
    job's artifact URL); with ``plots_artifact`` they are not embedded but named, with a
    link to where they are attached (a GitHub Actions run: artifacts are zip files there).
    """
    from dvc_monitor.registry import diff as diffing
    from dvc_monitor.review import gate as gates
    from dvc_monitor.model import state as model_state
    from dvc_monitor.review import revision as review
    from dvc_monitor.evaluation import scoring

    started = time.perf_counter()
    root = Path(root)
    base_state, head_state = review.read_base_and_head(root, name, base, head)
    root = head_state.root
    name = head_state.name
    if not (base_state.is_monitor_model and head_state.is_monitor_model):
        return _partial_report(root, base_state, head_state, output, started)
    if base_state.kind != head_state.kind:
        raise UsageError(f"{name} is a {base_state.kind} model at {base_state.label} but a "
                         f"{head_state.kind} model at {head_state.label}; nothing to compare")
    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    out_path = Path(output) if output else None
    if out_path is not None and out_path.is_dir():
        raise UsageError(f"-o {output} is a directory; give a file name like report.md")

    notes: list[str] = []
    stale = review.staleness(head_state)
    if stale:
        notes.append(f"head pipeline is not up to date ({'; '.join(stale)}): "
                     f"run `dvc repro {head_state.layout.dvc_yaml}`")
    for state in (base_state, head_state):
        model_state.ensure_data_manifest(state)  # so the diff can list partitions (e.g. in CI)
    changes = diffing.diff_revisions(root, name, base_state.commit, head_state.commit)
    notes += [n for n in getattr(changes, "notes", []) if "dvc.lock" not in n or not stale]
    directions = metric_directions(head_state.kind)
    try:
        gate_result = gates.gate_states(base_state, head_state, allow_stale=True)
        notes += [n for n in gate_result.notes if "out of date" not in n]
    except UsageError as exc:  # a bad gate: section must not hide the rest of the review
        gate_result = None
        notes.append(f"gate not evaluated: {exc}")
    rows = gate_result.rows if gate_result else gates.metric_rows(
        base_state.metrics, head_state.metrics, directions)

    # Both models on the same rows: the head's holdout.
    base_model = model_state.load_model(base_state)
    head_model = model_state.load_model(head_state)
    data = model_state.split_data(head_state, model_state.load_data(head_state))
    config = head_state.config
    model_state.check_fits(base_state.config, data.holdout, "the head's holdout data",
                           f"{name} at {base_state.label}")
    params = head_state.evaluate_params
    history = data.history if kind_for(head_state.kind).needs_history else None
    base_scored = scoring.score_rows(base_state.kind, base_model, base_state.config,
                                    data.holdout, history)
    head_scored = scoring.score_rows(head_state.kind, head_model, config, data.holdout, history)
    b_score, h_score, b_alert, h_alert = scoring.align(base_scored, head_scored)
    shift = scoring.score_shift(b_score, h_score, b_alert, h_alert, top_k=top_k)
    from dvc_monitor.kinds.common import labels_of

    labels = labels_of(data.holdout, config)
    same = SameData(
        rows=shift.rows,
        labelled=labels is not None and 0 < int(labels.sum()) < len(labels),
        base_metrics=scoring.evaluate_on(base_state.kind, base_model, base_state.config,
                                        data.holdout, params, history),
        head_metrics=scoring.evaluate_on(head_state.kind, head_model, config, data.holdout,
                                        params, history),
        shift=shift,
    )
    notes += base_state.notes + head_state.notes

    report = Report(
        name=name, kind=head_state.kind, base=base_state.label, head=head_state.label,
        base_commit=base_state.commit, head_commit=head_state.commit, metrics=rows,
        gate=gate_result, changes=changes, same_data=same, notes=notes,
        plots_url=plots_url.rstrip("/") if plots_url else None, plots_artifact=plots_artifact,
    )
    written: list[Path] = []
    if out_path is not None and plots:
        written = _plots(report, out_path, params, labels, base_scored, head_scored,
                         b_score, h_score)
        report.plots = [p.name for p in written]
    report.markdown = render(report)
    report.seconds = round(time.perf_counter() - started, 3)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text(report.markdown)
        tmp.replace(out_path)
    return report


def _partial_report(root: Path, base_state, head_state, output, started: float) -> Report:
    """The review of a model dvc-monitor did not train: params, data and code changes and
    the metrics that can be read; what could not be used is listed under ``skipped``.
    Its model file is never loaded (a pickle never is)."""
    from dvc_monitor.registry import diff as diffing
    from dvc_monitor.review import gate as gates

    name = head_state.name
    changes = diffing.diff_revisions(root, name, base_state.commit, head_state.commit)
    rows = gates.metric_rows(base_state.metrics, head_state.metrics, {})
    skipped: list[str] = []
    for state in (base_state, head_state):
        skipped += [f"{s} ({state.label})" for s in state.skipped
                    if f"{s} ({state.label})" not in skipped]
    skipped.append(f"{name} has no dvc-monitor kind config ({head_state.layout.monitor}): "
                   "both models on the same data and the quality gate were not evaluated")
    report = Report(
        name=name, kind=head_state.kind, base=base_state.label, head=head_state.label,
        base_commit=base_state.commit, head_commit=head_state.commit, metrics=rows,
        gate=None, changes=changes, same_data=None,
        notes=[n for n in getattr(changes, "notes", [])], skipped=skipped,
    )
    report.markdown = render(report)
    report.seconds = round(time.perf_counter() - started, 3)
    if output:
        out_path = Path(output)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text(report.markdown)
        tmp.replace(out_path)
    return report


# -- plots ------------------------------------------------------------------------------


def plot_path(out_path: Path, plot: str) -> Path:
    """Where plot ``plot`` of the report at ``out_path`` goes: ``<stem>-<plot>.png`` beside it."""
    return out_path.with_name(f"{out_path.stem}-{plot}.png")


def _plots(report: Report, out_path: Path, params: dict, labels, base_scored, head_scored,
           b_score, h_score) -> list[Path]:
    from dvc_monitor.review import plots

    kind = kind_for(report.kind)
    b, h = report.base, report.head
    title = f"{report.name}: "
    written = [plots.score_distribution(
        plot_path(out_path, "scores"), b_score, h_score, b, h,
        title + f"score distribution on the same {len(h_score)} rows", xlabel=kind.score_label,
        thresholds=(base_scored.threshold, head_scored.threshold))]
    has_both_classes = labels is not None and 0 < int(labels.sum()) < len(labels)
    if kind.review_plot == "pr_curve" and has_both_classes:
        written.append(plots.pr_curves(plot_path(out_path, "pr_curve"), labels,
                                       base_scored.score, head_scored.score, b, h,
                                       title + "precision-recall on the head's holdout"))
    if kind.review_plot == "calibration" and has_both_classes:
        bins = int(params.get("calibration_bins", 10))
        written.append(plots.calibration(plot_path(out_path, "calibration"), labels,
                                         base_scored.score, head_scored.score, b, h,
                                         title + "calibration on the head's holdout", bins))
    if kind.review_plot == "forecast":
        written.append(plots.forecast(plot_path(out_path, "forecast"), base_scored.frame,
                                      head_scored.frame, b, h,
                                      title + "actual vs predicted, with intervals"))
    return written


# -- markdown ---------------------------------------------------------------------------


def fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return f"{x:.6g}"
    return str(x)


def signed(x: float | None) -> str:
    if x is None:
        return "–"
    if abs(x) < 1e-12:
        return "0"
    return f"{x:+.6g}"


_MARK = {
    "fail": "🔴 regression",
    "worse": "🟠 worse",
    "better": "🟢 better",
    "unchanged": "",
    "": "",
}


def _mark(row, gate_result) -> str:
    status = gate_result.status_of(row.metric) if gate_result else ""
    if status == "fail":
        return _MARK["fail"]
    return _MARK[row.change]


def _code(text: Any) -> str:
    return f"`{text}`"


def render(report: Report) -> str:
    lines: list[str] = []
    add = lines.append
    g = report.gate
    add(f"## dvc-monitor review: `{report.name}` ({report.kind})")
    add("")
    add(f"Base **{_side(report.changes, 'base', report.base)}** → head "
        f"**{_side(report.changes, 'head', report.head)}**")
    add("")
    if report.skipped:
        add("**Quality gate:** cannot decide (not a model dvc-monitor trained)")
    elif g is None or not g.declared:
        add("**Quality gate:** none declared (add a `gate:` section to the model's params.yaml)")
    elif g.passed:
        add(f"**Quality gate:** ✅ passed ({len(g.checks)} threshold(s))")
    else:
        add("**Quality gate:** ❌ failed: " + "; ".join(c.detail for c in g.failures))
    for note in report.notes:
        add("")
        add(f"> ⚠️ {note}")
    add("")

    add("### Metrics")
    add("")
    add("Recorded in the pipeline's metrics files (the numbers `dvc metrics diff` shows); "
        "Δ = head − base.")
    add("")
    add("| metric | base | head | Δ | |")
    add("|---|---:|---:|---:|---|")
    for row in report.metrics:
        add(f"| {row.metric} | {fmt(row.base)} | {fmt(row.head)} | {signed(row.delta)} | "
            f"{_mark(row, g)} |")
    add("")
    if g is not None and g.checks:
        add("<details><summary>Gate thresholds</summary>")
        add("")
        add("| metric | threshold | result | detail |")
        add("|---|---|---|---|")
        for c in g.checks:
            icon = {"pass": "✅", "fail": "❌"}.get(c.status, "➖")
            add(f"| {c.metric} | {c.threshold} | {icon} {c.status} | {c.detail} |")
        add("")
        add("</details>")
        add("")

    same = report.same_data
    if same is not None:
        s = same.shift
        add(f"### Both models on the same data ({same.rows} holdout rows of the head)")
        add("")
        add("| | base | head | Δ |")
        add("|---|---:|---:|---:|")
        add(f"| alert rate | {fmt(s.base_alert_rate)} | {fmt(s.head_alert_rate)} | "
            f"{signed(s.alert_rate_change)} |")
        names = sorted(set(same.base_metrics) | set(same.head_metrics))
        for metric in names:
            b, h = same.base_metrics.get(metric), same.head_metrics.get(metric)
            if metric in _ALERT_RATE_METRICS or metric == "n_holdout":
                continue  # the alert rate row above is the same number
            d = h - b if isinstance(b, (int, float)) and isinstance(h, (int, float)) else None
            add(f"| {metric} | {fmt(b)} | {fmt(h)} | {signed(d)} |")
        add("")
        add("Label-free comparison of the two models' scores on these rows:")
        add("")
        add("| measure | value | reading |")
        add("|---|---:|---|")
        alert_j = "–" if s.alert_jaccard is None else f"{s.alert_jaccard:.3f}"
        add(f"| alerted rows in common (Jaccard) | {alert_j} | 1 = both alert on the same rows |")
        add(f"| top-{s.top_k} overlap | {s.top_k_overlap:.3f} | share of base's top-{s.top_k} "
            f"rows also in head's (Jaccard {s.top_k_jaccard:.3f}) |")
        add(f"| KS statistic | {s.ks_statistic:.4f} | p = {s.ks_pvalue:.3g}; 0 = same "
            "score distribution |")
        add(f"| PSI | {s.psi:.4f} | {_psi_reading(s.psi)} ({s.psi_bins} quantile bins of "
            "base) |")
        add("")

    add("### What changed")
    add("")
    lines.extend(render_changes(report.changes))
    add("")
    if report.skipped:
        add("### Skipped")
        add("")
        for why in report.skipped:
            add(f"- {why}")
        add("")

    if report.plots:
        add("### Plots")
        add("")
        if report.plots_artifact:
            add(f"PNG plots ({', '.join(_code(n) for n in report.plots)}) are attached to "
                f"[the CI run]({report.plots_artifact}).")
        else:
            for name in report.plots:
                title = name.rsplit("-", 1)[-1].removesuffix(".png").replace("_", " ")
                link = f"{report.plots_url}/{name}" if report.plots_url else name
                add(f"![{title}]({link})")
        add("")
    add(f"<sub>dvc-monitor report · base `{report.base_commit or report.base}` · head "
        f"`{report.head_commit or 'workspace'}`</sub>")
    return "\n".join(lines) + "\n"


def _side(changes: Any, which: str, label: str) -> str:
    """``v1.2.0 (abc1234)`` when a version is registered at that commit, else ``label``."""
    side = getattr(changes, which, None)
    version = getattr(side, "version", None)
    commit = getattr(side, "commit", None)
    return f"{version} ({commit[:7]})" if version and commit else label


def _psi_reading(value: float) -> str:
    if value < PSI_STABLE:
        return "stable"
    if value < PSI_MODERATE:
        return "moderate shift"
    return "large shift"


def render_changes(changes: Any) -> list[str]:
    """Markdown lines for a ``diffing.ModelDiff``."""
    lines: list[str] = []
    params = list(getattr(changes, "params_changed", None) or [])
    if params:
        lines += ["**Params**", "", "| param | base | head |", "|---|---|---|"]
        for item in params:
            key, b, h = _param_parts(item)
            lines.append(f"| {key} | {_code(fmt(b))} | {_code(fmt(h))} |")
        lines.append("")
    else:
        lines += ["**Params:** unchanged", ""]
    added = list(getattr(changes, "partitions_added", None) or [])
    removed = list(getattr(changes, "partitions_removed", None) or [])
    rewritten = list(getattr(changes, "partitions_changed", None) or [])
    if added or removed or rewritten:
        parts = []
        if added:
            parts.append("added " + ", ".join(_code(p) for p in added))
        if removed:
            parts.append("removed " + ", ".join(_code(p) for p in removed))
        if rewritten:
            parts.append("rewritten " + ", ".join(_code(p) for p in rewritten))
        lines += ["**Data partitions:** " + "; ".join(parts), ""]
    else:
        lines += ["**Data partitions:** unchanged", ""]
    code = list(getattr(changes, "code_changed", None) or [])
    if code:
        lines += ["**Code and other dependencies changed:** " +
                  ", ".join(_code(_dep_name(c)) for c in code), ""]
    else:
        lines += ["**Code and other dependencies:** unchanged", ""]
    return lines


def _param_parts(item: Any) -> tuple[str, Any, Any]:
    if isinstance(item, (tuple, list)) and len(item) >= 3:
        return str(item[0]), item[1], item[2]
    for names in (("key", "base", "head"), ("name", "base", "head"), ("path", "old", "new")):
        if all(hasattr(item, n) for n in names):
            return str(getattr(item, names[0])), getattr(item, names[1]), getattr(item, names[2])
    return str(item), None, None


def _dep_name(item: Any) -> str:
    if isinstance(item, (tuple, list)) and item:
        return str(item[0])
    for attr in ("path", "name"):
        if hasattr(item, attr):
            return str(getattr(item, attr))
    return str(item)

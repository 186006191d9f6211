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

PSI_STABLE, PSI_MODERATE = 0.1, 0.25
# The share of rows each kind flags, which the report's "alert rate" row shows.
_ALERT_RATE_METRICS = ("alert_rate", "anomaly_rate", "positive_rate")


@dataclass
class SameData:
    """Both models on the head's holdout rows (an adopted model: its reference rows)."""

    rows: int
    labelled: bool
    base_metrics: dict
    head_metrics: dict
    shift: Any  # scoring.ScoreShift
    source: str = "holdout rows"


@dataclass
class TrustChange:
    """The types beyond dvc-monitor's allow-list an adopted model trusts, at base and head
    (``monitor.yaml`` ``trusted_types:``): a newly trusted type is what a reviewer must see."""

    base: list[str]
    head: list[str]
    added: list[str]
    removed: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


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
    adopted: bool = False  # trained by its own pipeline (dvc-monitor adopt)
    trusted_types: TrustChange | None = None  # None: not an adopted model

    def to_json(self) -> dict:
        """The report's numbers as plain JSON (metrics rows match ``dvc metrics diff``)."""
        from dvc_monitor.values import to_jsonable

        # the gate's verdict per recorded metric (an adopted model's gate judged the same-data
        # numbers instead: see "gate")
        gated = self.gate if self.gate and self.gate.measured_on == "recorded" else None
        return {
            "name": self.name, "kind": self.kind, "base": self.base, "head": self.head,
            "base_commit": self.base_commit, "head_commit": self.head_commit,
            "metrics": [{"metric": m.metric, "base": m.base, "head": m.head, "delta": m.delta,
                         "direction": m.direction, "change": m.change,
                         "gate": gated.status_of(m.metric) if gated else ""}
                        for m in self.metrics],
            "gate": self.gate.to_json() if self.gate else None,
            "same_data": to_jsonable(self.same_data),
            "changes": (self.changes.to_dict() if hasattr(self.changes, "to_dict")
                        else to_jsonable(self.changes)),
            "plots": self.plots, "notes": self.notes, "skipped": self.skipped,
            "seconds": self.seconds, "adopted": self.adopted,
            "trusted_types": (None if self.trusted_types is None else
                              to_jsonable(self.trusted_types) | {
                                  "changed": self.trusted_types.changed}),
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
    from dvc_monitor.evaluation import scoring
    from dvc_monitor.model import state as model_state
    from dvc_monitor.registry import diff as diffing
    from dvc_monitor.review import gate as gates
    from dvc_monitor.review import revision as review
    from dvc_monitor.review import samedata

    started = time.perf_counter()
    root = Path(root)
    base_state, head_state = review.read_base_and_head(root, name, base, head)
    root = head_state.root
    name = head_state.name
    trust = trust_change(base_state, head_state)  # before the base may borrow the head's config
    base_state = samedata.judged_as_head(base_state, head_state)
    if not (base_state.is_monitor_model and head_state.is_monitor_model):
        return _partial_report(root, base_state, head_state, output, started, trust,
                               f"{name} has no dvc-monitor kind config "
                               f"({head_state.layout.monitor})")
    if head_state.adopted and head_state.reference_path is None:
        return _partial_report(root, base_state, head_state, output, started, trust,
                               f"{name} at {head_state.label} names no reference rows (no "
                               f"reference: in {head_state.layout.monitor}; run 'dvc-monitor "
                               f"adopt {name} --reference PATH' with its other options)")
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
    directions = dict(head_state.spec.metric_directions)
    # Both models on the same rows: the head's holdout (an adopted model: its reference).
    both = samedata.both_on_same_rows(base_state, head_state)
    try:
        gate_result = gates.gate_states(base_state, head_state, allow_stale=True, measured=both)
        notes += [n for n in gate_result.notes
                  if "out of date" not in n and n != gates.measured_note(both)]
    except UsageError as exc:  # a bad gate: section must not hide the rest of the review
        gate_result = None
        notes.append(f"gate not evaluated: {exc}")
    if gate_result is not None and gate_result.measured_on == "recorded":
        rows = gate_result.rows
    else:  # the pipeline's own recorded metrics; the gate judged the same-data ones
        rows = gates.metric_rows(base_state.metrics, head_state.metrics, directions)

    b_score, h_score, b_alert, h_alert = scoring.align(both.base_scored, both.head_scored)
    shift = scoring.score_shift(b_score, h_score, b_alert, h_alert, top_k=top_k)
    same = SameData(
        rows=shift.rows, labelled=both.labelled, base_metrics=both.base_metrics,
        head_metrics=both.head_metrics, shift=shift, source=both.source,
    )
    notes += base_state.notes + head_state.notes

    report = Report(
        name=name, kind=head_state.kind, base=base_state.label, head=head_state.label,
        base_commit=base_state.commit, head_commit=head_state.commit, metrics=rows,
        gate=gate_result, changes=changes, same_data=same, notes=list(dict.fromkeys(notes)),
        plots_url=plots_url.rstrip("/") if plots_url else None, plots_artifact=plots_artifact,
        adopted=head_state.adopted, trusted_types=trust,
    )
    written: list[Path] = []
    if out_path is not None and plots:
        written = _plots(report, out_path, head_state.spec, both, b_score, h_score)
        report.plots = [p.name for p in written]
    report.markdown = render(report)
    report.seconds = round(time.perf_counter() - started, 3)
    if out_path is not None:
        _write(out_path, report.markdown)
    return report


def trust_change(base_state, head_state) -> TrustChange | None:
    """The ``trusted_types`` of base and head (None: neither is an adopted model)."""
    if not (base_state.adopted or head_state.adopted):
        return None
    base, head = list(base_state.trusted_types), list(head_state.trusted_types)
    return TrustChange(base=base, head=head, added=[t for t in head if t not in base],
                       removed=[t for t in base if t not in head])


def _write(out_path: Path, text: str) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out_path)


def _partial_report(root: Path, base_state, head_state, output, started: float,
                    trust: TrustChange | None, why: str) -> Report:
    """The review of a model dvc-monitor did not train, or of an adopted model without
    reference rows (``why``): params, data and code changes and the metrics that can be
    read; what could not be used is listed under ``skipped``. Its model file is never
    loaded (a pickle never is)."""
    from dvc_monitor.registry import diff as diffing
    from dvc_monitor.review import gate as gates

    name = head_state.name
    changes = diffing.diff_revisions(root, name, base_state.commit, head_state.commit)
    rows = gates.metric_rows(base_state.metrics, head_state.metrics, {})
    skipped: list[str] = []
    for state in (base_state, head_state):
        skipped += [f"{s} ({state.label})" for s in state.skipped
                    if f"{s} ({state.label})" not in skipped]
    skipped.append(f"{why}: both models on the same data and the quality gate were not "
                   "evaluated")
    report = Report(
        name=name, kind=head_state.kind, base=base_state.label, head=head_state.label,
        base_commit=base_state.commit, head_commit=head_state.commit, metrics=rows,
        gate=None, changes=changes, same_data=None,
        notes=[n for n in getattr(changes, "notes", [])], skipped=skipped,
        adopted=head_state.adopted, trusted_types=trust,
    )
    report.markdown = render(report)
    report.seconds = round(time.perf_counter() - started, 3)
    if output:
        _write(Path(output), report.markdown)
    return report


# -- plots ------------------------------------------------------------------------------


def plot_path(out_path: Path, plot: str) -> Path:
    """Where plot ``plot`` of the report at ``out_path`` goes: ``<stem>-<plot>.png`` beside it."""
    return out_path.with_name(f"{out_path.stem}-{plot}.png")


def _plots(report: Report, out_path: Path, kind, both, b_score, h_score) -> list[Path]:
    from dvc_monitor.review import plots

    b, h = report.base, report.head
    base_scored, head_scored, labels = both.base_scored, both.head_scored, both.labels
    title = f"{report.name}: "
    rows = "reference" if report.adopted else "holdout"
    written = [plots.score_distribution(
        plot_path(out_path, "scores"), b_score, h_score, b, h,
        title + f"score distribution on the same {len(h_score)} rows", xlabel=kind.score_label,
        thresholds=(base_scored.threshold, head_scored.threshold))]
    if kind.review_plot == "pr_curve" and both.labelled:
        written.append(plots.pr_curves(plot_path(out_path, "pr_curve"), labels,
                                       base_scored.score, head_scored.score, b, h,
                                       title + f"precision-recall on the head's {rows}"))
    if kind.review_plot == "calibration" and both.labelled:
        bins = int(both.params.get("calibration_bins", 10))
        written.append(plots.calibration(plot_path(out_path, "calibration"), labels,
                                         base_scored.score, head_scored.score, b, h,
                                         title + f"calibration on the head's {rows}", bins))
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
    kind = f"{report.kind}, trained by its own pipeline" if report.adopted else report.kind
    add(f"## dvc-monitor review: `{report.name}` ({kind})")
    add("")
    add(f"Base **{_side(report.changes, 'base', report.base)}** → head "
        f"**{_side(report.changes, 'head', report.head)}**")
    add("")
    on_reference = g is not None and g.measured_on == "reference"
    where = " on the head's reference rows" if on_reference else ""
    if report.skipped:
        why = "no reference rows" if report.adopted else "not a model dvc-monitor trained"
        add(f"**Quality gate:** cannot decide ({why})")
    elif g is None or not g.enforced:
        add("**Quality gate:** none declared (add a `gate:` section to the model's params.yaml)")
    elif g.passed:
        default = " default" if g.default_rules else ""
        add(f"**Quality gate:** ✅ passed ({len(g.checks)}{default} threshold(s){where})")
    else:
        add("**Quality gate:** ❌ failed: " + "; ".join(c.detail for c in g.failures))
    for note in report.notes:
        add("")
        add(f"> ⚠️ {note}")
    add("")
    lines.extend(render_trust(report.trusted_types))

    add("### Metrics")
    add("")
    add("Recorded in the pipeline's metrics files (the numbers `dvc metrics diff` shows); "
        "Δ = head − base.")
    add("")
    if report.metrics:
        add("| metric | base | head | Δ | |")
        add("|---|---:|---:|---:|---|")
        for row in report.metrics:
            mark = _MARK[row.change] if on_reference else _mark(row, g)
            add(f"| {row.metric} | {fmt(row.base)} | {fmt(row.head)} | {signed(row.delta)} | "
                f"{mark} |")
    else:
        add("None recorded (no `metrics:` file of the pipeline at either revision).")
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
        add(f"### Both models on the same data ({same.rows} {same.source} of the head)")
        add("")
        gated = {r.metric: r for r in g.rows} if on_reference else {}
        extra, rule = (" |", "---|") if on_reference else ("", "")
        add(f"| | base | head | Δ |{extra}")
        add(f"|---|---:|---:|---:|{rule}")
        add(f"| alert rate | {fmt(s.base_alert_rate)} | {fmt(s.head_alert_rate)} | "
            f"{signed(s.alert_rate_change)} |{' |' if on_reference else ''}")
        names = sorted(set(same.base_metrics) | set(same.head_metrics))
        for metric in names:
            b, h = same.base_metrics.get(metric), same.head_metrics.get(metric)
            if metric in _ALERT_RATE_METRICS or metric == "n_holdout":
                continue  # the alert rate row above is the same number
            d = h - b if isinstance(b, (int, float)) and isinstance(h, (int, float)) else None
            mark = f" {_mark(gated[metric], g)} |" if metric in gated else extra
            add(f"| {metric} | {fmt(b)} | {fmt(h)} | {signed(d)} |{mark}")
        add("")
        if on_reference:
            add("The quality gate judges these numbers (an adopted model records no metrics "
                "of dvc-monitor's).")
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


def render_trust(trust: TrustChange | None) -> list[str]:
    """The "Trusted types" section when ``trusted_types`` changed between base and head:
    a type dvc-monitor loads only because ``monitor.yaml`` trusts it (empty otherwise)."""
    if trust is None or not trust.changed:
        return []
    lines = ["### ⚠️ Trusted types changed", "",
             "`monitor.yaml` `trusted_types:` lists the types outside dvc-monitor's allow-list "
             "that loading this model may create; a newly trusted type runs its code when the "
             "model is loaded. Check that each one is yours or a library's you use.", ""]
    lines += [f"- added: {_code(t)}" for t in trust.added]
    lines += [f"- removed: {_code(t)}" for t in trust.removed]
    lines += ["", "Trusted at head: " + (", ".join(_code(t) for t in trust.head) or "none"), ""]
    return lines


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

"""The ``watch -o REPORT.md`` report: markdown, and PNGs next to it (matplotlib's Agg).

One plot per ruled measure (the watched version per window, its threshold, the breaching
windows marked, the candidates on the windows they were judged on) and one of the
feature PSIs. The style is the review report's (``dvc_monitor.plots``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dvc_monitor.review import plots as P

if TYPE_CHECKING:
    from dvc_monitor.monitoring.watch import WatchResult

BREACH_COLOR = "#d62728"
CANDIDATE_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2")
MAX_FEATURES = 8


def _limit_line(rule: str, limit: float, reference: float | None) -> float | None:
    """The value a rule allows at most (or at least), as a line on the plot."""
    if rule in ("max", "min"):
        return limit
    if reference is None or rule.endswith("_pct"):
        return None
    if rule == "max_drop":
        return reference - limit
    return reference + limit  # max_increase, max_change (upper side)


def measure_plot(path: Path, result: "WatchResult", measure: str) -> Path:
    fig = P.new_figure()
    fig.set_size_inches(9.0, 4.2)
    ax = fig.add_subplot()
    xs = [w.index for w in result.windows]
    ys = [w.measures.get(measure) for w in result.windows]
    ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o", markersize=3,
            color=P.HEAD_COLOR, label=f"{result.version} (watched)")
    bad = [(w.index, w.measures[measure]) for w in result.windows
           if any(b.measure == measure for b in w.breaches)]
    if bad:
        ax.scatter(*zip(*bad), color=BREACH_COLOR, zorder=3, label="breach")
    for name in result.breaching_windows:
        idx = next(w.index for w in result.windows if w.window == name)
        ax.axvspan(idx - 0.5, idx + 0.5, color=BREACH_COLOR, alpha=0.08, linewidth=0)
    for c, color in zip(result.candidates, CANDIDATE_COLORS):
        pts = [(w.index, w.measures.get(measure)) for w in c.windows
               if w.measures.get(measure) is not None]
        if pts:
            verdict = "passes" if c.passed else "fails"
            ax.scatter(*zip(*pts), marker="s", color=color, zorder=4,
                       label=f"candidate {c.version} ({verdict})")
    for rule in result.rules["rules"]:
        if rule["measure"] != measure:
            continue
        ref = 0.0 if measure.startswith("psi_") else None
        for w in result.windows:
            for b in w.breaches:
                if b.measure == measure:
                    ref = b.reference
        line = _limit_line(rule["rule"], rule["limit"], ref)
        if line is not None:
            ax.axhline(line, color=P.BASE_COLOR, linestyle="--", linewidth=1.2,
                       label=f"{rule['rule']} {rule['limit']:g}")
    ax.set_xlabel("window")
    ax.set_ylabel(measure)
    ax.set_title(f"{result.name}: {measure} per window")
    ax.legend(fontsize="small")
    return P.save_png(fig, path)


def feature_plot(path: Path, result: "WatchResult") -> Path | None:
    if not any(w.feature_psi for w in result.windows):
        return None
    worst = {}
    for w in result.windows:
        for f, v in w.feature_psi.items():
            worst[f] = max(v, worst.get(f, 0.0))
    top = sorted(worst, key=lambda f: -worst[f])[:MAX_FEATURES]
    fig = P.new_figure()
    fig.set_size_inches(9.0, 4.2)
    ax = fig.add_subplot()
    xs = [w.index for w in result.windows]
    for f in top:
        ax.plot(xs, [w.feature_psi.get(f, float("nan")) for w in result.windows], marker=".",
                label=f)
    for value, style in ((0.1, ":"), (0.25, "--")):
        ax.axhline(value, color=P.BASE_COLOR, linestyle=style, linewidth=1.0)
    ax.set_xlabel("window")
    ax.set_ylabel("PSI against the reference")
    ax.set_title(f"{result.name} {result.version}: feature PSIs (0.1 moderate, 0.25 large)")
    ax.legend(fontsize="small", ncol=2)
    return P.save_png(fig, path)


def markdown(result: "WatchResult", images: list[str]) -> str:

    target = f" → **{result.target}**" if result.target else ""
    stage = f"#{result.stage}" if result.stage else ""
    lines = [f"# watch {result.name}{stage}: {result.version}", "",
             f"**Decision: {result.decision}**{target}", "", result.evidence, ""]
    if result.rolled_back:
        rb = result.rolled_back
        lines += [f"Rolled back: commit `{(rb.get('commit') or '-')[:12]}`, tag "
                  f"`{rb.get('tag') or '-'}`.", ""]
    rules = result.rules
    lines += ["## Rules", "", f"From {rules['source']}; failure_limit "
              f"{rules['failure_limit']}, cooldown {rules['cooldown']}, min_rows "
              f"{rules['min_rows']}.", "",
              "| measure | rule | limit |", "|---|---|---|"]
    lines += [f"| {r['measure']} | {r['rule']} | {r['limit']:g} |" for r in rules["rules"]]
    measures = list(dict.fromkeys(r["measure"] for r in rules["rules"]))
    lines += ["", "## Windows", "", "| # | window | rows | " + " | ".join(measures)
              + " | status |", "|---" * (len(measures) + 4) + "|"]
    for w in result.windows:
        cells = [_fmt(w.measures.get(m)) for m in measures]
        lines.append(f"| {w.index} | {_cell(w.window)} | {w.rows} | " + " | ".join(cells)
                     + f" | {w.status} |")
    if result.candidates:
        lines += ["", "## Candidates", "",
                  f"Scored on the breaching windows: {', '.join(result.breaching_windows)}.",
                  "", "| version | verdict | why |", "|---|---|---|"]
        for c in result.candidates:
            why = "; ".join(c.failures[:3]) or "every rule holds"
            verdict = "skipped" if c.skipped else ("passes" if c.passed else "fails")
            lines.append(f"| {c.version} | {verdict} | {_cell(why)} |")
    if result.drifted_features:
        lines += ["", "## Drifted features", "", "| feature | largest PSI |", "|---|---|"]
        lines += [f"| {f} | {v:.3g} |" for f, v in result.drifted_features.items()]
    if images:
        lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write_report(result: "WatchResult", output: str | Path, plots: bool = True) -> list[str]:
    """Write the markdown to ``output`` and the PNGs next to it; returns the PNG names."""
    output = Path(output)
    images: list[str] = []
    if plots and result.windows:
        stem = output.stem
        measures = list(dict.fromkeys(r["measure"] for r in result.rules["rules"]))
        for m in measures:
            if any(w.measures.get(m) is not None for w in result.windows):
                name = f"{stem}-{m}.png"
                measure_plot(output.parent / name, result, m)
                images.append(name)
        if feature_plot(output.parent / f"{stem}-features.png", result) is not None:
            images.append(f"{stem}-features.png")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(markdown(result, images))
    tmp.replace(output)
    return images


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:300]

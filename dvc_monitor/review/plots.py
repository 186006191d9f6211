"""PNG plots for the review report (matplotlib's Agg renderer; no display, no pyplot state).

Every function draws base and head on one figure and writes ``path``. matplotlib is
imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BASE_COLOR = "#7f7f7f"
HEAD_COLOR = "#1f77b4"
SIZE = (7.0, 4.2)
DPI = 110


def new_figure():
    """An empty figure in the report's size, drawn by the Agg renderer (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically, no timestamp in it); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", metadata={"Software": None})
    tmp.replace(path)
    return path


def score_distribution(path: str | Path, base: "np.ndarray", head: "np.ndarray",
                       base_label: str, head_label: str, title: str,
                       xlabel: str = "score", bins: int = 40,
                       thresholds: tuple[float | None, float | None] = (None, None)) -> Path:
    """Histograms of two models' scores on the same rows (shared bins), with each
    model's alert threshold as a dashed line when known."""
    import numpy as np

    fig = new_figure()
    ax = fig.add_subplot()
    base = np.asarray(base, dtype=float)
    head = np.asarray(head, dtype=float)
    base, head = base[np.isfinite(base)], head[np.isfinite(head)]  # e.g. rows without a value
    values = np.concatenate([base, head])
    if len(values) == 0:
        values = np.zeros(1)
    lo, hi = float(np.min(values)), float(np.max(values))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    ax.hist(base, bins=edges, alpha=0.55, color=BASE_COLOR, label=f"base {base_label}")
    ax.hist(head, bins=edges, histtype="step", linewidth=1.6, color=HEAD_COLOR,
            label=f"head {head_label}")
    for value, color, who, style in ((thresholds[0], BASE_COLOR, "base", "--"),
                                     (thresholds[1], HEAD_COLOR, "head", ":")):
        if value is not None and lo <= value <= hi:
            ax.axvline(value, color=color, linestyle=style, linewidth=1.4,
                       label=f"{who} alert threshold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.legend()
    return save_png(fig, path)


def pr_curves(path: str | Path, labels: "np.ndarray", base: "np.ndarray", head: "np.ndarray",
              base_label: str, head_label: str, title: str) -> Path:
    """Precision-recall curves of two models on the same labelled rows."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig = new_figure()
    ax = fig.add_subplot()
    for scores, color, who, label in ((base, BASE_COLOR, "base", base_label),
                                      (head, HEAD_COLOR, "head", head_label)):
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision_score(labels, scores)
        ax.step(recall, precision, where="post", color=color,
                label=f"{who} {label} (AP {ap:.3f})")
    ax.axhline(float(labels.mean()), color="#cccccc", linestyle=":", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(loc="upper right")
    return save_png(fig, path)


def calibration(path: str | Path, labels: "np.ndarray", base: "np.ndarray", head: "np.ndarray",
                base_label: str, head_label: str, title: str, bins: int = 10) -> Path:
    """Reliability curves (observed rate vs predicted probability) of two models."""
    from sklearn.calibration import calibration_curve

    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#cccccc", linestyle=":", label="perfect")
    for probs, color, who, label in ((base, BASE_COLOR, "base", base_label),
                                     (head, HEAD_COLOR, "head", head_label)):
        frac, mean = calibration_curve(labels, probs, n_bins=bins, strategy="quantile")
        ax.plot(mean, frac, marker="o", color=color, label=f"{who} {label}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed positive rate")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return save_png(fig, path)


def forecast(path: str | Path, base: "pd.DataFrame", head: "pd.DataFrame",
             base_label: str, head_label: str, title: str) -> Path:
    """Actual values with both models' forecasts and prediction intervals: against the
    hours into the holdout, or the row number when the rows carry no ``timestamp`` (an
    adopted forecaster's reference rows)."""
    import numpy as np

    fig = new_figure()
    fig.set_size_inches(9.0, 4.2)
    ax = fig.add_subplot()
    timed = "timestamp" in base.columns and "timestamp" in head.columns
    t0 = int(min(base["timestamp"].min(), head["timestamp"].min())) if timed else 0

    def x_of(frame):
        if not timed:
            return np.arange(len(frame))
        return (frame["timestamp"].to_numpy(dtype=np.int64) - t0) / 3600

    for frame, color, who, label in ((base, BASE_COLOR, "base", base_label),
                                     (head, HEAD_COLOR, "head", head_label)):
        x = x_of(frame)
        ax.fill_between(x, frame["lower"], frame["upper"], color=color, alpha=0.18,
                        linewidth=0)
        ax.plot(x, frame["predicted"], color=color, linewidth=1.0,
                label=f"{who} {label}")
    actual = head if len(head) >= len(base) else base
    ax.plot(x_of(actual), actual["actual"], color="black", linewidth=0.8, label="actual")
    ax.set_xlabel("hours into the holdout" if timed else "reference row")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return save_png(fig, path)

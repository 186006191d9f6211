"""Scoring models on rows: per-kind scores and alerts, and how two models differ on the same rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvc_monitor.errors import (
    DvcMonitorError,
    TemplateError,
    UsageError,
)
from dvc_monitor.kinds import Kind, kind_for
from dvc_monitor.model.data import ModelConfig

if TYPE_CHECKING:  # pandas/numpy are imported lazily
    import numpy as np
    import pandas as pd

WORKSPACE = "workspace"


# -- scoring ----------------------------------------------------------------------------


@dataclass
class Scored:
    """One model's scores on rows; ``key`` identifies a row across models."""

    key: "np.ndarray"
    score: "np.ndarray"
    alert: "np.ndarray"
    frame: "pd.DataFrame | None" = None  # the kind's score frame (forecast: its predictions)
    threshold: float | None = None  # the score above which the model alerts


def score_rows(kind: "str | Kind", model: Any, config: ModelConfig, rows: "pd.DataFrame",
               history: "pd.DataFrame | None" = None) -> Scored:
    """Score ``rows`` with ``model``: higher = more anomalous / riskier / a worse miss."""
    spec = kind_for(kind)
    try:
        frame = spec.score(model, rows, config, history)
    except DvcMonitorError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise TemplateError(f"the {spec.name} model could not score the data ({detail}); "
                            "does the data fit this model?") from None
    return Scored(frame["key"].to_numpy(), frame["score"].to_numpy(dtype=float),
                  frame["alert"].to_numpy(dtype=bool), frame, spec.alert_threshold(model))


def evaluate_on(kind: "str | Kind", model: Any, config: ModelConfig, rows: "pd.DataFrame",
                params: dict, history: "pd.DataFrame | None" = None) -> dict:
    """The metrics ``stage evaluate`` would compute for ``model`` on ``rows``."""
    from dvc_monitor.kinds.common import clean_number

    spec = kind_for(kind)
    try:
        metrics, _ = spec.evaluate(model, rows, config, params, history=history)
    except DvcMonitorError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise TemplateError(f"the {spec.name} model could not be evaluated on the data "
                            f"({detail})") \
            from None
    return clean_number(metrics)


def align(base: Scored, head: Scored) -> tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray"]:
    """(base score, head score, base alert, head alert) on the rows both models scored."""
    import numpy as np

    common, bi, hi = np.intersect1d(base.key, head.key, assume_unique=True, return_indices=True)
    order = np.argsort(hi)  # keep the head's row order
    bi, hi = bi[order], hi[order]
    return base.score[bi], head.score[hi], base.alert[bi], head.alert[hi]


@dataclass(frozen=True)
class ScoreShift:
    """How two models differ on the same rows, without labels."""

    rows: int
    base_alert_rate: float
    head_alert_rate: float
    alert_rate_change: float
    alert_jaccard: float | None  # |A ∩ B| / |A ∪ B| of the alerted rows (None: no alerts)
    top_k: int
    top_k_overlap: float  # |top-k base ∩ top-k head| / k
    top_k_jaccard: float
    ks_statistic: float
    ks_pvalue: float
    psi: float
    psi_bins: int


def score_shift(base_score: "np.ndarray", head_score: "np.ndarray", base_alert: "np.ndarray",
                head_alert: "np.ndarray", top_k: int | None = None, bins: int = 10) -> ScoreShift:
    """Label-free comparison of two models' scores on the same rows.

    ``top_k`` defaults to the larger number of alerts of the two models, at least 10
    (at most the number of rows). PSI uses ``bins`` quantile bins of the base scores.
    """
    import numpy as np
    from scipy.stats import ks_2samp

    n = len(base_score)
    if n == 0:
        raise UsageError("no rows to compare the models on")
    if top_k is None:
        top_k = max(10, int(base_alert.sum()), int(head_alert.sum()))
    k = max(1, min(int(top_k), n))
    # Ties are broken by row position so the result does not depend on sort stability.
    top_b = set(np.lexsort((np.arange(n), -base_score))[:k].tolist())
    top_h = set(np.lexsort((np.arange(n), -head_score))[:k].tolist())
    inter = len(top_b & top_h)
    alerted_b, alerted_h = set(np.flatnonzero(base_alert)), set(np.flatnonzero(head_alert))
    union_alerts = alerted_b | alerted_h
    ks = ks_2samp(base_score, head_score)
    psi_value, used_bins = psi(base_score, head_score, bins)
    rate_b, rate_h = float(base_alert.mean()), float(head_alert.mean())
    return ScoreShift(
        rows=n,
        base_alert_rate=rate_b,
        head_alert_rate=rate_h,
        alert_rate_change=rate_h - rate_b,
        alert_jaccard=(len(alerted_b & alerted_h) / len(union_alerts)) if union_alerts else None,
        top_k=k,
        top_k_overlap=inter / k,
        top_k_jaccard=inter / len(top_b | top_h),
        ks_statistic=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        psi=psi_value,
        psi_bins=used_bins,
    )


def psi(expected: "np.ndarray", actual: "np.ndarray", bins: int = 10,
        eps: float = 1e-4) -> tuple[float, int]:
    """Population stability index of ``actual`` against ``expected`` and the bins used.

    Bin edges are quantiles of ``expected`` (duplicates merged); empty bins count as
    ``eps`` so the index stays finite. < 0.1: stable, 0.1-0.25: moderate, > 0.25: large.
    """
    inner, fractions = quantile_bins(expected, bins)
    return psi_binned(inner, fractions, actual, eps), len(inner) + 1


def quantile_bins(expected: "np.ndarray", bins: int = 10) -> tuple["np.ndarray", "np.ndarray"]:
    """The inner edges of ``bins`` quantile bins of ``expected`` (duplicates merged) and the
    share of ``expected`` in each bin: a stored reference for ``psi_binned``."""
    import numpy as np

    expected = np.asarray(expected, dtype=float)
    inner = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=len(inner) + 1)
    return inner, e / max(len(expected), 1)


def psi_binned(inner: "np.ndarray", fractions: "np.ndarray", actual: "np.ndarray",
               eps: float = 1e-4) -> float:
    """PSI of ``actual`` against bins from ``quantile_bins`` (edges and expected shares)."""
    return psi_of_counts(fractions, bin_counts(inner, actual), eps)


def bin_counts(inner: "np.ndarray", actual: "np.ndarray") -> "np.ndarray":
    """How many of ``actual`` fall in each bin of the inner edges ``inner``: counts of
    parts of the rows add up to the counts of all of them (``psi_of_counts``)."""
    import numpy as np

    inner = np.asarray(inner, dtype=float)
    actual = np.asarray(actual, dtype=float)
    return np.bincount(np.searchsorted(inner, actual, side="right"), minlength=len(inner) + 1)


def psi_of_counts(fractions: "np.ndarray", counts: "np.ndarray", eps: float = 1e-4) -> float:
    """PSI of rows binned into ``counts`` (``bin_counts``) against the expected shares."""
    import numpy as np

    counts = np.asarray(counts)
    pe = np.maximum(np.asarray(fractions, dtype=float), eps)
    pa = np.maximum(counts / max(int(counts.sum()), 1), eps)
    value = float(np.sum((pa - pe) * np.log(pa / pe)))
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value

"""What ``watch`` measures on one window of rows scored by one version.

=================  ==================================================  =======  ============
measure            value                                               kinds    better
=================  ==================================================  =======  ============
psi_score          PSI of the window's scores against the reference    all      lower
psi_features       the largest PSI of one feature against the reference all     lower
alert_rate         share of rows the model alerts on                   anomaly  (none)
                                                                       risk
outside_rate       share of actual values outside the interval         forecast (none)
mean_probability   mean predicted probability                          risk     (none)
precision, recall  of the alerts, when the window carries labels       anomaly  higher
mae                mean absolute error of the forecast                 forecast lower
brier              Brier score, when the window carries labels         risk     lower
=================  ==================================================  =======  ============

The same function measures the reference (the version's holdout), so relative rules
(``max_change``, ``max_increase`` ...) compare a window with the holdout value; the PSIs
of the holdout against itself are 0. Forecast timestamps always move forward, so they are
not a drift feature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from dvc_monitor.evaluation.scoring import Scored

DRIFT = {"psi_score": "lower", "psi_features": "lower"}
KIND_MEASURES: dict[str, dict[str, str | None]] = {
    "anomaly": {"alert_rate": None, "precision": "higher", "recall": "higher"},
    "forecast": {"outside_rate": None, "mae": "lower"},
    "risk": {"mean_probability": None, "alert_rate": None, "brier": "lower"},
}
# the live rate each kind's reference records at the model's threshold
KIND_RATE = {"anomaly": "alert_rate", "forecast": "outside_rate", "risk": "mean_probability"}
NOT_DRIFT_FEATURES = {"forecast": ("timestamp",)}


def directions(kind: str) -> dict[str, str | None]:
    """measure -> better direction ("higher", "lower" or None), for rule parsing."""
    return {**DRIFT, **KIND_MEASURES[kind]}


def drift_features(kind: str, features) -> list[str]:
    skip = NOT_DRIFT_FEATURES.get(kind, ())
    return [f for f in features if f not in skip]


def rates(kind: str, scored: "Scored", labels: "np.ndarray | None") -> dict[str, float | None]:
    """The kind's measures other than the PSIs (None: not measurable on these rows)."""
    import numpy as np

    alert = np.asarray(scored.alert, dtype=bool)
    n = len(alert)
    if kind == "forecast":
        frame = scored.frame
        err = (frame["actual"] - frame["predicted"]).to_numpy(dtype=float) if n else []
        return {"outside_rate": float(alert.mean()) if n else None,
                "mae": float(np.mean(np.abs(err))) if n else None}
    out: dict[str, float | None] = {"alert_rate": float(alert.mean()) if n else None}
    y = None if labels is None else np.asarray(labels, dtype=int)
    if kind == "anomaly":
        tp = int((alert & (y == 1)).sum()) if y is not None else 0
        out["precision"] = tp / int(alert.sum()) if y is not None and alert.any() else None
        out["recall"] = tp / int(y.sum()) if y is not None and y.any() else None
    else:
        p = np.asarray(scored.score, dtype=float)
        out["mean_probability"] = float(p.mean()) if n else None
        out["brier"] = float(np.mean((p - y) ** 2)) if y is not None and n else None
    return out


def feature_psis(profile, frame) -> dict[str, float]:
    """PSI of each profiled feature of ``frame`` against the reference bins."""
    from dvc_monitor.evaluation.scoring import psi_binned

    return {name: psi_binned(b["edges"], b["fractions"], frame[name].to_numpy(dtype=float))
            for name, b in profile.features.items()}


def measure(kind: str, profile, scored: "Scored", frame,
            labels: "np.ndarray | None") -> tuple[dict[str, float | None], dict[str, float]]:
    """(measures, feature PSIs) of one window scored by one version with its profile."""
    from dvc_monitor.evaluation.scoring import psi_binned

    features = feature_psis(profile, frame)
    values = {
        "psi_score": psi_binned(profile.score["edges"], profile.score["fractions"], scored.score),
        "psi_features": max(features.values()) if features else None,
        **rates(kind, scored, labels),
    }
    return values, features

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
not a drift feature. Each kind declares its measures (``Kind.window_measures``) and
computes them (``Kind.window_rates``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dvc_monitor.kinds import Kind, kind_for

if TYPE_CHECKING:
    import numpy as np

    from dvc_monitor.evaluation.scoring import Scored

DRIFT = {"psi_score": "lower", "psi_features": "lower"}


def directions(kind: "str | Kind") -> dict[str, str | None]:
    """measure -> better direction ("higher", "lower" or None), for rule parsing."""
    return {**DRIFT, **kind_for(kind).window_measures}


def drift_features(kind: "str | Kind", features) -> list[str]:
    """The features whose PSI is measured (``Kind.drift_features``)."""
    return kind_for(kind).drift_features(features)


def rates(kind: "str | Kind", scored: "Scored", labels: "np.ndarray | None") -> dict[str, float | None]:
    """The kind's measures other than the PSIs (None: not measurable on these rows)."""
    return kind_for(kind).window_rates(scored.frame, labels)


def feature_psis(profile, frame) -> dict[str, float]:
    """PSI of each profiled feature of ``frame`` against the reference bins."""
    from dvc_monitor.evaluation.scoring import psi_binned

    return {name: psi_binned(b["edges"], b["fractions"], frame[name].to_numpy(dtype=float))
            for name, b in profile.features.items()}


def measure(kind: "str | Kind", profile, scored: "Scored", frame,
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

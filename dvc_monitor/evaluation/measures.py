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

Every measure is made of counts and exact sums (``WindowCounts``: rows per PSI bin,
``Kind.window_sums``), so a window measured in parts (the partitions of a Dask job) adds
up to the same counts, and ``measures_of`` gives the same values as on the whole window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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


@dataclass
class WindowCounts:
    """What a window's measures are made of, in numbers that add up over its parts:
    ``rows`` judged, ``scored`` (rows with a score), ``skipped`` (reason -> rows left
    out), rows per PSI bin of the score and of each profiled feature, and the kind's
    ``sums`` (``Kind.window_sums``)."""

    rows: int = 0
    scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    score_bins: Any = None  # np.ndarray of counts (None: nothing scored)
    feature_bins: dict[str, Any] = field(default_factory=dict)
    sums: dict[str, Any] | None = None

    def __add__(self, other: "WindowCounts") -> "WindowCounts":
        from dvc_monitor.kinds.common import add_sums

        def plus(a, b):
            return b if a is None else a if b is None else a + b

        skipped = dict(self.skipped)
        for reason, n in other.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        return WindowCounts(
            self.rows + other.rows, self.scored + other.scored, skipped,
            plus(self.score_bins, other.score_bins),
            {k: plus(self.feature_bins.get(k), other.feature_bins.get(k))
             for k in dict.fromkeys([*self.feature_bins, *other.feature_bins])},
            other.sums if self.sums is None else self.sums if other.sums is None
            else add_sums(self.sums, other.sums))


def window_counts(kind: "str | Kind", profile, scored: "Scored", frame,
                  labels: "np.ndarray | None") -> WindowCounts:
    """The counts of one window (or part of one): ``scored`` by one version with its
    ``profile``; ``frame``: the judged rows (their features); ``labels``: their 0/1
    labels (None: unlabelled)."""
    from dvc_monitor.evaluation.scoring import bin_counts

    return WindowCounts(
        rows=len(frame), scored=len(scored.score),
        score_bins=bin_counts(profile.score["edges"], scored.score),
        feature_bins={name: bin_counts(b["edges"], frame[name].to_numpy(dtype=float))
                      for name, b in profile.features.items()},
        sums=kind_for(kind).window_sums(scored.frame, labels))


def measures_of(kind: "str | Kind", profile,
                counts: WindowCounts) -> tuple[dict[str, float | None], dict[str, float]]:
    """(measures, feature PSIs) of a window from its ``counts`` (summed over its parts)."""
    from dvc_monitor.evaluation.scoring import psi_of_counts

    features = {name: psi_of_counts(profile.features[name]["fractions"], c)
                for name, c in counts.feature_bins.items()}
    values = {
        "psi_score": psi_of_counts(profile.score["fractions"], counts.score_bins),
        "psi_features": max(features.values()) if features else None,
        **kind_for(kind).window_rates_of(counts.sums),
    }
    return values, features


def measure(kind: "str | Kind", profile, scored: "Scored", frame,
            labels: "np.ndarray | None") -> tuple[dict[str, float | None], dict[str, float]]:
    """(measures, feature PSIs) of one window scored by one version with its profile."""
    return measures_of(kind, profile, window_counts(kind, profile, scored, frame, labels))

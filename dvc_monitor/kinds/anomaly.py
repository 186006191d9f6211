"""Anomaly detector for card transactions: IsolationForest on transaction features.

Score convention: higher = more anomalous. An alert is raised where the model's
``decision_function`` is below zero (its threshold is set by ``contamination``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvc_monitor.kinds.base import BuiltinKind, DemoScript
from dvc_monitor.kinds.common import hash_holdout, labels_of, ratio, thin

LABEL = "is_fraud"
METRIC_DIRECTIONS = {
    "alert_rate": None,  # neither: it is watched, not optimised
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "roc_auc": "higher",
    "average_precision": "higher",
}


class Anomaly(BuiltinKind):
    """The ``anomaly`` kind (see the module doc)."""

    name = "anomaly"
    description = "anomaly detector (IsolationForest)"
    metric_directions = METRIC_DIRECTIONS
    primary_metric = "f1"
    gate_metrics = ("roc_auc", "average_precision")
    label_metrics = frozenset({"precision", "recall", "f1", "roc_auc", "average_precision"})
    window_measures = {"alert_rate": None, "precision": "higher", "recall": "higher"}
    live_rate = "alert_rate"
    score_label = "anomaly score (higher = more anomalous)"
    review_plot = "pr_curve"
    result_fields = ("score", "alert")
    demo = DemoScript(model_name="fraud-detector", bad_param=("contamination", "0.15"),
                      live_batches=(5, 6), window=500, serve_rows=2)

    def sample_batch(self, index: int, seed: int = 0, rows: int = 1000,
                     fraud_rate: float = 0.02) -> pd.DataFrame:
        """A seeded batch of synthetic card transactions with a fraud label."""
        rng = np.random.default_rng([seed, index, 1])
        fraud = rng.random(rows) < fraud_rate
        n_f = int(fraud.sum())
        amount = rng.lognormal(3.5, 0.8, rows)
        amount[fraud] = rng.lognormal(4.6, 1.0, n_f)
        hour = rng.choice(24, rows, p=_hour_profile())
        hour[fraud] = np.where(rng.random(n_f) < 0.6, rng.choice([0, 1, 2, 3, 4, 23], n_f),
                               hour[fraud])
        distance = rng.lognormal(1.5, 0.9, rows)
        distance[fraud] = rng.lognormal(2.6, 1.2, n_f)
        txn = rng.poisson(2.5, rows)
        txn[fraud] = rng.poisson(5.0, n_f)
        return pd.DataFrame({
            "amount": np.round(amount, 2),
            "hour": hour,
            "merchant_category": rng.integers(0, 10, rows),
            "distance_from_home": np.round(distance, 3),
            "txn_last_24h": txn,
            LABEL: fraud.astype(int),
        })

    def holdout_mask(self, df: pd.DataFrame, rule: dict) -> np.ndarray:
        """A stable hash of each row's ``_row`` id picks ``holdout_fraction`` of the rows."""
        return hash_holdout(df["_row"], float(rule["holdout_fraction"]))

    def fit(self, train: pd.DataFrame, config, params: dict):
        """An IsolationForest on the feature columns."""
        from sklearn.ensemble import IsolationForest

        model = IsolationForest(
            n_estimators=int(params["n_estimators"]),
            max_samples=min(int(params["max_samples"]), len(train)),
            contamination=float(params["contamination"]),
            max_features=float(params["max_features"]),
            random_state=int(params["seed"]),
            n_jobs=1,
        )
        return model.fit(train[list(config.features)].to_numpy(dtype=float))

    def anomaly_scores(self, model, df: pd.DataFrame, config) -> np.ndarray:
        """Anomaly score per row; higher is more anomalous."""
        return -model.score_samples(df[list(config.features)].to_numpy(dtype=float))

    def score(self, model, rows: pd.DataFrame, config,
              history: pd.DataFrame | None = None) -> pd.DataFrame:
        """``key``, ``score`` and ``alert`` per row (``history`` is not needed), from one
        pass of the model over the rows."""
        scores = self.anomaly_scores(model, rows, config)
        return self.scored_frame(self.row_keys(rows), scores,
                                 self.scored_alerts(model, rows, config, scores))

    def scored_alerts(self, model, df: pd.DataFrame, config, scores: np.ndarray) -> np.ndarray:
        """``alerts`` from the rows' ``anomaly_scores``, without scoring them again: the
        model alerts where ``decision_function`` (``score_samples - offset_``) is below
        zero, that is where the score is above ``-offset_`` (the same comparison)."""
        return scores > self.alert_threshold(model)

    def alert_threshold(self, model) -> float:
        """The score above which the model raises an alert (set by ``contamination``)."""
        return float(-model.offset_)

    def alerts(self, model, df: pd.DataFrame, config) -> np.ndarray:
        """True where the model raises an alert."""
        return model.decision_function(df[list(config.features)].to_numpy(dtype=float)) < 0

    def evaluate(self, model, holdout: pd.DataFrame, config, params: dict,
                 history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
        """Alert rate and score quantiles; precision, recall, F1, ROC AUC and average
        precision when the holdout carries labels of both classes."""
        from sklearn import metrics as skm

        scores = self.anomaly_scores(model, holdout, config)
        flagged = self.alerts(model, holdout, config)
        out = {
            "n_holdout": int(len(holdout)),
            "alert_rate": float(flagged.mean()),
            "score_p50": float(np.quantile(scores, 0.5)),
            "score_p90": float(np.quantile(scores, 0.9)),
            "score_p99": float(np.quantile(scores, 0.99)),
        }
        bins = int(params.get("hist_bins", 30))
        counts, edges = np.histogram(scores, bins=bins)
        plots = {"score_hist.csv": pd.DataFrame({"score": (edges[:-1] + edges[1:]) / 2,
                                                 "count": counts})}
        labels = labels_of(holdout, config)
        if labels is not None and 0 < labels.sum() < len(labels):
            out.update({
                "precision": float(skm.precision_score(labels, flagged, zero_division=0)),
                "recall": float(skm.recall_score(labels, flagged, zero_division=0)),
                "f1": float(skm.f1_score(labels, flagged, zero_division=0)),
                "roc_auc": float(skm.roc_auc_score(labels, scores)),
                "average_precision": float(skm.average_precision_score(labels, scores)),
            })
            precision, recall, _ = skm.precision_recall_curve(labels, scores)
            plots["pr_curve.csv"] = thin(pd.DataFrame({"recall": recall, "precision": precision}))
        else:
            plots["pr_curve.csv"] = pd.DataFrame({"recall": [], "precision": []})
        return out, plots

    def window_sums(self, scored: pd.DataFrame, labels) -> dict:
        """Rows, alerts; alerted positives and positives when the window has labels."""
        alert = np.asarray(scored["alert"], dtype=bool)
        y = None if labels is None else np.asarray(labels, dtype=int)
        return {"rows": len(alert), "alerts": int(alert.sum()),
                "hits": None if y is None else int((alert & (y == 1)).sum()),
                "positives": None if y is None else int(y.sum())}

    def window_rates_of(self, sums: dict) -> dict[str, float | None]:
        """Alert rate; precision and recall of the alerts when the window has labels."""
        return {"alert_rate": ratio(sums["alerts"], sums["rows"]),
                "precision": ratio(sums["hits"], sums["alerts"]),
                "recall": ratio(sums["hits"], sums["positives"])}


def _hour_profile() -> np.ndarray:
    hours = np.arange(24)
    w = 0.2 + np.exp(-((hours - 13) ** 2) / 30.0)
    return w / w.sum()

"""Anomaly detector for card transactions: IsolationForest on transaction features.

Score convention: higher = more anomalous. An alert is raised where the model's
``decision_function`` is below zero (its threshold is set by ``contamination``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvc_monitor.kinds.common import hash_holdout, labels_of, thin

LABEL = "is_fraud"
METRIC_DIRECTIONS = {
    "alert_rate": None,  # neither: it is watched, not optimised
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "roc_auc": "higher",
    "average_precision": "higher",
}


def sample_batch(index: int, seed: int = 0, rows: int = 1000, fraud_rate: float = 0.02) -> pd.DataFrame:
    """A seeded batch of synthetic card transactions with a fraud label."""
    rng = np.random.default_rng([seed, index, 1])
    fraud = rng.random(rows) < fraud_rate
    n_f = int(fraud.sum())
    amount = rng.lognormal(3.5, 0.8, rows)
    amount[fraud] = rng.lognormal(4.6, 1.0, n_f)
    hour = rng.choice(24, rows, p=_hour_profile())
    hour[fraud] = np.where(rng.random(n_f) < 0.6, rng.choice([0, 1, 2, 3, 4, 23], n_f), hour[fraud])
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


def _hour_profile() -> np.ndarray:
    hours = np.arange(24)
    w = 0.2 + np.exp(-((hours - 13) ** 2) / 30.0)
    return w / w.sum()


def holdout_mask(df: pd.DataFrame, rule: dict) -> np.ndarray:
    return hash_holdout(df["_row"], float(rule["holdout_fraction"]))


def fit(train: pd.DataFrame, config, params: dict):
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


def score(model, df: pd.DataFrame, config) -> np.ndarray:
    """Anomaly score per row; higher is more anomalous."""
    return -model.score_samples(df[list(config.features)].to_numpy(dtype=float))


def alert_threshold(model) -> float:
    """The score above which the model raises an alert (set by ``contamination``)."""
    return float(-model.offset_)


def alerts(model, df: pd.DataFrame, config) -> np.ndarray:
    """True where the model raises an alert."""
    return model.decision_function(df[list(config.features)].to_numpy(dtype=float)) < 0


def evaluate(model, holdout: pd.DataFrame, config, params: dict,
             history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    from sklearn import metrics as skm

    scores = score(model, holdout, config)
    flagged = alerts(model, holdout, config)
    out = {
        "n_holdout": int(len(holdout)),
        "alert_rate": float(flagged.mean()),
        "score_p50": float(np.quantile(scores, 0.5)),
        "score_p90": float(np.quantile(scores, 0.9)),
        "score_p99": float(np.quantile(scores, 0.99)),
    }
    bins = int(params.get("hist_bins", 30))
    counts, edges = np.histogram(scores, bins=bins)
    plots = {"score_hist.csv": pd.DataFrame({"score": (edges[:-1] + edges[1:]) / 2, "count": counts})}
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

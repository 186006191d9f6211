"""Risk scorer: a calibrated logistic model (scaled features) giving a probability of the event.

Sample data: scikit-learn's bundled breast-cancer data set (label ``malignant``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvc_monitor.kinds.common import hash_holdout, labels_of, thin

METRIC_DIRECTIONS = {
    "roc_auc": "higher",
    "brier": "lower",
    "calibration_error": "lower",
    "log_loss": "lower",
    "positive_rate": None,
}


def sample_batch(index: int, seed: int = 0, rows: int = 190) -> pd.DataFrame:
    """Batch ``index`` of the breast-cancer data (rows shuffled once by ``seed``).

    Indices past the real data give bootstrap resamples with small seeded noise,
    so the demo can keep ingesting "fresh production data".
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    cols = [n.replace(" ", "_") for n in data.feature_names]
    frame = pd.DataFrame(data.data, columns=cols)
    frame["malignant"] = 1 - data.target
    order = np.random.default_rng([seed, 7]).permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)
    start = (index - 1) * rows
    if start + rows <= len(frame):
        return frame.iloc[start:start + rows].reset_index(drop=True)
    rng = np.random.default_rng([seed, index, 3])
    boot = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
    noise = 1 + rng.normal(0, 0.02, (rows, len(cols)))
    boot[cols] = (boot[cols].to_numpy() * noise).round(6)
    return boot


def holdout_mask(df: pd.DataFrame, rule: dict) -> np.ndarray:
    return hash_holdout(df["_row"], float(rule["holdout_fraction"]))


def fit(train: pd.DataFrame, config, params: dict):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    base = Pipeline([
        ("scale", StandardScaler()),
        ("logit", LogisticRegression(C=float(params["C"]), max_iter=2000,
                                     random_state=int(params["seed"]))),
    ])
    model = CalibratedClassifierCV(base, method=str(params["calibration"]), cv=int(params["cv"]))
    y = labels_of(train, config)
    if y is None:
        raise ValueError("a risk model needs the label column in its training data")
    return model.fit(train[list(config.features)].to_numpy(dtype=float), y)


def score(model, df: pd.DataFrame, config) -> np.ndarray:
    """Predicted probability of the event (higher = riskier)."""
    return model.predict_proba(df[list(config.features)].to_numpy(dtype=float))[:, 1]


ALERT_PROBABILITY = 0.5


def alert_threshold(model) -> float:
    """The probability at or above which a case is flagged."""
    return ALERT_PROBABILITY


def alerts(model, df: pd.DataFrame, config, threshold: float = ALERT_PROBABILITY) -> np.ndarray:
    return score(model, df, config) >= threshold


def evaluate(model, holdout: pd.DataFrame, config, params: dict,
             history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    from sklearn import metrics as skm
    from sklearn.calibration import calibration_curve

    y = labels_of(holdout, config)
    p = score(model, holdout, config)
    bins = int(params.get("calibration_bins", 10))
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    out = {
        "n_holdout": int(len(holdout)),
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "brier": float(skm.brier_score_loss(y, p)),
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))),
        "calibration_error": expected_calibration_error(y, p, bins),
        "positive_rate": float((p >= 0.5).mean()),
    }
    fpr, tpr, _ = skm.roc_curve(y, p)
    plots = {
        "calibration.csv": pd.DataFrame({"mean_predicted": mean_pred, "fraction_positive": frac_pos}),
        "roc.csv": thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
    }
    return out, plots


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """Mean |observed rate - predicted probability| over equal-width bins, weighted by count."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.sum() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(total / len(p))

"""Risk scorer: a calibrated logistic model (scaled features) giving a probability of the event.

Sample data: scikit-learn's bundled breast-cancer data set (label ``malignant``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvc_monitor.kinds.base import BuiltinKind, DemoScript
from dvc_monitor.kinds.common import exact_sum, hash_holdout, labels_of, ratio, thin

METRIC_DIRECTIONS = {
    "roc_auc": "higher",
    "brier": "lower",
    "calibration_error": "lower",
    "log_loss": "lower",
    "positive_rate": None,
}
ALERT_PROBABILITY = 0.5


class Risk(BuiltinKind):
    """The ``risk`` kind (see the module doc)."""

    name = "risk"
    description = "calibrated risk scorer"
    metric_directions = METRIC_DIRECTIONS
    primary_metric = "roc_auc"
    gate_metrics = ("roc_auc", "brier", "log_loss")
    label_metrics = frozenset({"roc_auc", "brier", "calibration_error", "log_loss"})
    window_measures = {"mean_probability": None, "alert_rate": None, "brier": "lower"}
    live_rate = "mean_probability"
    score_label = "predicted probability"
    review_plot = "calibration"
    result_fields = ("probability", "alert")
    demo = DemoScript(model_name="patient-risk", bad_param=("C", "0.0001"),
                      live_batches=(5, 6), window=190, serve_rows=2)

    def sample_batch(self, index: int, seed: int = 0, rows: int = 190) -> pd.DataFrame:
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

    def holdout_mask(self, df: pd.DataFrame, rule: dict) -> np.ndarray:
        """A stable hash of each row's ``_row`` id picks ``holdout_fraction`` of the rows."""
        return hash_holdout(df["_row"], float(rule["holdout_fraction"]))

    def fit(self, train: pd.DataFrame, config, params: dict):
        """A logistic regression on scaled features, calibrated by cross-validation."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        base = Pipeline([
            ("scale", StandardScaler()),
            ("logit", LogisticRegression(C=float(params["C"]), max_iter=2000,
                                         random_state=int(params["seed"]))),
        ])
        model = CalibratedClassifierCV(base, method=str(params["calibration"]),
                                       cv=int(params["cv"]))
        y = labels_of(train, config)
        if y is None:
            raise ValueError("a risk model needs the label column in its training data")
        return model.fit(train[list(config.features)].to_numpy(dtype=float), y)

    def probabilities(self, model, df: pd.DataFrame, config) -> np.ndarray:
        """Predicted probability of the event (higher = riskier)."""
        return model.predict_proba(df[list(config.features)].to_numpy(dtype=float))[:, 1]

    def score(self, model, rows: pd.DataFrame, config,
              history: pd.DataFrame | None = None) -> pd.DataFrame:
        """``key``, ``score`` (the probability) and ``alert`` (at or above the threshold)
        per row, from one pass of the model over the rows."""
        p = self.probabilities(model, rows, config)
        return self.scored_frame(self.row_keys(rows), p, p >= self.alert_threshold(model))

    def alert_threshold(self, model) -> float:
        """The probability at or above which a case is flagged."""
        return ALERT_PROBABILITY

    def alerts(self, model, df: pd.DataFrame, config,
               threshold: float = ALERT_PROBABILITY) -> np.ndarray:
        """True where the probability is at least ``threshold``."""
        return self.probabilities(model, df, config) >= threshold

    def evaluate(self, model, holdout: pd.DataFrame, config, params: dict,
                 history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
        """ROC AUC, Brier score, log loss, calibration error and positive rate."""
        from sklearn import metrics as skm
        from sklearn.calibration import calibration_curve

        y = labels_of(holdout, config)
        p = self.probabilities(model, holdout, config)
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
            "calibration.csv": pd.DataFrame({"mean_predicted": mean_pred,
                                             "fraction_positive": frac_pos}),
            "roc.csv": thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
        }
        return out, plots

    def window_sums(self, scored: pd.DataFrame, labels) -> dict:
        """Rows, alerts, the sum of probabilities; the sum of squared errors when the
        window has labels."""
        alert = np.asarray(scored["alert"], dtype=bool)
        p = np.asarray(scored["score"], dtype=float)
        y = None if labels is None else np.asarray(labels, dtype=int)
        return {"rows": len(alert), "alerts": int(alert.sum()), "probability": exact_sum(p),
                "squared_error": None if y is None else exact_sum((p - y) ** 2)}

    def window_rates_of(self, sums: dict) -> dict[str, float | None]:
        """Alert rate and mean probability; the Brier score when the window has labels."""
        n = sums["rows"]
        return {"alert_rate": ratio(sums["alerts"], n),
                "mean_probability": ratio(sums["probability"], n),
                "brier": ratio(sums["squared_error"], n)}


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

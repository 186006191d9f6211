"""Adopted kinds: models their users' own pipelines train, scored through the estimator's
own methods (``dvc-monitor adopt``).

An adopted model is whatever scikit-learn estimator (or ``Pipeline``) the user's training
script saved with ``skops.io.dump``. dvc-monitor never fits it; it scores it:

* ``anomaly``: ``score_samples`` (or ``decision_function``), negated so that higher is
  more anomalous; an alert where ``predict`` says -1, or where the score passes the
  ``threshold`` of ``monitor.yaml``;
* ``risk``: ``predict_proba`` of the positive class; an alert at or above ``threshold``
  (0.5 unless set);
* ``forecast``: ``predict`` of the label column, one row at a time (no lag features), with
  an interval whose half-width is the ``interval`` quantile of the absolute residuals on
  the reference rows, when those carry the label.

The loaded model is an ``AdoptedModel``: the estimator with what scoring needs from the
model's ``monitor.yaml`` and reference data (``bind``), so that every ``Kind`` method
reads the same values in every process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dvc_monitor.errors import TemplateError
from dvc_monitor.kinds.anomaly import Anomaly
from dvc_monitor.kinds.base import BuiltinKind
from dvc_monitor.kinds.common import labels_of, thin
from dvc_monitor.kinds.forecast import interval_rates, interval_sums
from dvc_monitor.kinds.risk import ALERT_PROBABILITY, Risk


@dataclass(frozen=True)
class AdoptedModel:
    """A user's estimator and what scoring it needs besides its own methods."""

    estimator: Any
    threshold: float | None = None  # monitor.yaml's threshold, if set
    half_width: float | None = None  # forecast: the interval half-width (None: no interval)
    interval: float | None = None  # forecast: the share of reference residuals it covers


class Adopted:
    """What the adopted kinds share: no fitting, no lag features, the whole reference as
    holdout, inputs shaped as the estimator was fitted (named columns or an array)."""

    adopted = True
    needs_history = False
    time_column: str | None = None
    value_column: str | None = None
    min_window_rows: int | None = None
    demo = None
    # the estimator methods the kind needs: each entry is satisfied by any of its names
    needs: tuple[tuple[str, ...], ...] = ()
    binds_reference = False  # ``bind`` needs the reference rows

    def sample_batch(self, index: int, seed: int = 0, **options: Any) -> pd.DataFrame:
        raise TemplateError("an adopted model has no sample data; its own pipeline makes its data")

    def fit(self, train: pd.DataFrame, config, params: dict):
        raise TemplateError(f"{config.name or 'this model'} is trained by its own pipeline, not "
                            "by dvc-monitor; run 'dvc repro'")

    def holdout_mask(self, df: pd.DataFrame, rule: dict) -> np.ndarray:
        """Every reference row is held out (the user's pipeline never trained on it)."""
        return np.ones(len(df), dtype=bool)

    def missing_methods(self, estimator: Any, config) -> list[str]:
        """The methods this kind needs that ``estimator`` lacks ("a or b" for either)."""
        return [" or ".join(names) for names in self.needs
                if not any(callable(getattr(estimator, n, None)) for n in names)]

    def bind(self, estimator: Any, config, reference: pd.DataFrame | None) -> AdoptedModel:
        """The loaded model: ``estimator`` with ``config``'s threshold."""
        return AdoptedModel(estimator, config.threshold)

    @staticmethod
    def call(estimator: Any, method: str, X):
        """``estimator.method(X)``, without scikit-learn's warning that an estimator fitted
        on named columns got none (its own inner calls, e.g. a LocalOutlierFactor's
        neighbour search, pass arrays)."""
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return getattr(estimator, method)(X)

    @staticmethod
    def inputs(model: AdoptedModel, rows: pd.DataFrame, config):
        """The estimator's input for ``rows``: named columns in the order it was fitted
        with when it knows them (a ``ColumnTransformer`` selects by name), else an array
        of the ``monitor.yaml`` features."""
        names = getattr(model.estimator, "feature_names_in_", None)
        if names is not None:
            return rows[[str(n) for n in names]].astype(float)
        return rows[list(config.features)].to_numpy(dtype=float)


class AdoptedAnomaly(Adopted, Anomaly):
    """An adopted anomaly detector (IsolationForest, LocalOutlierFactor, a Pipeline...)."""

    description = "anomaly detector (its own pipeline trains it)"
    needs = (("score_samples", "decision_function"),)

    def missing_methods(self, estimator: Any, config) -> list[str]:
        missing = super().missing_methods(estimator, config)
        if config.threshold is None and not callable(getattr(estimator, "predict", None)):
            missing.append("predict (or set --threshold)")
        return missing

    def anomaly_scores(self, model: AdoptedModel, df: pd.DataFrame, config) -> np.ndarray:
        """Higher is more anomalous: ``-score_samples``, else ``-decision_function``."""
        est, X = model.estimator, self.inputs(model, df, config)
        raw = self.call(est, "score_samples" if hasattr(est, "score_samples")
                        else "decision_function", X)
        return -np.asarray(raw, dtype=float)

    def alerts(self, model: AdoptedModel, df: pd.DataFrame, config) -> np.ndarray:
        """Above the threshold when one is set, else where ``predict`` says -1."""
        if model.threshold is not None:
            return self.anomaly_scores(model, df, config) > model.threshold
        return np.asarray(self.call(model.estimator, "predict",
                                    self.inputs(model, df, config))) == -1

    def scored_alerts(self, model: AdoptedModel, df: pd.DataFrame, config,
                      scores: np.ndarray) -> np.ndarray:
        """``alerts`` from the rows' scores: above the threshold when one is set; for an
        ``IsolationForest`` or ``LocalOutlierFactor`` (alone or ending a ``Pipeline``),
        whose ``predict`` is -1 exactly where ``score_samples`` is below ``offset_``, above
        ``-offset_``; else the estimator's own ``predict`` (a second pass)."""
        if model.threshold is not None:
            return scores > model.threshold
        if _predicts_at_offset(model.estimator):
            return scores > self.alert_threshold(model)
        return self.alerts(model, df, config)

    def alert_threshold(self, model: AdoptedModel) -> float:
        """The threshold, else the estimator's own (``-offset_`` of its final step, 0 for a
        ``decision_function`` score); NaN when it has none."""
        if model.threshold is not None:
            return float(model.threshold)
        est = model.estimator
        final = est.steps[-1][1] if hasattr(est, "steps") else est
        if not hasattr(est, "score_samples"):
            return 0.0
        offset = getattr(final, "offset_", None)
        return -float(offset) if offset is not None else math.nan


def _predicts_at_offset(estimator: Any) -> bool:
    """True for an estimator (or a ``Pipeline`` ending in one) whose ``predict`` is -1
    exactly where ``score_samples - offset_ < 0``, scored by ``score_samples``."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return (type(final) in (IsolationForest, LocalOutlierFactor)
            and hasattr(estimator, "score_samples") and getattr(final, "offset_", None) is not None)


class AdoptedRisk(Adopted, Risk):
    """An adopted risk scorer: any classifier with ``predict_proba``."""

    description = "risk scorer (its own pipeline trains it)"
    needs = (("predict_proba",),)

    def probabilities(self, model: AdoptedModel, df: pd.DataFrame, config) -> np.ndarray:
        """Probability of the positive class (the second of ``classes_``)."""
        proba = self.call(model.estimator, "predict_proba", self.inputs(model, df, config))
        return np.asarray(proba, dtype=float)[:, 1]

    def alert_threshold(self, model: AdoptedModel) -> float:
        return float(model.threshold) if model.threshold is not None else ALERT_PROBABILITY

    def alerts(self, model: AdoptedModel, df: pd.DataFrame, config,
               threshold: float | None = None) -> np.ndarray:
        limit = self.alert_threshold(model) if threshold is None else threshold
        return self.probabilities(model, df, config) >= limit

    def evaluate(self, model: AdoptedModel, holdout: pd.DataFrame, config, params: dict,
                 history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
        """The risk metrics when the reference has labels of both classes; the positive
        rate (at the threshold) in any case."""
        y = labels_of(holdout, config)
        if y is not None and 0 < y.sum() < len(y):
            out, plots = super().evaluate(model, holdout, config, params, history)
        else:
            out, plots = {"n_holdout": int(len(holdout))}, {
                "calibration.csv": pd.DataFrame({"mean_predicted": [], "fraction_positive": []})}
        out["positive_rate"] = float(self.alerts(model, holdout, config).mean())
        return out, plots


FORECAST_METRICS = {
    "mae": "lower",
    "rmse": "lower",
    "mape": "lower",
    "interval_coverage": "higher",
    "anomaly_rate": None,
}


class AdoptedForecast(Adopted, BuiltinKind):
    """An adopted forecaster: any regressor with ``predict``, scored row by row."""

    name = "forecast"
    description = "forecaster (its own pipeline trains it)"
    metric_directions = FORECAST_METRICS
    primary_metric = "mae"
    gate_metrics = ("mae", "rmse", "mape")
    label_metrics = frozenset(FORECAST_METRICS)
    uses_labels = False  # the label is the value forecast, not a 0/1 class
    window_measures = {"outside_rate": None, "mae": "lower"}
    live_rate = "outside_rate"
    score_label = "|error| / interval half-width (>1 = outside the interval)"
    review_plot = "forecast"
    result_fields = ("prediction", "lower", "upper", "anomaly")
    optional_fields = ("anomaly",)
    needs = (("predict",),)
    binds_reference = True

    def bind(self, estimator: Any, config, reference: pd.DataFrame | None) -> AdoptedModel:
        """The estimator with the interval half-width: the ``config.interval`` quantile of
        its absolute residuals on the labelled reference rows (None without them)."""
        half = None
        if reference is not None and config.label and config.label in reference.columns:
            rows = reference[reference[config.label].notna()]
            if len(rows):
                bare = AdoptedModel(estimator)
                pred = np.asarray(self.call(estimator, "predict", self.inputs(bare, rows, config)),
                                  dtype=float)
                residuals = np.abs(rows[config.label].to_numpy(dtype=float) - pred)
                level = min(1.0, config.interval * (1 + 1 / len(residuals)))
                half = float(np.quantile(residuals, level))
        return AdoptedModel(estimator, config.threshold, half, config.interval)

    def predictions(self, model: AdoptedModel, rows: pd.DataFrame, config) -> pd.DataFrame:
        """``predicted``, ``lower``, ``upper`` and ``actual`` (NaN when the row has no
        label value) per row."""
        pred = np.asarray(self.call(model.estimator, "predict", self.inputs(model, rows, config)),
                          dtype=float)
        half = model.half_width if model.half_width is not None else math.nan
        if config.label and config.label in rows.columns:
            actual = pd.to_numeric(rows[config.label], errors="coerce").to_numpy(dtype=float)
        else:
            actual = np.full(len(rows), math.nan)
        return pd.DataFrame({"predicted": pred, "lower": pred - half, "upper": pred + half,
                             "actual": actual})

    def score(self, model: AdoptedModel, rows: pd.DataFrame, config,
              history: pd.DataFrame | None = None) -> pd.DataFrame:
        """``score``: |actual - predicted| / half-width (NaN without an actual value or an
        interval); ``alert``: outside the interval; then ``predictions``' columns."""
        pred = self.predictions(model, rows, config)
        half = model.half_width
        err = np.abs(pred["actual"].to_numpy() - pred["predicted"].to_numpy())
        score = err / max(half, 1e-9) if half is not None else np.full(len(pred), math.nan)
        alert = np.nan_to_num(score, nan=0.0) > 1.0
        frame = self.scored_frame(self.row_keys(rows), score, alert)
        return pd.concat([frame, pred], axis=1)

    def alerts(self, model: AdoptedModel, rows: pd.DataFrame, config) -> np.ndarray:
        return self.score(model, rows, config)["alert"].to_numpy()

    def alert_threshold(self, model: AdoptedModel) -> float:
        """Scores above 1 lie outside the interval."""
        return 1.0

    def evaluate(self, model: AdoptedModel, holdout: pd.DataFrame, config, params: dict,
                 history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
        """MAE, RMSE, MAPE, interval coverage and the share outside it, on the rows that
        carry the label."""
        pred = self.predictions(model, holdout, config)
        pred = pred[pred["actual"].notna()].reset_index(drop=True)
        out: dict = {"n_holdout": int(len(pred))}
        if len(pred):
            err = (pred["actual"] - pred["predicted"]).to_numpy()
            actual = pred["actual"].to_numpy()
            out.update({
                "mae": float(np.mean(np.abs(err))),
                "rmse": float(np.sqrt(np.mean(err ** 2))),
                "mape": float(np.mean(np.abs(err) / np.maximum(np.abs(actual), 1e-9))),
            })
            if model.half_width is not None:
                inside = (actual >= pred["lower"].to_numpy()) & (actual <= pred["upper"].to_numpy())
                out["interval_coverage"] = float(inside.mean())
                out["anomaly_rate"] = float(1 - inside.mean())
        plot = pred.assign(step=np.arange(len(pred)),
                           anomaly=(pred["actual"] < pred["lower"]) | (pred["actual"] > pred["upper"]))
        return out, {"forecast.csv": thin(plot[["step", "actual", "predicted", "lower", "upper",
                                                "anomaly"]], 500)}

    def window_sums(self, scored: pd.DataFrame, labels) -> dict:
        """Of the labelled rows: rows, rows outside the interval, the sum of absolute errors."""
        return interval_sums(scored[scored["actual"].notna()] if len(scored) else scored)

    def window_rates_of(self, sums: dict) -> dict[str, float | None]:
        """Share of labelled rows outside the interval and their mean absolute error."""
        return interval_rates(sums)

    def result_table(self, scored: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
        """Per row: the prediction and its interval (NaN without one), and ``anomaly``
        (NA unless the row carries its actual value and there is an interval)."""
        lower = scored["lower"].to_numpy(dtype=float)
        known = ~np.isnan(scored["actual"].to_numpy(dtype=float)) & ~np.isnan(lower)
        anomaly = pd.array(scored["alert"].to_numpy(dtype=bool), dtype="boolean")
        anomaly[~known] = pd.NA
        return pd.DataFrame({"prediction": scored["predicted"].to_numpy(dtype=float),
                             "lower": lower, "upper": scored["upper"].to_numpy(dtype=float),
                             "anomaly": anomaly})

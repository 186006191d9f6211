"""Trend forecaster for an hourly business metric, with a prediction interval.

A gradient-boosting regressor on calendar and lag features gives the point forecast; a
split-conformal half-width (from errors on held-back training hours) gives the interval.
Actual values outside the interval are flagged as anomalies. The model file is a dict of
the estimator, the half-width and the lags, so it is self-describing when another version
is evaluated on new data.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from dvc_monitor.kinds.base import BuiltinKind, DemoScript
from dvc_monitor.kinds.common import exact_sum, ratio

METRIC_DIRECTIONS = {
    "mae": "lower",
    "mape": "lower",
    "interval_coverage": "higher",
    "anomaly_rate": None,
}
HOUR = 3600
START = 1767571200  # 2026-01-05 00:00 UTC, a Monday


def _series(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


MEAN_HOURS = 24  # the trailing mean feature's window


def design(df: pd.DataFrame, lags, windowed: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Calendar and lag features for each hour that has all its lags; returns (rows, X).

    ``windowed``: the trailing 24-hour mean is summed window by window, so an hour's
    features do not depend on where the rows begin (scoring: the same hour gets the same
    floats in one batch or in chunks). Training keeps pandas' running mean, which its
    models were fitted with (a retrain writes the same bytes); the two differ by an ulp
    at most."""
    s = _series(df)
    ts = s["timestamp"].to_numpy(dtype=np.int64)
    feats = {
        "hour_of_day": (ts // HOUR) % 24,
        "day_of_week": ((ts // HOUR) // 24 + 3) % 7,  # 1970-01-01 was a Thursday
    }
    for lag in lags:
        feats[f"lag_{lag}"] = s["value"].shift(int(lag)).to_numpy()
    feats["mean_24"] = (_windowed_mean(s["value"].to_numpy(dtype=float)) if windowed else
                        s["value"].shift(1).rolling(MEAN_HOURS, min_periods=MEAN_HOURS)
                        .mean().to_numpy())
    X = pd.DataFrame(feats)
    keep = ~X.isna().any(axis=1).to_numpy()
    return s[keep].reset_index(drop=True), X[keep].to_numpy(dtype=float)


def _windowed_mean(values: np.ndarray) -> np.ndarray:
    """The mean of the ``MEAN_HOURS`` values before each position (NaN for the first
    ones), each window summed on its own."""
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.full(len(values), np.nan)
    if len(values) > MEAN_HOURS:
        out[MEAN_HOURS:] = sliding_window_view(values[:-1], MEAN_HOURS).mean(axis=1)
    return out


def predict(model: dict, df: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Forecast every hour of ``df`` that has its lags (taken from ``history`` + ``df``)."""
    full = df if history is None else pd.concat([history, df], ignore_index=True)
    rows, X = design(full, model["lags"], windowed=True)
    if history is not None:
        rows_mask = rows["timestamp"].isin(df["timestamp"]).to_numpy()
        rows, X = rows[rows_mask].reset_index(drop=True), X[rows_mask]
    out = rows[["timestamp", "value"]].rename(columns={"value": "actual"})
    if len(X) == 0:
        return out.assign(predicted=[], lower=[], upper=[], anomaly=[])
    out["predicted"] = model["point"].predict(X)
    out["lower"] = out["predicted"] - model["half_width"]
    out["upper"] = out["predicted"] + model["half_width"]
    out["anomaly"] = ((out["actual"] < out["lower"]) | (out["actual"] > out["upper"])).astype(int)
    return out


def interval_sums(scored: pd.DataFrame) -> dict:
    """Of rows forecast with an interval: rows, rows outside it, the exact sum of absolute
    errors (``window_sums`` of a forecaster)."""
    alert = np.asarray(scored["alert"], dtype=bool)
    err = (scored["actual"] - scored["predicted"]).to_numpy(dtype=float) if len(alert) else []
    return {"rows": len(alert), "outside": int(alert.sum()), "abs_error": exact_sum(np.abs(err))}


def interval_rates(sums: dict) -> dict[str, float | None]:
    """Share of rows outside the interval and the mean absolute error."""
    return {"outside_rate": ratio(sums["outside"], sums["rows"]),
            "mae": ratio(sums["abs_error"], sums["rows"])}


class Forecast(BuiltinKind):
    """The ``forecast`` kind (see the module doc). Its rows are an hourly series: a row is
    scored from the hours before it, so it has no labels and needs ``history``."""

    name = "forecast"
    description = "trend forecaster with prediction interval"
    metric_directions = METRIC_DIRECTIONS
    primary_metric = "mae"
    gate_metrics = ("mae", "mape")
    label_metrics: frozenset[str] = frozenset()
    uses_labels = False
    needs_history = True
    time_column = "timestamp"
    value_column = "value"
    window_measures = {"outside_rate": None, "mae": "lower"}
    live_rate = "outside_rate"
    min_window_rows = 72  # three days of hours
    score_label = "|error| / interval half-width (>1 = outside the interval)"
    review_plot = "forecast"
    result_fields = ("prediction", "lower", "upper", "anomaly")
    optional_fields = ("anomaly",)
    demo = DemoScript(model_name="web-traffic", bad_param=("interval", "0.5"),
                      live_batches=(5,), window=84, serve_rows=None)

    def sample_batch(self, index: int, seed: int = 0, rows: int = 336) -> pd.DataFrame:
        """Fortnight ``index`` of a seeded hourly series: trend + daily and weekly
        seasonality + noise."""
        rng = np.random.default_rng([seed, index, 2])
        t = np.arange((index - 1) * rows, index * rows)
        hour = t % 24
        weekday = (t // 24) % 7
        value = (
            200.0
            + 0.05 * t
            + 40.0 * np.sin(2 * np.pi * (hour - 6) / 24)
            + 25.0 * (weekday < 5)
            + rng.normal(0, 6.0, rows)
        )
        spikes = rng.random(rows) < 0.01
        value[spikes] += rng.choice([-1, 1], spikes.sum()) * rng.uniform(60, 120, spikes.sum())
        return pd.DataFrame({"timestamp": START + t * HOUR, "value": np.round(value, 3)})

    def holdout_mask(self, df: pd.DataFrame, rule: dict) -> np.ndarray:
        """The last ``holdout_hours`` hours are held out (time-ordered split, no leakage)."""
        hours = int(rule["holdout_hours"])
        cutoff = np.sort(df["timestamp"].to_numpy())[-hours] if len(df) > hours else np.inf
        return df["timestamp"].to_numpy() >= cutoff

    def fit(self, train: pd.DataFrame, config, params: dict):
        """Split-conformal forecaster: a point model fit on the earlier training hours, and
        an interval half-width from its absolute errors on the later ones (calibration
        hours)."""
        from sklearn.ensemble import GradientBoostingRegressor

        lags = [int(x) for x in params["lags"]]
        rows, X = design(train, lags)
        if len(rows) < 48:
            raise ValueError(f"too little history to train: {len(rows)} usable hours after "
                             f"lags {lags}")
        y = rows["value"].to_numpy(dtype=float)
        cut = int(len(rows) * (1 - float(params.get("calibration_fraction", 0.2))))
        point = GradientBoostingRegressor(
            n_estimators=int(params["n_estimators"]),
            max_depth=int(params["max_depth"]),
            learning_rate=float(params["learning_rate"]),
            random_state=int(params["seed"]),
        ).fit(X[:cut], y[:cut])
        residuals = np.abs(y[cut:] - point.predict(X[cut:]))
        level = min(1.0, float(params["interval"]) * (1 + 1 / len(residuals)))
        return {"point": point, "half_width": float(np.quantile(residuals, level)), "lags": lags}

    def score(self, model: dict, rows: pd.DataFrame, config,
              history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every hour of ``rows`` that has its lags: ``key`` (its timestamp), ``score``
        (absolute error relative to the interval half-width; >1 = outside the interval),
        ``alert`` (outside the interval), then ``predict``'s columns."""
        pred = predict(model, rows, history)
        half = np.maximum((pred["upper"] - pred["lower"]).to_numpy(dtype=float) / 2, 1e-9)
        score = np.abs(pred["actual"] - pred["predicted"]).to_numpy(dtype=float) / half
        alert = pred["anomaly"].to_numpy().astype(bool)
        pred.insert(0, "key", pred["timestamp"].to_numpy())
        pred.insert(1, "score", score)
        pred.insert(2, "alert", alert)
        return pred

    def alerts(self, model: dict, rows: pd.DataFrame, config) -> np.ndarray:
        """True for each hour of ``rows`` (that has its lags) outside the interval."""
        return self.score(model, rows, config)["alert"].to_numpy()

    def alert_threshold(self, model: dict) -> float:
        """Scores above 1 lie outside the prediction interval: flagged as anomalies."""
        return 1.0

    def evaluate(self, model: dict, holdout: pd.DataFrame, config, params: dict,
                 history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
        """MAE, MAPE, interval coverage and anomaly rate of the holdout hours."""
        pred = predict(model, holdout, history)
        err = (pred["actual"] - pred["predicted"]).to_numpy()
        actual = pred["actual"].to_numpy()
        inside = (actual >= pred["lower"].to_numpy()) & (actual <= pred["upper"].to_numpy())
        out = {
            "n_holdout": int(len(pred)),
            "mae": float(np.mean(np.abs(err))),
            "mape": float(np.mean(np.abs(err) / np.maximum(np.abs(actual), 1e-9))),
            "interval_coverage": float(inside.mean()),
            "anomaly_rate": float(1 - inside.mean()),
        }
        plot = pred.assign(step=np.arange(len(pred)))[
            ["step", "timestamp", "actual", "predicted", "lower", "upper", "anomaly"]
        ]
        return out, {"forecast.csv": plot}

    def window_sums(self, scored: pd.DataFrame, labels) -> dict:
        """Hours, hours outside the interval, the sum of absolute errors."""
        return interval_sums(scored)

    def window_rates_of(self, sums: dict) -> dict[str, float | None]:
        """Share of hours outside the interval and the mean absolute error."""
        return interval_rates(sums)

    def history_rows(self, model: dict) -> int:
        """The longest lag, or the trailing mean's 24 hours when longer."""
        return max([*(int(lag) for lag in model["lags"]), MEAN_HOURS])

    def result_table(self, scored: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
        """Per row: the prediction and its interval (NaN for an hour without enough
        history), and ``anomaly`` (NA unless the row carries its actual value)."""
        at = pd.Index(scored[self.time_column]).get_indexer(rows[self.time_column])
        found = at >= 0
        take = np.where(found, at, 0)

        def column(name: str) -> np.ndarray:
            values = scored[name].to_numpy(dtype=float)
            picked = values[take] if len(values) else np.full(len(take), np.nan)
            return np.where(found, picked, np.nan)

        lower, upper = column("lower"), column("upper")
        actual = rows[self.value_column].to_numpy(dtype=float)
        anomaly = pd.array((actual < lower) | (actual > upper), dtype="boolean")
        anomaly[~found | np.isnan(actual)] = pd.NA
        return pd.DataFrame({"prediction": column("predicted"), "lower": lower,
                             "upper": upper, "anomaly": anomaly})

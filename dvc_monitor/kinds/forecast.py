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

METRIC_DIRECTIONS = {
    "mae": "lower",
    "mape": "lower",
    "interval_coverage": "higher",
    "anomaly_rate": None,
}
HOUR = 3600
START = 1767571200  # 2026-01-05 00:00 UTC, a Monday


def sample_batch(index: int, seed: int = 0, rows: int = 336) -> pd.DataFrame:
    """Fortnight ``index`` of a seeded hourly series: trend + daily and weekly seasonality + noise."""
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


def _series(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


def design(df: pd.DataFrame, lags) -> tuple[pd.DataFrame, np.ndarray]:
    """Calendar and lag features for each hour that has all its lags; returns (rows, X)."""
    s = _series(df)
    ts = s["timestamp"].to_numpy(dtype=np.int64)
    feats = {
        "hour_of_day": (ts // HOUR) % 24,
        "day_of_week": ((ts // HOUR) // 24 + 3) % 7,  # 1970-01-01 was a Thursday
    }
    for lag in lags:
        feats[f"lag_{lag}"] = s["value"].shift(int(lag)).to_numpy()
    feats["mean_24"] = s["value"].shift(1).rolling(24, min_periods=24).mean().to_numpy()
    X = pd.DataFrame(feats)
    keep = ~X.isna().any(axis=1).to_numpy()
    return s[keep].reset_index(drop=True), X[keep].to_numpy(dtype=float)


def holdout_mask(df: pd.DataFrame, rule: dict) -> np.ndarray:
    """The last ``holdout_hours`` hours are held out (time-ordered split, no leakage)."""
    hours = int(rule["holdout_hours"])
    cutoff = np.sort(df["timestamp"].to_numpy())[-hours] if len(df) > hours else np.inf
    return df["timestamp"].to_numpy() >= cutoff


def fit(train: pd.DataFrame, config, params: dict):
    """Split-conformal forecaster: a point model fit on the earlier training hours, and an
    interval half-width from its absolute errors on the later ones (calibration hours)."""
    from sklearn.ensemble import GradientBoostingRegressor

    lags = [int(x) for x in params["lags"]]
    rows, X = design(train, lags)
    if len(rows) < 48:
        raise ValueError(f"too little history to train: {len(rows)} usable hours after lags {lags}")
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


def predict(model: dict, df: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Forecast every hour of ``df`` that has its lags (taken from ``history`` + ``df``)."""
    full = df if history is None else pd.concat([history, df], ignore_index=True)
    rows, X = design(full, model["lags"])
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


def alert_threshold(model: dict) -> float:
    """Scores above 1 lie outside the prediction interval: flagged as anomalies."""
    return 1.0


def score(model: dict, df: pd.DataFrame, config) -> np.ndarray:
    """Absolute error relative to the interval half-width (>1 = outside the interval)."""
    pred = predict(model, df)
    half = np.maximum((pred["upper"] - pred["lower"]) / 2, 1e-9)
    return (np.abs(pred["actual"] - pred["predicted"]) / half).to_numpy()


def evaluate(model: dict, holdout: pd.DataFrame, config, params: dict,
             history: pd.DataFrame | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
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

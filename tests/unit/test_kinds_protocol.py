"""Every built-in kind satisfies the ``Kind`` protocol: its members, and a tiny fit, score
and evaluate on its own sample data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dvc_monitor.errors import TemplateError
from dvc_monitor.kinds import KINDS, Kind, kind_for
from dvc_monitor.kinds.base import SCORE_COLUMNS
from dvc_monitor.model.data import ModelConfig

# Small, fast settings for each kind (the template's keys, fewer trees).
PARAMS = {
    "anomaly": {"prepare": {"holdout_fraction": 0.2},
                "train": {"n_estimators": 10, "max_samples": 64, "contamination": 0.05,
                          "max_features": 1.0, "seed": 0},
                "evaluate": {"hist_bins": 10}},
    "forecast": {"prepare": {"holdout_hours": 96},
                 "train": {"n_estimators": 10, "max_depth": 2, "learning_rate": 0.1,
                           "interval": 0.9, "lags": [1, 24], "seed": 0},
                 "evaluate": {}},
    "risk": {"prepare": {"holdout_fraction": 0.25},
             "train": {"C": 1.0, "calibration": "sigmoid", "cv": 3, "seed": 0},
             "evaluate": {"calibration_bins": 5}},
}


def config_for(kind: str, frame: pd.DataFrame) -> ModelConfig:
    label = {"anomaly": "is_fraud", "risk": "malignant"}.get(kind)
    features = tuple(c for c in frame.columns if c not in (label, "_row"))
    return ModelConfig(kind=kind, name="m", features=features, label=label, label_required=False)


def sample_rows(spec: Kind) -> pd.DataFrame:
    frame = pd.concat([spec.sample_batch(1), spec.sample_batch(2)], ignore_index=True)
    frame.insert(0, "_row", [f"batch:{i}" for i in range(len(frame))])
    return frame


def test_the_built_in_kinds_are_listed_and_looked_up_by_name():
    assert KINDS == ("anomaly", "forecast", "risk")
    for name in KINDS:
        assert kind_for(name).name == name
    with pytest.raises(TemplateError, match="unknown kind 'nope'; expected one of "
                                            "anomaly, forecast, risk"):
        kind_for("nope")


@pytest.mark.parametrize("name", KINDS)
def test_each_kind_satisfies_the_protocol(name):
    spec = kind_for(name)
    assert isinstance(spec, Kind)
    assert spec.primary_metric in spec.metric_directions
    assert spec.metric_directions[spec.primary_metric] in ("higher", "lower")
    assert all(spec.metric_directions[m] in ("higher", "lower") for m in spec.gate_metrics)
    assert spec.label_metrics <= set(spec.metric_directions)
    assert spec.live_rate in spec.window_measures
    assert set(spec.window_measures.values()) <= {"higher", "lower", None}
    assert spec.result_fields
    assert spec.demo.live_batches and spec.demo.window > 0
    if spec.needs_history or spec.value_column:
        assert spec.time_column is not None


@pytest.mark.parametrize("name", KINDS)
def test_each_kind_fits_scores_and_evaluates_its_sample_data(name):
    spec = kind_for(name)
    params = PARAMS[name]
    rows = sample_rows(spec)
    config = config_for(name, rows)
    mask = spec.holdout_mask(rows, params["prepare"])
    assert mask.dtype == bool and mask.shape == (len(rows),) and 0 < mask.sum() < len(rows)
    train, holdout = rows[~mask].reset_index(drop=True), rows[mask].reset_index(drop=True)
    history = train if spec.needs_history else None
    model = spec.fit(train, config, params["train"])

    scored = spec.score(model, holdout, config, history)
    assert tuple(scored.columns[:3]) == SCORE_COLUMNS
    assert 0 < len(scored) <= len(holdout)
    assert scored["score"].dtype == float
    assert scored["alert"].dtype == bool
    assert scored["key"].is_unique
    assert isinstance(spec.alert_threshold(model), float)
    alerts = spec.alerts(model, holdout, config)
    assert alerts.dtype == bool
    if not spec.needs_history:  # a row-wise kind alerts on each row, the same as score
        assert alerts.shape == (len(holdout),)
        assert (alerts == scored["alert"].to_numpy()).all()

    metrics, plots = spec.evaluate(model, holdout, config, params["evaluate"], history=history)
    # with labels of both classes every metric is there (forecasts need none); the others
    # are the row count and the label-free score quantiles
    assert {m for m in metrics if m in spec.metric_directions} == set(spec.metric_directions)
    assert set(metrics) - set(spec.metric_directions) <= {
        "n_holdout", "score_p50", "score_p90", "score_p99"}
    assert plots and all(isinstance(frame, pd.DataFrame) for frame in plots.values())

    labels = holdout[config.label].to_numpy() if spec.uses_labels else None
    measures = spec.window_rates(scored, labels)
    assert list(measures) and set(measures) == set(spec.window_measures)
    assert all(v is None or np.isfinite(v) for v in measures.values())
    assert spec.drift_features(config.features) == [
        f for f in config.features if f != spec.time_column]

    results = spec.results(scored, holdout[list(config.features)])
    assert len(results) == len(holdout)
    assert all(set(r) <= set(spec.result_fields) for r in results)

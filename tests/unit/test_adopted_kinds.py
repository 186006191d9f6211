"""The adopted kinds satisfy the ``Kind`` protocol and score a user's own estimator with
its own methods: the same numbers as the estimator, for pipelines with preprocessing
fitted on named columns or on arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dvc_monitor.errors import TemplateError
from dvc_monitor.kinds import KINDS, Kind, kind_for
from dvc_monitor.kinds.adopted import AdoptedModel
from dvc_monitor.kinds.base import SCORE_COLUMNS
from dvc_monitor.model.data import ModelConfig

FEATURES = ("a", "b", "c")


def rows(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    frame["y"] = (frame.a + 0.5 * frame.b + rng.normal(0, 0.5, n) > 0).astype(int)
    frame["v"] = 3 * frame.a - frame.c + rng.normal(0, 0.3, n)
    return frame


def config(kind: str, label: str | None, **extra) -> ModelConfig:
    return ModelConfig(kind=kind, name="m", features=FEATURES, label=label,
                       label_required=False, adopted=True, **extra)


def estimators():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, IsolationForest
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = rows()
    X, Xa = data[list(FEATURES)], data[list(FEATURES)].to_numpy()
    return {
        "risk": (Pipeline([("s", StandardScaler()),
                           ("g", GradientBoostingClassifier(n_estimators=20, random_state=0))])
                 .fit(X, data.y), "y", lambda m, x: m.predict_proba(x)[:, 1]),
        "anomaly": (IsolationForest(n_estimators=20, random_state=0).fit(Xa), "y",
                    lambda m, x: -m.score_samples(x.to_numpy())),
        "anomaly-lof": (Pipeline([("s", StandardScaler()),
                                  ("l", LocalOutlierFactor(novelty=True))]).fit(X), "y",
                        lambda m, x: -m.score_samples(x)),
        "forecast": (Pipeline([("prep", ColumnTransformer([("num", StandardScaler(),
                                                            list(FEATURES))])),
                               ("r", Ridge())]).fit(X, data.v), "v",
                     lambda m, x: m.predict(x)),
    }


def test_the_adopted_kinds_are_looked_up_beside_the_built_in_ones():
    for name in KINDS:
        spec = kind_for(name, adopted=True)
        assert isinstance(spec, Kind) and spec.name == name and spec.adopted
        assert not getattr(kind_for(name), "adopted", False)
        assert kind_for(spec) is spec  # a Kind is returned as it is
        assert config(name, None).spec.adopted
        assert spec.primary_metric in spec.metric_directions
        assert spec.live_rate in spec.window_measures
        assert not spec.needs_history and spec.time_column is None
    with pytest.raises(TemplateError, match="trained by its own pipeline"):
        kind_for("risk", adopted=True).fit(rows(), config("risk", "y"), {})


@pytest.mark.parametrize("case", ["risk", "anomaly", "anomaly-lof", "forecast"])
def test_scores_are_the_estimators_own(case):
    estimator, label, own = estimators()[case]
    kind = case.split("-")[0]
    spec = kind_for(kind, adopted=True)
    cfg = config(kind, label)
    reference = rows(200, seed=1)
    assert spec.missing_methods(estimator, cfg) == []
    model = spec.bind(estimator, cfg, reference)
    live = rows(150, seed=2)
    scored = spec.score(model, live, cfg)
    assert tuple(scored.columns[:3]) == SCORE_COLUMNS and len(scored) == len(live)
    expected = own(estimator, live[list(FEATURES)])
    if kind == "forecast":
        np.testing.assert_allclose(scored["predicted"], expected, rtol=1e-12)
        assert model.half_width > 0
        inside = (live.v >= scored["lower"]) & (live.v <= scored["upper"])
        assert (scored["alert"].to_numpy() == ~inside.to_numpy()).all()
    else:
        np.testing.assert_allclose(scored["score"], expected, rtol=1e-12)
    metrics, plots = spec.evaluate(model, reference, cfg, {})
    assert metrics["n_holdout"] > 0 and spec.primary_metric in metrics and plots
    assert len(spec.results(scored, live)) == len(live)
    assert set(spec.window_rates(scored, live[label].to_numpy() if spec.uses_labels else None)) \
        == set(spec.window_measures)


def test_alerts_follow_predict_or_the_threshold():
    estimator, _, _ = estimators()["anomaly"]
    spec = kind_for("anomaly", adopted=True)
    live = rows(150, seed=2)
    own = spec.bind(estimator, config("anomaly", None), None)
    assert (spec.alerts(own, live, config("anomaly", None))
            == (estimator.predict(live[list(FEATURES)].to_numpy()) == -1)).all()
    assert spec.alert_threshold(own) == pytest.approx(-estimator.offset_)
    strict = spec.bind(estimator, config("anomaly", None, threshold=0.6), None)
    scores = -estimator.score_samples(live[list(FEATURES)].to_numpy())
    assert (spec.alerts(strict, live, config("anomaly", None)) == (scores > 0.6)).all()
    risk, _, _ = estimators()["risk"]
    rspec = kind_for("risk", adopted=True)
    model = rspec.bind(risk, config("risk", "y", threshold=0.8), None)
    p = risk.predict_proba(live[list(FEATURES)])[:, 1]
    assert (rspec.alerts(model, live, config("risk", "y")) == (p >= 0.8)).all()


def test_an_estimator_without_the_kinds_method_is_named():
    estimator, _, _ = estimators()["anomaly"]
    assert kind_for("risk", adopted=True).missing_methods(estimator, config("risk", "y")) \
        == ["predict_proba"]
    assert isinstance(AdoptedModel(estimator), AdoptedModel)


def test_monitor_yaml_refuses_a_trusted_type_that_is_not_a_dotted_name():
    text = ("name: m\nkind: risk\nadopted: true\nschema: {features: [a]}\n"
            "trusted_types: ['os.system; rm -rf /']\n")
    with pytest.raises(TemplateError, match="is not a dotted type name"):
        ModelConfig.from_text(text)
    ok = ModelConfig.from_text(text.replace("'os.system; rm -rf /'", "b.C, a.B"))
    assert ok.trusted_types == ("a.B", "b.C") and ok.adopted

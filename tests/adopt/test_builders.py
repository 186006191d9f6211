"""The repositories the adopt tests start from, checked with plain DVC: committed,
pushed, up to date, their models where dvc.yaml's ``artifacts:`` says, the users' own
estimators fitted on the data they were given, and ``retrain`` making a new model,
the same one again for the same params."""

from __future__ import annotations

import json
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.support.adopted import (
    ANOMALY_ARTIFACT,
    ANOMALY_FEATURES,
    ANOMALY_LABEL,
    ANOMALY_MODEL,
    ANOMALY_REFERENCE,
    ANOMALY_UNTRUSTED,
    FORECAST_ARTIFACT,
    FORECAST_FEATURES,
    FORECAST_LABEL,
    FORECAST_MODEL,
    FORECAST_REFERENCE,
    FORECAST_UNTRUSTED,
    LOF_UNTRUSTED,
    PICKLED_ARTIFACT,
    PICKLED_MODEL,
    RISK_ARTIFACT,
    RISK_FEATURES,
    RISK_LABEL,
    RISK_MODEL,
    RISK_PARAMS,
    RISK_REFERENCE,
    RISK_UNTRUSTED,
    UNTRUSTED_ARTIFACT,
    UNTRUSTED_MODEL,
    adopted_repo,
    build_anomaly_nested,
    build_forecast,
    build_pickled,
    build_risk_root,
    build_untrusted,
    estimator_outputs,
    retrain,
)
from tests.support.repos import Repo

# builder -> (artifact, model file, what skops does not trust; None: a pickle)
MODELS = {
    build_risk_root: (RISK_ARTIFACT, RISK_MODEL, RISK_UNTRUSTED),
    build_anomaly_nested: (ANOMALY_ARTIFACT, ANOMALY_MODEL, ANOMALY_UNTRUSTED),
    build_forecast: (FORECAST_ARTIFACT, FORECAST_MODEL, FORECAST_UNTRUSTED),
    build_untrusted: (UNTRUSTED_ARTIFACT, UNTRUSTED_MODEL, LOF_UNTRUSTED),
    build_pickled: (PICKLED_ARTIFACT, PICKLED_MODEL, None),
}

# builder -> (reference rows, features, label, method, a measure of fit, its floor)
SKILL = {
    build_risk_root: (RISK_REFERENCE, RISK_FEATURES, RISK_LABEL, "predict_proba", "auc", 0.7),
    build_anomaly_nested: (ANOMALY_REFERENCE, ANOMALY_FEATURES, ANOMALY_LABEL,
                           "score_samples", "auc-of-minus", 0.9),
    build_untrusted: (ANOMALY_REFERENCE, ANOMALY_FEATURES, ANOMALY_LABEL, "score_samples",
                      "auc-of-minus", 0.9),
    build_forecast: (FORECAST_REFERENCE, FORECAST_FEATURES, FORECAST_LABEL, "predict", "r2",
                     0.8),
}


def named(builders) -> dict:
    return {"argvalues": list(builders), "ids": [b.__name__ for b in builders]}


def dvc_json(repo: Repo, *args: str) -> object:
    return json.loads(repo.dvc(*args, "--json").stdout)


def lock_md5(repo: Repo, model_rel: str) -> str:
    """The md5 dvc.lock (beside the model's dvc.yaml) records for the model file."""
    folder = Path(model_rel).parent
    lock = yaml.safe_load((repo.path / folder / "dvc.lock").read_text())
    outs = [o for stage in lock["stages"].values() for o in stage.get("outs", [])]
    return next(o["md5"] for o in outs if o["path"] == Path(model_rel).name)


@pytest.mark.parametrize("build", **named(MODELS))
def test_each_repository_is_committed_pushed_and_up_to_date(build, adopted):
    repo = adopted(build)
    artifact, model_rel, untrusted = MODELS[build]
    assert repo.git("status", "--porcelain", "--untracked-files=all").stdout == ""
    assert repo.git("log", "--format=%s").stdout == "first model\n"
    assert dvc_json(repo, "status") == {}
    assert dvc_json(repo, "status", "--cloud") == {}  # everything is in the remote

    dvc_yaml = yaml.safe_load((repo.path / "dvc.yaml").read_text())
    assert dvc_yaml["artifacts"] == {artifact: {"path": model_rel, "type": "model"}}
    model = repo.path / model_rel
    assert model.is_file()
    assert zipfile.is_zipfile(model) == (untrusted is not None)  # skops files are zips
    assert lock_md5(repo, model_rel) == repo.md5(model_rel)
    assert not repo.marker.exists()  # build_pickled's, had anything unpickled its model


@pytest.mark.parametrize("build", **named(b for b, m in MODELS.items() if m[2] is not None))
def test_skops_names_the_types_it_does_not_trust(build, adopted):
    import skops.io

    repo = adopted(build)
    _, model_rel, untrusted = MODELS[build]
    assert sorted(skops.io.get_untrusted_types(file=repo.path / model_rel)) == list(untrusted)


def test_the_local_outlier_factor_needs_a_kd_tree_and_its_metric_trusted(adopted):
    import skops.io

    found = skops.io.get_untrusted_types(file=adopted(build_untrusted).path / UNTRUSTED_MODEL)
    assert sorted(found) == ["sklearn.metrics._dist_metrics.EuclideanDistance64",
                             "sklearn.neighbors._kd_tree.KDTree"]


@pytest.mark.parametrize("build", **named(SKILL))
def test_the_users_estimator_learned_from_its_features(build, adopted):
    from sklearn.metrics import r2_score, roc_auc_score

    repo = adopted(build)
    _, model_rel, untrusted = MODELS[build]
    reference, features, label, method, measure, floor = SKILL[build]
    rows = pd.read_csv(repo.path / reference)
    assert list(rows.columns) == [*features, label]
    out = estimator_outputs(repo, model_rel, reference, method, trusted=untrusted)
    assert out.shape == (len(rows),)
    fit = {"auc": lambda: roc_auc_score(rows[label], out),
           "auc-of-minus": lambda: roc_auc_score(rows[label], -out),  # low score: anomalous
           "r2": lambda: r2_score(rows[label], out)}[measure]()
    assert fit > floor


def test_the_planted_pickle_points_at_the_marker_and_is_never_loaded(adopted):
    pickled = adopted(build_pickled)
    # read without unpickling: the opcodes name open (pickled as io.open) and the marker
    data = (pickled.path / PICKLED_MODEL).read_bytes()
    args = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    assert ["io", "open", str(pickled.marker)] == args[args.index("planted_") + 1:][:3]
    assert args[:2] == ["sklearn.pipeline", "Pipeline"]
    assert not pickled.marker.exists()


def test_retrain_makes_a_new_model_and_the_same_params_make_the_same_one(tmp_path_factory,
                                                                          tmp_path):
    repo = adopted_repo(tmp_path_factory, build_risk_root, tmp_path / "copy")
    first_md5 = lock_md5(repo, RISK_MODEL)
    first = estimator_outputs(repo, RISK_MODEL, RISK_REFERENCE, "predict_proba", RISK_UNTRUSTED)

    commit = retrain(repo, RISK_PARAMS, {"train.n_estimators": 20, "train.max_depth": 3},
                     "fewer, deeper trees")
    assert repo.head() == commit
    assert yaml.safe_load((repo.path / RISK_PARAMS).read_text())["train"] == {
        "n_estimators": 20, "learning_rate": 0.1, "max_depth": 3, "seed": 0}
    assert lock_md5(repo, RISK_MODEL) == repo.md5(RISK_MODEL) != first_md5
    assert repo.git("status", "--porcelain").stdout == ""
    assert dvc_json(repo, "status") == {} and dvc_json(repo, "status", "--cloud") == {}
    second = estimator_outputs(repo, RISK_MODEL, RISK_REFERENCE, "predict_proba",
                               RISK_UNTRUSTED)
    assert not np.allclose(first, second)

    retrain(repo, RISK_PARAMS, {"train.n_estimators": 60, "train.max_depth": 2}, "back")
    again = estimator_outputs(repo, RISK_MODEL, RISK_REFERENCE, "predict_proba", RISK_UNTRUSTED)
    assert np.array_equal(first, again)  # training is deterministic given the params
    assert repo.git("log", "--format=%s").stdout.splitlines() == [
        "back", "fewer, deeper trees", "first model"]


def test_retrain_refuses_a_param_the_file_does_not_have(adopted):
    risk_root = adopted(build_risk_root)
    with pytest.raises(KeyError, match="train.n_trees"):
        retrain(risk_root, RISK_PARAMS, {"train.n_trees": 5}, "typo")
    assert risk_root.git("status", "--porcelain").stdout == ""

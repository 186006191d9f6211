"""``dvc-monitor adopt``: what it checks before it writes ``monitor.yaml``, what it writes,
and the one line of each refusal, which changes nothing.

Repositories no template wrote (tests/support/adopted.py): a root pipeline's
``Pipeline(StandardScaler, GradientBoostingClassifier)`` (risk), a nested service's
IsolationForest (anomaly) and LocalOutlierFactor (types outside the allow-list), a
``ColumnTransformer`` + Ridge forecast, and a planted pickle.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.adopted import (
    ANOMALY_FEATURES,
    ANOMALY_LABEL,
    ANOMALY_REFERENCE,
    FORECAST_FEATURES,
    FORECAST_LABEL,
    FORECAST_REFERENCE,
    LOF_UNTRUSTED,
    PICKLED_ARTIFACT,
    RISK_FEATURES,
    RISK_LABEL,
    RISK_REFERENCE,
    build_anomaly_nested,
    build_forecast,
    build_pickled,
    build_risk_root,
    build_untrusted,
)
from tests.support.output import one_line_error
from tests.support.repos import Repo, copy_repo

# builder -> (artifact, kind, features, label, reference, where monitor.yaml goes)
MODELS = {
    "risk": (build_risk_root, "churn-risk", RISK_FEATURES, RISK_LABEL, RISK_REFERENCE,
             "monitor.yaml"),
    "anomaly": (build_anomaly_nested, "fraud-iforest", ANOMALY_FEATURES, ANOMALY_LABEL,
                ANOMALY_REFERENCE, "services/fraud/monitor.yaml"),
    "forecast": (build_forecast, "demand-forecast", FORECAST_FEATURES, FORECAST_LABEL,
                 FORECAST_REFERENCE, "forecasting/monitor.yaml"),
}


@pytest.fixture
def fresh(adopted, tmp_path):
    """``fresh(build)``: a private copy of the module's repository for one test."""
    def copy(build) -> Repo:
        src = adopted(build)
        repo = copy_repo(src, tmp_path)
        repo.marker = src.marker  # build_pickled's: where unpickling would write
        return repo

    return copy


def adopt_args(kind: str) -> list[str]:
    _, name, features, label, reference, _ = MODELS[kind]
    return ["adopt", name, "--kind", kind, "--features", ",".join(features), "--label", label,
            "--reference", reference]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_adopt_checks_the_model_and_writes_monitor_yaml_beside_its_pipeline(fresh, kind):
    build, name, features, label, reference, monitor = MODELS[kind]
    repo = fresh(build)
    out = repo.dm(*adopt_args(kind)).stdout
    assert out.startswith(f"Wrote {monitor}: {name} ({kind}) is trained by its own pipeline")
    assert "is a skops archive" in out and "has the methods" in out
    assert f"the reference {reference}: " in out and "with the features and the label" in out
    assert "on the reference: n_holdout" in out
    assert f"git add {monitor}" in out and f"dvc-monitor register {name}" in out
    # the only change: the monitor.yaml, for the user to review and commit
    assert repo.git("status", "--porcelain").stdout.split() == ["??", monitor]
    doc = yaml.safe_load((repo.path / monitor).read_text())
    assert doc["name"] == name and doc["kind"] == kind and doc["adopted"] is True
    assert doc["schema"] == {"features": list(features), "label": label}
    assert doc["trusted_types"] == []
    # the reference is written relative to the monitor.yaml's folder, as DVC paths are
    folder = monitor.rpartition("/")[0]
    assert doc["reference"] == (reference[len(folder) + 1:] if folder else reference)


def test_adopt_json_and_running_it_again_updates(fresh):
    repo = fresh(build_risk_root)
    first = json.loads(repo.dm(*adopt_args("risk"), "--json").stdout)
    assert first["updated"] is False and first["kind"] == "risk"
    assert first["reference_metrics"]["n_holdout"] > 100
    assert 0.5 < first["reference_metrics"]["roc_auc"] <= 1
    again = repo.dm(*adopt_args("risk"), "--threshold", "0.3")
    assert again.stdout.startswith("Updated monitor.yaml")
    assert yaml.safe_load((repo.path / "monitor.yaml").read_text())["threshold"] == 0.3


def test_types_outside_the_allow_list_are_refused_until_trusted(fresh):
    repo = fresh(build_untrusted)
    args = ["adopt", "fraud-lof", "--kind", "anomaly", "--features", ",".join(ANOMALY_FEATURES),
            "--reference", ANOMALY_REFERENCE]
    before = repo.snapshot()
    refused = repo.dm(*args, check=False)
    assert refused.returncode == 4
    line = one_line_error(refused)
    for name in LOF_UNTRUSTED:
        assert name in line and f"--trust {name}" in line
    assert repo.snapshot() == before
    trusted = [a for t in LOF_UNTRUSTED for a in ("--trust", t)]
    out = repo.dm(*args, *trusted).stdout
    assert "trusted by you" in out
    doc = yaml.safe_load((repo.path / "services/fraud/monitor.yaml").read_text())
    assert doc["trusted_types"] == sorted(LOF_UNTRUSTED)


def test_a_pickle_is_refused_with_the_change_to_make_and_never_loaded(fresh):
    repo = fresh(build_pickled)
    before = repo.snapshot()
    proc = repo.dm("adopt", PICKLED_ARTIFACT, "--kind", "risk", "--features",
                   ",".join(RISK_FEATURES), check=False)
    assert proc.returncode == 4
    line = one_line_error(proc)
    assert "is a pickle" in line and 'skops.io.dump(model, "model.skops")' in line
    assert not repo.marker.exists()
    assert repo.snapshot() == before


def write_reference_without(repo: Repo, column: str) -> str:
    import pandas as pd

    rows = pd.read_csv(repo.path / RISK_REFERENCE).drop(columns=column)
    rows.to_csv(repo.path / "partial.csv", index=False)
    repo.commit_all("a reference without a column")
    return "partial.csv"


BAD = {
    "unknown kind": (lambda r: ["--kind", "clustering"], 2, "unknown kind 'clustering'"),
    "feature missing from the reference": (
        lambda r: ["--reference", write_reference_without(r, "age")], 4,
        "lacks the column(s) 'age'"),
    "reference that does not exist": (lambda r: ["--reference", "data/nope.csv"], 2,
                                      "'data/nope.csv' does not exist"),
    "trusted type that is not a dotted name": (lambda r: ["--trust", "os system"], 2,
                                               "is not a dotted type name"),
    "features the model was not fitted on": (
        lambda r: ["--features", "tenure,monthly_charges,support_calls"], 4,
        "was fitted on the columns"),
    "the label as a feature": (lambda r: ["--label", "age"], 2, "is also a feature"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_changes_nothing(fresh, case):
    extra, code, says = BAD[case]
    repo = fresh(build_risk_root)
    args = adopt_args("risk")
    more = extra(repo)
    for flag, value in zip(more[::2], more[1::2]):  # the case's flags replace the defaults
        if flag in args and flag != "--trust":
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    before = repo.snapshot()
    proc = repo.dm(*args, check=False)
    line = one_line_error(proc)
    assert proc.returncode == code, line
    assert says in line, line
    assert repo.snapshot() == before


def test_an_estimator_without_the_kinds_method_is_refused(fresh):
    repo = fresh(build_anomaly_nested)
    before = repo.snapshot()
    proc = repo.dm("adopt", "fraud-iforest", "--kind", "risk", "--features",
                   ",".join(ANOMALY_FEATURES), check=False)
    assert proc.returncode == 4
    line = one_line_error(proc)
    assert "IsolationForest" in line and "predict_proba" in line and "another kind" in line
    assert repo.snapshot() == before


def test_a_model_that_is_not_declared_is_not_found(fresh):
    repo = fresh(build_risk_root)
    proc = repo.dm("adopt", "no-such-model", "--kind", "risk", "--features", "a", check=False)
    assert proc.returncode == 3
    assert "declare it under artifacts:" in one_line_error(proc)


def test_a_trusted_types_entry_that_is_not_a_dotted_name_is_one_line(fresh):
    repo = fresh(build_risk_root)
    repo.dm(*adopt_args("risk"))
    path = repo.path / "monitor.yaml"
    path.write_text(path.read_text().replace("trusted_types: []",
                                             "trusted_types: ['os.system; rm -rf /']"))
    repo.commit_all("adopt, with a bad trusted type")
    before = repo.snapshot()
    proc = repo.dm("register", "churn-risk", check=False)
    assert proc.returncode == 4, proc.stderr
    line = one_line_error(proc)
    assert "trusted_types entry" in line and "is not a dotted type name" in line
    assert repo.snapshot() == before

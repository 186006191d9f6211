"""``score``, ``serve`` and ``watch`` on adopted models: models the users' own pipelines
train (``tests.support.adopted``), declared with ``dvc-monitor adopt``, registered, promoted.

Scores are compared with what the user's own estimator says about the same rows
(``estimator_outputs``: ``skops.io.load`` and the estimator's own method, in this process).
A real server process on a free 127.0.0.1 port follows a stage; ``watch`` reads windows of
rows the same generators make (some drifted on purpose).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.adopted import (
    ANOMALY_ARTIFACT,
    ANOMALY_FEATURES,
    ANOMALY_LABEL,
    ANOMALY_MODEL,
    ANOMALY_REFERENCE,
    ANOMALY_UNTRUSTED,
    BETTER,
    FORECAST_ARTIFACT,
    FORECAST_LABEL,
    FORECAST_MODEL,
    FORECAST_REFERENCE,
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
    WORSE,
    adopted_v1,
    adopted_versions,
    build_anomaly_nested,
    build_forecast,
    build_pickled,
    build_risk_root,
    build_untrusted,
    churn_rows,
    estimator_outputs,
    sales_rows,
    transactions,
)
from tests.support.monitoring import error_line, send_until, watch
from tests.support.production import Server, assert_served_cleanly, score_json
from tests.support.registry import gto, gto_json
from tests.support.repos import Repo, copy_repo
from tests.support.rollback import copy_base

pytestmark = pytest.mark.slow

GOOD, WEAK, LATEST = "v1.0.0", "v1.1.0", "v1.2.0"  # churn-risk: 60 trees, 1 tree, 80 trees

# -- repositories, copied once per module -----------------------------------------------


def module_copy(tmp_path_factory, folder: Path) -> Repo:
    """This module's copy (its DVC remote its own) of a state made once per session."""
    return copy_base(folder, tmp_path_factory.mktemp(folder.name) / "copy")


@pytest.fixture(scope="module")
def risk(tmp_path_factory) -> Repo:
    """churn-risk adopted (reference: its test split), with watch: rules
    (``adopted_versions``); v1.0.0 (60 trees) holds prod; v1.1.0 (1 tree: never alerts)
    and v1.2.0 (80 trees) registered after it."""
    repo = module_copy(tmp_path_factory, adopted_versions(tmp_path_factory, build_risk_root))
    assert WORSE[build_risk_root] == {"train.n_estimators": 1}
    assert BETTER[build_risk_root] == {"train.n_estimators": 80}
    repo.dm("promote", RISK_ARTIFACT, GOOD, "--stage", "prod")
    windows = repo.path.parent
    (windows / "live").mkdir()
    (windows / "drifted").mkdir()
    churn_rows(400, seed=7).to_csv(windows / "live" / "w1.csv", index=False)
    drifted = churn_rows(400, seed=8)
    drifted = drifted.assign(support_calls=drifted.support_calls + 4,
                             tenure=(drifted.tenure // 4).clip(lower=1))
    drifted.to_csv(windows / "drifted" / "w1.csv", index=False)
    return repo


@pytest.fixture(scope="module")
def anomaly(tmp_path_factory) -> Repo:
    """fraud-iforest (services/fraud) adopted, v1.0.0 registered (``adopted_v1``)."""
    return module_copy(tmp_path_factory, adopted_v1(tmp_path_factory, build_anomaly_nested))


@pytest.fixture(scope="module")
def forecast(tmp_path_factory) -> Repo:
    """demand-forecast (forecasting/) adopted, v1.0.0 registered (``adopted_v1``)."""
    return module_copy(tmp_path_factory, adopted_v1(tmp_path_factory, build_forecast))


def results(repo: Repo, ref: str, rows: str | Path) -> list[dict]:
    return score_json(repo, ref, Path(repo.path / rows))["results"]


# -- score: the user's own estimator's numbers ---------------------------------------------


def test_score_of_an_adopted_risk_model_is_its_predict_proba(risk, tmp_path):
    expected = estimator_outputs(risk, RISK_MODEL, RISK_REFERENCE, "predict_proba",
                                 trusted=RISK_UNTRUSTED)
    got = results(risk, f"{RISK_ARTIFACT}@{LATEST}", RISK_REFERENCE)  # the workspace model
    assert [set(r) for r in got] == [{"probability", "alert"}] * len(expected)
    probability = np.array([r["probability"] for r in got])
    np.testing.assert_allclose(probability, expected, rtol=1e-9, atol=1e-12)
    assert [r["alert"] for r in got] == list(expected >= 0.5)
    assert 0 < probability.mean() < 1

    # -o: the input's columns, then the results
    out = tmp_path / "scored.csv"
    risk.dm("score", f"{RISK_ARTIFACT}@{LATEST}", RISK_REFERENCE, "-o", str(out))
    table = pd.read_csv(out)
    assert list(table.columns) == [*RISK_FEATURES, RISK_LABEL, "probability", "alert"]
    np.testing.assert_allclose(table["probability"], expected, atol=1e-9)


def test_score_of_an_adopted_anomaly_model_is_minus_its_score_samples(anomaly, tmp_path):
    samples = estimator_outputs(anomaly, ANOMALY_MODEL, ANOMALY_REFERENCE, "score_samples",
                                trusted=ANOMALY_UNTRUSTED)
    predict = estimator_outputs(anomaly, ANOMALY_MODEL, ANOMALY_REFERENCE, "predict",
                                trusted=ANOMALY_UNTRUSTED)
    got = results(anomaly, f"{ANOMALY_ARTIFACT}@{GOOD}", ANOMALY_REFERENCE)
    assert [set(r) for r in got] == [{"score", "alert"}] * len(samples)
    np.testing.assert_allclose([r["score"] for r in got], -samples, rtol=1e-9)
    assert [r["alert"] for r in got] == list(predict == -1)
    assert any(r["alert"] for r in got) and not all(r["alert"] for r in got)

    out = tmp_path / "scored.csv"
    anomaly.dm("score", f"{ANOMALY_ARTIFACT}@{GOOD}", ANOMALY_REFERENCE, "-o", str(out))
    assert list(pd.read_csv(out).columns) == [*ANOMALY_FEATURES, ANOMALY_LABEL, "score", "alert"]


def test_score_of_an_adopted_forecast_is_its_predict_with_an_interval(forecast, tmp_path):
    predicted = estimator_outputs(forecast, FORECAST_MODEL, FORECAST_REFERENCE, "predict")
    rows = pd.read_csv(forecast.path / FORECAST_REFERENCE)
    got = results(forecast, f"{FORECAST_ARTIFACT}@{GOOD}", FORECAST_REFERENCE)
    assert [set(r) for r in got] == [{"prediction", "lower", "upper", "anomaly"}] * len(rows)
    prediction = np.array([r["prediction"] for r in got])
    np.testing.assert_allclose(prediction, predicted, rtol=1e-9)
    lower, upper = np.array([r["lower"] for r in got]), np.array([r["upper"] for r in got])
    half = upper - prediction
    assert half.min() > 0 and np.allclose(half, half[0]) and np.allclose(prediction - lower, half)
    actual = rows[FORECAST_LABEL].to_numpy()
    outside = (actual < lower) | (actual > upper)
    assert [r["anomaly"] for r in got] == list(outside)
    assert 0 < outside.mean() <= 0.2  # a 90 % interval of the residuals on these rows

    # rows without the label: forecast, no anomaly to say
    unlabelled = tmp_path / "future.csv"
    rows.drop(columns=FORECAST_LABEL).head(5).to_csv(unlabelled, index=False)
    got = results(forecast, f"{FORECAST_ARTIFACT}@{GOOD}", unlabelled)
    assert [set(r) for r in got] == [{"prediction", "lower", "upper"}] * 5
    np.testing.assert_allclose([r["prediction"] for r in got], predicted[:5], rtol=1e-9)


def test_score_checks_the_features_of_an_adopted_model(forecast, tmp_path):
    before = forecast.snapshot()
    rows = pd.read_csv(forecast.path / FORECAST_REFERENCE).head(5)
    missing = tmp_path / "missing.csv"
    rows.drop(columns="price").to_csv(missing, index=False)
    out = tmp_path / "out.csv"
    proc = forecast.dm("score", f"{FORECAST_ARTIFACT}@{GOOD}", str(missing), "-o", str(out),
                       check=False)
    assert proc.returncode == 4
    assert "missing column(s) price" in error_line(proc)
    text = tmp_path / "text.csv"
    rows.assign(demand=["many"] + [1.0] * 4).to_csv(text, index=False)
    proc = forecast.dm("score", f"{FORECAST_ARTIFACT}@{GOOD}", str(text), check=False)
    assert proc.returncode == 4
    assert "column 'demand' has a non-numeric value 'many' on data row 1" in error_line(proc)
    assert not out.exists() and forecast.snapshot() == before


# -- trust: a type outside the allow-list, a pickle ----------------------------------------


def test_a_type_outside_the_allow_list_is_refused_by_score_until_trusted(adopted, tmp_path):
    repo = adopted(build_untrusted)
    args = ("--kind", "anomaly", "--features", ",".join(ANOMALY_FEATURES), "--label",
            ANOMALY_LABEL, "--reference", ANOMALY_REFERENCE)
    proc = repo.dm("adopt", UNTRUSTED_ARTIFACT, *args, check=False)
    assert proc.returncode == 4 and "sklearn.neighbors._kd_tree.KDTree" in error_line(proc)
    # a teammate writes monitor.yaml without trusted_types and tags a version with gto
    monitor = repo.path / "services/fraud/monitor.yaml"
    monitor.write_text(
        f"name: {UNTRUSTED_ARTIFACT}\nkind: anomaly\nadopted: true\nschema:\n  features: "
        f"[{', '.join(ANOMALY_FEATURES)}]\n  label: {ANOMALY_LABEL}\nreference: reference.csv\n")
    repo.commit_all("monitor fraud-lof, by hand")
    gto(repo, "register", UNTRUSTED_ARTIFACT, "--version", GOOD)
    out = tmp_path / "scored.csv"
    proc = repo.dm("score", f"{UNTRUSTED_ARTIFACT}@{GOOD}", ANOMALY_REFERENCE, "-o", str(out),
                   check=False)
    assert proc.returncode == 4
    line = error_line(proc)
    assert all(t in line for t in LOF_UNTRUSTED) and "trusted_types" in line
    assert not out.exists()

    # trusted by a reviewed commit: the next version scores as the estimator does
    repo.dm("adopt", UNTRUSTED_ARTIFACT, *args, *(f"--trust={t}" for t in LOF_UNTRUSTED))
    repo.commit_all("trust the KD tree")
    repo.dm("register", UNTRUSTED_ARTIFACT, "--version", WEAK)
    got = results(repo, f"{UNTRUSTED_ARTIFACT}@{WEAK}", ANOMALY_REFERENCE)
    samples = estimator_outputs(repo, UNTRUSTED_MODEL, ANOMALY_REFERENCE, "score_samples",
                                trusted=LOF_UNTRUSTED)
    np.testing.assert_allclose([r["score"] for r in got], -samples, rtol=1e-9)
    # the earlier version's commit still does not trust them
    proc = repo.dm("score", f"{UNTRUSTED_ARTIFACT}@{GOOD}", ANOMALY_REFERENCE, check=False)
    assert proc.returncode == 4 and "KDTree" in error_line(proc)


def test_score_and_serve_never_unpickle_a_pickled_model(adopted, tmp_path):
    repo = adopted(build_pickled)
    (repo.path / "monitor.yaml").write_text(
        f"name: {PICKLED_ARTIFACT}\nkind: risk\nadopted: true\nschema:\n  features: "
        f"[{', '.join(RISK_FEATURES)}]\n  label: {RISK_LABEL}\nreference: {RISK_REFERENCE}\n")
    repo.commit_all("monitor churn-pickle, by hand")
    gto(repo, "register", PICKLED_ARTIFACT, "--version", GOOD)
    gto(repo, "assign", PICKLED_ARTIFACT, "--version", GOOD, "--stage", "prod")
    before = repo.snapshot()
    out = tmp_path / "scored.csv"
    proc = repo.dm("score", f"{PICKLED_ARTIFACT}@{GOOD}", RISK_REFERENCE, "-o", str(out),
                   check=False)
    assert proc.returncode != 0
    line = error_line(proc)
    assert f"{PICKLED_MODEL}" in line and "never loads" in line and "skops.io.dump" in line
    proc = repo.dm("serve", f"{PICKLED_ARTIFACT}#prod", "--port", "0", check=False)
    assert proc.returncode != 0 and "never loads" in error_line(proc)
    assert not out.exists() and repo.snapshot() == before
    assert not repo.marker.exists()


# -- serve: follows the stage ------------------------------------------------------------


def test_serve_follows_the_stage_of_an_adopted_model(risk, tmp_path):
    repo = copy_repo(risk, tmp_path)
    reference = pd.read_csv(repo.path / RISK_REFERENCE).head(20)
    rows = reference[list(RISK_FEATURES)].to_dict("records")
    sample = tmp_path / "rows.csv"
    reference.to_csv(sample, index=False)
    expected = {v: score_json(repo, f"{RISK_ARTIFACT}@{v}", sample)["results"]
                for v in (GOOD, LATEST)}
    assert expected[GOOD] != expected[LATEST]
    np.testing.assert_allclose(  # v1.2.0 is the model in the workspace
        [r["probability"] for r in expected[LATEST]],
        estimator_outputs(repo, RISK_MODEL, sample, "predict_proba",
                          trusted=RISK_UNTRUSTED), rtol=1e-9)
    server = Server(repo, f"{RISK_ARTIFACT}#prod", "--poll", "0.5")
    try:
        status, headers, doc = server.score(rows)
        assert status == 200 and doc["version"] == GOOD
        assert {k.lower(): v for k, v in headers.items()}["x-model-version"] == GOOD
        assert doc["results"] == expected[GOOD]
        repo.dm("promote", RISK_ARTIFACT, LATEST, "--stage", "prod")
        health = server.wait_for(lambda h: h["version"] == LATEST)
        assert health["version"] == LATEST and health["status"] == "ok"
        assert health["kind"] == "risk" and health["last_reload"]["result"] == "swapped"
        status, headers, doc = server.score(rows)
        assert status == 200 and doc["version"] == LATEST
        assert {k.lower(): v for k, v in headers.items()}["x-model-version"] == LATEST
        assert doc["results"] == expected[LATEST]
        # a row without a feature: 422, one line
        status, _, doc = server.score([{"tenure": 3}])
        assert status == 422 and "monthly_charges" in doc["error"]
        assert 'dvc_monitor_live_alert_rate{kind="risk",model="churn-risk"}' in server.metrics()
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert f"swapped {RISK_ARTIFACT}@{GOOD} for {RISK_ARTIFACT}@{LATEST}" in err


# -- watch: rules, decisions, the trust checks, the rollback -------------------------------


def windows(repo: Repo, which: str) -> str:
    return str(repo.path.parent / which)


def test_watch_on_drifted_rows_raises_the_alarm_and_changes_nothing(risk):
    before = risk.snapshot()
    _, out = watch(risk, f"{RISK_ARTIFACT}#prod", "--data", windows(risk, "drifted"),
                   "--window", "200")
    assert risk.snapshot() == before
    assert out["version"] == GOOD and out["kind"] == "risk"
    assert out["alarm_window"] == 1 and out["decision"] == "retrain"
    assert {b["measure"] for b in out["breaches"]} == {"psi_features"}
    assert list(out["drifted_features"])[:2] == ["support_calls", "tenure"]
    assert out["candidates"] == []  # v1.0.0 is the first holder of prod
    assert out["rules"]["min_rows"] == 100 and out["rules"]["source"] == RISK_PARAMS
    assert any("profile was computed from its reference rows (data/test.csv)" in n
               for n in out["notes"])


def test_watch_judges_adopted_anomaly_and_forecast_models_by_their_rules(anomaly, forecast,
                                                                        tmp_path):
    # a fraud wave: 30 % of the transactions are odd (the reference has 4 %)
    transactions(300, 0.3, seed=9).to_csv(tmp_path / "wave.csv", index=False)
    _, out = watch(anomaly, f"{ANOMALY_ARTIFACT}@{GOOD}", "--data", str(tmp_path / "wave.csv"),
                   "--window", "100")
    assert out["kind"] == "anomaly" and out["decision"] == "retrain"
    assert "alert_rate" in {b["measure"] for b in out["breaches"]}
    assert all(w["measures"]["alert_rate"] > 0.05 for w in out["windows"])
    assert out["rules"]["source"] == "the anomaly template's defaults"

    # demand 40 above what the forecast says: every actual outside its interval
    sales = sales_rows(300, seed=5)
    sales.to_csv(tmp_path / "sales.csv", index=False)
    sales.assign(demand=sales.demand + 40).to_csv(tmp_path / "surge.csv", index=False)
    ref = f"{FORECAST_ARTIFACT}@{GOOD}"
    _, out = watch(forecast, ref, "--data", str(tmp_path / "sales.csv"), "--window", "100")
    assert out["kind"] == "forecast" and out["decision"] == "ok"
    assert out["rules"]["min_rows"] == 100  # no hourly series: the spec's default
    assert all(w["measures"]["outside_rate"] < 0.3 for w in out["windows"])
    _, out = watch(forecast, ref, "--data", str(tmp_path / "surge.csv"), "--window", "100")
    assert out["decision"] == "retrain"
    assert {b["measure"] for b in out["breaches"]} >= {"outside_rate"}
    assert all(w["measures"]["outside_rate"] == 1 for w in out["windows"])


def test_watch_rolls_back_to_the_earlier_version_proven_better(risk, tmp_path):
    repo = copy_repo(risk, tmp_path)
    repo.dm("promote", RISK_ARTIFACT, WEAK, "--stage", "prod")
    head = repo.head()
    good_md5 = json.loads(repo.dm("show", f"{RISK_ARTIFACT}@{GOOD}", "--json").stdout)["model_md5"]
    _, out = watch(repo, f"{RISK_ARTIFACT}#prod", "--data", windows(repo, "live"),
                   "--window", "200", "--rollback")
    assert out["version"] == WEAK and out["decision"] == "rollback" and out["target"] == GOOD
    assert {b["measure"] for b in out["breaches"]} == {"alert_rate"}  # 1 tree never alerts
    [candidate] = out["candidates"]
    assert candidate["version"] == GOOD and candidate["passed"] is True
    assert out["rolled_back"]["verified"] is True
    assert repo.git("rev-parse", "HEAD^").stdout.strip() == head
    assert [v["version"] for v in gto_json(repo, f"{RISK_ARTIFACT}#prod")] == [GOOD]
    assert repo.md5(RISK_MODEL) == good_md5
    assert repo.git("status", "--porcelain").stdout == ""


def test_watch_skips_an_earlier_version_worse_on_the_same_reference_rows(risk, tmp_path):
    repo = copy_repo(risk, tmp_path)
    repo.dm("promote", RISK_ARTIFACT, WEAK, "--stage", "prod")
    repo.dm("promote", RISK_ARTIFACT, LATEST, "--stage", "prod")
    before = repo.snapshot()
    _, out = watch(repo, f"{RISK_ARTIFACT}#prod", "--data", windows(repo, "drifted"),
                   "--window", "200", "--rollback")
    assert repo.snapshot() == before
    assert out["version"] == LATEST and out["decision"] == "retrain"
    weak, good = out["candidates"]
    assert weak["version"] == WEAK and weak["check"] == "metrics"
    assert weak["skipped"].startswith("roc_auc ")
    assert weak["skipped"].endswith("on the holder's reference rows")
    assert weak["windows"] == []  # never scored on the windows
    assert good["version"] == GOOD and good["passed"] is False  # the drift fails it too
    assert any("worse primary metric than the holder on the holder's reference rows" in n
               for n in out["notes"])

    # allow_worse_metrics: the weaker version is judged on the windows instead
    params = repo.path / RISK_PARAMS
    params.write_text(params.read_text().replace("min_rows: 100",
                                                 "min_rows: 100\n  allow_worse_metrics: true"))
    _, out = watch(repo, f"{RISK_ARTIFACT}#prod", "--data", windows(repo, "drifted"),
                   "--window", "200")
    weak = out["candidates"][0]
    assert weak["version"] == WEAK and weak["check"] == "rules" and weak["skipped"] is None
    assert weak["windows"] and weak["passed"] is False


# -- serve --watch: the same rules on the server's own traffic -----------------------------

BATCH = 50  # rows per request; windows of 200 rows


def traffic(change=None):
    """Endless batches of customers, as JSON rows (``change``d, if given)."""
    seed = 100
    while True:
        frame = churn_rows(200, seed=seed)
        rows = (frame if change is None else change(frame)).to_dict("records")
        for start in range(0, len(rows), BATCH):
            yield rows[start:start + BATCH]
        seed += 1


def drift(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(support_calls=frame.support_calls + 4,
                        tenure=(frame.tenure // 4).clip(lower=1))


def test_serve_watch_skips_a_version_worse_on_the_same_rows_and_changes_nothing(risk, tmp_path):
    repo = copy_repo(risk, tmp_path)
    repo.dm("promote", RISK_ARTIFACT, WEAK, "--stage", "prod")
    repo.dm("promote", RISK_ARTIFACT, LATEST, "--stage", "prod")
    before = repo.snapshot()
    server = Server(repo, f"{RISK_ARTIFACT}#prod", "--watch", "--auto-rollback",
                    "--window", "200", "--poll", "1")
    try:
        answers = send_until(server, traffic(drift),
                             lambda h: h["watch"]["last_decision"] is not None)
        health = server.get("/health")
    finally:
        code, err = server.stop()
    assert_served_cleanly(code, err, answers)
    assert {doc["version"] for _, _, doc in answers} == {LATEST}
    watching = health["watch"]
    assert watching["rules"]["min_rows"] == 100 and watching["version"] == LATEST
    decision = watching["last_decision"]
    assert decision["decision"] == "retrain" and decision["action"] == "none"
    [skipped] = decision["skipped"]
    assert skipped.startswith(f"{WEAK} skipped: roc_auc ")
    assert skipped.endswith("on the holder's reference rows")
    assert "psi_features max 0.25 breached" in decision["evidence"]
    assert repo.snapshot() == before


def test_serve_watch_rolls_an_adopted_model_back_and_swaps(risk, tmp_path):
    repo = copy_repo(risk, tmp_path)
    repo.dm("promote", RISK_ARTIFACT, WEAK, "--stage", "prod")
    head = repo.head()
    server = Server(repo, f"{RISK_ARTIFACT}#prod", "--watch", "--auto-rollback",
                    "--window", "200", "--poll", "1")
    try:
        rows = traffic()
        answers = send_until(server, rows, lambda h: h["version"] == GOOD
                             or (h["watch"]["last_decision"] or {}).get("action") == "failed")
        health = server.get("/health")
        answers += send_until(server, rows, lambda h: True)
    finally:
        code, err = server.stop()
    assert_served_cleanly(code, err, answers)
    decision = health["watch"]["last_decision"]
    assert decision["decision"] == "rollback" and decision["target"] == GOOD
    assert decision["action"] == "rolled_back", decision["message"]
    assert "alert_rate min 0.03 breached" in decision["evidence"]
    versions = [doc["version"] for _, _, doc in answers]
    switch = versions.index(GOOD)
    assert set(versions[:switch]) == {WEAK} and set(versions[switch:]) == {GOOD}
    assert repo.git("rev-parse", "HEAD^").stdout.strip() == head
    assert [v["version"] for v in gto_json(repo, f"{RISK_ARTIFACT}#prod")] == [GOOD]
    assert repo.git("status", "--porcelain").stdout == ""

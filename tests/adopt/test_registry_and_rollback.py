"""An adopted model in the registry, rolled back, checked and collected: the churn model of
``build_risk_root`` (its own split and train stages, plus an evaluate stage declaring
``eval/metrics.json``), trained by the user's own code and saved with plain
``skops.io.dump``.

Two versions are registered and promoted; ``versions``, ``show`` and ``gto show`` agree,
the metrics column shows the pipeline's own metrics and the tag block says the file is
verified as its code wrote it. A rollback restores the earlier version's bytes from the
cache, or retrains it (deterministic training: content-identical); when the registered
bytes are nowhere and the user's training is not deterministic, the retrain gives another
model and the rollback is undone with one line. ``check`` calls every adopted version not
rebuildable and says why; ``gc`` keeps their models even with ``--drop-rebuildable``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.adopted import (
    ANOMALY_ARTIFACT,
    ANOMALY_FEATURES,
    ANOMALY_MODEL,
    ANOMALY_PARAMS,
    ANOMALY_REFERENCE,
    FORECAST_ARTIFACT,
    FORECAST_FEATURES,
    FORECAST_LABEL,
    FORECAST_MODEL,
    FORECAST_PARAMS,
    FORECAST_REFERENCE,
    LOF_UNTRUSTED,
    RISK_ARTIFACT,
    RISK_FEATURES,
    RISK_LABEL,
    RISK_MODEL,
    RISK_PARAMS,
    RISK_REFERENCE,
    UNTRUSTED_ARTIFACT,
    adopted_base,
    build_anomaly_nested,
    build_forecast,
    build_risk_root,
    build_untrusted,
    retrain,
    shared_state,
)
from tests.support.registry import assert_agrees_with_gto
from tests.support.repos import Repo
from tests.support.rollback import (
    assert_clean,
    assert_one_line_error,
    cache_file,
    copy_base,
    remote_file,
)

NAME = RISK_ARTIFACT
ADOPTED_WHY = "trained by its own pipeline, not known to be deterministic"
AS_WRITTEN = "as its code wrote it, by md5 and content digest"

# the user's own evaluation: roc_auc and accuracy of the model on the test split
EVALUATE = """\
import json
import os

import pandas as pd
import skops.io
from sklearn.metrics import accuracy_score, roc_auc_score

FEATURES = ["tenure", "monthly_charges", "support_calls", "age"]

model = skops.io.load("model.skops", trusted=skops.io.get_untrusted_types(file="model.skops"))
test = pd.read_csv("data/test.csv")
os.makedirs("eval", exist_ok=True)
with open("eval/metrics.json", "w") as f:
    json.dump({"roc_auc": roc_auc_score(test["churned"],
                                        model.predict_proba(test[FEATURES])[:, 1]),
               "accuracy": accuracy_score(test["churned"], model.predict(test[FEATURES]))}, f)
"""

EVALUATE_STAGE = """\
  evaluate:
    cmd: python src/evaluate.py
    deps:
      - src/evaluate.py
      - model.skops
      - data/test.csv
    metrics:
      - eval/metrics.json:
          cache: false
"""

# a training whose seed changes at every run: the retrain never gives the same model
UNSEEDED = 'random_state=int.from_bytes(__import__("os").urandom(4), "little")'


def versions(repo: Repo) -> dict[str, dict]:
    return {v["version"]: v for v in repo.json("versions", NAME)}


def tag_block(repo: Repo, tag: str) -> dict:
    text = repo.git("tag", "-l", "--format=%(contents)", tag).stdout
    return json.loads(text.split("-----BEGIN DVC-MONITOR-----")[1]
                      .split("-----END DVC-MONITOR-----")[0])


def make_two_versions(repo: Repo) -> None:
    """The churn pipeline with an evaluate stage, adopted as ``risk``; v1.0.0 (60 trees)
    registered and promoted to prod, then v1.1.0 (20 deeper trees) registered and promoted
    to prod; everything pushed."""
    (repo.path / "src" / "evaluate.py").write_text(EVALUATE)
    dvc_yaml = repo.path / "dvc.yaml"
    text = dvc_yaml.read_text()
    dvc_yaml.write_text(text.replace("artifacts:", EVALUATE_STAGE + "artifacts:"))
    repo.dvc("repro", "-q")
    repo.dm("adopt", NAME, "--kind", "risk", "--features", ",".join(RISK_FEATURES),
            "--label", RISK_LABEL, "--reference", RISK_REFERENCE)
    repo.commit_all("evaluate the model; monitor it with dvc-monitor")
    repo.dm("register", NAME, "--version", "v1.0.0")
    repo.dm("promote", NAME, "v1.0.0", "--stage", "prod")
    retrain(repo, RISK_PARAMS, {"train.n_estimators": 20, "train.max_depth": 3},
            "fewer, deeper trees")
    repo.dm("register", NAME, "--version", "v1.1.0")
    repo.dm("promote", NAME, "v1.1.0", "--stage", "prod")
    repo.dvc("push", "-q")


def two_versions_state(tmp_path_factory) -> Path:
    """``make_two_versions`` on a copy of ``build_risk_root``'s repository, once per test
    session: its folder."""
    return shared_state(tmp_path_factory, "adopted-two-versions",
                        lambda: adopted_base(tmp_path_factory, build_risk_root),
                        make_two_versions)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> Repo:
    """This module's copy of ``two_versions_state``."""
    return copy_base(two_versions_state(tmp_path_factory),
                     tmp_path_factory.mktemp("two_versions") / "copy")


def private_copy(repo: Repo, tmp_path) -> Repo:
    """A copy of the module's repository with a DVC remote of its own (it may delete)."""
    return copy_base(repo.path.parent, tmp_path / "copy")


def test_two_versions_are_registered_promoted_and_agree_with_gto(two_versions):
    repo = two_versions
    got = versions(repo)
    assert list(got) == ["v1.1.0", "v1.0.0"]
    assert got["v1.1.0"]["stages"] == ["prod"] and got["v1.0.0"]["stages"] == []
    assert_agrees_with_gto(repo, NAME)
    for v in got.values():  # the user's file as written, verified by md5 and digest
        assert v["model_path"] == RISK_MODEL
        assert v["model_form"] == "as-written" and v["verified_as"] == AS_WRITTEN
        assert v["digest"].startswith("sha256:")
        block = tag_block(repo, f"{NAME}@{v['version']}")
        assert block["model_form"] == "as-written"
        assert (block["model_md5"], block["digest"]) == (v["model_md5"], v["digest"])
    assert got["v1.1.0"]["model_md5"] == repo.md5(RISK_MODEL) != got["v1.0.0"]["model_md5"]

    # the metrics column: what the pipeline's own evaluate stage declares
    for v in got.values():
        written = json.loads(repo.git("show", f"{v['commit']}:eval/metrics.json").stdout)
        assert v["metrics"] == written and set(written) == {"roc_auc", "accuracy"}
    table = repo.dm("versions", NAME).stdout.splitlines()
    assert table[0].split("\t") == ["version", "id", "stages", "created", "author", "metrics"]
    row = table[1].split("\t")
    assert row[0] == "v1.1.0" and row[2] == "prod"
    assert row[5] == (f"roc_auc={got['v1.1.0']['metrics']['roc_auc']:.4f} "
                      f"accuracy={got['v1.1.0']['metrics']['accuracy']:.4f}")

    shown = repo.dm("show", f"{NAME}@v1.0.0").stdout
    assert f"  model:    {RISK_MODEL}  md5 {got['v1.0.0']['model_md5']}" in shown
    assert f"  verified: {AS_WRITTEN}" in shown
    history = [line.split("\t") for line in repo.dm("history", NAME).stdout.splitlines()[1:]]
    assert [(h[2], h[3], h[4]) for h in history] == [
        ("register", "v1.0.0", ""), ("assign", "v1.0.0", "prod"),
        ("register", "v1.1.0", ""), ("assign", "v1.1.0", "prod")]
    diff = repo.dm("diff", NAME, "v1.0.0", "v1.1.0").stdout
    assert "train.n_estimators: 60 → 20" in diff and "train.max_depth: 2 → 3" in diff


def test_rollback_restores_the_earlier_bytes_with_proof(two_versions, tmp_path):
    repo = private_copy(two_versions, tmp_path)
    v1 = versions(repo)["v1.0.0"]
    proc = repo.dm("rollback", NAME, "--to", "v1.0.0", "--stage", "prod")
    out = proc.stdout
    assert out.startswith(f"Rolled back {NAME} to v1.0.0 in commit ")
    assert "(retrained)" not in out.splitlines()[0]
    assert "Proof (verified): model byte-identical" in out
    assert (f"    check     {RISK_MODEL} is byte-identical (md5 {v1['model_md5']}); "
            f"verified {AS_WRITTEN}") in out
    assert repo.md5(RISK_MODEL) == v1["model_md5"]
    assert repo.git("show", "HEAD:eval/metrics.json").stdout == repo.git(
        "show", f"{v1['commit']}:eval/metrics.json").stdout
    assert_clean(repo)
    assert versions(repo)["v1.0.0"]["stages"] == ["prod"]
    assert_agrees_with_gto(repo, NAME)


def test_a_deterministic_retrain_restores_the_same_content(two_versions, tmp_path):
    """The registered bytes are nowhere; the user's seeded training makes the same model
    again, written at another time by skops: verified content-identical."""
    repo = private_copy(two_versions, tmp_path)
    v1 = versions(repo)["v1.0.0"]
    cache_file(repo, v1["model_md5"]).unlink()
    remote_file(repo, v1["model_md5"]).unlink()
    out = repo.dm("rollback", NAME, "--to", "v1.0.0").stdout
    assert out.splitlines()[0].endswith("(retrained)")
    assert "Proof (verified): model content-identical" in out
    assert "written again by its own code" in out
    assert_clean(repo)


def make_unseeded(repo: Repo) -> None:
    """The user's training draws a new seed at every run: v1.2.0 registered with it, then
    v1.3.0 (other params); v1.2.0's model deleted from the cache and the remote."""
    train = repo.path / "src" / "train.py"
    train.write_text(train.read_text().replace('random_state=params["seed"]', UNSEEDED))
    repo.dvc("repro", "-q")
    repo.dvc("push", "-q")
    repo.commit_all("a new seed at every run")
    repo.dm("register", NAME, "--version", "v1.2.0")
    retrain(repo, RISK_PARAMS, {"train.n_estimators": 30}, "30 trees")
    repo.dm("register", NAME, "--version", "v1.3.0")
    v2 = versions(repo)["v1.2.0"]
    cache_file(repo, v2["model_md5"]).unlink()
    remote_file(repo, v2["model_md5"]).unlink()


@pytest.fixture(scope="module")
def unseeded(tmp_path_factory) -> tuple[Repo, dict]:
    """A copy of ``two_versions_state`` after ``make_unseeded`` (made once per test
    session), with a DVC remote of its own. Returns the copy and v1.2.0's row."""
    folder = shared_state(tmp_path_factory, "adopted-unseeded",
                          lambda: two_versions_state(tmp_path_factory), make_unseeded)
    repo = copy_base(folder, tmp_path_factory.mktemp("unseeded") / "copy")
    return repo, versions(repo)["v1.2.0"]


def test_a_retrain_that_gives_another_model_is_undone(unseeded):
    repo, v2 = unseeded
    before = repo.snapshot()
    proc = repo.dm("rollback", NAME, "--to", "v1.2.0", check=False)
    assert proc.returncode == 1
    line = assert_one_line_error(proc)
    remote = f"local ({repo.remote})"
    assert line.startswith(
        f"dvc-monitor: error: cannot roll back {NAME} to v1.2.0: its model is in neither "
        f"the DVC cache nor the remote {remote}, and retraining it gave another model (md5 ")
    assert line.endswith(
        f", not {v2['model_md5']}): its pipeline is not deterministic; nothing was changed; "
        "push the model from a machine that has it ('dvc push'), then run the rollback again")
    assert proc.stdout == ""
    assert repo.snapshot() == before
    assert_clean(repo)


def test_the_dry_run_says_its_own_pipeline_retrains_it(unseeded):
    repo, v2 = unseeded
    before = repo.snapshot()
    out = repo.dm("rollback", NAME, "--to", "v1.2.0", "--dry-run").stdout
    assert f"  missing         {RISK_MODEL} ({v2['model_md5']}): rebuilt by dvc repro" in out
    assert ("  trainer         note: its own pipeline retrains it, not known to be "
            "deterministic: if the retrain gives another model, the rollback is undone") in out
    assert repo.snapshot() == before


def test_check_calls_every_adopted_version_not_rebuildable(unseeded):
    repo, v2 = unseeded
    proc = repo.dm("check", check=False)
    assert proc.returncode == 1  # v1.2.0's model is nowhere
    rows = {r.split("\t")[1]: r.split("\t") for r in proc.stdout.splitlines()[1:]}
    assert list(rows) == ["v1.3.0", "v1.2.0", "v1.1.0", "v1.0.0"]
    for row in rows.values():
        assert row[6] == f"no ({ADOPTED_WHY})"
    assert rows["v1.2.0"][5] == "missing"
    assert rows["v1.2.0"][7] == f"nowhere: {RISK_MODEL} (cannot be rebuilt: {ADOPTED_WHY})"
    assert rows["v1.3.0"][5] == "remote" and rows["v1.3.0"][7] == ""
    states = {v["version"]: v for v in json.loads(
        repo.dm("check", "--json", check=False).stdout)["versions"]}
    for v in states.values():
        assert (v["adopted"], v["rebuildable"], v["rebuild"]) == (True, False, "no")
        assert v["why_not_deterministic"] == ADOPTED_WHY
    assert [o["oid"] for o in states["v1.2.0"]["nowhere"]] == [v2["model_md5"]]


def test_gc_never_deletes_an_adopted_model(two_versions, tmp_path):
    repo = private_copy(two_versions, tmp_path)
    md5s = {v: row["model_md5"] for v, row in versions(repo).items()}
    proc = repo.dm("gc", "--keep-last", "1", "--no-keep-stages", "--drop-rebuildable",
                   "--cloud")
    assert f"kept whole (cold but not rebuildable): {NAME}@v1.0.0" in proc.stderr
    removed = {r.split("\t")[3] for r in proc.stdout.splitlines()[1:] if "\t" in r}
    assert not removed & set(md5s.values())
    for md5 in md5s.values():
        assert cache_file(repo, md5).is_file() and remote_file(repo, md5).is_file()
    out = repo.dm("rollback", NAME, "--to", "v1.0.0").stdout  # and it still rolls back
    assert "Proof (verified): model byte-identical" in out


@pytest.mark.parametrize(("build", "name", "change", "trust"), [
    (build_anomaly_nested, ANOMALY_ARTIFACT, {"train.n_estimators": 90}, ()),
    (build_untrusted, UNTRUSTED_ARTIFACT, {"train.n_neighbors": 30}, LOF_UNTRUSTED),
], ids=["isolation-forest", "local-outlier-factor"])
def test_a_nested_pipeline_rolls_back_and_restores_its_monitor_yaml(tmp_path_factory, tmp_path,
                                                                    build, name, change, trust):
    """The anomaly model of services/fraud (artifact declared at the root; the local
    outlier factor's KD-tree types trusted in its monitor.yaml): v1.0.0, then v1.1.0 with
    other params and a threshold in its monitor.yaml; the rollback to v1.0.0 restores the
    model's bytes, verified with the types it trusts, and the monitor.yaml it was
    registered with."""
    repo = copy_base(adopted_base(tmp_path_factory, build), tmp_path / "copy")
    monitor = repo.path / "services" / "fraud" / "monitor.yaml"
    adopt = ["adopt", name, "--kind", "anomaly", "--features", ",".join(ANOMALY_FEATURES),
             "--reference", ANOMALY_REFERENCE, *(f"--trust={t}" for t in trust)]
    repo.dm(*adopt)
    first_config = monitor.read_text()
    assert all(t in first_config for t in trust)
    repo.commit_all("monitor the fraud model")
    repo.dm("register", name, "--version", "v1.0.0")
    retrain(repo, ANOMALY_PARAMS, change, "other params")
    repo.dm(*adopt, "--threshold", "-0.55")
    assert monitor.read_text() != first_config
    repo.commit_all("alert below -0.55")
    repo.dm("register", name, "--version", "v1.1.0")
    rows = {v["version"]: v for v in repo.json("versions", name)}
    assert {v["model_form"] for v in rows.values()} == {"as-written"}
    assert rows["v1.1.0"]["model_md5"] != rows["v1.0.0"]["model_md5"]

    out = repo.dm("rollback", name, "--to", "v1.0.0").stdout
    assert "Proof (verified): model byte-identical" in out
    assert f"verified {AS_WRITTEN}" in out
    assert repo.md5(ANOMALY_MODEL) == rows["v1.0.0"]["model_md5"]
    assert monitor.read_text() == first_config
    assert "services/fraud/monitor.yaml" in repo.git("show", "--stat", "HEAD").stdout
    assert_clean(repo)
    check = {v["version"]: v for v in json.loads(repo.dm("check", "--json").stdout)["versions"]}
    assert {(v["rebuild"], v["why_not_deterministic"]) for v in check.values()} == {
        ("no", ADOPTED_WHY)}


def test_a_forecast_rolls_back_with_proof_and_scores_as_before(tmp_path_factory, tmp_path):
    """The demand forecast of forecasting/ (Ridge after a ColumnTransformer): v1.0.0, then a
    far more regularised v1.1.0; the rollback restores v1.0.0's bytes with proof, and
    ``score`` then forecasts as v1.0.0 did."""
    repo = copy_base(adopted_base(tmp_path_factory, build_forecast), tmp_path / "copy")
    name = FORECAST_ARTIFACT
    repo.dm("adopt", name, "--kind", "forecast", "--features", ",".join(FORECAST_FEATURES),
            "--label", FORECAST_LABEL, "--reference", FORECAST_REFERENCE)
    repo.commit_all("monitor the demand forecast")
    repo.dm("register", name, "--version", "v1.0.0")
    repo.dm("promote", name, "v1.0.0", "--stage", "prod")
    before = json.loads(repo.dm("score", f"{name}#prod", FORECAST_REFERENCE, "--json").stdout)
    retrain(repo, FORECAST_PARAMS, {"train.alpha": 100000.0}, "much more regularised")
    repo.dm("register", name, "--version", "v1.1.0")
    repo.dm("promote", name, "v1.1.0", "--stage", "prod")
    worse = json.loads(repo.dm("score", f"{name}#prod", FORECAST_REFERENCE, "--json").stdout)
    assert worse["results"] != before["results"]

    out = repo.dm("rollback", name, "--to", "v1.0.0", "--stage", "prod").stdout
    assert "Proof (verified): model byte-identical" in out and f"verified {AS_WRITTEN}" in out
    registered = {v["version"]: v for v in repo.json("versions", name)}
    assert repo.md5(FORECAST_MODEL) == registered["v1.0.0"]["model_md5"]
    after = json.loads(repo.dm("score", f"{name}#prod", FORECAST_REFERENCE, "--json").stdout)
    assert after["results"] == before["results"]
    assert_clean(repo)
    assert_agrees_with_gto(repo, name)

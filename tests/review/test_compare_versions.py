"""`dvc-monitor compare` ranks registered versions on the same data, and
`tag-info` reads registry tags for CI. One trained repository per module with three
registered versions of an anomaly model (100, 1 and 30 trees on the same data). Real git,
real DVC (with a local remote), real training."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from tests.support.output import last_line_error
from tests.support.repos import Repo, copy_repo, new_version, trained_anomaly
from dvc_monitor.model.data import write_batch
from dvc_monitor.kinds import kind_for

NAME = "fraud-detector"
VERSIONS = ("v0.1.0", "v0.2.0", "v0.3.0")


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    repo = trained_anomaly(tmp_path_factory, base)
    repo.dm("register", NAME, "--version", "v0.1.0")
    new_version(repo, base, param=("n_estimators", "1"))
    repo.dm("register", NAME, "--version", "v0.2.0")
    new_version(repo, base, param=("n_estimators", "30"))
    repo.dm("register", NAME, "--version", "v0.3.0")
    repo.dvc("push", "--all-commits")
    return repo


@pytest.fixture
def repo(versions, tmp_path):
    return copy_repo(versions, tmp_path)


@pytest.fixture(scope="module")
def csvs(tmp_path_factory):
    """Fresh production data: labelled, unlabelled, and two that do not fit."""
    d = tmp_path_factory.mktemp("compare-data")
    df = kind_for("anomaly").sample_batch(9)
    paths = {}
    for key, frame in {
        "labelled": df,
        "unlabelled": df.drop(columns=["is_fraud"]),
        "missing": df.drop(columns=["hour"]),
    }.items():
        paths[key] = d / f"{key}.csv"
        write_batch(frame, paths[key])
    text = paths["labelled"].read_text().splitlines()
    text[3] = "abc" + text[3][text[3].index(","):]
    paths["text"] = d / "text.csv"
    paths["text"].write_text("\n".join(text) + "\n")
    return paths


def recorded(repo: Repo, version: str) -> dict:
    return json.loads(repo.git("show", f"{NAME}@{version}:models/{NAME}/metrics.json").stdout)


def test_compare_ranks_three_versions_on_the_same_data(versions):
    before = versions.snapshot()
    result = versions.json("compare", NAME, *VERSIONS, "--best")
    assert versions.snapshot() == before
    assert result["metric"] == "f1" and result["direction"] == "higher"
    assert result["labelled"] is True and result["data"] == "holdout rows of the workspace data"
    by = {v["version"]: v for v in result["versions"]}
    assert list(by) == list(VERSIONS)
    f1 = {v: by[v]["metrics"]["f1"] for v in VERSIONS}
    assert result["best"] == max(f1, key=f1.get)
    assert by["v0.2.0"]["rank"] == 3  # one tree is the worst
    assert sorted(by[v]["rank"] for v in VERSIONS) == [1, 2, 3]
    for v in VERSIONS:
        # Same data for every version: each reproduces the metrics its evaluate stage wrote.
        for metric, value in recorded(versions, v).items():
            assert by[v]["metrics"][metric] == pytest.approx(value, abs=1e-6), (v, metric)
        assert by[v]["commit"] == versions.git("rev-parse", f"{NAME}@{v}^{{commit}}").stdout.strip()
        assert by[v]["id"].startswith("sha256:")


def test_compare_table_and_reference_forms(versions):
    proc = versions.dm("compare", NAME, f"{NAME}@v0.1.0", "v0.2.0", "latest", "--best",
                       "--metric", "roc_auc")
    assert "v0.1.0" in proc.stdout and "v0.3.0" in proc.stdout
    assert "Best by roc_auc (higher is better): v0.3.0" in proc.stdout
    short = versions.json("compare", NAME, "v0.1.0")["versions"][0]["id"][7:19]
    result = versions.json("compare", NAME, short, "workspace")
    assert [v["version"] for v in result["versions"]] == ["v0.1.0", "workspace"]
    assert result["versions"][1]["metrics"] == pytest.approx(recorded(versions, "v0.3.0"))


def test_compare_on_fresh_labelled_data(versions, csvs):
    result = versions.json("compare", NAME, *VERSIONS, "--data", str(csvs["labelled"]),
                           "--best", "--metric", "average_precision")
    assert result["rows"] == 1000 and result["labelled"] is True
    ap = {v["version"]: v["metrics"]["average_precision"] for v in result["versions"]}
    assert result["best"] == max(ap, key=ap.get)


def test_unlabelled_data_compares_label_free_and_refuses_best(versions, csvs):
    result = versions.json("compare", NAME, *VERSIONS, "--data", str(csvs["unlabelled"]))
    assert result["labelled"] is False and result["metric"] is None and result["best"] is None
    for v in result["versions"]:
        assert set(v["metrics"]) == {"n_holdout", "alert_rate", "score_p50", "score_p90",
                                     "score_p99"}
    proc = versions.dm("compare", NAME, *VERSIONS, "--data", str(csvs["unlabelled"]))
    assert "alert_rate" in proc.stdout and "score_p90" in proc.stdout
    proc = versions.dm("compare", NAME, *VERSIONS, "--data", str(csvs["unlabelled"]), "--best",
                       check=False)
    assert proc.returncode == 2
    assert "f1 needs labels and this data has none" in last_line_error(proc)


@pytest.mark.parametrize("args, code, message", [
    ([NAME, "v0.1.0", "other-model@v0.2.0"], 2,
     "'other-model@v0.2.0' is a version of 'other-model', not of 'fraud-detector'"),
    ([NAME, "v0.1.0", "other-model#prod"], 2, "is a version of 'other-model'"),
    ([NAME, "v0.1.0", "v9.9.9"], 3, "fraud-detector has no version v9.9.9"),
    ([NAME, "v0.1.0", "0.1.0"], 2, "are the same version (v0.1.0)"),
    (["other-model", "v0.1.0"], 3, "other-model"),
    ([NAME, *VERSIONS, "--best", "--metric", "alert_rate"], 2,
     "alert_rate has no better direction"),
    ([NAME, *VERSIONS, "--best", "--metric", "accuracy"], 2, "unknown metric 'accuracy'"),
    ([NAME, *VERSIONS, "--data", "missing"], 4, "does not fit fraud-detector v0.1.0: missing "
                                                "column(s) hour"),
    ([NAME, *VERSIONS, "--data", "text"], 4, "column 'amount' has a non-numeric or missing "
                                             "value 'abc'"),
    ([NAME, *VERSIONS, "--data", "nope.csv"], 4, "no such file"),
])
def test_bad_input_is_one_line_and_changes_nothing(versions, csvs, args, code, message):
    args = [str(csvs.get(a, a)) for a in args]
    before = versions.snapshot()
    proc = versions.dm("compare", *args, check=False)
    assert proc.returncode == code, proc.stderr
    assert message in last_line_error(proc)
    assert versions.snapshot() == before


def test_models_missing_locally_are_fetched_into_the_cache_only(repo):
    import yaml

    lock = yaml.safe_load(repo.git("show", f"{NAME}@v0.2.0:models/{NAME}/dvc.lock").stdout)
    md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"])
    obj = repo.path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    obj.unlink()
    before = repo.snapshot()
    result = repo.json("compare", NAME, "v0.1.0", "v0.2.0")
    assert [v["model_md5"] for v in result["versions"]][1] == md5
    assert obj.is_file()
    assert repo.snapshot() == before


# -- tag-info on real registry tags -----------------------------------------------------


def test_tag_info_reads_registration_and_assignment(repo):
    repo.dm("promote", NAME, "v0.3.0", "--stage", "prod")
    tag = next(t for t in repo.git("tag", "-l").stdout.split() if t.startswith(f"{NAME}#prod"))
    info = repo.json("tag-info", tag)
    commit = repo.git("rev-parse", f"{NAME}@v0.3.0^{{commit}}").stdout.strip()
    assert info["event"] == "assign" and info["stage"] == "prod"
    assert info["name"] == NAME and info["version"] == "v0.3.0" and info["commit"] == commit
    assert info["model_path"] == f"models/{NAME}/model.skops"
    assert len(info["model_md5"]) == 32
    info = repo.json("tag-info", f"{NAME}@v0.1.0")
    assert (info["event"], info["version"], info["stage"]) == ("register", "v0.1.0", None)

    # The CI jobs source the --env output: check that a POSIX shell reads it back.
    env_text = repo.dm("tag-info", tag, "--env").stdout
    script = f"set -a; . {shlex.quote(str(repo.path / 'tag.env'))}; set +a; " \
             'printf "%s|%s|%s|%s" "$MODEL_EVENT" "$MODEL_NAME" "$MODEL_VERSION" "$MODEL_STAGE"'
    (repo.path / "tag.env").write_text(env_text)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == f"assign|{NAME}|v0.3.0|prod"
    text = repo.dm("tag-info", tag).stdout
    assert f"{NAME} assigned stage prod to version v0.3.0" in text

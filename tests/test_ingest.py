"""Issue #2: ingest adds a partition after a schema check; bad batches change nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import copy_repo, init_model, new_repo, sample_csv


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One trained anomaly repo, built once; tests work on copies."""
    base = tmp_path_factory.mktemp("ingest-base")
    return init_model(new_repo(base), "anomaly", "fraud-detector")


@pytest.fixture
def repo(trained, tmp_path):
    """A private copy of the trained repository (its remote and home come along)."""
    return copy_repo(trained, tmp_path)  # no test here pushes to the remote


def test_ingest_adds_partition_and_new_version_trains(repo, tmp_path):
    data_dvc = repo.path / "models/fraud-detector/data.dvc"
    before = yaml.safe_load(data_dvc.read_text())["outs"][0]
    proc = repo.dm("ingest", "fraud-detector", str(sample_csv(tmp_path, "anomaly", 4)))
    assert "batch-00004.csv" in proc.stdout
    after = yaml.safe_load(data_dvc.read_text())["outs"][0]
    assert after["nfiles"] == before["nfiles"] + 1
    assert after["md5"] != before["md5"]
    # data.dvc is staged for the user's commit; the pipeline now sees changed data.
    assert "M  models/fraud-detector/data.dvc" in repo.git("status", "--porcelain").stdout
    assert "changed deps" in repo.dvc("status", "models/fraud-detector/dvc.yaml").stdout
    repo.dvc("repro", "models/fraud-detector/dvc.yaml")
    split = json.loads((repo.path / "models/fraud-detector/prepared/split.json").read_text())
    assert split["rows"] == 4000


def test_each_partition_is_stored_once_and_intermediates_stay_small(repo, tmp_path):
    """What DVC caches per new version: one partition, a manifest, a small split, a model."""
    objects = repo.path / ".dvc/cache/files/md5"

    def cache_files():
        return {p: p.stat().st_size for p in objects.rglob("*") if p.is_file()}

    old = cache_files()
    repo.dm("ingest", "fraud-detector", str(sample_csv(tmp_path, "anomaly", 4)))
    repo.dvc("repro", "models/fraud-detector/dvc.yaml")
    new = {p: s for p, s in cache_files().items() if p not in old}
    partition = (repo.path / "models/fraud-detector/data/batch-00004.csv").stat().st_size
    model = (repo.path / "models/fraud-detector/model.skops").stat().st_size
    # The only large new objects are the new partition and the new model; the rest (the
    # .dir manifest, split.json, and the run-cache copies of metrics and plots) is small.
    assert sorted(s for s in new.values() if s > 4096) == sorted([partition, model])
    assert sum(s for s in new.values() if s <= 4096) < 16384
    assert not any(p.name.endswith(".dir") and s > 4096 for p, s in new.items())


BAD_BATCHES = {
    "other columns": ("amount,hour,colour\n1,2,3\n", "columns do not match"),
    "non-numeric": (
        "amount,hour,merchant_category,distance_from_home,txn_last_24h,is_fraud\n"
        "12.5,3,1,2.0,abc,0\n", "non-numeric"),
    "no rows": ("amount,hour,merchant_category,distance_from_home,txn_last_24h,is_fraud\n",
                "no rows"),
    "empty file": ("", "empty"),
    "missing value": (
        "amount,hour,merchant_category,distance_from_home,txn_last_24h,is_fraud\n"
        "12.5,3,1,,1,0\n", "non-numeric or missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_ingest_bad_batch_is_refused_and_changes_nothing(repo, tmp_path, case):
    text, message = BAD_BATCHES[case]
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    before = repo.snapshot()
    proc = repo.dm("ingest", "fraud-detector", str(bad), check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert repo.snapshot() == before


def test_ingest_missing_file_and_unknown_model(repo, tmp_path):
    before = repo.snapshot()
    proc = repo.dm("ingest", "fraud-detector", str(tmp_path / "nope.csv"), check=False)
    assert proc.returncode != 0 and "no such file" in proc.stderr
    proc = repo.dm("ingest", "no-such-model", str(sample_csv(tmp_path, "anomaly", 5)), check=False)
    assert proc.returncode != 0 and "no model 'no-such-model'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert repo.snapshot() == before


def test_ingest_accepts_columns_in_another_order(repo, tmp_path):
    import pandas as pd

    src = sample_csv(tmp_path, "anomaly", 6)
    frame = pd.read_csv(src)
    shuffled = tmp_path / "shuffled.csv"
    frame[list(reversed(frame.columns))].to_csv(shuffled, index=False)
    repo.dm("ingest", "fraud-detector", str(shuffled))
    written = pd.read_csv(repo.path / "models/fraud-detector/data/batch-00004.csv")
    assert list(written.columns) == list(frame.columns)

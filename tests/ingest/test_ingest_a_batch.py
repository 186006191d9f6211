"""Ingest adds a partition after a schema check; bad batches change nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.repos import copy_repo, new_repo, sample_csv, trained_anomaly


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One trained anomaly repo, built once; tests work on copies."""
    base = tmp_path_factory.mktemp("ingest-base")
    return trained_anomaly(tmp_path_factory, base)


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


# -- ingest is one transaction; a killed ingest is undone next time --------------------------

PARTITION4 = "models/fraud-detector/data/batch-00004.csv"


def _kill_during_dvc_add(repo, batch, partition=PARTITION4):
    """SIGKILL an ingest once it has written the partition and its journal, that is while
    'dvc add' runs."""
    from tests.support.repos import kill_ingest_when

    kill_ingest_when(repo, "fraud-detector", batch, partition)


def test_killed_ingest_is_undone_by_the_next_command_and_a_retry_adds_it_once(repo, tmp_path):
    batch = sample_csv(tmp_path, "anomaly", 4)
    before = repo.snapshot()
    _kill_during_dvc_add(repo, batch)
    assert (repo.path / PARTITION4).exists()  # the kill left the work tree half-changed
    assert repo.snapshot() != before
    proc = repo.dm("versions", "fraud-detector", check=False)  # no version registered yet
    assert "undid an interrupted ingest into 'fraud-detector'" in proc.stderr
    assert repo.snapshot() == before
    assert repo.dvc("status", "models/fraud-detector/data.dvc").stdout.strip() \
        == "Data and pipelines are up to date."
    # killed again, the retry itself recovers first and adds the batch exactly once
    _kill_during_dvc_add(repo, batch)
    proc = repo.dm("ingest", "fraud-detector", str(batch))
    assert "batch-00004.csv" in proc.stdout
    assert sorted(p.name for p in (repo.path / "models/fraud-detector/data").iterdir()) == \
        [f"batch-0000{i}.csv" for i in range(1, 5)]
    assert not (repo.path / ".git/dvc-monitor/ingest.json").exists()  # the journal is gone
    assert repo.dvc("status", "models/fraud-detector/data.dvc").stdout.strip() \
        == "Data and pipelines are up to date."


def test_batch_equal_to_a_partition_is_refused_by_content(repo, tmp_path):
    import pandas as pd

    # same values, other column order and float spelling: the same canonical bytes
    frame = pd.read_csv(repo.path / "models/fraud-detector/data/batch-00002.csv")
    again = tmp_path / "again.csv"
    frame[list(reversed(frame.columns))].to_csv(again, index=False)
    before = repo.snapshot()
    proc = repo.dm("ingest", "fraud-detector", str(again), check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "same content as partition batch-00002.csv" in lines[0]
    assert repo.snapshot() == before


def test_undo_puts_back_what_the_user_had_staged(repo, tmp_path):
    """The undo of a killed ingest restores the index as it was (an earlier ingest staged
    and not committed yet), not as HEAD has it."""
    repo.dm("ingest", "fraud-detector", str(sample_csv(tmp_path, "anomaly", 4)))
    before = repo.snapshot()
    staged = repo.git("ls-files", "-s", "models/fraud-detector/data.dvc").stdout
    _kill_during_dvc_add(repo, sample_csv(tmp_path, "anomaly", 5),
                         "models/fraud-detector/data/batch-00005.csv")
    assert "undid an interrupted ingest" in repo.dm("history", check=False).stderr
    assert repo.git("ls-files", "-s", "models/fraud-detector/data.dvc").stdout == staged
    assert repo.snapshot() == before


# -- what ingest refuses, each with one clear line -------------------------------------------

HEADER = "amount,hour,merchant_category,distance_from_home,txn_last_24h,is_fraud"


def _refused(repo, batch, message, *extra):
    before = repo.snapshot()
    proc = repo.dm("ingest", "fraud-detector", str(batch), *extra, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert repo.snapshot() == before
    return lines[0]


@pytest.mark.parametrize("label", ["7", "-1", "2", "0.5"])
def test_labels_outside_0_1_are_refused(repo, tmp_path, label):
    bad = tmp_path / "labels.csv"
    bad.write_text(f"{HEADER}\n12.5,3,1,2.0,1,0\n12.5,3,1,2.0,1,{label}\n")
    line = _refused(repo, bad, "labels must be 0 or 1")
    assert "'is_fraud'" in line and "data row 2" in line


def test_unlabelled_batch_into_labelled_data_needs_allow_unlabelled(repo, tmp_path):
    import pandas as pd

    frame = pd.read_csv(sample_csv(tmp_path, "anomaly", 4)).drop(columns=["is_fraud"])
    unlabelled = tmp_path / "unlabelled.csv"
    frame.to_csv(unlabelled, index=False)
    _refused(repo, unlabelled, "has no 'is_fraud' column, but the model's data is labelled")
    proc = repo.dm("ingest", "fraud-detector", str(unlabelled), "--allow-unlabelled")
    assert "batch-00004.csv" in proc.stdout
    # and the reverse: now the newest data is mixed; the first partition decides
    written = pd.read_csv(repo.path / PARTITION4)
    assert list(written.columns) == list(frame.columns)


@pytest.mark.parametrize("what", ["folder", "device"])
def test_folder_and_device_are_refused_clearly(repo, tmp_path, what):
    target, message = {"folder": (tmp_path, "is a folder; give a CSV file"),
                       "device": ("/dev/zero", "is not a regular file")}[what]
    _refused(repo, target, message)


def test_dash_reads_the_batch_from_standard_input(repo, tmp_path):
    text = sample_csv(tmp_path, "anomaly", 4).read_text()
    proc = repo.dm("ingest", "fraud-detector", "-", input=text)
    assert "Added 1000 rows" in proc.stdout and "batch-00004.csv" in proc.stdout
    proc = repo.dm("ingest", "fraud-detector", "-", input=f"{HEADER}\n1,2,3,4,5,9\n", check=False)
    assert proc.returncode != 0 and "'-': column 'is_fraud'" in proc.stderr


def test_echoed_header_is_capped_and_escaped(repo, tmp_path):
    bad = tmp_path / "huge.csv"
    bad.write_text("\x1b[2J" + "x" * 100_000 + ",hour\n1,2\n")
    line = _refused(repo, bad, "columns do not match")
    assert "\x1b" not in line and "\\x1b[2J" in line
    assert len(line) < 1000 and "more characters" in line


@pytest.fixture(scope="module")
def forecast(tmp_path_factory):
    """A forecast model with sample data (not trained: ingest needs only the data)."""
    base = tmp_path_factory.mktemp("ingest-forecast")
    repo = new_repo(base)
    repo.dm("init", "--template", "forecast", "--name", "load", "--sample-data",
            "--remote", str(repo.remote))
    return repo


@pytest.mark.parametrize("case", ["duplicate", "fractional", "negative", "far-future",
                                  "already ingested"])
def test_bad_forecast_timestamps_are_refused(forecast, tmp_path, case):
    import pandas as pd

    last = int(pd.read_csv(forecast.path / "models/load/data/batch-00003.csv")["timestamp"].max())
    stamps = {"duplicate": [last + 3600, last + 3600], "fractional": [last + 3600.5],
              "negative": [-3600], "far-future": [last + 3600, 4_000_000_000],
              "already ingested": [last]}[case]
    bad = tmp_path / "ts.csv"
    bad.write_text("timestamp,value\n" + "".join(f"{t},1.5\n" for t in stamps))
    before = forecast.snapshot()
    proc = forecast.dm("ingest", "load", str(bad), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert f"has the {case} timestamp" in lines[0] or (case == "duplicate"
                                                          and "repeats the timestamp" in lines[0])
    assert forecast.snapshot() == before

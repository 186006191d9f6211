"""`dvc-monitor score` and `api.load_model` for the three kinds. Real
repositories (the rollback tests' anomaly base, and one with a forecast and a risk
model), real DVC remotes in local folders, a real `git daemon` on 127.0.0.1."""

from __future__ import annotations

import subprocess
import time
from csv import QUOTE_ALL
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.repos import BIN, copy_repo, sample_csv
from tests.support.production import MODELS, score_json, shared_registry
from tests.support.rollback import MODEL as ANOMALY
from tests.support.rollback import copy_base
from tests.support.s3server import free_port
from dvc_monitor import api
from dvc_monitor.errors import SchemaError

FORECAST, RISK = MODELS["forecast"], MODELS["risk"]


@pytest.fixture(scope="module")
def anomaly_repo(rollback_base, tmp_path_factory):
    return copy_base(rollback_base, tmp_path_factory.mktemp("score") / "copy")


@pytest.fixture(scope="module")
def kinds_repo(tmp_path_factory):
    return shared_registry(tmp_path_factory)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    base = tmp_path_factory.mktemp("batches")
    return {kind: sample_csv(base, kind, 3) for kind in ("anomaly", "forecast", "risk")}


def test_anomaly_scores_have_the_models_own_threshold(anomaly_repo, batches, tmp_path):
    doc = score_json(anomaly_repo, f"{ANOMALY}#prod", batches["anomaly"])
    assert (doc["model"], doc["version"]) == (ANOMALY, "v1.2.0")
    assert doc["id"].startswith("sha256:")
    frame = pd.read_csv(batches["anomaly"])
    assert len(doc["results"]) == len(frame)
    assert all(set(r) == {"score", "alert"} for r in doc["results"])
    loaded = api.load_model(ANOMALY, stage="prod", repo=anomaly_repo.path)
    threshold = -loaded.model.offset_
    assert [r["alert"] for r in doc["results"]] == [r["score"] > threshold for r in doc["results"]]
    out = tmp_path / "scored.csv"
    proc = anomaly_repo.dm("score", f"{ANOMALY}#prod", str(batches["anomaly"]), "-o", str(out))
    assert proc.stdout == ""
    assert f"scored {len(frame)} rows with {ANOMALY}@v1.2.0" in proc.stderr
    written = pd.read_csv(out)
    assert list(written.columns) == [*frame.columns, "score", "alert"]
    np.testing.assert_allclose(written["score"], [r["score"] for r in doc["results"]], rtol=1e-9)
    # stdin, CSV on stdout
    proc = anomaly_repo.dm("score", f"{ANOMALY}@v1.2.0", "-", input=batches["anomaly"].read_text())
    assert proc.stdout.splitlines()[0] == ",".join([*frame.columns, "score", "alert"])
    assert len(proc.stdout.splitlines()) == len(frame) + 1


def test_every_reference_form_names_its_version(anomaly_repo, batches):
    csv = batches["anomaly"]
    versions = {v["version"]: v for v in anomaly_repo.json("versions", ANOMALY)}
    short = versions["v1.1.0"]["short_id"]
    by_ref = {ref: score_json(anomaly_repo, ref, csv) for ref in
              (ANOMALY, f"{ANOMALY}#prod", f"{ANOMALY}@v1.0.0", f"{ANOMALY}@{short}")}
    assert [d["version"] for d in by_ref.values()] == ["v1.2.0", "v1.2.0", "v1.0.0", "v1.1.0"]
    assert by_ref[f"{ANOMALY}@{short}"]["id"] == versions["v1.1.0"]["id"]
    assert by_ref[ANOMALY]["results"] == by_ref[f"{ANOMALY}#prod"]["results"]
    assert by_ref[f"{ANOMALY}@v1.0.0"]["results"] != by_ref[ANOMALY]["results"]


def test_risk_probabilities_and_forecast_intervals(kinds_repo, batches, tmp_path):
    risk = score_json(kinds_repo, f"{RISK}#prod", batches["risk"])
    labels = pd.read_csv(batches["risk"])["malignant"].to_numpy()
    p = np.array([r["probability"] for r in risk["results"]])
    assert ((0 <= p) & (p <= 1)).all()
    assert [r["alert"] for r in risk["results"]] == list(p >= 0.5)
    assert ((p >= 0.5) == labels).mean() > 0.85  # a real model on held-out-like rows
    unlabelled = tmp_path / "unlabelled.csv"  # production rows have no label
    pd.read_csv(batches["risk"]).drop(columns=["malignant"]).to_csv(unlabelled, index=False)
    assert score_json(kinds_repo, f"{RISK}#prod", unlabelled)["results"] == risk["results"]

    frame = pd.read_csv(batches["forecast"])
    frame.loc[len(frame)] = {"timestamp": frame["timestamp"].iloc[-1] + 3600, "value": None}
    csv = tmp_path / "forecast.csv"
    frame.to_csv(csv, index=False)
    results = score_json(kinds_repo, f"{FORECAST}#prod", csv)["results"]
    assert len(results) == len(frame)
    assert all(r == {"prediction": None, "lower": None, "upper": None} for r in results[:168])
    scored = results[168:]
    assert all(r["lower"] < r["prediction"] < r["upper"] for r in scored)
    for r, actual in zip(scored[:-1], frame["value"].iloc[168:-1]):
        assert r["anomaly"] == (not r["lower"] <= actual <= r["upper"])
    assert "anomaly" not in scored[-1] and scored[-1]["prediction"] is not None  # next hour


def test_load_model_api_checks_md5_and_schema(kinds_repo, batches, tmp_path):
    loaded = api.load_model(RISK, stage="prod", repo=kinds_repo.path)
    lock = (kinds_repo.path / "models" / RISK / "dvc.lock").read_text()
    assert loaded.md5 in lock and loaded.md5 == kinds_repo.md5(f"models/{RISK}/model.skops")
    assert (loaded.name, loaded.version, loaded.kind) == (RISK, "v1.0.0", "risk")
    assert loaded.id == kinds_repo.json("show", f"{RISK}@v1.0.0")["id"]
    frame = pd.read_csv(batches["risk"]).head(5)
    assert loaded.score(frame) == loaded.score(frame.to_dict("records"))
    frame.to_csv(tmp_path / "five.csv", index=False)  # the same rows in one batch: same floats
    assert loaded.score(frame) == score_json(kinds_repo, f"{RISK}@v1.0.0", tmp_path / "five.csv")["results"]
    same = api.load_model(RISK, version="v1.0.0", repo=kinds_repo.path)
    at_head = api.load_model(RISK, rev="HEAD", repo=kinds_repo.path)  # registered at HEAD
    assert same.md5 == loaded.md5 == at_head.md5 and at_head.version == "v1.0.0"
    with pytest.raises(SchemaError, match="missing column.s. mean_area, worst_area"):
        loaded.score(frame.drop(columns=["mean_area", "worst_area"]))


def test_bad_input_and_an_unsafe_model_get_one_line_errors(kinds_repo, batches, tmp_path):
    repo = copy_repo(kinds_repo, tmp_path)
    csv = batches["risk"]
    frame = pd.read_csv(csv)
    frame.drop(columns=["mean_radius"]).to_csv(tmp_path / "missing.csv", index=False)
    frame.assign(mean_area="big").to_csv(tmp_path / "text.csv", index=False)
    cases = [
        ((f"{RISK}#prod", str(tmp_path / "missing.csv")), "missing column(s) mean_radius"),
        ((f"{RISK}#prod", str(tmp_path / "text.csv")), "column 'mean_area' has a non-numeric"),
        ((f"{RISK}#staging", str(csv)), "no version of tumor-risk is in stage 'staging'"),
        ((f"{RISK}@v4.0.0", str(csv)), "tumor-risk has no version v4.0.0"),
        ((f"{RISK}#prod", str(tmp_path / "nope.csv")), "no such file"),
    ]
    # an unsafe model file (its dvc.lock records its real md5)
    repo.run(str(BIN / "python"), "-c",
             "import os, skops.io\n"
             "from sklearn.preprocessing import FunctionTransformer\n"
             f"open('models/{RISK}/model.skops', 'wb').write("
             "skops.io.dumps(FunctionTransformer(func=os.system)))\n")
    repo.dvc("commit", "-f", f"models/{RISK}/dvc.yaml")
    repo.commit_all("an unsafe model file")
    # dvc-monitor register refuses it, so it is tagged behind its back, as gto would
    refused = repo.dm("register", RISK, "--version", "v9.0.0", check=False)
    assert refused.returncode != 0 and "posix.system" in refused.stderr
    repo.run(str(BIN / "gto"), "register", RISK, "HEAD", "--version", "v9.0.0")
    cases.append(((f"{RISK}@v9.0.0", str(csv)), "does not trust: posix.system; it was not loaded"))
    # the input is checked before the model file is read
    cases.append(((f"{RISK}@v9.0.0", str(tmp_path / "missing.csv")), "missing column(s) mean_radius"))
    for args, words in cases:
        proc = repo.dm("score", *args, check=False)
        assert proc.returncode != 0, args
        assert proc.stdout == ""
        assert proc.stderr.startswith("dvc-monitor: error: ") and proc.stderr.count("\n") == 1
        assert words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_score_from_a_git_daemon_url_fetches_from_the_dvc_remote(kinds_repo, batches, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    kinds_repo.git("clone", "-q", "--bare", str(kinds_repo.path), str(served / "kinds.git"))
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={port}",
         f"--base-path={served}", str(served)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"git://127.0.0.1:{port}/kinds.git"
        cache = tmp_path / "user-cache"
        deadline = time.monotonic() + 300  # until the daemon listens (bounds a hang)
        while kinds_repo.git("ls-remote", url, check=False).returncode != 0:
            assert time.monotonic() < deadline, f"git daemon never served {url}"
            time.sleep(0.1)
        local = score_json(kinds_repo, f"{FORECAST}#prod", batches["forecast"])
        remote = score_json(kinds_repo, f"{FORECAST}#prod", batches["forecast"], "--repo", url,
                            "--cache-dir", str(cache))
        assert remote == local
        (clone,) = [p for p in (cache / "clones").iterdir() if p.is_dir()]
        assert clone.name.startswith("kinds-")
        md5 = api.load_model(FORECAST, stage="prod", repo=kinds_repo.path).md5
        assert (clone / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).is_file()
        loaded = api.load_model(FORECAST, stage="prod", repo=url, cache_dir=cache)
        assert (loaded.version, loaded.md5) == ("v1.0.0", md5)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


# -- where the CSV goes, what it may contain, headers ------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+2", "-2+3", "@SUM(A1:A2)",
            "\tcmd", "\rcmd"]


def test_output_to_stdout_a_symlink_and_a_device_with_formulas_escaped(anomaly_repo, batches,
                                                                        tmp_path):
    frame = pd.read_csv(batches["anomaly"]).head(len(FORMULAS) + 2)
    note = [*FORMULAS, "plain", "-5"]  # a text column; "-5" is a number to a spreadsheet
    frame = frame.assign(note=note, delta=[-1.5, -2.0, 3.25, -4.0, 0.5, -0.125, 7.0, -8.0])
    csv = tmp_path / "batch.csv"
    frame.to_csv(csv, index=False, quoting=QUOTE_ALL)  # quoted: a lone CR is in a cell
    ref = f"{ANOMALY}#prod"
    before = anomaly_repo.snapshot()

    # -o -: the CSV on stdout, nothing written into the repository (cwd is its root)
    piped = anomaly_repo.dm("score", ref, str(csv), "-o", "-")
    assert not (anomaly_repo.path / "-").exists()
    assert anomaly_repo.git("status", "--porcelain", "--untracked-files=all").stdout == ""
    assert anomaly_repo.snapshot() == before
    assert "wrote" not in piped.stderr
    out = tmp_path / "scored.csv"
    anomaly_repo.dm("score", ref, str(csv), "-o", str(out))
    assert piped.stdout == out.read_text()  # the same bytes as a file gets
    assert anomaly_repo.dm("score", ref, str(csv)).stdout == piped.stdout  # the default

    written = pd.read_csv(out, keep_default_na=False)
    assert list(written["note"]) == ["'" + f for f in FORMULAS] + ["plain", "-5"]
    assert list(written["delta"]) == list(frame["delta"])  # negative numbers untouched
    assert written["delta"].dtype == float
    for col in frame.columns.drop("note"):
        np.testing.assert_allclose(written[col], frame[col])

    # a symlink is written through: it stays a link, its target gets the CSV
    target = tmp_path / "target.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    anomaly_repo.dm("score", ref, str(csv), "-o", str(link))
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == piped.stdout
    dangling = tmp_path / "dangling.csv"  # a link to a file not there yet: created through it
    dangling.symlink_to(tmp_path / "later.csv")
    anomaly_repo.dm("score", ref, str(csv), "-o", str(dangling))
    assert dangling.is_symlink() and (tmp_path / "later.csv").read_text() == piped.stdout

    # a device: /dev/stdout is this process's stdout pipe, not a file to replace
    dev = anomaly_repo.dm("score", ref, str(csv), "-o", "/dev/stdout")
    assert dev.stdout == piped.stdout
    assert Path("/dev/stdout").is_symlink()

    refused = anomaly_repo.dm("score", ref, str(csv), "-o", "-", "--json", check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "--json and -o - would both write to standard output" in refused.stderr
    assert anomaly_repo.snapshot() == before


def test_duplicate_headers_are_refused_by_score_watch_and_ingest(anomaly_repo, batches,
                                                                 tmp_path):
    lines = batches["anomaly"].read_text().splitlines()
    first = lines[0].split(",")[0]
    dup = tmp_path / "dup.csv"  # the first column named twice, the second dropped
    dup.write_text("\n".join([f"{first},{first},{lines[0].split(',', 2)[2]}",
                              *(ln for ln in lines[1:])]) + "\n")
    before = anomaly_repo.snapshot()
    for args in (["score", f"{ANOMALY}#prod", str(dup)],
                 ["score", f"{ANOMALY}#prod", "-"],
                 ["watch", f"{ANOMALY}#prod", "--data", str(dup)],
                 ["ingest", ANOMALY, str(dup)]):
        proc = anomaly_repo.dm(*args, check=False, input=dup.read_text())
        assert proc.returncode == 4, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert f"the header names column {first!r} twice; give each column once" in proc.stderr
        assert proc.stdout == ""
        assert ("'standard input'" if "-" in args else repr(str(dup))) in proc.stderr
    assert anomaly_repo.snapshot() == before

"""``dvc-monitor watch`` measures live windows and rolls back only to a version
that is proven to pass the rules on the same windows.

Real template models, trained by ``dvc repro``; windows are sample batches the tests write
(after the training data in time), some of them drifted on purpose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.monitoring import ANOMALY, error_line, release, watch, write_windows
from tests.support.registry import gto_json
from tests.support.repos import Repo, copy_repo, new_version, trained

pytestmark = pytest.mark.slow

FORECAST, RISK = "sales", "patients"


# -- repositories, built once per module --------------------------------------------------


@pytest.fixture
def flood_copy(flood, tmp_path) -> Repo:
    return copy_repo(flood, tmp_path)


def live(repo: Repo, what: str = "live") -> str:
    return str(repo.path.parent / what)


# -- the reference profile and the rules -----------------------------------------------------


def test_evaluate_writes_a_cached_reference_profile(flood):
    ref = json.loads((flood.path / f"models/{ANOMALY}/reference.json").read_text())
    assert ref["kind"] == "anomaly" and ref["bins"] == 10
    assert set(ref["features"]) == {"amount", "hour", "merchant_category",
                                    "distance_from_home", "txn_last_24h"}
    assert 0.1 < ref["measures"]["alert_rate"] < 0.5  # v1.1.0: contamination 0.3
    lock = (flood.path / f"models/{ANOMALY}/dvc.lock").read_text()
    assert "path: reference.json" in lock  # an out of evaluate, in the DVC cache
    assert "reference.json" in (flood.path / f"models/{ANOMALY}/.gitignore").read_text()


def test_watch_rules_do_not_change_the_version_id(flood_copy):
    repo = flood_copy
    params = repo.path / f"models/{ANOMALY}/params.yaml"
    params.write_text(params.read_text().replace("alert_rate: {max: 0.05}",
                                                 "alert_rate: {max: 0.5}"))
    status = repo.dvc("status", f"models/{ANOMALY}/dvc.yaml").stdout
    assert "up to date" in status  # no stage reads watch:
    _, out = watch(repo, f"{ANOMALY}#prod", "--data", live(repo))
    assert out["decision"] == "ok"  # the loosened rule is the one applied
    assert out["rules"]["rules"][0] == {"measure": "alert_rate", "rule": "max", "limit": 0.5}


# -- decisions ------------------------------------------------------------------------------


def test_alert_flood_decides_rollback_and_changes_nothing(flood):
    before = flood.snapshot()
    _, out = watch(flood, f"{ANOMALY}#prod", "--data", live(flood), "--window", "300")
    assert flood.snapshot() == before
    assert out["decision"] == "rollback" and out["target"] == "v1.0.0"
    assert out["version"] == "v1.1.0" and out["stage"] == "prod"
    assert out["alarm_window"] == 1  # caught within failure_limit (2) windows
    assert out["breaching_windows"] == ["w010.csv[0:300]", "w010.csv[300:600]"]
    assert {b["measure"] for b in out["breaches"]} == {"alert_rate"}
    assert all(b["value"] > 0.2 for b in out["breaches"])
    [cand] = out["candidates"]
    assert cand["version"] == "v1.0.0" and cand["passed"] is True
    assert all(w["measures"]["alert_rate"] < 0.05 for w in cand["windows"])
    assert out["profile"].startswith(f"models/{ANOMALY}/reference.json")
    assert len(out["windows"]) == 6
    assert out["windows"][2]["cooling"] is True  # cooldown 3 after the alarm
    assert "alert_rate max 0.05 breached" in out["evidence"]


def test_stationary_windows_raise_no_alarm(flood):
    _, out = watch(flood, f"{ANOMALY}@v1.0.0", "--data", live(flood), "--window", "300")
    assert out["decision"] == "ok" and out["target"] is None
    assert out["alarm_window"] is None and out["breaches"] == [] and out["candidates"] == []
    assert all(w["measures"]["psi_score"] < 0.25 for w in out["windows"])
    assert all(w["measures"]["precision"] is not None for w in out["windows"])  # labelled


def test_drifted_inputs_decide_retrain_and_change_nothing(flood):
    before = flood.snapshot()
    proc, out = watch(flood, f"{ANOMALY}#prod", "--data", live(flood, "drifted"), "--rollback")
    assert proc.returncode == 0
    assert flood.snapshot() == before  # --rollback: nothing to roll back to
    assert out["decision"] == "retrain" and out["target"] is None
    assert out["rolled_back"] is None
    assert [c["version"] for c in out["candidates"]] == ["v1.0.0"]
    assert out["candidates"][0]["passed"] is False
    assert {"amount", "distance_from_home"} <= set(out["drifted_features"])
    assert "hour" not in out["drifted_features"]
    assert "psi_features" in {b["measure"] for b in out["breaches"]}


def test_watch_rollback_end_to_end(flood_copy, tmp_path):
    repo = flood_copy
    head = repo.head()
    report = tmp_path / "out" / "watch.md"
    proc = repo.dm("watch", f"{ANOMALY}#prod", "--data", live(repo), "--window", "300",
                   "--rollback", "-o", str(report))
    assert "Decision: rollback -> v1.0.0" in proc.stdout
    assert f"Rolled back {ANOMALY} to v1.0.0 in commit" in proc.stdout
    assert "Proof (verified)" in proc.stdout
    assert repo.git("rev-parse", "HEAD^").stdout.strip() == head
    body = repo.git("log", "-1", "--format=%B").stdout
    assert body.startswith(f"Roll back {ANOMALY} to v1.0.0")
    for part in ("alert_rate max 0.05 breached", "w010.csv[0:300]", "w010.csv[300:600]"):
        assert part in body
    [tag] = re.findall(r"\(tag (\S+#prod#\d+)\)", proc.stdout)
    assert repo.git("rev-parse", f"{tag}^{{commit}}").stdout.strip() == \
        repo.git("rev-list", "-n1", f"{ANOMALY}@v1.0.0").stdout.strip()
    assert "alert_rate max 0.05 breached" in repo.git("tag", "-l", "--format=%(contents)",
                                                      tag).stdout
    assert [v["version"] for v in gto_json(repo, f"{ANOMALY}#prod")] == ["v1.0.0"]
    versions = {v["version"]: v["stages"] for v in repo.json("versions", ANOMALY)}
    assert versions["v1.0.0"] == ["prod"]
    assert repo.git("status", "--porcelain").stdout == ""
    # the workspace holds v1.0.0 again, reference profile included
    ref = json.loads((repo.path / f"models/{ANOMALY}/reference.json").read_text())
    assert ref["measures"]["alert_rate"] < 0.05
    md = report.read_text()
    assert "**Decision: rollback** → **v1.0.0**" in md and "Rolled back: commit" in md
    for png in ("watch-alert_rate.png", "watch-psi_score.png", "watch-features.png"):
        assert (report.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in md
    # the next watch of prod (now v1.0.0) is quiet
    _, out = watch(repo, f"{ANOMALY}#prod", "--data", live(repo), "--window", "300")
    assert out["version"] == "v1.0.0" and out["decision"] == "ok"


# -- bad input ------------------------------------------------------------------------------


def _params_edit(repo: Repo, old: str, new: str) -> None:
    params = repo.path / f"models/{ANOMALY}/params.yaml"
    text = params.read_text()
    assert old in text
    params.write_text(text.replace(old, new))


@pytest.mark.parametrize("case, expected", [
    ("other columns", "does not fit fraud-detector v1.1.0: missing column(s) amount"),
    ("empty window", "window w999.csv has no rows"),
    ("unknown measure", "watch threshold on unknown metric 'f1'; the anomaly model measures:"),
    ("failure_limit 0", "watch.failure_limit must be a whole number >= 1, got 0"),
    ("no holder", "no version of fraud-detector is in stage 'canary'"),
    ("bad window size", "--window must be at least 1 row, got 0"),
])
def test_bad_input_one_line_and_repo_unchanged(flood_copy, tmp_path, case, expected):
    repo = flood_copy
    data, ref, extra = live(repo), f"{ANOMALY}#prod", []
    if case == "other columns":
        data = str(tmp_path / "other.csv")
        Path(data).write_text("a,b\n1,2\n")
    elif case == "empty window":
        data = str(tmp_path / "win")
        write_windows(Path(data), "anomaly", [10], rows=50)
        Path(data, "w999.csv").write_text(Path(data, "w010.csv").read_text().splitlines()[0]
                                          + "\n")
    elif case == "unknown measure":
        _params_edit(repo, "alert_rate: {max: 0.05}", "f1: {min: 0.5}")
    elif case == "failure_limit 0":
        _params_edit(repo, "failure_limit: 2", "failure_limit: 0")
    elif case == "no holder":
        ref = f"{ANOMALY}#canary"
    else:
        extra = ["--window", "0"]
    before = repo.snapshot()
    proc, _ = watch(repo, ref, "--data", data, *extra, "--rollback", check=False)
    line = error_line(proc)
    assert line.startswith("dvc-monitor: error: ") and expected in line
    assert repo.snapshot() == before


# -- windows too small to judge, rows that cannot be judged ------------------------------------


def test_tiny_windows_are_too_few_rows_and_never_alarm(flood, tmp_path):
    """3-row windows of normal data gave PSI 5-7, an alarm and "retrain"; now they are shown
    as too few rows and never judged. A final partial window is too few rows too."""
    tiny = write_windows(tmp_path / "tiny", "anomaly", range(10, 14), rows=3)
    before = flood.snapshot()
    proc, out = watch(flood, f"{ANOMALY}#prod", "--data", str(tiny), "--rollback")
    assert proc.returncode == 0
    assert out["decision"] == "ok" and out["target"] is None and out["rolled_back"] is None
    assert out["alarm_window"] is None and out["breaches"] == [] and out["candidates"] == []
    assert out["rules"]["min_rows"] == 100
    assert [(w["rows"], w["too_few_rows"], w["breaches"]) for w in out["windows"]] == \
        [(3, True, [])] * 4
    assert "4 had too few rows to judge (fewer than 100)" in out["evidence"]
    assert flood.snapshot() == before
    text = flood.dm("watch", f"{ANOMALY}#prod", "--data", str(tiny)).stdout
    table = [line.split("\t") for line in text.splitlines() if line.startswith("w0")]
    assert [(row[1], row[-1]) for row in table] == [("3", "too few rows")] * 4
    assert "Decision: ok" in text

    one = write_windows(tmp_path / "partial", "anomaly", [10], rows=250)
    _, out = watch(flood, f"{ANOMALY}@v1.0.0", "--data", str(one / "w010.csv"),
                   "--window", "100")
    assert [(w["window"], w["rows"], w["too_few_rows"]) for w in out["windows"]] == [
        ("w010.csv[0:100]", 100, False), ("w010.csv[100:200]", 100, False),
        ("w010.csv[200:250]", 50, True)]
    assert out["windows"][0]["measures"]["psi_score"] is not None
    assert out["windows"][2]["measures"] == {} and out["decision"] == "ok"


def test_window_below_min_rows_is_refused_unless_min_rows_is_lowered(flood_copy, tmp_path):
    repo = flood_copy
    small = write_windows(tmp_path / "small", "anomaly", [10, 11], rows=22)
    before = repo.snapshot()
    proc, out = watch(repo, f"{ANOMALY}#prod", "--data", str(small), "--window", "5",
                      "--rollback", check=False)
    line = error_line(proc)
    assert proc.returncode == 2 and out is None
    assert line == ("dvc-monitor: error: --window 5 is below the 100 rows a window needs to "
                    "be judged; use --window 100 or more, or lower watch.min_rows in "
                    f"models/{ANOMALY}/params.yaml")
    assert repo.snapshot() == before

    _params_edit(repo, "min_rows: 100", "min_rows: 5")  # the user accepts noisy windows
    _, out = watch(repo, f"{ANOMALY}@v1.0.0", "--data", str(small), "--window", "5")
    assert out["rules"]["min_rows"] == 5
    judged = [w for w in out["windows"] if not w["too_few_rows"]]
    assert [w["rows"] for w in judged] == [5] * 8 and all(w["measures"] for w in judged)
    # judged, 5 rows of normal data are noise to a 10-bin PSI: the false alarm min_rows stops
    assert all("psi_score" in {b["measure"] for b in w["breaches"]} for w in judged)
    assert [w["window"] for w in out["windows"] if w["too_few_rows"]] == \
        ["w010.csv[20:22]", "w011.csv[20:22]"]


def _spoil(frame, row: int, column: str, value):
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    return frame


def test_rows_that_cannot_be_judged_are_skipped_and_reported(flood, tmp_path):
    """One NaN row, one infinite row, one bad label: each is left out of its window and
    counted; the windows are judged (the flood is still caught and rolled back from, on
    the same cleaned windows); a window left below min_rows is too few rows."""
    from dvc_monitor.kinds import kind_for

    data = tmp_path / "spoilt"
    data.mkdir()
    batch = lambda i, n: kind_for("anomaly").sample_batch(i, seed=0, rows=n)  # noqa: E731
    _spoil(batch(10, 300), 5, "amount", float("nan")).to_csv(data / "w1.csv", index=False)
    _spoil(batch(11, 300), 7, "distance_from_home", "inf").to_csv(data / "w2.csv", index=False)
    _spoil(batch(12, 300), 9, "is_fraud", "yes").to_csv(data / "w3.csv", index=False)
    _spoil(batch(13, 101), 0, "hour", "noon").to_csv(data / "w4.csv", index=False)
    before = flood.snapshot()
    proc, out = watch(flood, f"{ANOMALY}#prod", "--data", str(data))
    assert proc.returncode == 0, proc.stderr
    assert flood.snapshot() == before
    windows = {w["window"]: w for w in out["windows"]}
    assert {k: (w["rows"], w["skipped"], w["too_few_rows"]) for k, w in windows.items()} == {
        "w1.csv": (299, {"amount is missing or NaN": 1}, False),
        "w2.csv": (299, {"distance_from_home is infinite": 1}, False),
        "w3.csv": (299, {"is_fraud is not 0 or 1": 1}, False),
        "w4.csv": (100, {"hour is not a number": 1}, False),
    }
    assert windows["w3.csv"]["measures"]["precision"] is not None  # the other labels count
    assert out["decision"] == "rollback" and out["target"] == "v1.0.0"
    assert out["breaching_windows"] == ["w1.csv", "w2.csv"]
    assert out["candidates"][0]["passed"] is True
    assert [w["rows"] for w in out["candidates"][0]["windows"]] == [299, 299]
    assert "window w1.csv: 1 row skipped (amount is missing or NaN)" in out["notes"]
    assert "window w2.csv: 1 row skipped (distance_from_home is infinite)" in out["notes"]

    _spoil(_spoil(batch(13, 101), 0, "hour", "noon"), 1, "amount", float("inf")).to_csv(
        data / "w4.csv", index=False)
    proc = flood.dm("watch", f"{ANOMALY}@v1.0.0", "--data", str(data))
    assert "note: window w3.csv: 1 row skipped (is_fraud is not 0 or 1)" in proc.stderr
    assert ("note: window w4.csv: 2 rows skipped (amount is infinite: 1; hour is not a "
            "number: 1)") in proc.stderr
    assert re.search(r"w4\.csv\s.*\b99\b.*too few rows", proc.stdout), proc.stdout
    assert "Decision: ok" in proc.stdout


def test_rollback_on_a_dirty_tree_reports_the_decision(flood_copy):
    repo = flood_copy
    params = repo.path / f"models/{ANOMALY}/params.yaml"
    params.write_text(params.read_text() + "# an uncommitted note\n")
    before = repo.snapshot()
    proc, out = watch(repo, f"{ANOMALY}#prod", "--data", live(repo), "--window", "300",
                      "--rollback", check=False)
    assert "uncommitted" in error_line(proc) or "dirty" in error_line(proc)
    assert "decision: rollback to v1.0.0" in error_line(proc)
    assert out["decision"] == "rollback" and out["target"] == "v1.0.0"
    assert out["rolled_back"] is None
    assert repo.snapshot() == before


def test_rollback_without_an_earlier_holder_reports_the_decision(flood_copy):
    repo = flood_copy
    before = repo.snapshot()
    proc, out = watch(repo, f"{ANOMALY}#staging", "--data", live(repo), "--rollback",
                      check=False)
    line = error_line(proc)
    assert "stage staging has no earlier holder than v1.1.0" in line
    assert out["decision"] == "retrain" and out["candidates"] == []
    assert repo.snapshot() == before


# -- the other kinds ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trend(tmp_path_factory) -> Repo:
    """sales: v1.0.0 trained on five weeks; v1.1.0 holds out the last three weeks, so it
    learnt an older level and misses the trend."""
    repo = trained(tmp_path_factory, tmp_path_factory.mktemp("trend"), "forecast", FORECAST)
    release(repo, FORECAST, "v1.0.0", "prod")
    new_version(repo, repo.path.parent, FORECAST, "forecast", param=("holdout_hours", "504"))
    release(repo, FORECAST, "v1.1.0", "prod")
    return repo


def test_forecast_that_misses_the_trend_rolls_back(trend):
    repo = trend
    data = write_windows(repo.path.parent / "live", "forecast", [4])
    before = repo.snapshot()
    _, out = watch(repo, f"{FORECAST}#prod", "--data", str(data / "w004.csv"), "--window", "84")
    assert repo.snapshot() == before
    assert out["decision"] == "rollback" and out["target"] == "v1.0.0"
    assert out["breaching_windows"] == ["w004.csv[0:84]", "w004.csv[84:168]"]
    assert all(b["value"] > 0.3 for b in out["breaches"] if b["measure"] == "outside_rate")
    assert out["candidates"][0]["passed"] is True
    # every hour of the window was forecast, from the hours before it
    assert [w["rows"] for w in out["windows"]] == [84, 84, 84, 84]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> Repo:
    """patients: v1.0.0 on the real labels; v1.1.0 also learnt 1000 rows all labelled
    malignant, so its probabilities are far too high."""
    from dvc_monitor.model.data import write_batch
    from dvc_monitor.kinds import kind_for

    repo = trained(tmp_path_factory, tmp_path_factory.mktemp("risk"), "risk", RISK)
    release(repo, RISK, "v1.0.0", "prod")
    bad = kind_for("risk").sample_batch(20, seed=0, rows=1000).assign(malignant=1)
    write_batch(bad, repo.path.parent / "mislabelled.csv")
    repo.dm("ingest", RISK, str(repo.path.parent / "mislabelled.csv"))
    repo.dvc("repro", f"models/{RISK}/dvc.yaml")
    repo.commit_all("learn from mislabelled rows")
    release(repo, RISK, "v1.1.0", "prod")
    return repo


def test_badly_calibrated_risk_version_rolls_back(calibration, tmp_path):
    # one test, so that the module's risk repository is built once
    repo = calibration
    data = write_windows(repo.path.parent / "live", "risk", [4, 5, 6])
    _, out = watch(repo, f"{RISK}#prod", "--data", str(data))
    assert out["decision"] == "rollback" and out["target"] == "v1.0.0"
    assert "brier" in {b["measure"] for b in out["breaches"]}
    assert all(w["measures"]["brier"] > 0.1 for w in out["windows"])
    cand = out["candidates"][0]
    assert all(w["measures"]["brier"] < 0.05 for w in cand["windows"])

    # without labels the label rules are not measured (and do not breach)
    unlabelled = write_windows(tmp_path / "unlabelled", "risk", [4, 5],
                               change=lambda f: f.drop(columns="malignant"))
    _, out = watch(repo, f"{RISK}@v1.0.0", "--data", str(unlabelled))
    assert out["decision"] == "ok"
    assert all(w["measures"]["brier"] is None for w in out["windows"])
    proc, _ = watch(repo, f"{RISK}@v1.0.0", "--data", str(unlabelled), "--labels",
                    "malignant", check=False)
    assert "has no label column 'malignant'; drop --labels" in error_line(proc)


def test_versions_without_reference_json_get_the_same_profile_from_their_holdout(flood):
    """A version evaluated before reference.json existed (its dvc.lock records no such
    output) gets its profile computed from its own holdout: the same numbers."""
    import copy
    from dataclasses import replace

    import numpy as np

    from dvc_monitor.model import state as model_state
    from dvc_monitor.evaluation.profiles import COMPUTED, load_profile

    state = model_state.read_state(flood.path, ANOMALY, f"{ANOMALY}@v1.0.0")
    model = model_state.load_model(state)
    stored = load_profile(state, model)
    assert stored.source.startswith(f"models/{ANOMALY}/reference.json at")
    lock = copy.deepcopy(state.lock)
    evaluate = lock["stages"]["evaluate"]
    evaluate["outs"] = [o for o in evaluate["outs"] if o["path"] != "reference.json"]
    computed = load_profile(replace(state, lock=lock), model)
    assert computed.source == COMPUTED
    assert computed.rows == stored.rows and computed.bins == stored.bins
    for key in ("edges", "fractions"):
        np.testing.assert_allclose(computed.score[key], stored.score[key], atol=1e-5)
        for f in stored.features:
            np.testing.assert_allclose(computed.features[f][key], stored.features[f][key],
                                       atol=1e-5)
    assert computed.measures == pytest.approx(stored.measures, abs=1e-5)

"""``serve --watch --auto-rollback`` applies the model's ``watch:`` rules to
its own live traffic and, on an alarm, rolls the stage back to the earlier holder that passes
the rules on the same windows, then swaps to it through its normal reload.

A real server process on a free 127.0.0.1 port over a real repository (the ``flood``
fixture: fraud-detector v1.0.0 with contamination 0.02 held prod, then v1.1.0 with 0.3
took it); live rows are the template's seeded sample batches sent over HTTP.
"""

from __future__ import annotations

import re

import pytest

from tests.support.monitoring import ANOMALY, error_line, metric, send_until
from tests.support.production import Server, assert_served_cleanly
from tests.support.registry import gto_json
from tests.support.repos import Repo, copy_repo

pytestmark = pytest.mark.slow

BAD, GOOD = "v1.1.0", "v1.0.0"
WINDOW = 200  # rows per live window; the template's rules: failure_limit 2, cooldown 3
BATCH = 50  # rows per request


def traffic(change=None):
    """Endless batches of live rows (seeded sample batches after the training data)."""
    from dvc_monitor.kinds import kind_for

    index = 10
    while True:
        frame = kind_for("anomaly").sample_batch(index, seed=0, rows=200)
        if change is not None:
            frame = change(frame)
        rows = frame.to_dict("records")
        for start in range(0, len(rows), BATCH):
            yield rows[start:start + BATCH]
        index += 1


def decided(health: dict) -> bool:
    return health["watch"]["last_decision"] is not None


def test_serve_watch_rolls_back_an_alert_flood_and_swaps_to_the_good_version(flood, tmp_path):
    repo = copy_repo(flood, tmp_path)
    head = repo.head()
    server = Server(repo, f"{ANOMALY}#prod", "--watch", "--auto-rollback",
                    "--window", str(WINDOW), "--poll", "1")
    try:
        rows = traffic()
        answers = send_until(server, rows, lambda h: h["version"] == GOOD)
        health = server.get("/health")
        # the good version's first window is measured too, and is quiet
        answers += send_until(server, rows, lambda h: h["watch"]["version"] == GOOD
                              and h["watch"]["windows"] >= 1)
        metrics = server.metrics()
        after = server.get("/health")
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr

    # no request failed; responses switch from the flooding version to the good one, once
    assert [status for status, _, _ in answers if status != 200] == []
    versions = [doc["version"] for _, _, doc in answers]
    assert all({k.lower(): v for k, v in headers.items()}["x-model-version"] == doc["version"]
               for _, headers, doc in answers)
    switch = versions.index(GOOD)
    assert set(versions[:switch]) == {BAD} and set(versions[switch:]) == {GOOD}
    assert switch * BATCH >= 2 * WINDOW  # failure_limit windows of v1.1.0 before acting

    decision = health["watch"]["last_decision"]
    assert decision["decision"] == "rollback" and decision["target"] == GOOD
    assert decision["version"] == BAD and decision["action"] == "rolled_back"
    assert decision["windows"] == ["live#1", "live#2"]
    assert "alert_rate max 0.05 breached" in decision["evidence"]

    # the stage tag moved to v1.0.0 through the verified rollback, and gto agrees
    assert repo.git("rev-parse", "HEAD^").stdout.strip() == head
    assert repo.head() == decision["commit"]
    body = repo.git("log", "-1", "--format=%B").stdout
    assert body.startswith(f"Roll back {ANOMALY} to {GOOD}")
    assert "alert_rate max 0.05 breached" in body and "live#1" in body
    tag = decision["tag"]
    assert re.fullmatch(rf"{ANOMALY}#prod#\d+", tag)
    assert repo.git("rev-parse", f"{tag}^{{commit}}").stdout.strip() == \
        repo.git("rev-list", "-n1", f"{ANOMALY}@{GOOD}").stdout.strip()
    assert [v["version"] for v in gto_json(repo, f"{ANOMALY}#prod")] == [GOOD]
    assert repo.git("status", "--porcelain").stdout == ""

    # /metrics: the decision, the breaches, and the live measures of both versions
    assert metric(metrics, "dvc_monitor_watch_decision", decision="rollback") == 1
    assert metric(metrics, "dvc_monitor_watch_decision", decision="ok") == 0
    assert metric(metrics, "dvc_monitor_watch_actions_total", action="rolled_back") == 1
    assert metric(metrics, "dvc_monitor_watch_breaches_total", version=BAD,
                  measure="alert_rate") >= 2
    assert metric(metrics, "dvc_monitor_watch_measure", version=BAD, measure="alert_rate") > 0.2
    # quiet by the rule (alert_rate max 0.05 breaches only above 0.05): which rows make up
    # the good version's first window depends on how many requests passed during the
    # rollback, and one of them gave exactly 10 alerts in 200 rows on a loaded machine
    assert metric(metrics, "dvc_monitor_watch_measure", version=GOOD,
                  measure="alert_rate") <= 0.05
    assert metric(metrics, "dvc_monitor_model_info", version=GOOD) == 1
    assert after["watch"]["last_window"]["version"] == GOOD
    assert after["watch"]["last_window"]["breaches"] == []


def test_serve_watch_on_drifted_traffic_decides_retrain_and_changes_nothing(flood):
    before = flood.snapshot()
    server = Server(flood, f"{ANOMALY}#prod", "--watch", "--auto-rollback",
                    "--window", str(WINDOW), "--poll", "1")
    drift = lambda f: f.assign(amount=f["amount"] * 4,  # noqa: E731
                               distance_from_home=f["distance_from_home"] * 5)
    try:
        answers = send_until(server, traffic(drift), decided)
        health = server.get("/health")
        metrics = server.metrics()
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
    assert [status for status, _, _ in answers if status != 200] == []
    assert {doc["version"] for _, _, doc in answers} == {BAD}
    decision = health["watch"]["last_decision"]
    assert decision["decision"] == "retrain" and decision["target"] is None
    assert decision["action"] == "none"
    assert "no candidate passes (v1.0.0)" in decision["evidence"]
    assert "drifted features: " in decision["evidence"]
    assert health["version"] == BAD
    assert metric(metrics, "dvc_monitor_watch_decision", decision="retrain") == 1
    assert metric(metrics, "dvc_monitor_watch_decision", decision="rollback") == 0
    assert metric(metrics, "dvc_monitor_watch_measure", version=BAD,
                  measure="psi_features") > 0.25
    assert flood.snapshot() == before


def test_serve_watch_refuses_windows_below_min_rows(flood):
    before = flood.snapshot()
    proc = flood.dm("serve", f"{ANOMALY}#prod", "--watch", "--window", "5", "--port", "0",
                    check=False, timeout=120)
    line = error_line(proc)
    assert proc.returncode == 2
    assert line == ("dvc-monitor: error: --window 5 is below the 100 rows a window needs to "
                    "be judged; use --window 100 or more, or lower watch.min_rows in "
                    f"models/{ANOMALY}/params.yaml")
    assert flood.snapshot() == before


def test_serve_watch_windows_below_min_rows_never_alarm(flood, tmp_path):
    """The rules are read again when a version is swapped in: after min_rows went up to 300,
    the flooding version's 200-row windows are shown as too few rows and never raise an
    alarm (the same traffic rolls it back with min_rows 100, see the first test)."""
    repo = copy_repo(flood, tmp_path)
    repo.dm("promote", ANOMALY, GOOD, "--stage", "prod")
    server = Server(repo, f"{ANOMALY}#prod", "--watch", "--auto-rollback",
                    "--window", str(WINDOW), "--poll", "1")
    try:
        params = repo.path / f"models/{ANOMALY}/params.yaml"
        text = params.read_text()
        assert "min_rows: 100" in text
        params.write_text(text.replace("min_rows: 100", "min_rows: 300"))
        repo.commit_all("watch: judge windows of 300 rows or more")
        repo.dm("promote", ANOMALY, BAD, "--stage", "prod")
        assert server.wait_for(lambda h: h["version"] == BAD)["version"] == BAD
        before = repo.snapshot()
        answers = send_until(server, traffic(), lambda h: h["watch"]["version"] == BAD
                             and h["watch"]["windows"] >= 3)
        health = server.get("/health")
        metrics = server.metrics()
    finally:
        code, stderr = server.stop()
    assert_served_cleanly(code, stderr, answers)
    assert {doc["version"] for _, _, doc in answers} == {BAD}
    watch = health["watch"]
    assert watch["rules"]["min_rows"] == 300 and watch["streak"] == 0
    assert watch["last_decision"] is None
    last = watch["last_window"]
    assert (last["version"], last["rows"], last["status"], last["too_few_rows"],
            last["breaches"], last["alarm"]) == (BAD, WINDOW, "too few rows", True, [], False)
    assert metric(metrics, "dvc_monitor_watch_too_few_rows_windows_total", version=BAD) >= 3
    assert "dvc_monitor_watch_alarms_total{" not in metrics
    assert f"windows of {WINDOW} rows are below watch.min_rows 300 for {BAD}" in stderr
    assert repo.snapshot() == before  # no rollback
    assert [v["version"] for v in gto_json(repo, f"{ANOMALY}#prod")] == [BAD]


@pytest.mark.parametrize("args, expected", [
    (["--repo", "file:///nowhere/registry.git"],
     "--auto-rollback needs a local repository: a clone of a URL is read-only"),
    (["--workers", "2"], "--auto-rollback runs in one process; use --workers 1"),
    ([], "--auto-rollback rolls back a stage; serve NAME#STAGE"),
    (["--window", "0"], "--window must be at least 1 row, got 0"),
])
def test_auto_rollback_refusals(git_repo: Repo, args, expected):
    ref = f"{ANOMALY}@v1.0.0" if not args else f"{ANOMALY}#prod"
    proc = git_repo.dm("serve", ref, "--auto-rollback", *args, "--port", "0", check=False)
    line = error_line(proc)
    assert line.startswith("dvc-monitor: error: ") and expected in line

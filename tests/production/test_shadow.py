"""`dvc-monitor serve NAME#prod --shadow NAME#staging`: a candidate scores the same live
rows off the request path. Real template models (the rollback tests' base repository),
real server processes, real HTTP; the stage is moved with a real `promote`."""

from __future__ import annotations

import concurrent.futures

import pandas as pd
import pytest

from tests.support.production import assert_served_cleanly, score_json
from tests.support.rollback import MODEL
from tests.support.shadow import (
    CANDIDATE, OLDEST, PROD, WINDOW, dumps, live_rows, post_rows, shadow_server,
    staged_repo, wait_for_shadow,
)


@pytest.fixture
def repo(rollback_base, tmp_path):
    return staged_repo(rollback_base, tmp_path / "copy")


def test_shadow_is_measured_while_only_prod_answers_and_follows_its_stage(repo, tmp_path):
    rows = live_rows(9, 2 * WINDOW)
    csv = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    expected = score_json(repo, f"{MODEL}@{PROD}", csv)["results"]
    assert expected != score_json(repo, f"{MODEL}@{CANDIDATE}", csv)["results"]

    server = shadow_server(repo)
    try:
        answers = post_rows(server, rows, 25)
        doc = wait_for_shadow(server, lambda d: len(d["windows"]) >= 2)
        text = server.metrics()
        repo.dm("promote", MODEL, OLDEST, "--stage", "staging", "-m", "next candidate")
        wait_for_shadow(server, lambda d: d["version"] == OLDEST)
        answers += post_rows(server, rows[:WINDOW], 50)
        after = wait_for_shadow(server, lambda d: d["last_window"]["shadow_version"] == OLDEST)
        after_text = server.metrics()
    finally:
        code, err = server.stop()
    assert_served_cleanly(code, err, answers)
    # only prod answers: its header, its version, and its scores exactly
    assert {h["x-model-version"] for _, h, _ in answers} == {PROD}
    assert {d["version"] for _, _, d in answers} == {PROD}
    assert [r for _, _, d in answers[:8] for r in d["results"]] == expected
    # the shadow measured both windows with the watch: rules, beside prod
    assert doc["version"] == CANDIDATE and doc["dropped"] == 0
    first = doc["windows"][0]
    assert (first["window"], first["rows"]) == ("shadow#1", WINDOW)
    assert (first["prod_version"], first["shadow_version"]) == (PROD, CANDIDATE)
    assert 0 <= first["agreement"] <= 1 and first["compared"] == WINDOW
    assert first["shadow"]["status"] in ("ok", "breach", "ALARM")
    assert set(first["shadow"]["measures"]) >= {"alert_rate", "psi_score"}
    assert first["scores"]["prod"]["p50"] <= first["scores"]["prod"]["p95"]
    assert doc["verdict"]["judged"] == 2 and doc["verdict"]["status"] in ("passes", "breaches")
    assert doc["rules"]["rules"][0]["measure"] == "alert_rate"
    for line in (f'dvc_monitor_shadow_info{{model="{MODEL}",version="{CANDIDATE}"}} 1.0',
                 f'dvc_monitor_shadow_windows_total{{model="{MODEL}"}} 2.0',
                 "dvc_monitor_shadow_dropped_total 0.0"):
        assert line in text
    assert f'dvc_monitor_shadow_agreement{{model="{MODEL}"}}' in text
    assert f'dvc_monitor_shadow_alert_rate{{model="{MODEL}",role="shadow",version="{CANDIDATE}"}}' in text
    # after the promote the shadow is the new holder of staging; prod still answers
    assert after["version"] == OLDEST
    assert after["last_window"]["prod_version"] == PROD
    assert f'dvc_monitor_shadow_info{{model="{MODEL}",version="{OLDEST}"}} 1.0' in after_text


def test_a_full_shadow_queue_drops_shadow_work_not_requests(repo):
    """A queue of one request and bursts of concurrent requests of 500 rows: every window
    of 100 rows is measured twice (both versions), so the shadow falls behind."""
    rows = live_rows(9, 500)
    body = dumps(rows)
    server = shadow_server(repo, "--shadow-queue", "1")
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: server.raw("POST", "/score", body, {
                "Content-Type": "application/json"}), range(64)))
        doc = server.get("/shadow")
        text = server.metrics()
    finally:
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err
    assert [status for status, _, _ in answers] == [200] * 64
    assert {h["x-model-version"] for _, h, _ in answers} == {PROD}
    assert doc["dropped"] > 0 and doc["queue"]["capacity"] == 1
    assert doc["dropped_rows"] == 500 * doc["dropped"]
    dropped = next(line for line in text.splitlines()
                   if line.startswith("dvc_monitor_shadow_dropped_total "))
    assert float(dropped.split()[1]) == doc["dropped"]


def test_shadow_of_another_model_is_refused(repo):
    proc = repo.dm("serve", f"{MODEL}#prod", "--shadow", "atm-watch#prod", "--port", "0",
                   check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"dvc-monitor: error: --shadow 'atm-watch#prod' names model 'atm-watch', but {MODEL} is "
        f"served; shadow another version of {MODEL} (e.g. --shadow {MODEL}#staging)"]


def test_a_forecast_shadow_measures_its_windows_with_their_lags(tmp_path_factory):
    """A forecast's windows need the hours before them: the shadow's training data, then
    the windows before (as for ``--watch``, on at once). The shadow here is the prod
    version itself, by version."""
    import json

    from dvc_monitor.kinds import kind_for
    from tests.support.production import MODELS, Server, shared_registry

    repo = shared_registry(tmp_path_factory)
    name = MODELS["forecast"]
    frame = kind_for("forecast").sample_batch(5, rows=672)  # four weeks of hours
    rows = json.loads(frame.to_json(orient="records", date_format="iso"))
    server = Server(repo, f"{name}#prod", "--shadow", f"{name}@v1.0.0", "--window", "100",
                    "--poll", "5", "--watch")
    try:
        answers = [server.score(rows[i:i + 336]) for i in (0, 336)]  # two weeks each
        doc = server.wait_for(lambda d: len(d["windows"]) >= 2 or d["errors"], 120, "/shadow")
        watch = server.wait_for(lambda h: h["watch"]["windows"] >= 6 or h["watch"]["error"],
                                120)["watch"]
    finally:
        code, err = server.stop()
    assert_served_cleanly(code, err, answers)
    assert doc["errors"] == 0, doc["error"]
    first, second = doc["windows"][:2]
    for w in (first, second):
        assert (w["rows"], w["shadow"]["too_few_rows"]) == (336, False)
        assert w["shadow"]["measures"] == w["prod"]["measures"]  # the same version
        # a request's rows are forecast from its earlier rows: those with their lags
        assert w["agreement"] == 1.0 and 0 < w["compared"] < 336, json.dumps(w)
        assert w["scores"]["prod"] == w["scores"]["shadow"]
    assert (watch["error"], watch["windows"]) == (None, 6)
    assert watch["last_window"]["too_few_rows"] is False

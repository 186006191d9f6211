"""`serve --shadow` records what its shadow measured as verdict tags, which `promote
--if-better` reads; `serve --auto-promote` promotes a proven shadow itself and swaps it in.
Real template models (the rollback tests' base repository), real server processes."""

from __future__ import annotations

import pytest

from tests.support.registry import assert_agrees_with_gto
from tests.support.rollback import MODEL
from tests.support.shadow import (
    CANDIDATE, PROD, WINDOW, live_rows, post_rows, shadow_server, staged_repo, wait_for_shadow,
)

DRIFT = dict(amount=4, distance_from_home=5)


@pytest.fixture
def repo(rollback_base, tmp_path):
    return staged_repo(rollback_base, tmp_path / "copy")


def drifted(rows: list[dict]) -> list[dict]:
    return [{**r, **{k: r[k] * v for k, v in DRIFT.items()}} for r in rows]


def recorded(doc: dict) -> bool:
    return doc["recording"]["verdicts"] >= 1


def test_serve_records_verdicts_that_promote_if_better_reads(repo):
    """Drifted traffic: the shadow breaches, its verdict is a tag, --if-better refuses (7);
    ordinary traffic on a second run: the newest verdict passes, --if-better promotes."""
    server = shadow_server(repo)
    try:
        answers = post_rows(server, drifted(live_rows(9, 3 * WINDOW)), 50)
        doc = wait_for_shadow(server, recorded)
    finally:
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err
    assert {h["x-model-version"] for _, h, _ in answers} == {PROD}
    tag = f"{MODEL}@{CANDIDATE}@shadow#1"
    assert doc["recording"]["last_verdict"] == tag and doc["recording"]["failures"] == 0
    assert f"recorded {tag}" in err
    event = next(e for e in repo.json("history", MODEL) if e["tag"] == tag)
    evidence = event["meta"]["shadow"]
    assert evidence["source"] == "serve" and evidence["holder"] == PROD
    assert evidence["stage"] == "prod" and evidence["judged"] == 3 and evidence["passed"] == 0
    assert [w["window"] for w in evidence["windows"]] == ["shadow#1", "shadow#2", "shadow#3"]
    assert_agrees_with_gto(repo, MODEL)  # GTO skips the verdict tag
    proc = repo.dm("promote", MODEL, CANDIDATE, "--stage", "prod", "--if-better", check=False)
    assert proc.returncode == 7 and "Traceback" not in proc.stderr
    assert "3 of the last 3 shadowed window(s) breached a rule" in proc.stderr
    assert "psi_features" in proc.stderr

    server = shadow_server(repo)
    try:
        post_rows(server, live_rows(9, 3 * WINDOW), 50)
        doc = wait_for_shadow(server, recorded)
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert doc["recording"]["last_verdict"] == f"{MODEL}@{CANDIDATE}@shadow#2"
    assert doc["verdict"]["status"] == "passes", doc["verdict"]
    proc = repo.dm("promote", MODEL, CANDIDATE, "--stage", "prod", "--if-better",
                   check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"Promoted {MODEL} {CANDIDATE} to prod" in proc.stdout
    assert "prod" in {v["version"]: v["stages"] for v in repo.json("versions", MODEL)}[CANDIDATE]
    assert_agrees_with_gto(repo, MODEL)


def test_auto_promote_swaps_in_a_proven_shadow(repo):
    server = shadow_server(repo, "--auto-promote")
    try:
        answers = post_rows(server, live_rows(9, 3 * WINDOW), 50)
        doc = wait_for_shadow(server, lambda d: d["recording"]["last_promotion"] is not None)
        server.wait_for(lambda d: d["version"] == CANDIDATE, 120)  # the Follower swaps
        answers += post_rows(server, live_rows(9, 50), 50)
    finally:
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err
    versions = [h["x-model-version"] for _, h, _ in answers]
    assert set(versions[:-1]) == {PROD} and versions[-1] == CANDIDATE, (versions, err)
    assert doc["recording"]["last_promotion"]["status"] == "promoted", doc["recording"]
    assert "auto-promote: promoted:" in err
    stages = {v["version"]: v["stages"] for v in repo.json("versions", MODEL)}
    assert "prod" in stages[CANDIDATE] and "prod" not in stages[PROD]
    event = [e for e in repo.json("history", MODEL) if e["event"] != "shadow"][-1]
    assert event["stage"] == "prod" and event["version"] == CANDIDATE
    block = event["meta"]["if_better"]
    assert block["automatic"] is True and block["trigger"] == "serve"
    assert block["from"] == PROD and block["windows"] == 3
    assert block["gate"]["passed"] is True
    assert "serve --auto-promote (automatic): if-better: passed" in repo.dm("history", MODEL).stdout
    assert_agrees_with_gto(repo, MODEL)


def test_watch_retrain_puts_a_candidate_in_staging_that_the_shadow_follows(repo):
    """serve --watch --retrain: drifted traffic raises an alarm, the decision is retrain, a
    candidate trained on the alarm's windows is registered in staging off the request
    path, and the shadow (following staging) swaps to it; the branch and prod untouched."""
    head = repo.head()
    server = shadow_server(repo, "--watch", "--retrain")
    try:
        answers = post_rows(server, drifted(live_rows(9, 2 * WINDOW)), 50)
        health = server.wait_for(lambda d: (d["watch"]["last_retrain"] or {}).get("status")
                                 not in (None, "running"), 300)
        retrain = health["watch"]["last_retrain"]
        shadow = wait_for_shadow(server, lambda d: d["version"] == retrain["candidate"])
    finally:
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err
    assert {h["x-model-version"] for _, h, _ in answers} == {PROD}
    assert health["watch"]["last_decision"]["decision"] == "retrain"
    assert retrain["status"] == "registered", retrain
    candidate = retrain["candidate"]
    assert shadow["version"] == candidate and shadow["ref"] == f"{MODEL}#staging"
    stages = {v["version"]: v["stages"] for v in repo.json("versions", MODEL)}
    assert stages[candidate] == ["staging"] and stages[PROD] == ["prod"]
    block = next(e for e in repo.json("history", MODEL)
                 if e["event"] == "register" and e["version"] == candidate)["meta"]["retrain"]
    assert block["from"] == PROD and block["rows"] == 2 * WINDOW
    assert repo.head() == head
    assert repo.git("status", "--porcelain").stdout == ""
    assert_agrees_with_gto(repo, MODEL)


def test_refusals_of_auto_promote_and_retrain(repo):
    """One line, exit 2, before anything is loaded or served."""
    cases = {
        ("--auto-promote",): "--auto-promote promotes the shadow: give --shadow",
        ("--shadow", f"{MODEL}#staging", "--auto-promote", "--workers", "2"):
            "--auto-promote runs in one process",
        ("--shadow", f"{MODEL}#staging", "--windows", "0"): "--windows must be at least 1",
        ("--retrain", "--workers", "2"): "--retrain registers a candidate in this repository",
    }
    for args, message in cases.items():
        proc = repo.dm("serve", f"{MODEL}#prod", *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = repo.dm("serve", f"{MODEL}@{CANDIDATE}", "--shadow", f"{MODEL}#staging",
                   "--auto-promote", check=False)
    assert proc.returncode == 2 and "serve NAME#STAGE" in proc.stderr

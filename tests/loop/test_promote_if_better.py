"""Shadow verdicts (real windows through the real engine) and promote --if-better: refused
with the evidence, exit 7 (not proven) or 5 (gate), or promoted; GTO agrees throughout."""

from __future__ import annotations

import json

from tests.loop.conftest import mixed_windows, shadow
from tests.support.monitoring import ANOMALY
from tests.support.registry import assert_agrees_with_gto, gto, gto_json


def test_a_shadow_verdict_is_a_tag_gto_skips_and_history_shows(loop_copy, retrained):
    repo = loop_copy
    shown = gto_json(repo, ANOMALY)
    event, results = shadow(repo, "v1.0.1", retrained.later)
    assert event.tag == f"{ANOMALY}@v1.0.1@shadow#1"
    assert repo.git("cat-file", "-t", event.tag).stdout.strip() == "tag"  # annotated
    assert gto_json(repo, ANOMALY) == shown  # GTO skips it: same state
    assert gto(repo, "history", ANOMALY).returncode == 0
    assert_agrees_with_gto(repo, ANOMALY)
    proc = repo.dm("versions", ANOMALY)
    assert "not a valid GTO event tag" not in proc.stderr
    rows = repo.json("history", ANOMALY)
    verdict = next(e for e in rows if e["tag"] == event.tag)
    assert verdict["event"] == "shadow" and verdict["version"] == "v1.0.1"
    evidence = verdict["meta"]["shadow"]
    assert [w["window"] for w in evidence["windows"]] == ["w013.csv", "w014.csv", "w015.csv"]
    assert evidence["judged"] == 3 and evidence["passed"] == sum(
        1 for r in results if not r.breached)
    assert evidence["holder"] == "v1.0.0" and evidence["stage"] == "prod"
    assert "shadow: passed every watch rule on" in repo.dm("history", ANOMALY).stdout
    # a second verdict takes the next counter
    again, _ = shadow(repo, "v1.0.1", retrained.later)
    assert again.tag == f"{ANOMALY}@v1.0.1@shadow#2"


def test_if_better_refuses_without_evidence_and_with_breaches(loop_copy, retrained):
    repo = loop_copy
    before = repo.git("tag", "-l").stdout
    proc = repo.dm("promote", ANOMALY, "v1.0.1", "--stage", "prod", "--if-better", check=False)
    assert proc.returncode == 7 and "Traceback" not in proc.stderr
    assert "no shadow verdict seen" in proc.stderr
    # the candidate on drifted windows it never saw: psi_features breached on each
    _, results = shadow(repo, "v1.0.1", retrained.later)
    assert all(r.breached for r in results)
    proc = repo.dm("promote", ANOMALY, "v1.0.1", "--stage", "prod", "--if-better", check=False)
    assert proc.returncode == 7
    line = proc.stderr.strip().splitlines()[-1]
    assert "3 of the last 3 shadowed window(s) breached a rule" in line
    assert "w013.csv (" in line and "psi_features is" in line and "w015.csv (" in line
    assert "3 judged shadow window(s) in 1 verdict(s) seen" in line
    proc = repo.dm("promote", ANOMALY, "v1.0.1", "--stage", "prod", "--if-better",
                   "--windows", "5", check=False)
    assert proc.returncode == 7
    tags = repo.git("tag", "-l").stdout
    assert set(tags.split()) - set(before.split()) == {f"{ANOMALY}@v1.0.1@shadow#1"}
    assert {v["version"]: v["stages"] for v in repo.json("versions", ANOMALY)}["v1.0.0"] \
        == ["prod"]
    assert_agrees_with_gto(repo, ANOMALY)


def test_if_better_promotes_only_after_enough_passing_windows_and_the_gate(loop_copy, tmp_path):
    """The candidate passes every rule on live traffic like its training data; prod's gate
    (its recorded metrics against v1.0.0's) refuses it with exit 5; a stage with no holder
    (no gate to run) takes it, with the evidence in the tag's block."""
    repo = loop_copy
    mixed = mixed_windows(tmp_path / "mixed", range(20, 22))
    _, results = shadow(repo, "v1.0.1", mixed)
    assert not any(r.breached for r in results)
    proc = repo.dm("promote", ANOMALY, "v1.0.1", "--stage", "canary", "--if-better",
                   check=False)
    assert proc.returncode == 7 and "it needs 3 passing shadowed window(s)" in proc.stderr
    shadow(repo, "v1.0.1", mixed_windows(tmp_path / "more", range(22, 24)))
    proc = repo.dm("promote", ANOMALY, "v1.0.1", "--stage", "prod", "--if-better", check=False)
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    assert "quality gate against v1.0.0 fails" in proc.stderr
    done = json.loads(repo.dm("promote", ANOMALY, "v1.0.1", "--stage", "canary",
                              "--if-better", "--windows", "4", "--json").stdout)
    assert done["version"] == "v1.0.1" and done["stage"] == "canary"
    assert [w["window"] for w in done["windows"]] == ["w020.csv", "w021.csv", "w022.csv",
                                                      "w023.csv"]
    stages = {v["version"]: v["stages"] for v in repo.json("versions", ANOMALY)}
    assert sorted(stages["v1.0.1"]) == ["canary", "staging"] and stages["v1.0.0"] == ["prod"]
    assert_agrees_with_gto(repo, ANOMALY)
    event = repo.json("history", ANOMALY)[-1]
    assert event["tag"] == done["tag"] and event["stage"] == "canary"
    assert event["meta"]["if_better"]["windows"] == 4
    assert event["meta"]["if_better"]["window_names"] == [w["window"] for w in done["windows"]]
    assert "if-better: passed every watch rule on 4 shadowed" in repo.dm("history",
                                                                         ANOMALY).stdout


def test_if_better_promotes_a_proven_candidate_to_prod(loop_copy, retrained):
    """v1.1.0 (one more batch of ordinary data) shadows prod on ordinary live windows and
    passes every rule on each; its gate against v1.0.0 passes: it takes prod."""
    from tests.support.monitoring import release
    from tests.support.repos import new_version

    repo = loop_copy
    new_version(repo, repo.path.parent, ANOMALY, "anomaly", batch=4)
    release(repo, ANOMALY, "v1.1.0")
    _, results = shadow(repo, "v1.1.0", retrained.normal)
    assert len(results) == 3 and not any(r.breached for r in results)
    proc = repo.dm("promote", ANOMALY, "v1.1.0", "--stage", "prod", "--if-better")
    assert "passed every watch rule on its last 3 shadowed window(s) and the gate against " \
           "v1.0.0" in proc.stdout
    assert f"Promoted {ANOMALY} v1.1.0 to prod" in proc.stdout
    stages = {v["version"]: v["stages"] for v in repo.json("versions", ANOMALY)}
    assert stages["v1.1.0"] == ["prod"] and stages["v1.0.0"] == []
    assert_agrees_with_gto(repo, ANOMALY)
    event = repo.json("history", ANOMALY)[-1]
    assert event["meta"]["if_better"]["gate"] == {"passed": True, "base": "v1.0.0"}

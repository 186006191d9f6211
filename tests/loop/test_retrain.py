"""watch --retrain: a candidate trained on the drifted live windows, on its own branch,
registered in staging and reviewed; the user's branch, tree and index untouched."""

from __future__ import annotations

import io

from tests.loop.conftest import repo_state
from tests.support.monitoring import ANOMALY
from tests.support.registry import assert_agrees_with_gto, gto


def test_drifted_windows_give_a_registered_candidate_on_its_own_branch(retrained):
    repo, out = retrained.repo, retrained.out
    assert retrained.proc.returncode == 0, retrained.proc.stderr
    assert out["decision"] == "retrain"
    made = out["retrained"]
    assert made["version"] == "v1.0.1" and made["stage"] == "staging"
    assert made["base_version"] == "v1.0.0"
    assert made["branch"].startswith(f"dvc-monitor/retrain/{ANOMALY}/")
    tip = repo.git("rev-parse", f"refs/heads/{made['branch']}").stdout.strip()
    assert tip == made["commit"]
    part = repo.git("show", f"{tip}:models/{ANOMALY}/data.dvc").stdout
    assert part != repo.git("show", f"HEAD:models/{ANOMALY}/data.dvc").stdout
    versions = {v["version"]: v for v in repo.json("versions", ANOMALY)}
    assert versions["v1.0.1"]["commit"] == tip and versions["v1.0.1"]["stages"] == ["staging"]
    assert versions["v1.0.0"]["stages"] == ["prod"]  # prod untouched
    assert_agrees_with_gto(repo, ANOMALY)
    assert made["rows"] == 1800 and made["judged"] == 3
    assert made["next"] == f"dvc-monitor promote {ANOMALY} v1.0.1 --stage prod --if-better"


def test_the_candidate_data_is_the_old_data_plus_the_live_windows(retrained):
    import pandas as pd

    from dvc.api import open as dvc_open

    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.monitoring.windows import read_windows

    repo, made = retrained.repo, retrained.out["retrained"]
    layout = ModelLayout(ANOMALY)
    live = pd.concat([w.rows for w in read_windows(retrained.live)], ignore_index=True)
    files = repo.git("ls-tree", "-r", "--name-only", made["commit"], layout.dir).stdout
    assert f"{layout.data}.dvc" in files
    # the new partition, read back through DVC at the candidate's commit
    with dvc_open(f"{layout.data}/{made['partition']}", repo=str(repo.path),
                  rev=made["commit"]) as fh:
        batch = pd.read_csv(io.StringIO(fh.read()))
    assert len(batch) == len(live) == 1800
    assert list(batch.columns) == list(live.columns)
    assert ((batch["amount"] - live["amount"]).abs() < 1e-6 * live["amount"].abs().max()).all()
    assert not (repo.path / layout.data / made["partition"]).exists()  # not on main


def test_nothing_changes_on_the_current_branch(retrained):
    assert retrained.after == retrained.before
    assert retrained.after == repo_state(retrained.repo)
    # the temporary worktree is gone
    assert retrained.repo.git("worktree", "list").stdout.count("\n") == 1


def test_the_review_compares_the_candidate_with_the_holder(retrained):
    made = retrained.out["retrained"]
    from pathlib import Path

    report = Path(made["report"])
    text = report.read_text()
    assert "Live windows: v1.0.0 (watched) and v1.0.1 (retrained)" in text
    assert all(Path(p).is_file() for p in made["plots"]) and made["plots"]
    assert made["gate"] is not None and "passed" in made["gate"]
    # the watched version breached on every live window; the candidate is measured too
    assert all(not w["base"]["passed"] for w in made["windows"])
    assert {w["window"] for w in made["windows"]} == {"w010.csv", "w011.csv", "w012.csv"}
    # the registration's block says what it was retrained from, and history shows it
    events = retrained.repo.json("history", ANOMALY)
    reg = next(e for e in events if e["tag"] == f"{ANOMALY}@v1.0.1")
    assert reg["meta"]["retrain"]["from"] == "v1.0.0"
    assert reg["meta"]["retrain"]["windows"] == ["w010.csv", "w011.csv", "w012.csv"]
    assert reg["meta"]["retrain"]["branch"] == made["branch"]
    table = retrained.repo.dm("history", ANOMALY).stdout
    assert "retrained from v1.0.0" in table
    assert gto(retrained.repo, "history", ANOMALY).returncode == 0


def test_the_candidate_stage_may_not_be_the_watched_one(loop_copy, retrained):
    proc = loop_copy.dm("watch", f"{ANOMALY}#prod", "--data", str(retrained.live),
                        "--retrain", "--candidate-stage", "prod", check=False)
    assert proc.returncode == 2 and "must not be the watched stage prod" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_failed_retrain_leaves_the_repository_as_found(loop_copy, tmp_path):
    """Live windows that ingest refuses (a row with a missing label): one line, nothing
    registered, no branch, no worktree."""
    from tests.support.monitoring import write_windows

    bad = write_windows(tmp_path / "bad", "anomaly", range(30, 33), rows=600,
                        change=lambda f: f.assign(amount=f["amount"] * 4,
                                                  is_fraud=f["is_fraud"].astype(float)
                                                  .where(f.index != 3)))
    before = repo_state(loop_copy)
    tags = loop_copy.git("tag", "-l").stdout
    branches = loop_copy.git("branch", "--list").stdout
    proc = loop_copy.dm("watch", f"{ANOMALY}#prod", "--data", str(bad), "--retrain",
                        check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert "retrain of fraud-detector failed while" in error
    assert "nothing was registered and the repository is as it was" in error
    assert repo_state(loop_copy) == before
    assert loop_copy.git("tag", "-l").stdout == tags
    assert loop_copy.git("branch", "--list").stdout == branches

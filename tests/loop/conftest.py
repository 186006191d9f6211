"""Fixtures of the closed loop (watch --retrain, shadow verdicts, promote --if-better).

One retrain per test session (``retrained``): a trained anomaly model whose v1.0.0 holds
prod is watched on drifted live windows with ``--retrain``; the tests read what it made.
Tests that write (verdicts, promotions) work on a private copy (``loop_copy``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.monitoring import ANOMALY, release, write_windows
from tests.support.repos import Repo, copy_repo, trained_anomaly

DRIFT = dict(amount=4, distance_from_home=5)


def drift(frame):
    return frame.assign(**{k: frame[k] * v for k, v in DRIFT.items()})


@dataclass
class Retrain:
    repo: Repo
    before: dict  # what the user's repository looked like before the retrain
    after: dict
    proc: object  # the watch --retrain process
    out: dict  # its --json
    live: Path  # the drifted windows it was trained on
    later: Path  # drifted windows after them (never ingested)
    normal: Path  # windows like the training data


def repo_state(repo: Repo) -> dict:
    """Everything of the user's repository a retrain must leave as it is."""
    return {
        "status": repo.git("status", "--porcelain", "--untracked-files=all").stdout,
        "head": repo.head(),
        "branch": repo.git("symbolic-ref", "HEAD").stdout.strip(),
        "tip": repo.git("rev-parse", "refs/heads/main").stdout.strip(),
        "index": repo.git("ls-files", "-s").stdout,
        "worktrees": repo.git("worktree", "list", "--porcelain").stdout,
        "files": repo.snapshot()["files"],
    }


@pytest.fixture(scope="session")
def retrained(tmp_path_factory) -> Retrain:
    folder = tmp_path_factory.mktemp("loop")
    repo = trained_anomaly(tmp_path_factory, folder)
    release(repo, ANOMALY, "v1.0.0", "prod")
    live = write_windows(folder / "live", "anomaly", range(10, 13), rows=600, change=drift)
    later = write_windows(folder / "later", "anomaly", range(13, 16), rows=600, change=drift)
    normal = write_windows(folder / "normal", "anomaly", range(16, 19), rows=600)
    before = repo_state(repo)
    proc = repo.dm("watch", f"{ANOMALY}#prod", "--data", str(live), "--retrain", "--json",
                   check=False)
    out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return Retrain(repo, before, repo_state(repo), proc, out, live, later, normal)


@pytest.fixture
def loop_copy(retrained, tmp_path) -> Repo:
    """A private copy of the retrained repository, for tests that write tags."""
    return copy_repo(retrained.repo, tmp_path)


def mixed_windows(folder: Path, indices) -> Path:
    """Live windows where 3 rows in 8 drifted (the share of the retrained candidate's data
    that came from the drifted live windows): what the candidate was trained for."""
    import pandas as pd

    from dvc_monitor.kinds import kind_for
    from dvc_monitor.model.data import write_batch

    kind = kind_for("anomaly")
    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        frame = pd.concat([kind.sample_batch(i, seed=0, rows=1000),
                           drift(kind.sample_batch(i + 50, seed=0, rows=600))],
                          ignore_index=True)
        write_batch(frame, folder / f"w{i:03d}.csv")
    return folder


def shadow(repo: Repo, version: str, windows: Path, holder: str = "v1.0.0",
           stage: str = "prod"):
    """Judge ``version`` on the live ``windows`` with the real engine (as ``serve
    --shadow`` does) and record the shadow verdict; the verdict's event and the results."""
    from dvc_monitor.monitoring.rules import rules_of
    from dvc_monitor.monitoring.shadow import (
        record_shadow_verdict,
        shadow_windows,
        subject_loader,
    )
    from dvc_monitor.monitoring.windows import read_windows
    from dvc_monitor.registry.state import Registry

    subject = subject_loader(repo.path, Registry.load(repo.path), ANOMALY)(version)
    rules, _ = rules_of(subject.state.params, subject.spec, subject.state.layout.params)
    results = shadow_windows(subject, read_windows(windows), rules)
    event = record_shadow_verdict(repo.path, ANOMALY, version, results, rules, holder=holder,
                                  stage=stage, source="test")
    return event, results

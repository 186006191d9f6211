"""Benchmark: from a ``retrain`` decision to a registered candidate, against the plain steps.

Builds a repository with the anomaly template (v1.0.0 in prod) and 3 drifted live windows
of 600 rows (amount x4, distance_from_home x5: the decision is ``retrain``). Then, on fresh
copies of that repository, alternating, ``--rounds`` times each:

retrain   ``api.watch(..., retrain=True)``; timed: the retrain's own steps up to the
          registered candidate (``Retrained.timings``: worktree and branch, shared cache,
          checkout and ingest; ``dvc repro``; commit, register and the staging tag);
          the review after it (scoring the windows, the report) is printed apart
plain     the same by hand on the user's branch: ``api.ingest`` of the same rows as one
          batch, ``dvc repro`` (the CLI, as a user runs it), ``git add``/``commit``,
          ``api.register``, ``api.promote`` to staging

and prints the medians and their ratio (target: at most 1.1x).

Usage: .venv/bin/python bench/bench_loop.py [--rounds 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import anomaly_repo  # noqa: E402

NAME = "fraud-detector"


def build(root: Path) -> tuple[Path, Path]:
    from dvc_monitor.kinds import kind_for
    from dvc_monitor.model.data import write_batch

    repo, sh = anomaly_repo(root, NAME)
    sh("git", "config", "user.name", "Bench")  # for the commits made in this process
    sh("git", "config", "user.email", "bench@example.com")
    live = root / "live"
    live.mkdir()
    for i in range(3):
        frame = kind_for("anomaly").sample_batch(10 + i, seed=0, rows=600)
        frame = frame.assign(amount=frame["amount"] * 4,
                             distance_from_home=frame["distance_from_home"] * 5)
        write_batch(frame, live / f"w{i:03d}.csv")
    return repo, live


def fresh(repo: Path, into: Path) -> Path:
    shutil.copytree(repo, into, symlinks=True)
    return into


def retrain(repo: Path, live: Path) -> tuple[float, float]:
    from dvc_monitor import api

    result = api.watch(repo, f"{NAME}#prod", live, retrain=True)
    assert result.decision == "retrain" and result.retrained, result.evidence
    t = result.retrained["timings"]
    return t["ingest"] + t["repro"] + t["register"], t["review"]


def plain(repo: Path, live: Path) -> float:
    from dvc_monitor import api
    from dvc_monitor.monitoring.retrain import live_batch
    from dvc_monitor.monitoring.windows import read_windows

    batch = live_batch(read_windows(live))  # the same rows, read before the clock starts
    t = time.perf_counter()
    api.ingest(repo, NAME, io.BytesIO(batch))
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q", f"models/{NAME}/dvc.yaml"],
                   cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "retrain by hand"], cwd=repo, check=True)
    mv = api.register(repo, NAME)
    api.promote(repo, NAME, mv.version, "staging")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", metavar="DIR")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-loop-"))
    try:
        print("building the repository (init, repro, register v1.0.0 in prod) ...", flush=True)
        repo, live = build(root)
        ours, theirs, review = [], [], []
        for i in range(args.rounds):
            took, rev = retrain(fresh(repo, root / f"r{i}"), live)
            ours.append(took)
            review.append(rev)
            theirs.append(plain(fresh(repo, root / f"p{i}"), live))
            print(f"round {i + 1}: retrain {ours[-1]:.2f} s (+ review {rev:.2f} s), "
                  f"plain steps {theirs[-1]:.2f} s", flush=True)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"\ndecision -> registered candidate: {a:.2f} s (median of {args.rounds})")
        print(f"ingest + dvc repro + commit + register + promote: {b:.2f} s")
        print(f"ratio: {a / b:.2f}x (target <= 1.1x); the review after it: "
              f"{statistics.median(review):.2f} s")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: ``dvc-monitor watch`` per 10,000 rows vs scoring alone, and its alarms.

Builds a repository with the anomaly template: v1.0.0 (contamination 0.02) in prod, then
v1.1.0 (contamination 0.3: an alert flood) in prod. Then, in one run:

timing      the same 10 windows of 1,000 rows (10,000 rows), the model already loaded:
            scoring alone:  ``evaluation.scoring.score_rows`` (the kind's score and alerts)
            watch:          ``Watcher.observe`` (scoring + PSI of score and features,
                            rates, label metrics, rules)
            and ``api.watch`` end to end on CSV files (reading, loading, deciding).
scenarios   seeded windows of 500 rows (sample batches after the training data):
            stationary  fraud-detector@v1.0.0 on 50 windows: no alarm expected
            flood       fraud-detector#prod (v1.1.0) on 10 windows: an alarm within
                        failure_limit windows, decision rollback to v1.0.0
            drift       fraud-detector#prod on 10 windows with amount x4 and
                        distance_from_home x5: decision retrain (v1.0.0 fails as well)
            each for --seeds seeds; prints false alarms, detection delay, decisions.

Usage: .venv/bin/python bench/bench_watch.py [--seeds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from benchlib import BIN, anomaly_repo  # noqa: E402

NAME = "fraud-detector"
WINDOW = 500




def build(root: Path) -> Path:
    repo, sh = anomaly_repo(root, NAME)
    dm = str(BIN / "dvc-monitor")
    params = repo / f"models/{NAME}/params.yaml"
    params.write_text(params.read_text().replace("contamination: 0.02", "contamination: 0.3"))
    sh(str(BIN / "dvc"), "repro", f"models/{NAME}/dvc.yaml")
    sh("git", "add", "-A")
    sh("git", "commit", "-q", "-m", "v1.1.0: contamination 0.3")
    sh(dm, "register", NAME, "--version", "v1.1.0")
    sh(dm, "promote", NAME, "v1.1.0", "--stage", "prod")
    return repo


def windows_dir(folder: Path, seed: int, count: int, drift: bool = False) -> Path:
    from dvc_monitor.model.data import write_batch
    from dvc_monitor.kinds import kind_for

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frame = kind_for("anomaly").sample_batch(100 + i, seed=seed, rows=WINDOW)
        if drift:
            frame = frame.assign(amount=frame["amount"] * 4,
                                 distance_from_home=frame["distance_from_home"] * 5)
        write_batch(frame, folder / f"w{i:03d}.csv")
    return folder


def timing(repo: Path, work: Path) -> tuple[float, float, float]:
    from dvc_monitor import api
    from dvc_monitor.evaluation.profiles import load_profile
    from dvc_monitor.evaluation.scoring import score_rows
    from dvc_monitor.monitoring.rules import rules_of
    from dvc_monitor.monitoring.watch import Subject, Watcher, read_windows
    from dvc_monitor.model import state as model_state

    state = model_state.read_state(repo, NAME, "HEAD")
    model = model_state.load_model(state)
    subject = Subject(NAME, "v1.1.0", state.kind, state.config, model,
                      load_profile(state, model))
    rules, _ = rules_of(state.params, state.kind, "params.yaml")
    folder = windows_dir(work / "timing", seed=99, count=1)
    from dvc_monitor.model.data import write_batch
    from dvc_monitor.kinds import kind_for

    big = kind_for("anomaly").sample_batch(500, seed=99, rows=10_000)
    shutil.rmtree(folder)
    folder.mkdir()
    write_batch(big, folder / "rows.csv")
    windows = read_windows(folder / "rows.csv", 1000)
    score, watch = [], []
    for _ in range(3):
        t = time.perf_counter()
        for w in windows:
            score_rows(state.kind, model, state.config, w.rows)
        score.append(time.perf_counter() - t)
        watcher = Watcher(subject, rules)
        t = time.perf_counter()
        for w in windows:
            watcher.observe(w)
        watch.append(time.perf_counter() - t)
    t = time.perf_counter()
    api.watch(repo, f"{NAME}#prod", folder / "rows.csv", window=1000)
    end_to_end = time.perf_counter() - t
    return min(score), min(watch), end_to_end


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep it")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        from dvc_monitor import api

        print(f"building the repository in {root} ...", file=sys.stderr)
        repo = build(root)
        score, watch, e2e = timing(repo, root)
        print(f"\nper 10,000 rows (10 windows of 1,000; min of 3): scoring alone "
              f"{score * 1000:.0f} ms, watch {watch * 1000:.0f} ms "
              f"({watch / score:.2f}x scoring); api.watch end to end {e2e:.2f} s "
              "(CSV, registry, model and profile loading, candidate scoring)")
        stats = {"stationary": [], "flood": [], "drift": []}
        for seed in range(1, args.seeds + 1):
            work = root / f"seed-{seed}"
            stationary = api.watch(repo, f"{NAME}@v1.0.0", windows_dir(work / "stationary",
                                                                       seed, 50))
            flood = api.watch(repo, f"{NAME}#prod", windows_dir(work / "flood", seed, 10))
            drift = api.watch(repo, f"{NAME}#prod", windows_dir(work / "drift", seed, 10,
                                                                drift=True))
            stats["stationary"].append((sum(w.alarm for w in stationary.windows),
                                        sum(w.breached for w in stationary.windows),
                                        stationary.decision))
            delay = None if flood.alarm_window is None else flood.alarm_window + 1
            stats["flood"].append((delay, flood.decision, flood.target))
            stats["drift"].append((drift.decision, list(drift.drifted_features)))
            print(f"seed {seed}: stationary {stationary.decision} "
                  f"({stats['stationary'][-1][0]} alarms, {stats['stationary'][-1][1]}/50 "
                  f"windows breaching); flood {flood.decision} -> {flood.target} after "
                  f"{delay} windows; drift {drift.decision} "
                  f"(features {', '.join(drift.drifted_features)})", file=sys.stderr)
        limit = 2
        false_alarms = sum(a for a, _, _ in stats["stationary"])
        breaching = sum(b for _, b, _ in stats["stationary"])
        delays = [d for d, _, _ in stats["flood"]]
        caught = sum(1 for d, dec, t in stats["flood"]
                     if d is not None and d <= limit and dec == "rollback" and t == "v1.0.0")
        retrain = sum(1 for dec, _ in stats["drift"] if dec == "retrain")
        n = args.seeds
        print(f"\n{'scenario':<12} {'result':<58} goal")
        print(f"{'stationary':<12} {false_alarms} false alarms over {50 * n} windows "
              f"({breaching} single breaching windows){'':<6} 0 alarms: "
              f"{'met' if false_alarms == 0 else 'MISSED'}")
        print(f"{'flood':<12} caught in {caught}/{n} runs, detection delay "
              f"{statistics.median([d for d in delays if d] or [0]):.0f} windows "
              f"(max {max([d for d in delays if d] or [0])}){'':<12} <= failure_limit "
              f"({limit}): {'met' if caught == n else 'MISSED'}")
        print(f"{'drift':<12} retrain in {retrain}/{n} runs, no rollback{'':<27} retrain: "
              f"{'met' if retrain == n else 'MISSED'}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

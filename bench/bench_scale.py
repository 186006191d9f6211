"""Benchmark: ``score`` and ``watch`` with ``--engine dask`` on a local cluster of two
worker processes, against one process.

Builds a repository with the anomaly template (fraud-detector v1.0.0 in prod), then
generates ``--rows`` rows (default 10 million) of its sample data as Parquet files of one
million rows each, cached in the temporary folder between runs. In one run:

score   dask     ``dvc-monitor score REF DATA/ --engine dask --workers 2 -o OUT/``
                 (the CLI, end to end: cluster start, one model load per worker,
                 Parquet parts written)
        dask, running scheduler
                 the same with ``--scheduler ADDRESS``: a ``dask scheduler`` and two
                 ``dask worker`` processes started beforehand, each in a session of its
                 own, as on separate machines (Linux shares a busy machine's CPU between
                 sessions, "autogroup": the workers of one local cluster share one
                 session's part of it, however many cores there are)
        single   ``dvc-monitor score REF DATA/ -o OUT.parquet``: one process, streamed
                 in chunks (``--chunk-rows``, the default), the same per-chunk function
                 (``score_chunk``) each Dask partition runs; one Parquet file written
        plain    pandas and ``score_samples`` in one process: every row read at once,
                 scored with the estimator, no checks, no result columns (if it fits:
                 skipped above ``--plain-max`` rows)
        The results of dask and single are compared row for row.
watch   dask     ``dvc-monitor watch REF --data DATA.csv --engine dask --workers 2
                 --window W --json``, and the same on the running scheduler
        single   ``dvc-monitor watch REF --data DATA.csv --window W --json``
        on the first ``--watch-rows`` rows (default 2 million: one-process watch reads
        its whole file); the two results are compared measure for measure.

Prints rows per second and the ratios (target: dask at least 1.6x one process on this
2-core machine).

Usage: .venv/bin/python bench/bench_scale.py [--rows 10000000] [--watch-rows 2000000]
       [--window 100000] [--plain-max 20000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from benchlib import BIN, anomaly_repo, env_for

NAME = "fraud-detector"
FILE_ROWS = 1_000_000


def data(rows: int) -> Path:
    """``rows`` rows of sample transactions as Parquet files of ``FILE_ROWS`` rows,
    generated once and kept in the temporary folder."""
    from dvc_monitor.kinds import kind_for

    folder = Path(tempfile.gettempdir()) / "dvc-monitor-bench-scale" / f"rows-{rows}"
    done = folder / "_complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    kind = kind_for("anomaly")
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        kind.sample_batch(200 + i, seed=7, rows=n).to_parquet(folder / f"part-{i:04d}.parquet",
                                                               index=False)
    done.write_text("ok\n")
    return folder


def children_cpu() -> float:
    """CPU seconds of the finished child processes (and the workers they waited for)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], cwd: Path, env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds, the process) of a command."""
    started, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args[:4])}... exited {proc.returncode}: {proc.stderr[-2000:]}")
    return seconds, children_cpu() - cpu, proc


def load() -> str:
    """The machine's load average: other work on the cores skews every wall time."""
    import os

    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


@contextmanager
def running_cluster(root: Path, env: dict, workers: int = 2):
    """The address of a ``dask scheduler`` with ``workers`` ``dask worker`` processes (one
    thread each), every process in a session of its own; stopped afterwards."""
    import socket

    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    logs = open(root / "cluster.log", "w")
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=logs, stderr=logs, start_new_session=True)]
    try:
        with Client(address, timeout="120s") as client:
            procs += [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1",
                                        "--nthreads", "1", "--no-dashboard"], env=env,
                                       stdout=logs, stderr=logs, start_new_session=True)
                      for _ in range(workers)]
            client.wait_for_workers(workers, timeout=300)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        logs.close()


def plain_score(repo: Path, folder: Path) -> float:
    """pandas and the estimator's ``score_samples``, every row at once."""
    import pandas as pd

    from dvc_monitor.production.loader import load_ref

    started = time.perf_counter()
    loaded = load_ref(f"{NAME}#prod", repo)
    frame = pd.read_parquet(folder)
    scores = -loaded.model.score_samples(frame[list(loaded.features)].to_numpy(dtype=float))
    assert len(scores) == len(frame)
    return time.perf_counter() - started


def same_results(a: Path, b: Path) -> bool:
    import pandas as pd

    left = pd.read_parquet(a)[["score", "alert"]]
    right = pd.read_parquet(b)[["score", "alert"]]
    return left.reset_index(drop=True).equals(right.reset_index(drop=True))


def watch_doc(proc: subprocess.CompletedProcess) -> dict:
    doc = json.loads(proc.stdout)
    doc.pop("seconds", None)
    return doc


def watch(opts, root: Path, folder: Path, repo: Path, env: dict, dm: str,
          address: str) -> None:
    """watch in one process, on a local cluster and on the running scheduler: the same
    windows of one CSV file."""
    import pandas as pd

    from dvc_monitor.model.data import write_batch

    print(f"watch ({opts.watch_rows:,} rows, windows of {opts.window:,}):", flush=True)
    csv = root / "live.csv"
    frames, have = [], 0
    for path in sorted(folder.glob("*.parquet")):
        if have >= opts.watch_rows:
            break
        frame = pd.read_parquet(path).iloc[:opts.watch_rows - have]
        frames.append(frame)
        have += len(frame)
    write_batch(pd.concat(frames, ignore_index=True), csv)
    del frames
    args = [dm, "watch", f"{NAME}#prod", "--data", str(csv), "--window", str(opts.window),
            "--json", "--no-plots"]
    t_single, cpu_single, single = run(args, repo, env)
    print(f"  single process     {t_single:8.1f} s  {have / t_single:12,.0f} rows/s  "
          f"CPU {cpu_single:.1f} s  ({load()})", flush=True)
    expected = watch_doc(single)
    for label, extra in (("dask (2 workers)", ["--workers", "2"]),
                         ("dask, running scheduler", ["--scheduler", address])):
        seconds, _, spread = run(args + ["--engine", "dask", *extra], repo, env)
        print(f"  {label:<24} {seconds:8.1f} s  {have / seconds:12,.0f} rows/s  ({load()})",
              flush=True)
        print(f"    identical measures: {watch_doc(spread) == expected} "
              f"({len(expected['windows'])} windows, decision {expected['decision']}); "
              f"ratio to one process: {t_single / seconds:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--watch-rows", type=int, default=2_000_000)
    parser.add_argument("--window", type=int, default=100_000)
    parser.add_argument("--plain-max", type=int, default=20_000_000)
    parser.add_argument("--keep", type=Path)
    opts = parser.parse_args()

    root = opts.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    print(f"Building the repository in {root} ...", flush=True)
    repo, _ = anomaly_repo(root, NAME)
    env = env_for(root / "home")
    dm = str(BIN / "dvc-monitor")
    print(f"Generating {opts.rows:,} rows of Parquet (cached) ...", flush=True)
    started = time.perf_counter()
    folder = data(opts.rows)
    print(f"  {folder} ({time.perf_counter() - started:.1f} s)", flush=True)

    print("score:", flush=True)
    t_dask, cpu_dask, proc = run([dm, "score", f"{NAME}#prod", str(folder), "--engine", "dask",
                                  "--workers", "2", "-o", str(root / "dask-out")], repo, env)
    print(f"  dask (2 workers)   {t_dask:8.1f} s  {opts.rows / t_dask:12,.0f} rows/s  "
          f"CPU {cpu_dask:.1f} s  ({load()})", flush=True)
    t_single, cpu_single, _ = run([dm, "score", f"{NAME}#prod", str(folder), "-o",
                                   str(root / "single-out.parquet")], repo, env)
    print(f"  single process     {t_single:8.1f} s  {opts.rows / t_single:12,.0f} rows/s  "
          f"CPU {cpu_single:.1f} s  ({load()})", flush=True)
    t_plain = None
    if opts.rows <= opts.plain_max:
        t_plain = plain_score(repo, folder)
        print(f"  plain (pandas + score_samples) {t_plain:6.1f} s  "
              f"{opts.rows / t_plain:12,.0f} rows/s", flush=True)
    same = same_results(root / "dask-out", root / "single-out.parquet")
    print(f"  identical results: {same}")
    print(f"  ratio dask / single process: {t_single / t_dask:.2f}x (target >= 1.6x)")
    if t_plain is not None:
        print(f"  ratio dask / plain:          {t_plain / t_dask:.2f}x")
    with running_cluster(root, env) as address:
        t_run, _, _ = run([dm, "score", f"{NAME}#prod", str(folder), "--engine", "dask",
                           "--scheduler", address, "-o", str(root / "run-out")], repo, env)
        print(f"  dask, running scheduler (2 workers, own sessions) {t_run:6.1f} s  "
              f"{opts.rows / t_run:12,.0f} rows/s  ({load()})", flush=True)
        print("  identical results: "
              f"{same_results(root / 'run-out', root / 'single-out.parquet')}")
        print(f"  ratio dask (running scheduler) / single process: {t_single / t_run:.2f}x "
              "(target >= 1.6x)")
        if t_plain is not None:
            print(f"  ratio dask (running scheduler) / plain:          {t_plain / t_run:.2f}x")
        watch(opts, root, folder, repo, env, dm, address)
    if opts.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

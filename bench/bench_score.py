"""Benchmark: ``dvc-monitor score`` of large batches, streamed in chunks, against the
plain way, and its peak memory as the input grows.

Builds a repository with the anomaly template (IsolationForest, 100 trees) and one
registered version, v1.0.0. Generates seeded batches of the template's sample data,
cached under the temp folder (``dvc-monitor-bench-score/``, made once): 1,000,000 rows
as CSV and as Parquet, 10,000,000 rows as Parquet. Then, in one run, each command in a
process of its own:

(a) time -- 1,000,000 CSV rows:
    plain:  pandas ``read_csv``, the safe skops loader, ``score_samples``, ``to_csv``
            (what one would write without dvc-monitor: no schema check, no alert)
    score:  ``dvc-monitor score NAME@v1.0.0 IN.csv -o OUT.csv`` (resolve the version,
            md5-checked load, schema check per chunk, score and alert, CSV-safe output
            written atomically)
    prints both times and their ratio. target: score at most 1.2x the plain way's time.

(b) peak memory (RSS of the process, from the kernel) of ``score`` at 1,000,000 and
    10,000,000 Parquet rows (-o OUT.parquet), and of the plain way at 1,000,000 CSV rows.
    target: score under 500 MB at both sizes, not growing with the input.

(c) peak memory of ``dvc-monitor watch NAME@v1.0.0 --data IN.parquet --window W --json``
    (one process, the file read in chunks) at the same two sizes.
    target: under 500 MB at both sizes, not growing with the input.

``--rows`` and ``--big-rows`` set the two sizes (generating 10,000,000 rows takes a
while the first time).

Usage: .venv/bin/python bench/bench_score.py [--rows 1000000] [--big-rows 10000000]
       [--chunk-rows N] [--window 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_rollback import BIN, MODEL_DIR, NAME  # noqa: E402  (bench/ is on sys.path when run)
from bench_rollback import Bench as RollbackBench

HERE = Path(__file__).resolve()
CACHE = Path(tempfile.gettempdir()) / "dvc-monitor-bench-score"
DATA_FORMAT = 1  # bump when the generated data changes
PIECE = 1_000_000  # rows generated (and written) at a time

# The plain way: what one would write without dvc-monitor.
PLAIN = '''
import sys
import pandas as pd
from dvc_monitor.model.files import load_model

model = load_model(sys.argv[1])
features = sys.argv[4].split(",")
df = pd.read_csv(sys.argv[2])
df["score"] = -model.score_samples(df[features].to_numpy(dtype=float))
df.to_csv(sys.argv[3], index=False)
'''

# Runs a command and prints the peak RSS (kB) of its largest process, from the kernel.
PEAK = '''
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
'''


class Bench(RollbackBench):
    def run(self, *args: str) -> tuple[float, float]:
        """(seconds, peak RSS in MB) of ``args`` run in a process of its own."""
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=self.repo, env=self.env,
                              text=True, capture_output=True)
        seconds = time.perf_counter() - start
        last = proc.stdout.strip().splitlines()[-1].split()
        if proc.returncode != 0 or last[1] != "0":
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return seconds, int(last[0]) / 1024


def data(rows: int, fmt: str) -> Path:
    """``rows`` seeded rows of the anomaly sample data as ``fmt`` (csv or parquet),
    generated once into the cache folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE.parents[1]))
    from dvc_monitor.kinds import kind_for

    path = CACHE / f"anomaly-{DATA_FORMAT}-{rows}.{fmt}"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    spec, writer = kind_for("anomaly"), None
    with open(tmp, "w") as handle:
        for i, start in enumerate(range(0, rows, PIECE)):
            piece = spec.sample_batch(100 + i, rows=min(PIECE, rows - start))
            if fmt == "csv":
                piece.to_csv(handle, index=False, header=i == 0)
                continue
            table = pa.Table.from_pandas(piece, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=100_000)
    if writer is not None:
        writer.close()
    tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-rows", type=int, default=10_000_000)
    ap.add_argument("--chunk-rows", type=int, help="score --chunk-rows (default: score's own)")
    ap.add_argument("--window", type=int, default=100_000, help="watch --window (rows)")
    ap.add_argument("--keep", metavar="DIR")
    args = ap.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-score-"))
    try:
        bench = Bench(root)
        print("building the repository (one trained version) ...", flush=True)
        bench.build_first()
        print(f"generating the data (cached in {CACHE}) ...", flush=True)
        csv, parquet = data(args.rows, "csv"), data(args.rows, "parquet")
        big = data(args.big_rows, "parquet")
        sys.path.insert(0, str(HERE.parents[1]))
        from dvc_monitor.kinds import kind_for

        features = ",".join(c for c in kind_for("anomaly").sample_batch(1, rows=5).columns
                            if c != "is_fraud")
        model = bench.repo / MODEL_DIR / "model.skops"
        score = [str(BIN / "dvc-monitor"), "score", f"{NAME}@v1.0.0"]
        if args.chunk_rows:
            score += ["--chunk-rows", str(args.chunk_rows)]
        out = root / "out"
        out.mkdir()

        print(f"(a) {args.rows:,} CSV rows ...", flush=True)
        plain_s, plain_mb = bench.run(sys.executable, "-c", PLAIN, str(model), str(csv),
                                      str(out / "plain.csv"), features)
        score_s, score_mb = bench.run(*score, str(csv), "-o", str(out / "scored.csv"))
        print(f"(b) {args.rows:,} and {args.big_rows:,} Parquet rows ...", flush=True)
        small_s, small_mb = bench.run(*score, str(parquet), "-o", str(out / "small.parquet"))
        big_s, big_mb = bench.run(*score, str(big), "-o", str(out / "big.parquet"))
        print(f"(c) watch of {args.rows:,} and {args.big_rows:,} Parquet rows ...", flush=True)
        watch = [str(BIN / "dvc-monitor"), "watch", f"{NAME}@v1.0.0", "--window",
                 str(args.window), "--json", "--no-plots", "--data"]
        watched = [bench.run(*watch, str(path)) for path in (parquet, big)]

        print()
        print(f"(a) {args.rows:,} CSV rows, seconds (peak RSS)")
        print(f"    plain (read_csv, safe load, score_samples, to_csv)  "
              f"{plain_s:7.1f} s  ({plain_mb:,.0f} MB)")
        print(f"    dvc-monitor score -o OUT.csv                        "
              f"{score_s:7.1f} s  ({score_mb:,.0f} MB)")
        ratio = score_s / plain_s
        print(f"    ratio score/plain: {ratio:.2f}x (target <= 1.2x: "
              f"{'met' if ratio <= 1.2 else 'NOT met'})")
        print("(b) dvc-monitor score -o OUT.parquet, peak RSS (seconds)")
        print(f"    {args.rows:>12,} Parquet rows  {small_mb:7,.0f} MB  ({small_s:.1f} s)")
        print(f"    {args.big_rows:>12,} Parquet rows  {big_mb:7,.0f} MB  ({big_s:.1f} s, "
              f"{args.big_rows / big_s:,.0f} rows/s)")
        growth = big_mb / small_mb
        met = max(small_mb, big_mb, score_mb) < 500 and growth < 1.25
        print(f"    growth {args.big_rows // args.rows}x rows -> {growth:.2f}x memory "
              f"(target < 500 MB, not growing: {'met' if met else 'NOT met'})")
        print(f"(c) dvc-monitor watch --window {args.window:,} (one process), peak RSS "
              "(seconds)")
        for rows, (seconds, mb) in zip((args.rows, args.big_rows), watched):
            print(f"    {rows:>12,} Parquet rows  {mb:7,.0f} MB  ({seconds:.1f} s, "
                  f"{rows / seconds:,.0f} rows/s)")
        growth = watched[1][1] / watched[0][1]
        met = max(mb for _s, mb in watched) < 500 and growth < 1.25
        print(f"    growth {args.big_rows // args.rows}x rows -> {growth:.2f}x memory "
              f"(target < 500 MB, not growing: {'met' if met else 'NOT met'})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

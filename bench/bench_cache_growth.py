"""How the DVC cache grows with versions: data, intermediates and models, measured.

Builds a repository with the anomaly template, then makes N versions, each by ingesting
one new batch and running ``dvc repro``. After each version it measures the DVC cache
split into partitions (data), models, and everything else (directory manifests, split
manifests, run-cache copies of metrics and plots: the intermediates), and prints the
ratios to the size of the data. The baseline it answers: prepared arrays cached at every
version grew to 18.5x the data size after 300 versions.

    .venv/bin/python bench/bench_cache_growth.py --versions 20 --rows 500
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def sh(cwd: Path, *args: str, env: dict) -> None:
    subprocess.run(list(args), cwd=cwd, env=env, check=True, capture_output=True)


def objects_by_kind(repo: Path) -> dict[str, int]:
    """Bytes in the DVC cache, by what the objects are (from the repository's own files)."""
    cache = repo / ".dvc/cache"
    model_dir = repo / "models/fraud-detector"
    data_objects = set()
    for part in (model_dir / "data").iterdir():
        import hashlib

        data_objects.add(hashlib.md5(part.read_bytes()).hexdigest())
    sizes = {"data": 0, "models": 0, "intermediates": 0}
    for path in cache.rglob("*"):
        if not path.is_file():
            continue
        md5 = path.parent.name + path.name
        if md5 in data_objects:
            sizes["data"] += path.stat().st_size
        elif path.stat().st_size > 100_000:  # model archives are the only large non-data objects
            sizes["models"] += path.stat().st_size
        else:
            sizes["intermediates"] += path.stat().st_size
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--rows", type=int, default=500, help="rows per ingested batch")
    args = parser.parse_args()

    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@e", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="b@e")
    base = Path(tempfile.mkdtemp(prefix="dvc-monitor-cache-bench-"))
    repo = base / "repo"
    repo.mkdir()
    sh(repo, "git", "init", "-q", env=env)
    sh(repo, "dvc-monitor", "init", "--template", "anomaly", "--name", "fraud-detector",
       "--sample-data", "--remote", str(base / "remote"), env=env)
    sh(repo, "dvc", "repro", "-q", env=env)
    sh(repo, "git", "add", "-A", env=env)
    sh(repo, "git", "commit", "-qm", "v0", env=env)

    from dvc_monitor.model.data import write_batch
    from dvc_monitor.stages import anomaly

    print(f"{'versions':>8} {'data KB':>9} {'intermediates KB':>17} {'models KB':>10} "
          f"{'interm./data':>13} {'all but models/data':>20}")
    t0 = time.time()
    for v in range(1, args.versions + 1):
        batch = base / f"b{v}.csv"
        write_batch(anomaly.sample_batch(100 + v, rows=args.rows), batch)
        sh(repo, "dvc-monitor", "ingest", "fraud-detector", str(batch), env=env)
        sh(repo, "dvc", "repro", "-q", env=env)
        sh(repo, "git", "add", "-A", env=env)
        sh(repo, "git", "commit", "-qm", f"v{v}", env=env)
        if v in (1, 2, 5) or v % 5 == 0 or v == args.versions:
            s = objects_by_kind(repo)
            print(f"{v:>8} {s['data'] / 1024:>9.0f} {s['intermediates'] / 1024:>17.0f} "
                  f"{s['models'] / 1024:>10.0f} {s['intermediates'] / s['data']:>12.2f}x "
                  f"{(s['data'] + s['intermediates']) / s['data']:>19.2f}x", flush=True)
    lock = yaml.safe_load((repo / "models/fraud-detector/dvc.lock").read_text())
    print(f"\n{args.versions} versions in {time.time() - t0:.0f} s; "
          f"split manifest: {lock['stages']['prepare']['outs'][0]['size']} bytes per version; "
          f"repository: {repo}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

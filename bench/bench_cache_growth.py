"""How the DVC cache grows with versions: data, intermediates and models, measured.

Builds a repository with the anomaly template, then makes N versions, each by ingesting
one new batch and running ``dvc repro``. After each version it measures the DVC cache
split into partitions (data), models, and everything else (directory manifests, split
manifests, run-cache copies of metrics and plots: the intermediates), and prints the
ratios to the size of the data. The baseline it answers: prepared arrays cached at every
version grew to 18.5x the data size after 300 versions.

Every version is registered. At the end it measures the whole cache (every file under
``.dvc/cache``: partitions, manifests, run-cache entries and the model files) divided by
the data bytes, then runs ``dvc-monitor gc --keep-last 5 --drop-rebuildable`` (the remote is
empty: the cold models are their last copy) and, side by side on copies of
the repository, the plain DVC ways (``dvc gc -w -a -T``, which keeps every tag, and
``dvc gc -w``, which loses what tags need), and prints the ratios. Finally it rolls back
to a sample of cold versions with ``dvc-monitor rollback`` (the DVC remote is empty, so
they retrain) and checks that each one verifies.

``--segment K`` sets the model's ``segment_size`` (sealed segments of K batches, see
docs/storage.md): the bench measures the real data manifests of every version and, side by
side, computes the one flat ``data/`` manifest per version from the same partition hashes.

    .venv/bin/python bench/bench_cache_growth.py --versions 300 --rows 2000
    .venv/bin/python bench/bench_cache_growth.py --versions 20 --rows 2000 --sample 3
    .venv/bin/python bench/bench_cache_growth.py --versions 12 --rows 500 --segment 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def sh(cwd: Path, *args: str, env: dict) -> None:
    subprocess.run(list(args), cwd=cwd, env=env, check=True, capture_output=True)


def run(cwd: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, env=env, check=True, capture_output=True,
                          text=True)


def cache_bytes(repo: Path) -> int:
    """Every file under .dvc/cache (objects, manifests, run-cache entries, models)."""
    return sum(p.stat().st_size for p in (repo / ".dvc/cache").rglob("*") if p.is_file())


def manifest_bytes(repo: Path) -> int:
    """The ``.dir`` manifests in the cache (inputs: gc keeps every registered version's)."""
    return sum(p.stat().st_size for p in (repo / ".dvc/cache/files/md5").glob("*/*.dir"))


def manifest_layouts(repo: Path, tags: list[str], env: dict) -> tuple[int, int, int]:
    """Bytes of distinct ``.dir`` manifests over ``tags``: the flat folder (one manifest per
    version listing every partition, computed in DVC's manifest format from the same
    partition hashes) and the real sealed-segment layout (``data.dvc`` and each
    ``segments/sNNNN.dvc`` at the tag, read from the cache), and the most entries any
    version's open ``data/`` manifest lists."""
    flat, segmented, widest = {}, {}, 0

    def manifest(entries) -> bytes:
        return json.dumps(sorted(entries, key=lambda e: e["relpath"]), sort_keys=True).encode()

    model = "models/fraud-detector"
    for tag in tags:
        tree = run(repo, "git", "ls-tree", "-r", "--name-only", tag, "--", f"{model}/segments",
                   env=env).stdout.split()
        dvcfiles = [f"{model}/data.dvc"] + sorted(p for p in tree if p.endswith(".dvc"))
        every = []
        for rel in dvcfiles:
            doc = yaml.safe_load(run(repo, "git", "show", f"{tag}:{rel}", env=env).stdout)
            oid = doc["outs"][0]["md5"]
            raw = (repo / ".dvc/cache/files/md5" / oid[:2] / oid[2:]).read_bytes()
            segmented[oid] = len(raw)
            every += json.loads(raw)
            if rel.endswith("/data.dvc"):
                widest = max(widest, len(json.loads(raw)))
        body = manifest(every)
        flat[body] = len(body)
    return sum(flat.values()), sum(segmented.values()), widest


def restorable_by_dvc(repo: Path, tags: list[str], env: dict) -> int:
    """How many of ``tags`` have their model file in the cache (plain DVC has no retrain)."""
    n = 0
    for tag in tags:
        lock = yaml.safe_load(run(repo, "git", "show", f"{tag}:models/fraud-detector/dvc.lock",
                                  env=env).stdout)
        md5 = lock["stages"]["train"]["outs"][0]["md5"]
        n += (repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).is_file()
    return n


def objects_by_kind(repo: Path) -> dict[str, int]:
    """Bytes in the DVC cache, by what the objects are (from the repository's own files)."""
    cache = repo / ".dvc/cache"
    model_dir = repo / "models/fraud-detector"
    import hashlib

    from dvc_monitor.model.data import partition_files

    data_objects = {hashlib.md5(part.read_bytes()).hexdigest()
                    for part in partition_files(model_dir / "data", model_dir / "segments")}
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
    parser.add_argument("--keep-last", type=int, default=5, help="gc --keep-last")
    parser.add_argument("--sample", type=int, default=3, help="cold versions to roll back")
    parser.add_argument("--segment", type=int, default=32,
                        help="batches per sealed segment (monitor.yaml segment_size)")
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
    monitor = repo / "models/fraud-detector/monitor.yaml"
    monitor.write_text(monitor.read_text() + f"segment_size: {args.segment}\n")
    sh(repo, "dvc", "repro", "-q", env=env)
    sh(repo, "git", "add", "-A", env=env)
    sh(repo, "git", "commit", "-qm", "v0", env=env)
    sh(repo, "dvc-monitor", "register", "fraud-detector", "--version", "v0.0.0", env=env)

    from dvc_monitor.model.data import write_batch
    from dvc_monitor.kinds import anomaly

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
        sh(repo, "dvc-monitor", "register", "fraud-detector", "--version", f"v0.{v}.0",
           env=env)
        if v in (1, 2, 5) or v % 5 == 0 or v == args.versions:
            s = objects_by_kind(repo)
            print(f"{v:>8} {s['data'] / 1024:>9.0f} {s['intermediates'] / 1024:>17.0f} "
                  f"{s['models'] / 1024:>10.0f} {s['intermediates'] / s['data']:>12.2f}x "
                  f"{(s['data'] + s['intermediates']) / s['data']:>19.2f}x", flush=True)
    lock = yaml.safe_load((repo / "models/fraud-detector/dvc.lock").read_text())
    print(f"\n{args.versions} versions in {time.time() - t0:.0f} s; "
          f"split manifest: {lock['stages']['prepare']['outs'][0]['size']} bytes per version; "
          f"repository: {repo}")
    return retention(base, repo, args, env)


def retention(base: Path, repo: Path, args, env: dict) -> int:
    """gc --keep-last N against plain dvc gc, then a sample of cold versions restored."""
    data = objects_by_kind(repo)["data"]
    tags = [f"fraud-detector@v0.{v}.0" for v in range(args.versions + 1)]
    before = cache_bytes(repo)
    plain = {}
    for label, flags in (("dvc gc -w -a -T", ("-w", "-a", "-T")), ("dvc gc -w", ("-w",))):
        copy = base / f"copy-{len(plain)}"
        shutil.copytree(repo, copy, symlinks=True)
        t = time.time()
        sh(copy, "dvc", "gc", "-f", *flags, env=env)
        plain[label] = (cache_bytes(copy), time.time() - t, restorable_by_dvc(copy, tags, env))
        shutil.rmtree(copy)
    t = time.time()
    # the remote is empty, so the cold models are their last copy: measure the smallest
    # cache, the one --drop-rebuildable gives (plain gc keeps them until they are pushed)
    out = json.loads(run(repo, "dvc-monitor", "gc", "--keep-last", str(args.keep_last),
                         "--drop-rebuildable", "--json", env=env).stdout)
    gc_s = time.time() - t
    after = cache_bytes(repo)
    manifests = manifest_bytes(repo)
    print(f"\nwhole DVC cache (data, manifests, run-cache and models) / data bytes "
          f"({data / 1024:.0f} KB of data, {len(tags)} registered versions):")
    print(f"  {'before gc':<34} {before / 1024:>9.0f} KB {before / data:>7.2f}x")
    print(f"  {f'dvc-monitor gc --keep-last {args.keep_last}':<34} {after / 1024:>9.0f} KB "
          f"{after / data:>7.2f}x  {gc_s:5.1f} s  hot {len(out['hot'])}, cold "
          f"{len(out['cold'])} (rebuilt on rollback)")
    for label, (size, secs, models) in plain.items():
        print(f"  {label:<34} {size / 1024:>9.0f} KB {size / data:>7.2f}x  {secs:5.1f} s  "
              f"models left for {models}/{len(tags)} versions (no rebuild)")
    print(f"  dvc-monitor gc / dvc gc -w -a -T: {after / plain['dvc gc -w -a -T'][0]:.2f}x")
    kinds = objects_by_kind(repo)
    print(f"  after gc, by kind: data {kinds['data'] / 1024:.0f} KB, models "
          f"{kinds['models'] / 1024:.0f} KB (the hot versions' and the workspace's), other "
          f"{(after - kinds['data'] - kinds['models']) / 1024:.0f} KB; without the models "
          f"{(after - kinds['models']) / data:.2f}x the data")
    print(f"  of which .dir manifests after gc: {manifests / 1024:.0f} KB "
          f"({manifests / data:.2f}x the data)")
    flat, seg, widest = manifest_layouts(repo, tags, env)
    print(f"  data manifests of all versions: sealed segments of {args.segment} (measured) "
          f"{seg / 1024:.1f} KB ({seg / data:.3f}x data; the open data/ manifest lists at "
          f"most {widest} partitions); one flat data/ (same hashes) {flat / 1024:.1f} KB "
          f"({flat / data:.3f}x data): {flat / seg:.1f}x less")

    cold = [c.split("@")[1] for c in out["cold"]]
    sample = [cold[round(i * (len(cold) - 1) / max(args.sample - 1, 1))]
              for i in range(min(args.sample, len(cold)))]
    ok = 0
    for version in dict.fromkeys(sample):
        t = time.time()
        res = json.loads(run(repo, "dvc-monitor", "rollback", "fraud-detector", "--to", version,
                             "-m", "bench: restore a cold version", "--json", env=env).stdout)
        good = res["verified"] and res["proof"]["ok"]
        ok += good
        print(f"  rollback to cold {version}: {'verified' if good else 'NOT VERIFIED'}"
              f"{' (retrained)' if res['retrained'] else ''} in {time.time() - t:.1f} s")
    print(f"{ok}/{len(set(sample))} sampled cold versions restored and verified")
    return 0 if ok == len(set(sample)) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: listing versions with dvc-monitor vs GTO vs raw git.

Builds synthetic repositories of N versions (one commit per version changing
models/NAME/dvc.lock and metrics.json, made with ``git fast-import``, tags included),
in two tag styles:

* ``dvc-monitor``: half of the registration tags carry dvc-monitor's block (id, metrics,
  hashes), half are GTO-style (no block); every 10th version is promoted (``#STAGE#N``).
* ``gto``: every tag is what the ``gto`` command writes (no block), so dvc-monitor has to
  compute every version id from the dvc.lock at its commit.

Then times, best of ``--repeat`` processes each:

    dvc-monitor versions NAME --json      gto show NAME --json      git for-each-ref refs/tags

dvc-monitor is timed *cold* (its fact cache and stored listings under ``.git/dvc-monitor/``
removed before each run: every id computed from its commit, every block checked), *after
a new tag* (only the stored listings removed: the facts are cached, the listing is
computed again, as after any promotion) and *warm* (what the previous run left). ``--big`` adds rows of that many GTO-made versions (default
10,000), where ``show NAME`` and ``history NAME`` are timed as well and ``gto show`` is
left out (it takes minutes there; ``--gto-max`` sets the largest size it is run on).
``promote`` (warm) is timed at every size: it must not grow with the number of versions.

Usage: python bench/bench_registry.py [--sizes 10,300,1000] [--big 10000] [--repeat 3]
       [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvc_monitor.registry import tags as T  # noqa: E402
from dvc_monitor.registry.identity import identity_from_lock  # noqa: E402

NAME = "fraud-detector"
BIN = Path(sys.executable).parent
T0 = 1_700_000_000
AUTHOR = "Bench User <bench@example.com>"

ROOT_DVC_YAML = f"""\
artifacts:
  {NAME}:
    path: models/{NAME}/model.skops
    type: model
    desc: benchmark model
    labels:
    - monitoring
"""


def _md5(*parts: object) -> str:
    """A realistic md5, quoted as DVC's YAML writer would quote an all-digit one."""
    h = hashlib.md5(repr(parts).encode()).hexdigest()
    return f"'{h}'" if set(h) <= set("0123456789e") else h


def lock_text(i: int) -> str:
    data = _md5("data", i) + ".dir"
    split = _md5("split", i)
    model = _md5("model", i)
    return f"""\
schema: '2.0'
stages:
  prepare:
    cmd: dvc-monitor stage prepare
    deps:
    - path: data
      hash: md5
      md5: {data}
      size: {60000 + i}
      nfiles: {3 + i // 10}
    - path: monitor.yaml
      hash: md5
      md5: 597eddcabddc29520a8b9dce26079dc4
      size: 309
    params:
      params.yaml:
        prepare:
          holdout_fraction: 0.2
    outs:
    - path: prepared/split.json
      hash: md5
      md5: {split}
      size: 829
  train:
    cmd: dvc-monitor stage train
    deps:
    - path: data
      hash: md5
      md5: {data}
      size: {60000 + i}
      nfiles: {3 + i // 10}
    - path: prepared/split.json
      hash: md5
      md5: {split}
      size: 829
    params:
      params.yaml:
        train:
          n_estimators: {100 + i}
          max_samples: 256
          contamination: 0.02
          max_features: 1.0
          seed: 42
    outs:
    - path: model.skops
      hash: md5
      md5: {model}
      size: 1913322
  evaluate:
    cmd: dvc-monitor stage evaluate
    deps:
    - path: data
      hash: md5
      md5: {data}
      size: {60000 + i}
      nfiles: {3 + i // 10}
    - path: model.skops
      hash: md5
      md5: {model}
      size: 1913322
    params:
      params.yaml:
        evaluate:
          hist_bins: 30
    outs:
    - path: metrics.json
      hash: md5
      md5: {_md5('metrics', i)}
      size: 220
"""


def metrics(i: int) -> str:
    return json.dumps({"roc_auc": round(0.8 + (i % 100) / 1000, 4), "f1": round(0.5 + (i % 7) / 50, 4),
                       "alert_rate": 0.02, "n_holdout": 644}, sort_keys=True, indent=2)


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def build(path: Path, n: int, style: str) -> None:
    """A repository with ``n`` versions of NAME, tags in ``style`` ('dvc-monitor' or 'gto')."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    out = bytearray()
    counter = 0
    stage_tags = []
    for i in range(1, n + 1):
        when = T0 + i * 60
        out += b"commit refs/heads/main\n"
        out += b"mark :%d\n" % i
        out += f"author {AUTHOR} {when} +0000\n".encode()
        out += f"committer {AUTHOR} {when} +0000\n".encode()
        out += _data(f"version {i}".encode())
        if i > 1:
            out += b"from :%d\n" % (i - 1)
        else:
            out += b"M 100644 inline dvc.yaml\n" + _data(ROOT_DVC_YAML.encode())
        out += f"M 100644 inline models/{NAME}/dvc.lock\n".encode() + _data(lock_text(i).encode())
        out += f"M 100644 inline models/{NAME}/metrics.json\n".encode() + _data(metrics(i).encode())
        out += b"\n"
    for i in range(1, n + 1):
        version = f"v0.{i}.0"
        when = T0 + i * 60 + 10
        summary = f"Registering artifact {NAME} version {version}"
        if style == "dvc-monitor" and i % 2 == 0:
            ident = identity_from_lock(lock_text(i), "model.skops")
            meta = {"schema": 1, "event": "register", "version": version, "id": ident.id,
                    "model_md5": ident.model_md5, "model_path": f"models/{NAME}/model.skops",
                    "lock": f"models/{NAME}/dvc.lock",
                    "data": {f"models/{NAME}/data": ident.deps["data"]},
                    "metrics": json.loads(metrics(i)), "time_ns": when * 1_000_000_000 + 5}
            message = T.format_message(summary, meta)
        else:
            message = summary + "\n"
        out += f"tag {NAME}@{version}\nfrom :{i}\ntagger {AUTHOR} {when} +0000\n".encode()
        out += _data(message.encode())
        if i % 10 == 0:
            counter += 1
            stage = "prod" if i % 20 == 0 else "staging"
            stage_tags.append((f"{NAME}#{stage}#{counter}", i, when + 5, stage, version))
    for tag, i, when, stage, version in stage_tags:
        message = f"Assigning stage {stage} to artifact {NAME} version {version}\n"
        out += f"tag {tag}\nfrom :{i}\ntagger {AUTHOR} {when} +0000\n".encode()
        out += _data(message.encode())
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=bytes(out), check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True)


def drop_cache(repo: Path) -> None:
    """Remove dvc-monitor's fact cache and stored listings: the next run is cold."""
    shutil.rmtree(repo / ".git" / "dvc-monitor", ignore_errors=True)


def drop_listings(repo: Path) -> None:
    """Remove only the stored listings (the facts stay): what every new tag costs."""
    for folder in (repo / ".git" / "dvc-monitor").glob("views-*"):
        shutil.rmtree(folder, ignore_errors=True)


def best_of(cmd: list[str], cwd: Path, repeat: int, before=None) -> tuple[float, str, float]:
    """(best wall seconds, output, CPU seconds of that run: user + system of the process
    and its children, which a loaded machine inflates far less than the wall time)."""
    import resource

    best, cpu = float("inf"), float("inf")
    out = ""
    env = dict(os.environ, PYTHONWARNINGS="ignore", DVC_NO_ANALYTICS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # time what users get: cached bytecode
    for _ in range(repeat):
        if before is not None:
            before()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}")
        if elapsed < best:
            best = elapsed
            cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        out = proc.stdout
    return best, out, cpu


def check_agreement(ours: str, theirs: str) -> bool:
    a = json.loads(ours)
    b = json.loads(theirs)
    return ([(v["version"], sorted(v["stages"])) for v in a]
            == [(v["version"], sorted(s["stage"] for s in v["stages"])) for v in b])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="10,300,1000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--styles", default="dvc-monitor,gto")
    p.add_argument("--keep", metavar="DIR", help="build repositories here and keep them")
    p.add_argument("--no-gto", action="store_true", help="skip timing gto (slow at 1000)")
    p.add_argument("--big", type=int, default=10_000,
                   help="also time this many GTO-made versions (0: no big rows)")
    p.add_argument("--gto-max", type=int, default=1000,
                   help="largest size gto show is timed on")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    runs = [(n, style) for n in sizes for style in styles]
    if args.big:
        runs.append((args.big, "gto"))
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-registry-"))
    rows = []
    try:
        for n, style in runs:
            rows += measure(base / f"{style}-{n}", n, style, args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    header = ("versions", "tags", "command", "cold (s)", "new tag (s)", "warm (s)",
              "warm CPU (s)", "gto show (s)", "git for-each-ref (s)", "cold / git",
              "warm / git", "gto / warm", "same answer")
    table = [header]
    for n, style, what, cold, tagged, warm, warm_cpu, gto, git, agree in rows:
        table.append((str(n), style, what, "-" if cold is None else f"{cold:.3f}",
                      "-" if tagged is None else f"{tagged:.3f}",
                      f"{warm:.3f}", f"{warm_cpu:.3f}", f"{gto:.2f}" if gto else "-",
                      f"{git:.4f}",
                      "-" if cold is None else f"{cold / git:.0f}x", f"{warm / git:.0f}x",
                      f"{gto / warm:.0f}x" if gto else "-",
                      "-" if agree is None else ("yes" if agree else "NO")))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(f"best of {args.repeat} processes; cold = fact cache and stored listings removed "
          "first; new tag = stored listings removed (the facts stay), as after any new tag; "
          f"{sys.platform}, python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}")
    for j, r in enumerate(table):
        print("  ".join(c.rjust(w) if j and i not in (1, 2) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))))
    return 0 if all(r[9] in (None, True) for r in rows) else 1


def measure(repo: Path, n: int, style: str, args: argparse.Namespace) -> list[tuple]:
    """Rows (n, style, command, cold, warm, gto, git, agree) for one repository."""
    t = time.perf_counter()
    build(repo, n, style)
    built = time.perf_counter() - t
    dm = str(BIN / "dvc-monitor")
    git, _, _ = best_of(["git", "for-each-ref", "refs/tags"], repo, args.repeat)
    commands = [("versions", ["versions", NAME, "--json"])]
    if n == args.big:
        commands += [("show", ["show", NAME, "--json"]), ("history", ["history", NAME, "--json"])]
    rows = []
    for what, cmd in commands:
        cold, ours, _ = best_of([dm, *cmd], repo, args.repeat, before=lambda: drop_cache(repo))
        tagged, fresh, _ = best_of([dm, *cmd], repo, args.repeat,
                                   before=lambda: drop_listings(repo))
        warm, again, warm_cpu = best_of([dm, *cmd], repo, args.repeat)
        if not again == fresh == ours:
            raise SystemExit(f"{what}: warm output differs from cold output")
        gto, agree = None, None
        if what == "versions" and not args.no_gto and n <= args.gto_max:
            gto, theirs, _ = best_of([str(BIN / "gto"), "show", NAME, "--json"], repo,
                                     args.repeat)
            agree = check_agreement(ours, theirs)
        rows.append((n, style, what, cold, tagged, warm, warm_cpu, gto, git, agree))
        print(f"  {style}-{n} (built in {built:.1f}s): {what} cold {cold:.3f}s, "
              f"after a new tag {tagged:.3f}s, warm {warm:.3f}s"
              + (f", gto {gto:.2f}s" if gto else ""), file=sys.stderr, flush=True)
    # a write: promote one version to a fresh stage each time (warm cache)
    promote, promote_cpu = _promote_best(repo, f"v0.{max(1, n // 2)}.0", args.repeat)
    rows.append((n, style, "promote", None, None, promote, promote_cpu, None, git, None))
    print(f"  {style}-{n}: promote {promote:.3f}s", file=sys.stderr, flush=True)
    return rows


def _promote_best(repo: Path, version: str, repeat: int) -> tuple[float, float]:
    """Best (wall, CPU) of ``repeat`` promotions, each to a new stage (a promotion is
    refused twice)."""
    runs = [best_of([str(BIN / "dvc-monitor"), "promote", NAME, version, "--stage",
                     f"bench{k}"], repo, 1) for k in range(repeat)]
    wall, _, cpu = min(runs)
    return wall, cpu


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: ``dvc-monitor push`` vs the plain ``dvc push`` + ``git push`` steps it replaces,
and a fresh clone's rollback from an S3 server.

Builds one repository (anomaly template) with the largest N registered versions: v0.0.1
trained with default params, v0.0.2 retrained with other params, and the rest commits
that change only a note file (same objects, new version tag each: what a team's
registry mostly holds). For each N, in one run, from a copy holding only the first N
version tags, against a new bare origin (file://) and a new bucket on moto's S3 server
(127.0.0.1):

    plain:  dvc push --all-tags -q  +  git push --atomic origin <the N tags>
    push:   dvc-monitor push        (checks every object of every version, uploads the
                                     missing ones, then one atomic git push)

Then a fresh ``git clone`` of the origin (empty cache) rolls back to v0.0.1 from S3:

    plain:    git checkout v0.0.1 -- <model files>; dvc pull <targets>; dvc repro
    rollback: dvc-monitor rollback fraud-detector --to v0.0.1   (+ verification, commit)

Usage: .venv/bin/python bench/bench_team.py [--sizes 1,10,50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "fraud-detector"
MODEL_DIR = f"models/{NAME}"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from s3server import MotoServer  # noqa: E402
from benchlib import BIN, env_for  # noqa: E402




def sh(cwd: Path, env: dict, *args: str) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def timed(cwd: Path, env: dict, *commands: tuple[str, ...]) -> float:
    start = time.perf_counter()
    for cmd in commands:
        sh(cwd, env, *cmd)
    return time.perf_counter() - start


def build(root: Path, env: dict, n: int) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    dm = str(BIN / "dvc-monitor")
    sh(repo, env, "git", "init", "-q", "-b", "main")
    sh(repo, env, dm, "init", "--template", "anomaly", "--name", NAME, "--sample-data")
    sh(repo, env, str(BIN / "dvc"), "repro", "-q", f"{MODEL_DIR}/dvc.yaml")
    sh(repo, env, "git", "add", "-A")
    sh(repo, env, "git", "commit", "-qm", "v0.0.1")
    sh(repo, env, dm, "register", NAME)
    params = repo / MODEL_DIR / "params.yaml"
    params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 60"))
    sh(repo, env, str(BIN / "dvc"), "repro", "-q", f"{MODEL_DIR}/dvc.yaml")
    sh(repo, env, "git", "commit", "-qam", "v0.0.2")
    sh(repo, env, dm, "register", NAME)
    for i in range(3, n + 1):
        (repo / "NOTES.md").write_text(f"release note {i}\n")
        sh(repo, env, "git", "add", "NOTES.md")
        sh(repo, env, "git", "commit", "-qm", f"v0.0.{i}")
        sh(repo, env, dm, "register", NAME)
    return repo


def setup(base: Path, dst: Path, env: dict, s3: MotoServer, bucket: str, keep: int) -> Path:
    """A copy of the repository with the first ``keep`` tags, a new origin and bucket."""
    shutil.copytree(base.parent, dst, symlinks=True)
    repo = dst / "repo"
    for tag in sh(repo, env, "git", "tag", "-l").split():
        if int(tag.rsplit(".", 1)[1]) > keep:
            sh(repo, env, "git", "tag", "-d", tag)
    origin = dst / "origin.git"
    sh(dst, env, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    sh(repo, env, "git", "remote", "add", "origin", f"file://{origin}")
    sh(repo, env, "git", "push", "-q", "origin", "main")
    s3.create_bucket(bucket)
    (repo / ".dvc" / "config.local").write_text(s3.dvc_config_local("s3", f"s3://{bucket}/x"))
    return repo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--keep", help="build in this folder and keep it")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    top = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-team-"))
    env = env_for(top / "home", AWS_EC2_METADATA_DISABLED="true")
    (top / "home").mkdir(parents=True, exist_ok=True)
    s3 = MotoServer().start()
    try:
        t0 = time.perf_counter()
        base = build(top / "base", env, max(max(sizes), 2))
        print(f"built {max(max(sizes), 2)} versions in {time.perf_counter() - t0:.0f} s")
        print(f"{'N':>4}  {'dvc push + git push':>20}  {'dvc-monitor push':>17}  ratio")
        for n in sizes:
            plain_repo = setup(base, top / f"plain-{n}", env, s3, f"plain-{n}", n)
            tags = sh(plain_repo, env, "git", "tag", "-l").split()
            plain = timed(plain_repo, env, (str(BIN / "dvc"), "push", "-q", "--all-tags"),
                          ("git", "push", "-q", "--atomic", "origin",
                           *[f"refs/tags/{t}" for t in tags]))
            ours_repo = setup(base, top / f"ours-{n}", env, s3, f"ours-{n}", n)
            ours = timed(ours_repo, env, (str(BIN / "dvc-monitor"), "push"))
            print(f"{n:>4}  {plain:>18.2f} s  {ours:>15.2f} s  {ours / plain:5.2f}x")

        # a fresh clone rolls back to v0.0.1 from S3 (origin and bucket of the largest N)
        n = sizes[-1]
        clones = []
        for label in ("plain", "rollback"):
            clone = top / f"clone-{label}"
            sh(top, env, "git", "clone", "-q", f"file://{top / f'ours-{n}' / 'origin.git'}",
               str(clone))
            (clone / ".dvc" / "config.local").write_text(
                s3.dvc_config_local("s3", f"s3://ours-{n}/x"))
            clones.append(clone)
        files = [f"{MODEL_DIR}/{f}" for f in ("dvc.yaml", "dvc.lock", "params.yaml",
                                               "data.dvc", "metrics.json")]
        plain = timed(clones[0], env, ("git", "checkout", f"{NAME}@v0.0.1", "--", *files),
                      (str(BIN / "dvc"), "pull", "-q", f"{MODEL_DIR}/dvc.yaml",
                       f"{MODEL_DIR}/data.dvc"),
                      (str(BIN / "dvc"), "repro", "-q", f"{MODEL_DIR}/dvc.yaml"))
        ours = timed(clones[1], env, (str(BIN / "dvc-monitor"), "rollback", NAME, "--to",
                                      "v0.0.1"))
        print(f"fresh-clone rollback from S3: plain {plain:.2f} s (unverified, uncommitted), "
              f"dvc-monitor {ours:.2f} s (verified, committed): {ours / plain:.2f}x")
    finally:
        s3.stop()
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()

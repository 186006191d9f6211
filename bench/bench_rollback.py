"""Benchmark: ``dvc-monitor rollback`` (verified, atomic, committed) vs the raw steps.

Builds a repository with the anomaly template and two registered versions (v1.0.0,
v1.1.0 with other train params), pushed to a local DVC remote, HEAD at v1.1.0. Then, in
one run, side by side (each timing repeated ``--repeat`` times, min and median shown):

(a) artifacts cached -- rolling back to v1.0.0 when its objects are in the local cache:
    raw steps:  git checkout v1.0.0 -- <the model's pipeline files, metrics.json, plots/>
                dvc checkout <the model's dvc.yaml and data.dvc>
                dvc repro <the model's dvc.yaml>                     (restores: no training)
    rollback:   dvc-monitor rollback fraud-detector --to v1.0.0      (+ verification, commit)
    target: rollback within 1.2x of the raw steps.

(b) retrain needed -- v1.0.0's model object removed from the cache and the remote:
    retrain:    dvc repro -f -s <the model's dvc.yaml>:train         (the model's stage)
    rollback:   dvc-monitor rollback fraud-detector --to v1.0.0      (retrains the same bytes)
    target: rollback within retrain + 1 s.

The raw steps leave an uncommitted, unverified workspace; the rollback leaves a verified
commit. Between timings the repository is put back (git reset --hard, dvc checkout),
untimed.

Usage: .venv/bin/python bench/bench_rollback.py [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from benchlib import BIN, env_for  # noqa: E402

NAME = "fraud-detector"
MODEL_DIR = f"models/{NAME}"




class Bench:
    def __init__(self, root: Path):
        self.root = root
        self.repo = root / "repo"
        self.remote = root / "remote"
        self.env = env_for(root / "home")
        (root / "home").mkdir(parents=True, exist_ok=True)

    def sh(self, *args: str) -> str:
        proc = subprocess.run(list(args), cwd=self.repo, env=self.env, text=True,
                              capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def timed(self, *commands: tuple[str, ...]) -> float:
        start = time.perf_counter()
        for cmd in commands:
            self.sh(*cmd)
        return time.perf_counter() - start

    def build_first(self) -> None:
        """The anomaly template with its sample data, trained, registered as v1.0.0."""
        self.repo.mkdir(parents=True)
        self.sh("git", "init", "-q", "-b", "main")
        self.sh(str(BIN / "dvc-monitor"), "init", "--template", "anomaly", "--name", NAME,
                "--sample-data", "--remote", str(self.remote))
        self.sh(str(BIN / "dvc"), "repro", f"{MODEL_DIR}/dvc.yaml")
        self.commit("v1.0.0")

    def build(self) -> None:
        self.build_first()
        params = self.repo / MODEL_DIR / "params.yaml"
        params.write_text(params.read_text().replace("n_estimators: 100", "n_estimators: 60"))
        self.sh(str(BIN / "dvc"), "repro", f"{MODEL_DIR}/dvc.yaml")
        self.commit("v1.1.0")
        self.v1 = self.sh("git", "rev-parse", "fraud-detector@v1.0.0^{commit}").strip()
        self.v2 = self.sh("git", "rev-parse", "HEAD").strip()
        lock = self.sh("git", "show", f"{self.v1}:{MODEL_DIR}/dvc.lock")
        self.v1_model_md5 = lock.split("path: model.skops")[1].split("md5: ")[1].split()[0]
        self.pipeline_files = [p for p in self.sh("git", "ls-files", MODEL_DIR).split()
                               if not p.endswith("/.gitignore")]

    def commit(self, version: str) -> None:
        self.sh("git", "add", "-A")
        self.sh("git", "commit", "-q", "-m", f"{NAME} {version}")
        self.sh(str(BIN / "dvc"), "push", "-q")
        self.sh(str(BIN / "dvc-monitor"), "register", NAME, "--version", version)

    def reset(self) -> None:
        """Back to v1.1.0 at HEAD with a clean workspace (untimed)."""
        self.sh("git", "reset", "-q", "--hard", self.v2)
        self.sh(str(BIN / "dvc"), "checkout", "-q", "--force", f"{MODEL_DIR}/dvc.yaml",
                f"{MODEL_DIR}/data.dvc")
        assert self.sh("git", "status", "--porcelain") == "", "workspace not clean"

    def drop_v1_model(self) -> None:
        md5 = self.v1_model_md5
        for base in (self.repo / ".dvc/cache/files/md5", self.remote / "files/md5"):
            (base / md5[:2] / md5[2:]).unlink(missing_ok=True)

    # -- scenarios ----------------------------------------------------------------------

    def raw_steps(self) -> float:
        t = self.timed(
            ("git", "checkout", self.v1, "--", *self.pipeline_files),
            (str(BIN / "dvc"), "checkout", "-q", f"{MODEL_DIR}/dvc.yaml",
             f"{MODEL_DIR}/data.dvc"),
            (str(BIN / "dvc"), "repro", "-q", f"{MODEL_DIR}/dvc.yaml"),
        )
        self.check_model()
        return t

    def rollback(self) -> float:
        t = self.timed((str(BIN / "dvc-monitor"), "rollback", NAME, "--to", "v1.0.0"))
        self.check_model()
        return t

    def retrain(self) -> float:
        return self.timed((str(BIN / "dvc"), "repro", "-q", "-f", "-s",
                           f"{MODEL_DIR}/dvc.yaml:train"))

    def check_model(self) -> None:
        import hashlib

        got = hashlib.md5((self.repo / MODEL_DIR / "model.skops").read_bytes()).hexdigest()
        assert got == self.v1_model_md5, f"model md5 {got} != {self.v1_model_md5}"


def fmt(values: list[float]) -> str:
    return f"{min(values):6.2f} s (median {statistics.median(values):5.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep it")
    args = parser.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-rollback-"))
    bench = Bench(root)
    try:
        print(f"building the repository in {root} ...", file=sys.stderr)
        bench.build()
        raw, rb, retrain, rb_retrain = [], [], [], []
        for i in range(args.repeat):
            print(f"round {i + 1}/{args.repeat} ...", file=sys.stderr)
            bench.reset()
            raw.append(bench.raw_steps())
            bench.reset()
            rb.append(bench.rollback())
            bench.reset()
            bench.drop_v1_model()
            rb_retrain.append(bench.rollback())  # retrains v1.0.0's model
            retrain.append(bench.retrain())  # the same training, forced, same inputs

        a_ratio = min(rb) / min(raw)
        b_extra = min(rb_retrain) - min(retrain)
        print()
        print(f"{'scenario':<22} {'baseline':<38} {'dvc-monitor rollback':<28} result")
        print(f"{'(a) artifacts cached':<22} raw git+dvc steps {fmt(raw):<20} {fmt(rb):<28} "
              f"{a_ratio:.2f}x  (target <= 1.20x: {'ok' if a_ratio <= 1.2 else 'MISSED'})")
        print(f"{'(b) retrain needed':<22} retrain (repro -f)  {fmt(retrain):<18} "
              f"{fmt(rb_retrain):<28} {b_extra:+.2f} s  (target <= +1.00 s: "
              f"{'ok' if b_extra <= 1.0 else 'MISSED'}), {min(rb_retrain) / min(retrain):.2f}x")
        print(f"\nmin of {args.repeat} runs each; the rollback also verifies every hash and "
              "commits; the raw steps leave an unverified, uncommitted workspace.")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

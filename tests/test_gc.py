"""gc that knows the registry, on a real repository (real git, DVC, training).

The repository is built once per module: v1.0.0 (cold with ``--keep-last 1``), v1.1.0
(holds ``prod``), v1.2.0 (the newest), a branch ``exp`` whose head adds a data batch,
and an object nothing refers to. Each test works on a private copy.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIN, Repo, copy_repo, new_version, sample_csv, trained_anomaly
from faultcli import LOCK_WAIT
from rollback_support import wait_for_line

from dvc_monitor.errors import GcRefused, UnknownModel, UsageError

MODEL = "fraud-detector"
FAULTCLI = Path(__file__).with_name("faultcli.py")
VERSIONS = ("v1.0.0", "v1.1.0", "v1.2.0")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Repo:
    tmp = tmp_path_factory.mktemp("gc")
    repo = trained_anomaly(tmp_path_factory, tmp)
    repo.dm("register", MODEL, "--version", "v1.0.0")
    new_version(repo, tmp, batch=4)
    repo.dm("register", MODEL, "--version", "v1.1.0")
    repo.dm("promote", MODEL, "v1.1.0", "--stage", "prod")
    new_version(repo, tmp, batch=5)
    repo.dm("register", MODEL, "--version", "v1.2.0")
    repo.dvc("push", "-q", "-a", "-T")
    # a branch whose head has data no registered version has
    repo.git("checkout", "-q", "-b", "exp")
    repo.dm("ingest", MODEL, str(sample_csv(tmp, "anomaly", 8)))
    repo.commit_all("exp: one more batch, not trained yet")
    repo.git("checkout", "-q", "main")
    repo.dvc("checkout", "-q", "--force")
    # an object nothing refers to: added to DVC, then abandoned
    (repo.path / "scratch").mkdir()
    (repo.path / "scratch/junk.bin").write_bytes(b"abandoned experiment output\n" * 100)
    repo.dvc("add", "-q", "scratch/junk.bin")
    junk = repo.md5("scratch/junk.bin")
    shutil.rmtree(repo.path / "scratch")
    assert repo.git("status", "--porcelain").stdout == ""
    (tmp / "junk.md5").write_text(junk)
    return repo


def cached(repo: Repo) -> set[str]:
    base = repo.path / ".dvc/cache/files/md5"
    return {p.parent.name + p.name for p in base.glob("*/*")}


def model_md5(repo: Repo, version: str) -> str:
    shown = repo.json("show", f"{MODEL}@{version}")
    return shown["model_md5"]


def data_objects(repo: Repo, rev: str) -> set[str]:
    """The data ``.dir`` manifest of the model at ``rev`` and every partition it lists."""
    import yaml

    doc = yaml.safe_load(repo.git("show", f"{rev}:models/{MODEL}/data.dvc").stdout)
    oid = doc["outs"][0]["md5"]
    raw = (repo.path / ".dvc/cache/files/md5" / oid[:2] / oid[2:]).read_text()
    return {oid} | {e["md5"] for e in json.loads(raw)}


def private_remote(repo: Repo, tmp_path: Path) -> Path:
    """Point the copy at its own copy of the DVC remote (the built one is shared)."""
    dst = tmp_path / "remote-copy"
    shutil.copytree(repo.remote, dst)
    repo.dvc("remote", "modify", "--local", "local", "url", str(dst))
    return dst


def remote_objects(remote: Path) -> set[str]:
    return {p.parent.name + p.name for p in (remote / "files/md5").glob("*/*")}


def test_gc_keeps_every_version_restorable_without_the_remote(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    remote = private_remote(repo, tmp_path)
    junk = (built.path.parent / "junk.md5").read_text()
    models = {v: model_md5(repo, v) for v in VERSIONS}
    inputs = set().union(*(data_objects(repo, f"{MODEL}@{v}") for v in VERSIONS))
    branch = data_objects(repo, "exp")
    # a dirty workspace: a new batch ingested, not committed
    repo.dm("ingest", MODEL, str(sample_csv(tmp_path, "anomaly", 9)))
    from dvc_monitor.repo.cache import workspace_hash

    ws_dir = workspace_hash(repo.path / f"models/{MODEL}/data")
    workspace = {ws_dir, repo.md5(f"models/{MODEL}/data/batch-00006.csv")}
    assert junk in cached(repo) and models["v1.0.0"] in remote_objects(remote)

    out = repo.json("gc", "--keep-last", "1", "--cloud")

    assert sorted(out["hot"]) == [f"{MODEL}@v1.1.0", f"{MODEL}@v1.2.0"]
    assert out["cold"] == [f"{MODEL}@v1.0.0"]
    have, there = cached(repo), remote_objects(remote)
    assert models["v1.0.0"] not in have and models["v1.0.0"] not in there
    assert {models["v1.1.0"], models["v1.2.0"]} <= have & there
    assert inputs <= have and inputs <= there, "an input of a registered version was deleted"
    assert branch <= have and workspace <= have
    assert junk not in have
    dropped = {(o["oid"], o["where"]): o for o in out["removed"]}
    cold = dropped[(models["v1.0.0"], "cache")]
    assert cold["version"] == f"{MODEL}@v1.0.0" and cold["reason"] == "cold, rebuildable"
    assert cold["path"] == f"models/{MODEL}/model.skops" and cold["bytes"] > 100_000
    assert dropped[(junk, "cache")]["reason"] == "unused"
    assert out["freed"]["cache"]["bytes"] >= cold["bytes"]
    assert out["freed"]["remote"]["bytes"] >= cold["bytes"]

    # the remote gone: cold versions must retrain, hot ones come from the cache
    repo.dvc("remote", "modify", "--local", "local", "url", str(tmp_path / "gone"))
    repo.git("checkout", "-q", "HEAD", "--", f"models/{MODEL}/data.dvc")
    repo.dvc("checkout", "-q", "--force", f"models/{MODEL}/data.dvc")
    for version in VERSIONS:
        proc = repo.dm("rollback", MODEL, "--to", version, "-m", "after gc", "--json")
        result = json.loads(proc.stdout)
        assert result["verified"] and result["proof"]["ok"], version
        assert result["retrained"] == (version == "v1.0.0"), version
        assert repo.md5(f"models/{MODEL}/model.skops") == models[version]


def test_dry_run_lists_objects_and_changes_nothing(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    before, snap = cached(repo), repo.snapshot()
    cold = model_md5(repo, "v1.0.0")

    proc = repo.dm("gc", "--keep-last", "1", "--dry-run")
    assert "would remove" in proc.stdout + proc.stderr and f"{MODEL}@v1.0.0" in proc.stdout
    assert "cold, rebuildable" in proc.stdout and "unused" in proc.stdout
    assert "Would free" in proc.stdout
    out = repo.json("gc", "--keep-last", "1", "--dry-run")
    assert out["dry_run"] and cold in {o["oid"] for o in out["removed"]}
    assert all(o["bytes"] > 0 for o in out["removed"])

    assert cached(repo) == before and repo.snapshot() == snap
    # the stage holder stays whole unless asked otherwise
    out = repo.json("gc", "--keep-last", "1", "--no-keep-stages", "--dry-run")
    assert sorted(out["cold"]) == [f"{MODEL}@v1.0.0", f"{MODEL}@v1.1.0"]
    assert cached(repo) == before


def _paused(repo: Repo, spec: str, *args: str, text: str = "test fault: paused"
            ) -> subprocess.Popen:
    """The faultcli hook running ``ARGS``, once its stderr says ``text``."""
    proc = subprocess.Popen([sys.executable, str(FAULTCLI), spec, *args], cwd=repo.path,
                            env=repo.env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    wait_for_line(proc, text)
    return proc


def test_a_concurrent_rollback_waits_for_gc(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    head = repo.head()
    gc = _paused(repo, "gc-locked:pause", "gc", "--keep-last", "1")
    try:
        # --wait: however long gc takes on a loaded machine (the default is 30 s)
        rollback = _paused(repo, "lock:report", "rollback", MODEL, "--to", "v1.1.0",
                           "-m", "during gc", "--wait", "600", text=LOCK_WAIT)
        assert rollback.poll() is None, rollback.communicate()
        assert repo.head() == head  # it has not started changing anything
    finally:
        gc.send_signal(signal.SIGUSR1)
    out, err = gc.communicate(timeout=300)
    assert gc.returncode == 0, err
    assert "Freed" in out
    out, err = rollback.communicate(timeout=600)
    assert rollback.returncode == 0, err
    assert "Rolled back fraud-detector to v1.1.0" in out
    assert repo.head() != head


def _refused(repo: Repo, *args: str, code: int = GcRefused.exit_code) -> str:
    proc = repo.dm("gc", *args, check=False)
    assert proc.returncode == code, proc
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr
    assert errors[0].startswith("dvc-monitor: error: ")
    return errors[0]


def test_bad_input_is_one_line_and_deletes_nothing(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    before = cached(repo)
    for bad in ("0", "-2"):
        assert "--keep-last must be 1 or more" in _refused(repo, "--keep-last", bad,
                                                           code=UsageError.exit_code)
    assert "no-such-model" in _refused(repo, "no-such-model", code=UnknownModel.exit_code)
    assert cached(repo) == before

    # a rollback paused midway: its journal is pending
    rollback = _paused(repo, "restore:pause", "rollback", MODEL, "--to", "v1.1.0", "-m", "x")
    try:
        before = cached(repo)
        assert "rollback is unfinished" in _refused(repo, "--keep-last", "1")
        assert cached(repo) == before
    finally:
        rollback.send_signal(signal.SIGUSR1)
    assert rollback.wait(timeout=300) == 0

    # no DVC remote at all
    repo.dvc("remote", "remove", "local")
    assert "--cloud needs a DVC remote" in _refused(repo, "--cloud", code=UsageError.exit_code)
    # a cold version whose inputs are gone (its data manifest deleted, no remote)
    cold_model = model_md5(repo, "v1.0.0")
    doc = repo.git("show", f"{MODEL}@v1.0.0:models/{MODEL}/data.dvc").stdout
    oid = doc.split("md5: ")[1].split()[0]
    (repo.path / ".dvc/cache/files/md5" / oid[:2] / oid[2:]).unlink()
    before = cached(repo)
    err = _refused(repo, "--keep-last", "1")
    assert f"{MODEL}@v1.0.0" in err and "nothing was deleted" in err
    assert cached(repo) == before and cold_model in before

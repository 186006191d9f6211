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
from pathlib import Path

import pytest
from tests.support.repos import BIN, Repo, copy_repo, new_version, sample_csv, trained_anomaly
from tests.support.faultcli import LOCK_WAIT
from tests.support.rollback import wait_for_line

from dvc_monitor.errors import GcRefused, UnknownModel, UsageError
from dvc_monitor.repo.dvc import RemoteUnavailable

MODEL = "fraud-detector"
FAULTCLI = Path(__file__).parents[1] / "support" / "faultcli.py"
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
    # the cold model left the local cache; the remote keeps its one copy
    assert models["v1.0.0"] not in have and models["v1.0.0"] in there
    assert (models["v1.0.0"], "remote") not in {(o["oid"], o["where"]) for o in out["removed"]}
    assert out["last_copy"] == [] and out["not_on_remote"] == []
    assert {models["v1.1.0"], models["v1.2.0"]} <= have & there
    assert inputs <= have and inputs <= there, "an input of a registered version was deleted"
    assert branch <= have and workspace <= have
    assert junk not in have
    dropped = {(o["oid"], o["where"]): o for o in out["removed"]}
    cold = dropped[(models["v1.0.0"], "cache")]
    assert cold["version"] == f"{MODEL}@v1.0.0" and cold["reason"] == "cold, copy on the remote"
    assert cold["path"] == f"models/{MODEL}/model.skops" and cold["bytes"] > 100_000
    assert dropped[(junk, "cache")]["reason"] == "unused"
    assert out["freed"]["cache"]["bytes"] >= cold["bytes"]
    assert all(o["reason"] == "unused" for o in out["removed"] if o["where"] == "remote")

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
    assert "cold, copy on the remote" in proc.stdout and "unused" in proc.stdout
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


# -- the remote keeps every registered version, across a trainer upgrade -------------------


def upgraded_install(repo: Repo, tmp_path: Path) -> Repo:
    """``repo`` as seen by an upgraded install: a copy of the dvc_monitor package with one
    comment of ``kinds/anomaly.py`` changed (the trainer fingerprint hashes the stage code),
    found first through PYTHONPATH, as a user's upgrade would put it."""
    import dvc_monitor

    dst = tmp_path / "upgraded" / "dvc_monitor"
    shutil.copytree(Path(dvc_monitor.__file__).parent, dst,
                    ignore=shutil.ignore_patterns("__pycache__"))
    stage = dst / "kinds/anomaly.py"
    code = stage.read_text()
    changed = code.replace("# neither: it is watched, not optimised",
                           "# neither: watched, never optimised")
    assert changed != code
    stage.write_text(changed)
    return Repo(repo.path, dict(repo.env, PYTHONPATH=str(dst.parent)), repo.remote)


def check_rows(repo: Repo) -> tuple[int, dict[str, dict]]:
    proc = repo.dm("check", "--json", check=False)
    return proc.returncode, {v["version"]: v for v in json.loads(proc.stdout)["versions"]}


def test_gc_cloud_keeps_every_version_restorable_across_a_trainer_upgrade(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    remote = private_remote(repo, tmp_path)
    models = {v: model_md5(repo, v) for v in VERSIONS}
    ours = json.loads(repo.dm("trainer", MODEL, "--json").stdout)["current"]
    upgraded = upgraded_install(repo, tmp_path)
    theirs = json.loads(upgraded.dm("trainer", MODEL, "--json").stdout)
    assert theirs["current"]["stage_code"] != ours["stage_code"] and not theirs["matches"]

    out = repo.json("gc", "--keep-last", "1", "--cloud")
    assert out["cold"] == [f"{MODEL}@v1.0.0"] and out["last_copy"] == []
    assert models["v1.0.0"] not in cached(repo)
    assert set(models.values()) <= remote_objects(remote)

    # after the upgrade: every version is on the remote; a retrain would need the old trainer
    code, rows = check_rows(upgraded)
    assert code == 0 and {r["status"] for r in rows.values()} == {"remote"}
    assert rows["v1.0.0"]["rebuild"] == "other-trainer"
    needed = rows["v1.0.0"]["trainer_needed"]
    assert needed["fingerprint"]["stage_code"] == ours["stage_code"]
    assert any(d.startswith("dvc-monitor stage code") for d in needed["differences"])
    table = upgraded.dm("check").stdout
    row = next(line for line in table.splitlines() if "\tv1.0.0\t" in line)
    assert "\tremote\t" in row
    assert f"only with trainer dvc-monitor stage code {ours['stage_code']}" in row

    for version in VERSIONS:  # each registered version rolls back on the upgraded install
        proc = upgraded.dm("rollback", MODEL, "--to", version, "-m", "after upgrade", "--json")
        result = json.loads(proc.stdout)
        assert result["verified"] and result["proof"]["ok"], version
        assert not result["retrained"], version
        assert repo.md5(f"models/{MODEL}/model.skops") == models[version]

    # asked for explicitly: the last copy of the cold model goes, and gc says so
    proc = repo.dm("gc", "--keep-last", "1", "--cloud", "--drop-rebuildable", "--json")
    out = json.loads(proc.stdout)
    warning = [ln for ln in proc.stderr.splitlines() if "--drop-rebuildable" in ln]
    assert len(warning) == 1 and "warning" in warning[0] and f"{MODEL}@v1.0.0" in warning[0]
    assert "deleted the last copy" in warning[0] and ours["stage_code"] in warning[0]
    assert out["last_copy"] == [f"{MODEL}@v1.0.0"]
    dropped = {(o["oid"], o["where"]): o["reason"] for o in out["removed"]}
    assert dropped[(models["v1.0.0"], "remote")] == "cold, rebuildable, last copy"
    assert models["v1.0.0"] not in remote_objects(remote) | cached(repo)

    code, rows = check_rows(repo)  # this install still rebuilds it
    assert code == 0 and rows["v1.0.0"]["status"] == "rebuildable"
    assert rows["v1.0.0"]["rebuild"] == "this-install"
    code, rows = check_rows(upgraded)  # the upgraded one names the trainer it needs
    assert code == 1 and rows["v1.0.0"]["status"] == "needs-trainer"
    assert rows["v1.0.0"]["trainer_needed"]["fingerprint"]["stage_code"] == ours["stage_code"]
    assert f"rebuildable only with trainer dvc-monitor stage code {ours['stage_code']}" \
        in rows["v1.0.0"]["note"]
    assert {rows[v]["status"] for v in ("v1.1.0", "v1.2.0")} == {"remote"}
    proc = upgraded.dm("rollback", MODEL, "--to", "v1.0.0", "-m", "x", check=False)
    assert proc.returncode != 0 and "another trainer" in proc.stderr


def test_gc_keeps_in_the_cache_what_the_remote_lacks(built, tmp_path):
    repo = copy_repo(built, tmp_path)
    remote = private_remote(repo, tmp_path)
    cold = model_md5(repo, "v1.0.0")
    (remote / "files/md5" / cold[:2] / cold[2:]).unlink()  # never pushed, as far as gc knows

    proc = subprocess.run([str(BIN / "dvc-monitor"), "gc", "--keep-last", "1"], cwd=repo.path,
                          env=repo.env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=True)
    assert cold in cached(repo)
    assert (f"kept in the local cache (cold, but the DVC remote lacks their outputs): "
            f"{MODEL}@v1.0.0; run 'dvc-monitor push', then gc again") in proc.stdout
    # each statement is a line of its own, the last one included (it was run into the next)
    assert proc.stdout.endswith("\n")
    lines = proc.stdout.splitlines()
    assert lines[-2].startswith("Freed ") and lines[-1].startswith("Hot (kept whole): 2 ")
    assert lines[-1].endswith("rebuilt on rollback): 0")  # v1.0.0's model stayed

    proc = repo.dm("gc", "--keep-last", "1", "--drop-rebuildable", "--dry-run")
    assert "would delete the last copy" in proc.stderr and cold in cached(repo)
    assert "cold, rebuildable, last copy" in proc.stdout
    out = repo.json("gc", "--keep-last", "1", "--drop-rebuildable")
    assert out["last_copy"] == [f"{MODEL}@v1.0.0"] and cold not in cached(repo)


def test_gc_on_s3_keeps_the_remote_copy_and_keeps_cold_outputs_when_s3_is_down(
        built, tmp_path, s3_server):
    repo = copy_repo(built, tmp_path)
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
    repo = Repo(repo.path, {k: v for k, v in repo.env.items() if k not in proxies}, repo.remote)
    s3_server.create_bucket("models")
    (repo.path / ".dvc/config.local").write_text(
        s3_server.dvc_config_local("s3", "s3://models/store"))
    repo.dvc("push", "-q", "-a", "-T")
    cold = model_md5(repo, "v1.0.0")

    out = repo.json("gc", "--keep-last", "1", "--cloud")
    assert out["remote"] == "s3 (s3://models/store)" and out["cold"] == [f"{MODEL}@v1.0.0"]
    assert out["last_copy"] == [] and cold not in cached(repo)
    assert not [o for o in out["removed"] if o["where"] == "remote" and o["version"]]
    code, rows = check_rows(repo)
    assert code == 0 and rows["v1.0.0"]["status"] == "remote"
    for version in ("v1.0.0", "v1.2.0"):  # fetched from S3, then the newest again
        result = json.loads(repo.dm("rollback", MODEL, "--to", version, "-m", "from s3",
                                    "--json").stdout)
        assert result["verified"] and not result["retrained"], version
    assert cold in cached(repo)

    s3_server.stop()  # the remote is down for real: gc cannot see which copies it holds
    proc = repo.dm("gc", "--keep-last", "1")
    assert "cannot reach DVC remote 's3'" in proc.stderr
    assert "the outputs of cold versions stay in the local cache" in proc.stderr
    assert cold in cached(repo)
    before = cached(repo)
    err = _refused(repo, "--keep-last", "1", "--cloud", code=RemoteUnavailable.exit_code)
    assert "cannot reach DVC remote 's3'" in err and cached(repo) == before


def test_check_names_the_pipeline_at_the_root(tmp_path):
    """A get-started-shaped repository (root dvc.yaml, artifact under ``artifacts:``)
    whose newest tag is on a commit without its dvc.lock: check names the real files."""
    from tests.support.layouts import build_started

    repo = build_started(tmp_path)
    repo.git("rm", "-q", "--cached", "dvc.lock")
    repo.git("commit", "-q", "-m", "the lock left out")
    repo.git("tag", "-a", "model@v1.2.0", "-m", "Registering artifact model@v1.2.0")

    code, rows = check_rows(repo)
    assert code == 1 and rows["v1.2.0"]["status"] == "unreadable"
    assert "no dvc.lock for model.pkl at commit" in rows["v1.2.0"]["error"]
    assert rows["v1.0.0"]["status"] == "local-only"  # the others are read from the root
    proc = repo.dm("check", check=False)
    assert "models/" not in proc.stdout + proc.stderr
    assert "no dvc.lock for model.pkl" in proc.stdout

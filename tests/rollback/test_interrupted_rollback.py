"""A rollback that fails, is interrupted or killed leaves the repository as it was.

Faults are injected at exact checkpoints by the test hook ``faultcli.py``
(``<step>[:hang|:pause|:kill]``, documented there), or for real: signals, SIGKILL, a remote that
disappears, a corrupted cache object, a second rollback at the same time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import psutil
import pytest

from dvc_monitor.repo.signals import STEPS
from tests.support.faultcli import LOCK_WAIT
from tests.support.rollback import (
    MODEL,
    MODEL_FILE,
    assert_clean,
    assert_one_line_error,
    cache_file,
    kill_and_reap,
    registered,
    remote_file,
    rollback,
    stage_child,
    start_rollback,
    wait_for_line,
    wait_until_gone,
)

pytestmark = pytest.mark.slow


def journal(repo):
    return repo.path / ".git" / "dvc-monitor" / "rollback.json"


def assert_unchanged(repo, before):
    assert repo.snapshot() == before
    assert not journal(repo).exists()
    assert not (repo.path / ".git" / "dvc-monitor" / "rollback-backup").exists()
    assert_clean(repo)


@pytest.mark.parametrize("step", STEPS)
def test_exception_after_each_step_changes_nothing(rb_repo, step):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()  # so that the fetch step has work to do
    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.0.0", "--stage", "prod", check=False,
                    fault=step)
    assert proc.returncode == 1
    line = assert_one_line_error(proc)
    assert f"injected fault after step '{step}'" in line
    assert "restored to its previous state" in line
    assert_unchanged(repo, before)
    shown = json.loads(repo.run("gto", "show", "--json").stdout)
    assert shown[MODEL]["stage"]["prod"] == "v1.2.0"


@pytest.mark.parametrize("step", ["backup", "restore", "fetch", "checkout", "repro", "verify"])
def test_killed_midway_is_undone_by_the_next_command(rb_repo, step):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0", "--stage", "prod",
                          fault=f"{step}:hang")
    wait_for_line(proc, "hanging after")
    kill_and_reap(proc)
    assert journal(repo).exists()

    out = repo.dm("versions", MODEL)
    assert f"undid an interrupted rollback of {MODEL} to v1.0.0" in out.stderr
    assert "v1.2.0" in out.stdout
    assert_unchanged(repo, before)


def test_recovery_repairs_the_rwlock_file_a_killed_dvc_call_left_torn(rb_repo):
    repo = rb_repo
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0", fault="checkout:hang")
    wait_for_line(proc, "hanging after")
    kill_and_reap(proc)
    # what a SIGKILL inside DVC's rwlock rewrite leaves behind (seen with random kills)
    (repo.path / ".dvc" / "tmp" / "rwlock").write_text("")
    assert "undid an interrupted rollback" in repo.dm("versions", MODEL).stderr
    assert_unchanged(repo, before)  # includes a working `dvc status`


def test_training_left_running_by_a_killed_rollback_is_stopped(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    remote_file(repo, v1.model_md5).unlink()
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0")
    wait_for_line(proc, "Retrain with dvc repro")
    orphan = stage_child(proc.pid)
    kill_and_reap(proc)  # the rollback only: `dvc-monitor stage train` goes on as an orphan
    assert "undid an interrupted rollback" in repo.dm("versions", MODEL).stderr
    assert_unchanged(repo, before)
    # stopped, not finished: had it gone on, it would have written model.skops by its end
    wait_until_gone(orphan)
    assert repo.snapshot() == before


@pytest.mark.parametrize("step", ["commit", "tag"])
def test_killed_after_the_commit_is_finished_by_the_next_command(rb_repo, step):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    head = repo.head()
    proc = start_rollback(repo, "--to", "v1.0.0", "--stage", "prod", "-m", "why",
                          fault=f"{step}:hang")
    wait_for_line(proc, "hanging after")
    kill_and_reap(proc)

    out = repo.dm("recover")
    assert f"finished an interrupted rollback of {MODEL} to v1.0.0" in out.stdout
    assert repo.git("rev-parse", "HEAD^").stdout.strip() == head
    assert repo.md5(MODEL_FILE) == v1.model_md5
    shown = json.loads(repo.run("gto", "show", "--json").stdout)
    assert shown[MODEL]["stage"]["prod"] == "v1.0.0"
    tags = repo.git("tag", "-l", f"{MODEL}#prod#*").stdout.split()
    assert len(tags) == 4  # exactly one stage tag written, never two
    assert not journal(repo).exists()
    assert_clean(repo)


def test_killed_while_undoing_is_undone_by_the_next_command(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.0.0", "--stage", "prod", check=False,
                    fault="commit,undo:kill")
    assert proc.returncode == -9
    assert journal(repo).exists()
    out = repo.dm("recover")
    assert "undid an interrupted rollback" in out.stdout
    assert_unchanged(repo, before)


@pytest.mark.parametrize("delay", [0.4, 0.9, 1.4, 2.0])
def test_killed_at_a_random_moment(rb_repo, delay):
    """Whenever the kill lands (inside DVC's checkout too), the next command sorts it out."""
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    head = repo.head()
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0")
    # a random moment by design: whatever the machine's load, no assertion depends on
    # where the kill lands (or whether the rollback finished first)
    time.sleep(delay)
    if proc.poll() is None:
        kill_and_reap(proc)
    repo.dm("versions", MODEL)
    assert not journal(repo).exists()
    if repo.head() == head:
        assert_unchanged(repo, before)
    else:
        assert repo.git("rev-parse", "HEAD^").stdout.strip() == head
        assert repo.md5(MODEL_FILE) == v1.model_md5
        assert_clean(repo)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_midway_is_undone_at_once(rb_repo, sig, code):
    repo = rb_repo
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0", fault="checkout:hang")
    wait_for_line(proc, "hanging after")
    assert kill_and_reap(proc, sig) == code
    err = proc.stderr.read()
    assert f"interrupted ({signal.Signals(sig).name})" in err
    assert "restored to its previous state" in err and "Traceback" not in err
    assert_unchanged(repo, before)


def test_remote_moved_away_only_outputs_missing_retrains(rb_repo):
    """Only an output (the model file) is missing and the remote is gone, as after
    ``gc`` dropped a cold version's model: dvc repro rebuilds it, and it verifies."""
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    shutil.move(repo.remote, repo.remote.with_name("remote-away"))
    try:
        out = json.loads(rollback(repo, "--to", "v1.0.0", "--json").stdout)
    finally:
        shutil.move(repo.remote.with_name("remote-away"), repo.remote)
    assert out["retrained"] is True and out["proof"]["ok"] is True and out["fetched"] == 0
    assert repo.md5(f"models/{MODEL}/model.skops") == v1.model_md5


def test_remote_vanishing_during_the_rollback_is_undone(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0", fault="restore:pause")
    wait_for_line(proc, "paused after")
    shutil.move(repo.remote, repo.remote.with_name("remote-away"))
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=300) == 1
    err = proc.stderr.read()
    assert "could not download" in err or "cannot reach" in err, err
    assert "restored to its previous state" in err
    assert_unchanged(repo, before)


def corrupt(path, writable: bool) -> None:
    """Overwrite a cache object with other bytes (as root: its read-only mode does not stop us)."""
    path.write_bytes(b"not a model" * 1000)
    path.chmod(0o644 if writable else 0o444)


def test_corrupted_cache_object_is_caught_by_verification(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    obj = cache_file(repo, v1.model_md5)
    corrupt(obj, writable=False)  # read-only, as DVC leaves it: DVC trusts such objects
    before = repo.snapshot()
    proc = rollback(repo, "--to", "v1.0.0", check=False)
    line = assert_one_line_error(proc)
    assert "verification failed" in line and MODEL_FILE in line
    assert f"the DVC cache object {obj} is corrupted" in line
    assert_unchanged(repo, before)

    obj.unlink()  # as the message says: it is fetched again from the remote
    out = json.loads(rollback(repo, "--to", "v1.0.0", "--json").stdout)
    assert out["fetched"] == 1 and out["proof"]["ok"] is True
    assert repo.md5(MODEL_FILE) == v1.model_md5


def test_corrupted_data_partition_is_caught_by_verification(rb_repo):
    repo = rb_repo
    rollback(repo, "--to", "v1.1.0")  # three batches; v1.2.0 has a fourth
    v3 = registered(repo, "v1.2.0")
    manifest = json.loads(cache_file(repo, v3.data["models/fraud-detector/data"]).read_text())
    fourth = next(e for e in manifest if e["relpath"] == "batch-00004.csv")
    obj = cache_file(repo, fourth["md5"])
    corrupt(obj, writable=False)
    before = repo.snapshot()
    line = assert_one_line_error(rollback(repo, "--to", "v1.2.0", check=False))
    assert "verification failed" in line and "models/fraud-detector/data" in line
    assert f"the DVC cache object {obj} is corrupted" in line
    assert_unchanged(repo, before)


def test_corrupted_writable_cache_object_is_dropped_by_dvc_and_rebuilt(rb_repo):
    """DVC re-hashes a cache object that is not read-only, drops it, and repro retrains."""
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    corrupt(cache_file(repo, v1.model_md5), writable=True)
    out = json.loads(rollback(repo, "--to", "v1.0.0", "--json").stdout)
    assert out["proof"]["ok"] is True and out["retrained"] is True
    assert repo.md5(MODEL_FILE) == v1.model_md5
    assert_clean(repo)


def test_allow_mismatch_keeps_a_mismatching_result(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    corrupt(cache_file(repo, v1.model_md5), writable=False)
    out = json.loads(rollback(repo, "--to", "v1.0.0", "--allow-mismatch", "--json").stdout)
    assert out["proof"]["ok"] is False and out["commit"] == repo.head()
    assert out["proof"]["model"]["got"] != v1.model_md5
    assert "MISMATCH allowed" in repo.git("log", "-1", "--format=%B").stdout


def test_second_rollback_fails_clearly_while_the_first_runs(rb_repo):
    repo = rb_repo
    v1 = registered(repo, "v1.0.0")
    first = start_rollback(repo, "--to", "v1.0.0", fault="backup:pause")
    wait_for_line(first, "paused after")
    second = rollback(repo, "--to", "v1.1.0", "--wait", "1", check=False)
    line = assert_one_line_error(second)
    assert "another dvc-monitor command is writing to this repository" in line
    assert "'rollback fraud-detector'" in line and "wait for it to finish" in line
    # a read-only command meanwhile neither waits nor touches the running rollback
    assert "v1.2.0" in repo.dm("versions", MODEL).stdout
    assert journal(repo).exists()
    first.send_signal(signal.SIGUSR1)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert repo.md5(MODEL_FILE) == v1.model_md5
    assert_clean(repo)


def test_second_rollback_waits_for_the_first(rb_repo):
    repo = rb_repo
    v2 = registered(repo, "v1.1.0")
    head = repo.head()
    first = start_rollback(repo, "--to", "v1.0.0", fault="backup:pause")
    wait_for_line(first, "paused after")
    # --wait: as long as the first takes to finish on a loaded machine (the default is 30 s)
    second = start_rollback(repo, "--to", "v1.1.0", "--wait", "600", fault="lock:report")
    wait_for_line(second, LOCK_WAIT)
    assert second.poll() is None  # waiting for the lock
    first.send_signal(signal.SIGUSR1)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=600) == 0, second.stderr.read()
    subjects = repo.git("log", "-3", "--format=%s").stdout.splitlines()
    assert subjects[0].startswith(f"Roll back {MODEL} to v1.1.0")
    assert subjects[1].startswith(f"Roll back {MODEL} to v1.0.0")
    assert repo.git("rev-parse", "HEAD~2").stdout.strip() == head
    assert repo.md5(MODEL_FILE) == v2.model_md5
    assert_clean(repo)


def force_retrain(repo) -> None:
    """v1.0.0's model object is nowhere: the rollback must retrain it."""
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    remote_file(repo, v1.model_md5).unlink()


@pytest.mark.parametrize("sig,code,ignored", [
    (signal.SIGINT, 130, False),
    (signal.SIGINT, 130, True),  # started with SIGINT ignored, as a script's background job
    (signal.SIGTERM, 143, False),
])
def test_signal_to_the_pid_during_the_retrain_undoes_the_rollback(rb_repo, sig, code, ignored):
    repo = rb_repo
    force_retrain(repo)
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0", "--stage", "prod", sigint_ignored=ignored)
    child = stage_child(proc.pid)
    os.kill(proc.pid, sig)  # the rollback's pid only, not its process group
    out, err = proc.communicate(timeout=300)  # the undo runs first
    assert proc.returncode == code, err
    assert f"interrupted ({signal.Signals(sig).name})" in err
    assert "restored to its previous state" in err and "Traceback" not in err
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert repo.snapshot() == before
    assert not journal(repo).exists()
    assert_clean(repo)
    shown = json.loads(repo.run("gto", "show", "--json").stdout)
    assert shown[MODEL]["stage"]["prod"] == "v1.2.0"

"""Issue #9, defects 3 and 11.

3. A SIGINT sent to the rollback's pid (not its process group, as ``kill -INT PID`` or a
   supervisor does) while DVC's repro runs the training command aborts and undoes the
   rollback, as SIGTERM does.
11. The trainer fingerprint (``trainer.json``, a dep of the train stage) makes a change of
   dvc-monitor's stage code or of the libraries that shape model bytes a changed input.
"""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from rollback_support import (  # noqa: F401  (fixtures)
    MODEL,
    MODEL_DIR,
    assert_clean,
    cache_file,
    registered,
    remote_file,
    rollback,
    rollback_base,
    rb_repo,
    start_rollback,
)

pytestmark = pytest.mark.slow


def journal(repo):
    return repo.path / ".git" / "dvc-monitor" / "rollback.json"


def stage_child(pid: int, timeout: float = 120) -> psutil.Process:
    """The ``dvc-monitor stage train`` process that the rollback's repro started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if "stage" in cmd and "train" in cmd:
                return child
        time.sleep(0.05)
    raise AssertionError("the rollback never started `dvc-monitor stage train`")


def force_retrain(repo) -> None:
    """v1.0.0's model object is nowhere: the rollback must retrain it."""
    v1 = registered(repo, "v1.0.0")
    cache_file(repo, v1.model_md5).unlink()
    remote_file(repo, v1.model_md5).unlink()


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_the_pid_during_the_retrain_undoes_the_rollback(rb_repo, sig, code):
    repo = rb_repo
    force_retrain(repo)
    before = repo.snapshot()
    proc = start_rollback(repo, "--to", "v1.0.0", "--stage", "prod")
    child = stage_child(proc.pid)
    os.kill(proc.pid, sig)  # the rollback's pid only, not its process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted ({signal.Signals(sig).name})" in err
    assert "restored to its previous state" in err and "Traceback" not in err
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert repo.snapshot() == before
    assert not journal(repo).exists()
    assert_clean(repo)
    shown = json.loads(repo.run("gto", "show", "--json").stdout)
    assert shown[MODEL]["stage"]["prod"] == "v1.2.0"

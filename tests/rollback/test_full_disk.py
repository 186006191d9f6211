"""A full disk, for real. The repository lives on a small tmpfs that the
test mounts and fills; a rollback that runs out of space midway, read commands while the
disk is full, and ``recover`` once space is freed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.repos import cli_env
from tests.support.rollback import (
    MODEL,
    assert_one_line_error,
    copy_base,
    start_rollback,
    wait_for_line,
)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs mounted for this test (skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("a full disk is caused for real on a tmpfs, and mounting one is not "
                    f"permitted here ({proc.stderr.strip() or 'mount failed'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount: Path, name: str = "fill") -> Path:
    """Take every free byte of the tmpfs at ``mount`` with one file; returns it."""
    assert os.path.ismount(mount)  # never fill another disk
    path = mount / name
    with open(path, "wb") as f:
        free = shutil.disk_usage(mount).free
        if free:
            os.posix_fallocate(f.fileno(), 0, free)
    assert shutil.disk_usage(mount).free == 0
    return path


def temporaries(root: Path) -> list[str]:
    """Temporary files in the work tree (DVC's ``.*.tmp``, dvc-monitor's ``*-tmp``); DVC's
    own folders (``.dvc/cache``, ``.dvc/tmp``) are DVC's to manage."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith((".tmp", "-tmp")) and ".git" not in p.parts
                  and p.relative_to(root).parts[:2] not in ((".dvc", "tmp"), (".dvc", "cache")))


def test_rollback_on_a_full_disk_then_reads_then_recover_leaves_no_temporary_files(
        rollback_base, small_disk, tmp_path):
    repo = copy_base(rollback_base, small_disk / "copy")
    # the home stays on the big disk: DVC's site cache there is a SQLite database, and on a
    # full tmpfs SQLite retries growing its -shm file forever (seen with strace: a hang
    # inside DVC, before dvc-monitor's code could report anything)
    (tmp_path / "home").mkdir()
    repo.env = cli_env(tmp_path / "home")
    shutil.rmtree(repo.path / ".git/dvc-monitor", ignore_errors=True)  # cold caches
    before = repo.snapshot()
    tags = repo.git("tag", "-l").stdout

    # the disk fills up while the rollback runs (after its backups, before the checkout)
    proc = start_rollback(repo, "--to", "v1.0.0", fault="fetch:pause")
    wait_for_line(proc, "paused after fetch", timeout=600)  # a loaded machine is slow
    filler = fill(small_disk)
    os.kill(proc.pid, signal.SIGUSR1)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    line = [x for x in err.splitlines() if x.startswith("dvc-monitor: error:")]
    assert len(line) == 1 and "Traceback" not in err, err
    assert "undoing it failed too" in line[0] and "No space left on device" in line[0]
    assert line[0].endswith("free some space (df -h shows it), then run 'dvc-monitor recover'")

    # reads still answer on the full disk, with one warning line, and with cold caches
    # (the registry's caches in .git/dvc-monitor cannot be written: they are skipped)
    for cache in (repo.path / ".git/dvc-monitor").glob("*-*"):
        if cache.name != "rollback-backup":
            shutil.rmtree(cache)
    more = fill(small_disk, "fill-2")  # what removing them freed
    for args in (["versions", MODEL], ["show", f"{MODEL}#prod"], ["history", MODEL]):
        read = repo.dm(*args, check=False)
        assert read.returncode == 0, read.stderr
        assert "v1.2.0" in read.stdout
        assert read.stderr.count("\n") == 1 and "Traceback" not in read.stderr
        assert read.stderr.startswith("dvc-monitor: warning: an interrupted rollback could "
                                      "not be undone yet")
        assert "free some space" in read.stderr and "'dvc-monitor recover'" in read.stderr
    # a write refuses, in one line, and writes nothing
    write = repo.dm("promote", MODEL, "v1.1.0", "--stage", "staging", check=False)
    assert write.returncode == 1
    assert assert_one_line_error(write).startswith(
        "dvc-monitor: error: an interrupted rollback could not be undone: no space left")
    assert repo.git("tag", "-l").stdout == tags

    # space freed: recover puts everything back, with no temporary file left anywhere
    filler.unlink()
    more.unlink()
    rec = repo.dm("recover")
    assert "undid an interrupted rollback of fraud-detector to v1.0.0" in rec.stdout + rec.stderr
    assert temporaries(repo.path) == []
    assert repo.snapshot() == before
    assert repo.dm("versions", MODEL).stderr == ""


def test_a_command_that_runs_out_of_space_says_so_in_one_line(rollback_base, small_disk,
                                                               tmp_path):
    repo = copy_base(rollback_base, small_disk / "copy")
    (tmp_path / "home").mkdir()
    repo.env = cli_env(tmp_path / "home")
    batch = tmp_path / "batch.csv"
    shutil.copy(rollback_base / "anomaly-batch-4.csv", batch)
    before = repo.snapshot()
    fill(small_disk)
    proc = repo.dm("ingest", MODEL, str(batch), check=False)
    assert proc.returncode != 0
    line = assert_one_line_error(proc)
    assert "no space left on the device" in line and "free some space" in line, line
    assert repo.snapshot() == before

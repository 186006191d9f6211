"""Helpers for the rollback tests: one repository with history, built once, copied per test.

The base repository (built once per test session, shared by the xdist workers through a
file lock) holds two models:

* ``fraud-detector`` with three registered versions and a stage history::

      v1.0.0  initial data, default params          prod#1
      v1.1.0  n_estimators 60                       prod#2
      v1.2.0  v1.1.0 + a fourth data batch          prod#3   (HEAD)

* ``atm-watch``, one version, which no rollback of fraud-detector may touch.

Every version was pushed to the DVC remote. Tests get a private copy (``shutil.copytree``
with ``symlinks=True``) whose ``.dvc/config.local`` points the remote at the copy's own
remote folder, so a test may delete, move or corrupt anything.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.repos import BIN, Repo, cli_env, init_model, new_repo, sample_csv

if TYPE_CHECKING:
    import psutil

MODEL = "fraud-detector"
OTHER = "atm-watch"
VERSIONS = ("v1.0.0", "v1.1.0", "v1.2.0")
MODEL_DIR = f"models/{MODEL}"
MODEL_FILE = f"{MODEL_DIR}/model.skops"
METRICS = f"{MODEL_DIR}/metrics.json"
BASE_FORMAT = 5  # bump when the base repository's recipe changes


def _set_param(repo: Repo, name: str, key: str, value: str) -> None:
    params = repo.path / "models" / name / "params.yaml"
    lines = params.read_text().splitlines()
    lines = [f"  {key}: {value}" if line.strip().startswith(f"{key}:") else line
             for line in lines]
    params.write_text("\n".join(lines) + "\n")


def build_base(folder: Path) -> Repo:
    """The base repository described in the module docstring."""
    repo = init_model(new_repo(folder), "anomaly", MODEL)
    repo.dvc("push", "-q")
    repo.dm("register", MODEL, "--version", "v1.0.0")
    repo.dm("promote", MODEL, "v1.0.0", "--stage", "prod")

    # another model with other data (so that no cache object is shared with MODEL)
    repo.dm("init", "--template", "anomaly", "--name", OTHER, "--sample-data", "--seed", "7")
    repo.dvc("repro", f"models/{OTHER}/dvc.yaml")
    repo.commit_all(f"Add anomaly model {OTHER}")
    repo.dvc("push", "-q")
    repo.dm("register", OTHER, "--version", "v0.1.0")

    _set_param(repo, MODEL, "n_estimators", "60")
    repo.dvc("repro", f"{MODEL_DIR}/dvc.yaml")
    repo.commit_all("fraud-detector: fewer trees")
    repo.dvc("push", "-q")
    repo.dm("register", MODEL, "--version", "v1.1.0")
    repo.dm("promote", MODEL, "v1.1.0", "--stage", "prod")

    repo.dm("ingest", MODEL, str(sample_csv(folder, "anomaly", 4)))
    repo.dvc("repro", f"{MODEL_DIR}/dvc.yaml")
    repo.commit_all("fraud-detector: a fourth batch of data")
    repo.dvc("push", "-q")
    repo.dm("register", MODEL, "--version", "v1.2.0")
    repo.dm("promote", MODEL, "v1.2.0", "--stage", "prod")
    assert repo.git("status", "--porcelain").stdout == ""
    return repo


def copy_base(base: Path, dst: Path) -> Repo:
    """A private copy of the base repository whose DVC remote is the copy's own."""
    shutil.copytree(base, dst, symlinks=True, ignore=shutil.ignore_patterns("ready"))
    repo = Repo(dst / "repo", cli_env(dst / "home"), dst / "remote")
    (repo.path / ".dvc" / "config.local").write_text(
        f"['remote \"local\"']\n    url = {repo.remote}\n")
    return repo


# -- helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    version: str
    commit: str
    id: str
    model_md5: str
    data: dict


def registered(repo: Repo, version: str, name: str = MODEL) -> Registered:
    for v in json.loads(repo.dm("versions", name, "--json").stdout):
        if v["version"] == version:
            return Registered(v["version"], v["commit"], v["id"], v["model_md5"], v["data"])
    raise AssertionError(f"{name} {version} is not registered")


def show_at(repo: Repo, commit: str, path: str) -> bytes:
    return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=repo.path,
                          capture_output=True, check=True).stdout


def cache_file(repo: Repo, md5: str) -> Path:
    return repo.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def remote_file(repo: Repo, md5: str) -> Path:
    return repo.remote / "files" / "md5" / md5[:2] / md5[2:]


FAULT_CLI = Path(__file__).with_name("faultcli.py")


def dm_command(fault: str | None) -> list[str]:
    """The dvc-monitor command line; with ``fault``, the test hook of faultcli.py."""
    if fault is None:
        return [str(BIN / "dvc-monitor")]
    return [sys.executable, str(FAULT_CLI), fault]


def rollback(repo: Repo, *args: str, check: bool = True, env: dict | None = None,
             timeout: float = 300, fault: str | None = None) -> subprocess.CompletedProcess:
    """``dvc-monitor rollback MODEL ARGS`` (extra environment variables; a checkpoint fault)."""
    full = dict(repo.env)
    full.update(env or {})
    proc = subprocess.run([*dm_command(fault), "rollback", MODEL, *args], cwd=repo.path,
                          env=full, text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"rollback {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def start_rollback(repo: Repo, *args: str, env: dict | None = None,
                   name: str = MODEL, fault: str | None = None,
                   sigint_ignored: bool = False) -> subprocess.Popen:
    """``dvc-monitor rollback`` in the background; ``sigint_ignored`` starts it with SIGINT
    ignored, as a shell script starts a background job."""
    full = dict(repo.env)
    full.update(env or {})
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen([*dm_command(fault), "rollback", name, *args], cwd=repo.path,
                            env=full, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=ignore)


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 300) -> list[str]:
    """Read the process's stderr until a line contains ``needle``; returns the lines read.

    The pipe is read one byte at a time from its file descriptor. ``proc.stderr.readline()``
    reads ahead: when the process wrote two lines before this reader got the CPU (the rule
    on a loaded machine), the second sat in the text buffer where ``select`` cannot see it,
    and a process paused after writing it was waited for in vain. Nothing past the
    needle's line is consumed, so ``proc.stderr.read()`` afterwards gets the rest. The
    deadline only bounds a hang.
    """
    import select

    fd = proc.stderr.fileno()
    lines: list[str] = []
    line = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        byte = os.read(fd, 1) if ready else b""
        if not byte:  # the deadline passed, or the process closed stderr
            break
        line += byte
        if byte == b"\n":
            lines.append(line.decode(errors="replace"))
            line.clear()
            if needle in lines[-1]:
                return lines
    proc.kill()
    seen = "".join(lines) + line.decode(errors="replace")
    raise AssertionError(f"'{needle}' never appeared; stderr so far:\n{seen}")


def stage_child(pid: int, timeout: float = 300) -> "psutil.Process":
    """The ``dvc-monitor stage train`` process that the rollback ``pid``'s repro started."""
    import psutil

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


def wait_until_gone(proc: "psutil.Process", timeout: float = 300) -> None:
    """Wait until ``proc`` (not our child) has ended: gone, or a zombie nobody reaps."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {proc.pid} ({proc.name()}) still runs after {timeout} s")


def kill_and_reap(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    os.kill(proc.pid, sig)
    return proc.wait(timeout=300)  # a SIGTERM is followed by an undo


def assert_clean(repo: Repo, *targets: str) -> None:
    """git status empty and ``dvc status [TARGETS]`` up to date."""
    assert repo.git("status", "--porcelain", "--untracked-files=all").stdout == ""
    out = repo.dvc("status", *targets).stdout
    assert "up to date" in out, out


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("dvc-monitor: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return errors[0]

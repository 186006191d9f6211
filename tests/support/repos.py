"""Repositories for tests: real git repositories, real DVC, real training, in temporary
folders.

Commands are run as a user would run them: the ``dvc-monitor``, ``dvc``, ``git`` and
``gto`` executables, in a subprocess, with an environment of their own (os.environ is
never modified).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        DVC_MONITOR_HOME=str(home / "dvc-monitor"),
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(home / "dvc-site-cache"),
        GIT_AUTHOR_NAME="Test User",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test User",
        GIT_COMMITTER_EMAIL="test@example.com",
        GIT_CONFIG_NOSYSTEM="1",
        PYTHONWARNINGS="ignore",
    )
    env.pop("DVC_MONITOR_DEBUG", None)
    return env


@dataclass
class Repo:
    """A git repository in a temporary folder, with helpers to run commands in it."""

    path: Path
    env: dict[str, str]
    remote: Path

    def run(self, *args: str, check: bool = True, cwd: Path | None = None,
            input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), cwd=cwd or self.path, env=self.env, text=True,
                              capture_output=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def dm(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        """Run ``dvc-monitor ARGS``."""
        return self.run(str(BIN / "dvc-monitor"), *args, check=check, **kw)

    def dvc(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "dvc"), *args, check=check, **kw)

    def git(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return self.run("git", *args, check=check, **kw)

    def json(self, *args: str) -> object:
        """``dvc-monitor ARGS --json`` parsed."""
        return json.loads(self.dm(*args, "--json").stdout)

    def commit_all(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.strip()

    def md5(self, rel: str) -> str:
        return hashlib.md5((self.path / rel).read_bytes()).hexdigest()

    def snapshot(self) -> dict:
        """HEAD, ``git status --porcelain`` and the md5 of every file in the work tree.

        Two equal snapshots mean the repository was left exactly as it was.
        """
        files = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path)
            if rel.parts[0] in (".git",) or (rel.parts[0] == ".dvc" and len(rel.parts) > 1
                                             and rel.parts[1] in ("tmp", "cache")):
                continue
            if p.is_file():
                files[str(rel)] = hashlib.md5(p.read_bytes()).hexdigest()
        return {
            "head": self.git("rev-parse", "HEAD", check=False).stdout.strip(),
            "status": self.git("status", "--porcelain", "--untracked-files=all").stdout,
            "files": files,
            "tags": self.git("tag", "-l").stdout,
        }


def new_repo(tmp_path: Path) -> Repo:
    path = tmp_path / "repo"
    path.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    repo = Repo(path, cli_env(home), tmp_path / "remote")
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.name", "Test User")
    repo.git("config", "user.email", "test@example.com")
    return repo


def copy_repo(src: Repo, tmp_path: Path) -> Repo:
    """A private copy of a repository built once per module (its home and cache come
    along; the DVC remote is shared, so tests on copies must not push)."""
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(src.path.parent, dst, symlinks=True)
    return Repo(dst / "repo", cli_env(dst / "home"), src.remote)


def init_model(repo: Repo, kind: str = "anomaly", name: str = "fraud-detector",
               commit: bool = True) -> Repo:
    """``dvc-monitor init`` with sample data, ``dvc repro``, and a commit."""
    repo.dm("init", "--template", kind, "--name", name, "--sample-data",
            "--remote", str(repo.remote))
    repo.dvc("repro", f"models/{name}/dvc.yaml")
    if commit:
        repo.commit_all(f"Add {kind} model {name}")
    return repo


def shared_build(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per test session, in a folder every pytest-xdist worker
    sees (the first worker builds it under a file lock; the others wait for it)."""
    import shutil

    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers' temp folders share
    folder = shared / name
    with FileLock(str(folder) + ".lock"):
        if not (shared / f"{name}.ready").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (shared / f"{name}.ready").write_text("ok\n")
    return folder


TRAINED_FORMAT = 1  # bump when the recipe of trained() changes


def trained(tmp_path_factory, folder: Path, kind: str = "anomaly",
            name: str = "fraud-detector") -> Repo:
    """What ``init_model(new_repo(folder), kind, name)`` makes: a trained, committed
    model, DVC remote ``folder/remote``. ``dvc-monitor init`` runs here; the training
    (``dvc repro``, seconds of CPU) ran once per test session in a shared repository,
    whose outputs and DVC cache objects are copied in: the same bytes this repro would
    write (training is deterministic; tests check that elsewhere)."""
    import shutil

    base = shared_build(tmp_path_factory, f"trained-{kind}-{name}-{TRAINED_FORMAT}",
                        lambda f: init_model(new_repo(f), kind, name))
    repo = new_repo(folder)
    repo.dm("init", "--template", kind, "--name", name, "--sample-data",
            "--remote", str(repo.remote))
    shutil.copytree(base / "repo" / "models", repo.path / "models", dirs_exist_ok=True)
    shutil.copytree(base / "repo" / ".dvc" / "cache", repo.path / ".dvc" / "cache",
                    dirs_exist_ok=True)
    repo.commit_all(f"Add {kind} model {name}")
    return repo


def trained_anomaly(tmp_path_factory, folder: Path) -> Repo:
    """``trained``: anomaly model ``fraud-detector``."""
    return trained(tmp_path_factory, folder)


def kill_ingest_when(repo: Repo, name: str, batch: Path, appears: str) -> None:
    """Start ``dvc-monitor ingest NAME BATCH`` and SIGKILL it once ``appears`` (a
    repository-relative path) and the ingest journal both exist: a point the real command
    reaches, nothing injected."""
    import signal
    import time

    part = repo.path / appears
    journal = repo.path / ".git/dvc-monitor/ingest.json"
    proc = subprocess.Popen([str(BIN / "dvc-monitor"), "ingest", name, str(batch)],
                            cwd=repo.path, env=repo.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (part.exists() and journal.exists()):
        time.sleep(0.002)
    assert proc.poll() is None, "ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def sample_csv(tmp_path: Path, kind: str, index: int, seed: int = 0) -> Path:
    """Write sample batch ``index`` of ``kind`` to a CSV file and return its path."""
    from dvc_monitor.model.data import write_batch
    from dvc_monitor.kinds import kind_for

    path = tmp_path / f"{kind}-batch-{index}.csv"
    write_batch(kind_for(kind).sample_batch(index, seed=seed), path)
    return path


def new_version(repo: Repo, tmp_path: Path, name: str = "fraud-detector", kind: str = "anomaly",
                batch: int = 4, param: tuple[str, str] | None = None) -> str:
    """Make a new model version: ingest a batch (or change a train param), repro, commit."""
    if param is None:
        repo.dm("ingest", name, str(sample_csv(tmp_path, kind, batch)))
    else:
        key, value = param
        params = repo.path / "models" / name / "params.yaml"
        lines = params.read_text().splitlines()
        lines = [f"  {key}: {value}" if line.strip().startswith(f"{key}:") else line for line in lines]
        params.write_text("\n".join(lines) + "\n")
    repo.dvc("repro", f"models/{name}/dvc.yaml")
    return repo.commit_all(f"New version of {name}")

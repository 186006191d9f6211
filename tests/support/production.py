"""Shared by the production tests: a registry built once per module, and a real
``dvc-monitor serve`` process on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.repos import BIN, Repo, cli_env, init_model, new_repo, shared_build
from tests.support.s3server import free_port

MODELS = {"forecast": "demand-forecast", "risk": "tumor-risk"}


def shared_registry(tmp_path_factory) -> Repo:
    """``build_registry`` once per test session, shared by the pytest-xdist workers.
    Tests treat it as read-only: the ones that change a repository work on a
    ``copy_repo``."""
    base = shared_build(tmp_path_factory, "production-kinds", build_registry)
    return Repo(base / "repo", cli_env(base / "home"), base / "remote")


def build_registry(base: Path) -> Repo:
    """A repository with v1.0.0 of a forecast and a risk model, in ``prod``, pushed to
    its local-folder DVC remote (the anomaly model is the rollback tests' base)."""
    repo = new_repo(base)
    for kind, name in MODELS.items():
        init_model(repo, kind, name)
        repo.dm("register", name, "--version", "v1.0.0")
        repo.dm("promote", name, "v1.0.0", "--stage", "prod")
    repo.dvc("push", "-q")
    return repo


def score_json(repo: Repo, ref: str, csv: Path, *args: str) -> dict:
    return json.loads(repo.dm("score", ref, str(csv), "--json", *args).stdout)


class Server:
    """``dvc-monitor serve ARGS`` in a subprocess, stopped with SIGTERM."""

    def __init__(self, repo: Repo, *args: str, cwd: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(BIN / "dvc-monitor"), "serve", *args, "--port", str(self.port)],
            cwd=cwd or repo.path, env=repo.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 300  # bounds a hang only
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("serve did not answer /health")

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, dict]:
        """(status, headers, JSON body); 4xx/5xx are returned, not raised."""
        status, headers, raw = self.raw(method, path, body, {"Content-Type": "application/json"})
        return status, headers, json.loads(raw)

    def raw(self, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body bytes); 4xx/5xx are returned."""
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:  # bounds a hang only
                return resp.status, _lower(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, _lower(err.headers), err.read()

    def get(self, path: str) -> dict:
        status, _, doc = self.request("GET", path)
        assert status == 200, doc
        return doc

    def score(self, rows: list[dict]) -> tuple[int, dict, dict]:
        return self.request("POST", "/score", json.dumps({"rows": rows}).encode())

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=300) as resp:
            return resp.read().decode()

    def wait_for(self, predicate, timeout: float = 300, path: str = "/health") -> dict:
        """Poll ``path`` (/health) until ``predicate(doc)`` holds; return that document
        (the last one when ``timeout``, which only bounds a hang, passed first)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.get(path)
            if predicate(doc) or time.monotonic() > deadline:
                return doc
            time.sleep(0.2)

    def wait_for_metrics(self, predicate, timeout: float = 60) -> str:
        """Poll /metrics until ``predicate(text)`` holds; return that text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.metrics()
            if predicate(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.2)

    def rss_mb(self) -> float:
        """The server process's resident memory (VmRSS), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmRSS in /proc/{self.proc.pid}/status")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def _lower(headers) -> dict:
    return {k.lower(): v for k, v in headers.items()}


def assert_served_cleanly(code: int, stderr: str, answers: list) -> None:
    """A server stopped by SIGTERM exited 0 with no traceback, and every answer was a 200."""
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert [status for status, _, _ in answers if status != 200] == []

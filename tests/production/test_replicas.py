"""Replicas of `dvc-monitor serve`: several processes on one registry each follow the
stage. Real server processes on free 127.0.0.1 ports; the registry is a real bare origin
served by `git daemon` on 127.0.0.1 (its DVC remote a local folder), or a local path for
`--workers`; real `dvc-monitor promote` and `rollback` while they serve."""

from __future__ import annotations

import re
import time

import pytest

from tests.support.gitdaemon import GitDaemon
from tests.support.production import Server
from tests.support.rollback import MODEL as ANOMALY
from tests.support.rollback import copy_base
from dvc_monitor.kinds import kind_for

# The rollback tests' base repository: fraud-detector v1.0.0, v1.1.0, then v1.2.0 in prod.
NEW, OLD = "v1.2.0", "v1.1.0"
REF = f"{ANOMALY}#prod"
HANG = 300  # seconds: bounds a hang only


@pytest.fixture(scope="module")
def rows():
    return kind_for("anomaly").sample_batch(9).head(3).to_dict("records")


@pytest.fixture
def origin(rollback_base, tmp_path):
    """A copy of the base repository whose ``origin`` is a bare repository, served by
    ``git daemon``: (the copy, the origin's git:// URL)."""
    repo = copy_base(rollback_base, tmp_path / "copy")
    served = tmp_path / "served"
    served.mkdir()
    repo.git("clone", "-q", "--bare", str(repo.path), str(served / "origin.git"))
    repo.git("remote", "add", "origin", str(served / "origin.git"))
    daemon = GitDaemon(served)
    try:
        yield repo, daemon.url("origin.git")
    finally:
        daemon.stop()


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def served_version(server: Server, rows: list[dict]) -> str:
    status, headers, doc = server.score(rows)
    assert status == 200, doc
    assert headers["x-model-version"] == doc["version"]
    return doc["version"]


def wait_until_served(servers: list[Server], rows: list[dict], version: str) -> None:
    """Score on each server until it answers from ``version``; once it has, it never
    answers from another one again (checked on the next answer)."""
    for server in servers:
        deadline = time.monotonic() + HANG
        while served_version(server, rows) != version:
            assert time.monotonic() < deadline, f"{server.url} never served {version}"
            time.sleep(0.1)
        assert served_version(server, rows) == version


def wait_polls(server: Server, polls: int) -> str:
    """Wait until ``server`` has looked at the registry ``polls`` more times and found
    nothing new; return its metrics then."""
    unchanged = 'dvc_monitor_reloads_total{result="unchanged"}'
    start = metric(server.metrics(), unchanged)
    return server.wait_for_metrics(lambda text: metric(text, unchanged) >= start + polls,
                                   timeout=HANG)


def test_two_serve_processes_on_a_git_url_converge_and_poll_without_fetching(origin, rows,
                                                                               tmp_path):
    repo, url = origin
    cache = tmp_path / "user-cache"  # one cached clone, shared by both processes
    servers = [Server(repo, REF, "--repo", url, "--cache-dir", str(cache), "--poll", "0.5",
                      cwd=tmp_path) for _ in range(2)]
    try:
        assert [served_version(s, rows) for s in servers] == [NEW, NEW]
        (clone,) = [p for p in (cache / "clones").iterdir() if p.is_dir()]

        # nothing changed: past its first look (one registry read), each poll is one
        # ls-remote: no fetch, no registry read
        before = [wait_polls(s, 1) for s in servers]
        fetch_head = (clone / ".git" / "FETCH_HEAD").stat().st_mtime_ns \
            if (clone / ".git" / "FETCH_HEAD").exists() else None
        after = [wait_polls(s, 3) for s in servers]
        for old, new in zip(before, after):
            for name in ("dvc_monitor_registry_fetches_total", "dvc_monitor_registry_reads_total"):
                assert metric(new, name) == metric(old, name), name
        assert (clone / ".git" / "FETCH_HEAD").exists() == (fetch_head is not None)
        if fetch_head is not None:
            assert (clone / ".git" / "FETCH_HEAD").stat().st_mtime_ns == fetch_head

        repo.dm("rollback", ANOMALY, "--previous", "--stage", "prod", "-m", "replicas test")
        repo.git("push", "-q", "origin", "HEAD", "--tags")
        wait_until_served(servers, rows, OLD)
        fetched = [metric(s.metrics(), "dvc_monitor_registry_fetches_total") for s in servers]
        assert sum(fetched) >= 1  # the clone is shared: one process may fetch for both

        repo.dm("promote", ANOMALY, NEW, "--stage", "prod")
        repo.git("push", "-q", "origin", "--tags")
        wait_until_served(servers, rows, NEW)
        for server in servers:
            assert server.get("/ready")["ready"] is True
    finally:
        stopped = [s.stop() for s in servers]
    for code, err in stopped:
        assert code == 0, err
        assert "Traceback" not in err


def test_workers_each_follow_the_stage(rollback_base, rows, tmp_path):
    repo = copy_base(rollback_base, tmp_path / "copy")
    server = Server(repo, REF, "--workers", "2", "--poll", "0.5")

    def pids_serving(version: str) -> set[int]:
        """Ask /version (a new connection each time: the kernel hands it to either
        worker) until two workers have answered and the last answer of each is
        ``version``."""
        latest: dict[int, str] = {}
        deadline = time.monotonic() + HANG
        while len(latest) < 2 or set(latest.values()) != {version}:
            assert time.monotonic() < deadline, f"workers answered {latest}, not all {version}"
            doc = server.get("/version")
            latest[doc["pid"]] = doc["version"]
        return set(latest)

    try:
        workers = pids_serving(NEW)
        assert server.proc.pid not in workers
        repo.dm("rollback", ANOMALY, "--previous", "--stage", "prod", "-m", "workers test")
        assert pids_serving(OLD) == workers
        repo.dm("promote", ANOMALY, NEW, "--stage", "prod")
        assert pids_serving(NEW) == workers
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err

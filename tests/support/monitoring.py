"""Monitoring helpers: live windows written as CSV files, ``dvc-monitor watch``, and live
traffic sent to a ``dvc-monitor serve`` process."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.support.production import Server
from tests.support.repos import Repo

ANOMALY = "fraud-detector"


def write_windows(folder: Path, kind: str, indices, rows: int | None = None,
                  change=None) -> Path:
    """Write sample batches ``indices`` of ``kind`` (``change``d, if given) to
    ``folder/wNNN.csv``: one live window each."""
    from dvc_monitor.model.data import write_batch
    from dvc_monitor.kinds import kind_for

    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        kw = {} if rows is None else {"rows": rows}
        frame = kind_for(kind).sample_batch(i, seed=0, **kw)
        write_batch(frame if change is None else change(frame), folder / f"w{i:03d}.csv")
    return folder


def release(repo: Repo, name: str, version: str, *stages: str) -> None:
    """Register ``version`` and promote it to each of ``stages``."""
    repo.dm("register", name, "--version", version)
    for stage in stages:
        repo.dm("promote", name, version, "--stage", stage)


def watch(repo: Repo, *args: str, check: bool = True):
    """``dvc-monitor watch ARGS --json``: the process and its parsed output (or None)."""
    proc = repo.dm("watch", *args, "--json", check=check)
    return proc, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def error_line(proc) -> str:
    """The one error line of a failed command, its last line (and no traceback)."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0] == proc.stderr.strip().splitlines()[-1]
    return errors[0]


def send_until(server: Server, rows, done, limit: int | None = None,
               timeout: float = 300) -> list[tuple[int, dict, dict]]:
    """POST batches until ``done(health)`` holds (checked after each answer). A rollback
    and swap take the watch thread as long as the machine lets them, however many requests
    go by meanwhile: ``timeout`` only bounds a hang (``limit`` caps the requests)."""
    answers = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (limit is None or len(answers) < limit):
        answers.append(server.score(next(rows)))
        if done(server.get("/health")):
            return answers
    raise AssertionError(f"not done after {len(answers)} requests: {server.get('/health')}")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text``."""
    for line in text.splitlines():
        sample = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if sample:
            found = dict(re.findall(r'(\w+)="([^"]*)"', sample.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(sample.group(2))
    raise AssertionError(f"no {name} {labels} in /metrics:\n{text}")

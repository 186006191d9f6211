"""Shared by the shadow and page tests: the rollback tests' base repository with a
candidate in ``staging``, and the live rows sent to a ``serve --shadow``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.production import Server
from tests.support.repos import Repo
from tests.support.rollback import MODEL, copy_base

PROD, CANDIDATE, OLDEST = "v1.2.0", "v1.1.0", "v1.0.0"  # prod holds v1.2.0 in the base
WINDOW = 100  # rows per shadow window (the template's watch.min_rows)
STAGED_MESSAGE = "candidate <b>bold</b> & <script>alert(1)</script>"  # shown as text


def staged_repo(rollback_base: Path, dst: Path) -> Repo:
    """A copy of the base repository with ``CANDIDATE`` in ``staging`` (the message of its
    tag holds markup a page must show as text)."""
    repo = copy_base(rollback_base, dst)
    repo.dm("promote", MODEL, CANDIDATE, "--stage", "staging", "-m", STAGED_MESSAGE)
    return repo


def live_rows(index: int, count: int) -> list[dict]:
    """``count`` rows of the anomaly template's sample batch ``index``."""
    from dvc_monitor.kinds import kind_for

    frame = kind_for("anomaly").sample_batch(index)
    assert len(frame) >= count
    return frame.head(count).to_dict("records")


def shadow_server(repo: Repo, *args: str) -> Server:
    """``serve MODEL#prod --shadow MODEL#staging --window WINDOW`` (and ``args``)."""
    return Server(repo, f"{MODEL}#prod", "--shadow", f"{MODEL}#staging",
                  "--window", str(WINDOW), "--poll", "0.5", *args)


def wait_for_shadow(server: Server, predicate, timeout: float = 120) -> dict:
    """Poll ``GET /shadow`` until ``predicate(doc)`` holds (``timeout`` bounds a hang)."""
    return server.wait_for(predicate, timeout, "/shadow")


def post_rows(server: Server, rows: list[dict], per_request: int) -> list[tuple]:
    """Send ``rows`` in requests of ``per_request`` rows, one after another."""
    return [server.score(rows[i:i + per_request]) for i in range(0, len(rows), per_request)]


def dumps(rows: list[dict]) -> bytes:
    return json.dumps({"rows": rows}).encode()

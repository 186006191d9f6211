"""`dvc-monitor serve` follows a stage tag. Real server processes on free
127.0.0.1 ports, real HTTP from a client thread, real `dvc-monitor rollback` while it
serves; a real bare origin served as file:// with a local-folder DVC remote."""

from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from tests.support.repos import sample_csv
from tests.support.production import Server, score_json
from tests.support.rollback import MODEL as ANOMALY
from tests.support.rollback import copy_base
from dvc_monitor.repo.cache import object_path
from dvc_monitor.kinds import kind_for

# The rollback tests' base repository: fraud-detector v1.0.0, v1.1.0, then v1.2.0 in prod.
NEW, OLD = "v1.2.0", "v1.1.0"
OLDEST = "v1.0.0"


@pytest.fixture
def repo(rollback_base, tmp_path):
    return copy_base(rollback_base, tmp_path / "copy")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A CSV of 20 rows, and the same rows as JSON objects."""
    base = tmp_path_factory.mktemp("batch")
    path = sample_csv(base, "anomaly", 9)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:21]) + "\n")
    rows = kind_for("anomaly").sample_batch(9).head(20).to_dict("records")
    return path, rows


class Client(threading.Thread):
    """Sends the same rows again and again until stopped; keeps every answer."""

    def __init__(self, server: Server, rows: list[dict]):
        super().__init__(daemon=True)
        self.server, self.rows = server, rows
        self.answers: list[tuple[int, dict, dict]] = []
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.answers.append(self.server.score(self.rows))
            except Exception as exc:  # a refused connection or a reset is a failure too
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def versions(self) -> list[str]:
        return [doc.get("version") for _, _, doc in self.answers]


def test_serve_follows_a_rollback_with_no_failed_request(repo, batch):
    csv, rows = batch
    expected = {v: score_json(repo, f"{ANOMALY}@{v}", csv)["results"] for v in (OLD, NEW)}
    assert expected[OLD] != expected[NEW]
    server = Server(repo, f"{ANOMALY}#prod", "--poll", "0.5")
    client = Client(server, rows)
    client.start()
    try:
        client_seen = lambda: len(client.answers) >= 3  # noqa: E731
        server.wait_for(lambda h: client_seen() and h["standby"] == OLD)  # loaded in advance
        repo.dm("rollback", ANOMALY, "--previous", "--stage", "prod", "-m", "serve test")
        health = server.wait_for(lambda h: h["version"] == OLD)
        assert health["standby"] == NEW  # the way back
        count = len(client.answers)
        server.wait_for(lambda h: len(client.answers) >= count + 3)
    finally:
        client.halt.set()
        client.join(timeout=300)
    assert health["version"] == OLD and health["last_reload"]["result"] in ("swapped", "unchanged")
    assert client.errors == []
    assert [s for s, _, _ in client.answers if s != 200] == []
    versions = client.versions()
    first_old = versions.index(OLD)
    assert set(versions[:first_old]) == {NEW} and set(versions[first_old:]) == {OLD}
    for _, headers, doc in client.answers:
        assert headers["x-model-version"] == doc["version"]
        assert doc["model"] == ANOMALY
        assert doc["results"] == expected[doc["version"]]
    text = server.metrics()
    assert re.search(r'dvc_monitor_model_info\{id="sha256:\w+",model="fraud-detector",'
                     rf'version="{OLD}"\}} 1.0', text)
    assert f'version="{NEW}"}} 1.0' not in text.split("dvc_monitor_model_info{")[1].split("\n#")[0]
    assert re.search(r'dvc_monitor_reloads_total\{result="swapped"\} [1-9]', text)
    ok = re.search(r'dvc_monitor_requests_total\{path="/score",status="200"\} (\d+)', text)
    assert int(ok.group(1)) == len(client.answers)
    assert re.search(r'dvc_monitor_live_alert_rate\{kind="anomaly",model="fraud-detector"\} \d', text)
    code, err = server.stop()
    assert code == 0, err
    assert f"swapped {ANOMALY}@{NEW} for {ANOMALY}@{OLD}" in err
    assert f"stopped serving {ANOMALY}@{OLD}" in err


def test_a_corrupt_new_holder_is_retried_and_served_once_repaired(repo, batch):
    """The damaged holder is v1.0.0: v1.1.0, prod's previous holder, is the server's
    standby (loaded and verified before the damage, so it would be swapped in unread)."""
    csv, rows = batch
    server = Server(repo, f"{ANOMALY}#prod", "--poll", "0.5")
    try:
        status, _, doc = server.request("GET", "/ready")
        assert status == 200 and doc["ready"] is True and doc["holder"] == NEW
        assert server.wait_for(lambda h: h["standby"] is not None)["standby"] == "v1.1.0"
        md5 = json.loads(repo.dm("show", f"{ANOMALY}@{OLDEST}", "--json").stdout)["model_md5"]
        obj = object_path(repo.path, md5)
        good = obj.read_bytes()
        obj.chmod(0o644)
        obj.write_bytes(good[:-40] + b"\0" * 40)  # a damaged cache file (same size)
        repo.dm("promote", ANOMALY, OLDEST, "--stage", "prod")
        health = server.wait_for(lambda h: h["status"] == "degraded")
        assert health["status"] == "degraded" and health["ready"] is False
        assert health["version"] == NEW and health["holder"] == OLDEST
        assert health["last_reload"]["result"] == "refused"
        assert f"but dvc.lock records {md5}" in health["reason"]
        assert f"still serving {ANOMALY}@{NEW}" in health["reason"]
        status, _, doc = server.request("GET", "/ready")
        assert status == 503 and doc["ready"] is False and doc["reason"].startswith(
            f"{ANOMALY}@{OLDEST} was not swapped in")
        status, headers, doc = server.score(rows)
        assert status == 200 and doc["version"] == NEW
        assert doc["results"] == score_json(repo, f"{ANOMALY}@{NEW}", csv)["results"]
        text = server.metrics()
        assert re.search(r'dvc_monitor_reloads_total\{result="refused"\} [1-9]', text)
        assert "dvc_monitor_last_reload_ok 0.0" in text
        assert "dvc_monitor_ready 0.0" in text
        # a forced reload tries it at once, and is refused again
        status, _, doc = server.request("POST", "/reload")
        assert status == 409 and doc["result"] == "refused" and doc["serving"] == NEW
        # the polls keep trying it, with no request asking
        tries = server.get("/health")["attempts"]
        health = server.wait_for(lambda h: h["attempts"] > tries)
        assert health["attempts"] > tries and health["status"] == "degraded"
        # repaired: a later poll swaps it in (no POST /reload)
        obj.write_bytes(good)
        health = server.wait_for(lambda h: h["version"] == OLDEST, timeout=180)
        assert health["version"] == OLDEST and health["status"] == "ok"
        assert health["reason"] is None and health["holder"] == OLDEST
        assert health["last_reload"]["result"] in ("swapped", "unchanged")
        status, _, doc = server.request("GET", "/ready")
        assert status == 200 and doc["ready"] is True
        assert server.score(rows)[2]["version"] == OLDEST
        assert "dvc_monitor_ready 1.0" in server.metrics()
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert f"swapped {ANOMALY}@{NEW} for {ANOMALY}@{OLDEST}" in err
    assert "Traceback" not in err


def _body(rows: list[dict]) -> bytes:
    return json.dumps({"rows": rows}).encode()


def test_hostile_rows_get_a_one_line_4xx_that_says_why(repo, batch):
    _, rows = batch
    row = rows[0]
    server = Server(repo, f"{ANOMALY}#prod")
    try:
        huge = _body([dict(row, amount="BIG")]).replace(b'"BIG"', b"9" * 4000)
        cases = [
            (_body([dict(row, **{f"x{i}": i for i in range(64)})]), 422,
             f"row 1 has {len(row) + 64} keys; a row may have at most 64"),
            (huge, 422, "does not fit a 64-bit float"),
            (b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
            (_body([dict(row, amount=True)]), 422,
             "column 'amount' has a non-numeric value true on row 1"),
            (_body([row, dict(row, hour=[3])]), 422,
             "column 'hour' has a non-numeric value [...] on row 2"),
            (_body([{}] * 1000), 422, "row 1 has none of the model's columns"),
            (_body([row, {"note": "hi"}]), 422, "row 2 has none of the model's columns"),
            (_body([dict(row, amount="NAN")]).replace(b'"NAN"', b"NaN"), 422,
             "NaN is not a JSON number"),
        ]
        for body, status, words in cases:
            got, headers, doc = server.request("POST", "/score", body)
            assert got == status, (body[:60], doc)
            assert words in doc["error"], doc
            assert headers["content-type"] == "application/json"
            assert "\n" not in json.dumps(doc) and len(doc["error"]) <= 300
        # keys beyond the model's columns, within the bound, are ignored
        status, _, plain = server.score(rows)
        noisy = [dict(r, note="free text", customer={"id": i}, flag=True)
                 for i, r in enumerate(rows)]
        status2, _, doc = server.score(noisy)
        assert status == status2 == 200 and doc["results"] == plain["results"]
        text = server.metrics()
        assert 'status="500"' not in text
        assert re.search(r'dvc_monitor_requests_total\{path="/score",status="422"\} 7.0', text)
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err


def test_serve_watch_keeps_only_the_model_columns_and_memory_stays_bounded(repo, batch):
    """Rows of 100,000 extra keys are refused; 3,000 rows that each carry 58 extra
    1,000-character strings are scored and buffered (the window is 5,000 rows), but only
    their model columns are kept: about 180 MB would stay if the rest were. The memory is
    measured after a few requests of each kind, once the allocator has its working set."""
    _, rows = batch
    server = Server(repo, f"{ANOMALY}#prod", "--watch", "--window", "5000")
    flood = _body([dict(rows[0], **{f"k{i:06d}": i for i in range(100_000)})])

    def padded(n: int) -> list[dict]:  # 50 rows of 64 keys: 6 columns, 58 long strings
        return [dict(r, **{f"note{j}": f"{n}-{i}-{j}".ljust(1000, "x") for j in range(58)})
                for i, r in enumerate(rows[:10] * 5)]

    def send(floods: int, batches: range) -> None:
        for _ in range(floods):
            status, _, doc = server.request("POST", "/score", flood)
            assert status == 422 and "row 1 has 100006 keys" in doc["error"], doc
        for n in batches:
            status, _, doc = server.score(padded(n))
            assert status == 200, doc

    try:
        send(4, range(4))
        before = server.rss_mb()
        send(30, range(4, 64))
        health = server.get("/health")
        grown = server.rss_mb() - before
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert health["watch"]["rows_buffered"] == 64 * 50
    assert grown < 100, f"the server grew by {grown:.0f} MB"


def test_a_client_that_hangs_up_mid_body_is_counted_as_499_not_500(repo, batch):
    _, rows = batch
    server = Server(repo, f"{ANOMALY}#prod")
    head = (b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n")
    try:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                sock.sendall(head + _body(rows)[:200])  # then hang up, 99,800 bytes short
        text = server.wait_for_metrics(lambda t: 'status="499"} 5.0' in t)
        assert re.search(r'dvc_monitor_requests_total\{path="/score",status="499"\} 5.0', text)
        assert 'status="500"' not in text
        status, _, doc = server.score(rows)
        assert status == 200 and doc["version"] == NEW
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err and "Exception in ASGI application" not in err
    lines = [line for line in err.splitlines() if "hung up before its request body" in line]
    assert len(lines) == 5, err
    assert lines[0].startswith("dvc-monitor: 127.0.0.1:") and lines[0].endswith(
        "(POST /score); counted as status 499")


def test_bad_requests_get_a_one_line_json_error_and_the_server_keeps_serving(repo, batch):
    _, rows = batch
    server = Server(repo, f"{ANOMALY}#prod", "--max-body", "20000")
    try:
        no_hour = [{k: v for k, v in r.items() if k != "hour"} for r in rows[:2]]
        text_value = [dict(rows[0], amount="twelve")]
        cases = [
            ("POST", "/score", b'{"rows": [', 400, "not valid JSON"),
            ("POST", "/score", b'[1, 2]', 400, '{"rows": [...]}'),
            ("POST", "/score", json.dumps({"rows": no_hour}).encode(), 422, "missing column(s) hour"),
            ("POST", "/score", json.dumps({"rows": text_value}).encode(), 422,
             "column 'amount' has a non-numeric"),
            ("POST", "/score", b'{"rows": []}', 422, "empty"),
            ("POST", "/score", json.dumps({"rows": rows * 20}).encode(), 413, "limit is 20000"),
            ("GET", "/nowhere", None, 404, "no such path '/nowhere'"),
            ("GET", "/score", None, 405, "GET is not allowed"),
        ]
        for method, path, body, status, words in cases:
            got, headers, doc = server.request(method, path, body)
            assert got == status, (path, body[:40] if body else None, doc)
            assert words in doc["error"], doc
            assert headers["content-type"] == "application/json"
            assert "\n" not in json.dumps(doc)
        status, headers, doc = server.score(rows)
        assert status == 200 and len(doc["results"]) == len(rows)
        assert server.get("/version") == {"model": ANOMALY, "version": NEW,
                                          "id": doc["id"], "pid": server.proc.pid}
        status, _, doc = server.request("POST", "/reload")
        assert status == 200 and doc["result"] == "unchanged"
        text = server.metrics()
        assert re.search(r'dvc_monitor_requests_total\{path="/score",status="422"\} 3.0', text)
        assert re.search(r'dvc_monitor_requests_total\{path="other",status="404"\} 1.0', text)
    finally:
        code, err = server.stop()
    assert code == 0, err


def test_serve_refuses_a_ref_with_no_holder_and_warns_on_a_public_host(repo):
    proc = repo.dm("serve", f"{ANOMALY}#staging", "--port", "0", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip() == ("dvc-monitor: error: no version of fraud-detector is in "
                                   "stage 'staging'; stages in use: prod")
    server = Server(repo, f"{ANOMALY}#prod", "--host", "0.0.0.0")
    code, err = server.stop()
    assert code == 0
    assert "warning: listening on 0.0.0.0" in err


def test_serve_from_a_git_url_follows_tags_pushed_to_the_origin(repo, tmp_path, batch):
    """A bare origin as file://, its DVC remote a local folder; the server's clone (in a
    cache folder of its own) starts with no DVC objects, so they come from the remote."""
    csv, rows = batch
    origin = tmp_path / "origin.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(origin))
    repo.git("remote", "add", "origin", str(origin))
    work = repo
    cache = tmp_path / "user-cache"
    server = Server(work, f"{ANOMALY}#prod", "--repo", f"file://{origin}", "--cache-dir",
                    str(cache), "--poll", "0.5", cwd=tmp_path)
    try:
        assert server.get("/version")["version"] == NEW
        clones = [p for p in (cache / "clones").iterdir() if p.is_dir()]
        assert [p.name[:7] for p in clones] == ["origin-"]
        work.dm("promote", ANOMALY, OLD, "--stage", "prod")
        work.git("push", "-q", "origin", "--tags")
        health = server.wait_for(lambda h: h["version"] == OLD)
        assert health["version"] == OLD
        status, _, doc = server.score(rows)
        assert status == 200 and doc["version"] == OLD
        assert doc["results"] == score_json(work, f"{ANOMALY}@{OLD}", csv)["results"]
    finally:
        code, err = server.stop()
    assert code == 0, err

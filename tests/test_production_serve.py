"""Issue #11: `dvc-monitor serve` follows a stage tag. Real server processes on free
127.0.0.1 ports, real HTTP from a client thread, real `dvc-monitor rollback` while it
serves; a real bare origin served as file:// with a local-folder DVC remote."""

from __future__ import annotations

import json
import re
import threading

import pytest

from conftest import sample_csv
from production_support import Server, score_json
from rollback_support import MODEL as ANOMALY
from rollback_support import copy_base, rollback_base  # noqa: F401  (fixture)
from dvc_monitor.repo.cache import object_path
from dvc_monitor.stages import kind_module

# The rollback tests' base repository: fraud-detector v1.0.0, v1.1.0, then v1.2.0 in prod.
NEW, OLD = "v1.2.0", "v1.1.0"


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
    rows = kind_module("anomaly").sample_batch(9).head(20).to_dict("records")
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
        server.wait_for(lambda h: client_seen())
        repo.dm("rollback", ANOMALY, "--previous", "--stage", "prod", "-m", "serve test")
        health = server.wait_for(lambda h: h["version"] == OLD)
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


def test_a_corrupt_new_holder_is_refused_and_the_old_one_keeps_serving(repo, batch):
    csv, rows = batch
    server = Server(repo, f"{ANOMALY}#prod", "--poll", "0.5")
    try:
        md5 = json.loads(repo.dm("show", f"{ANOMALY}@{OLD}", "--json").stdout)["model_md5"]
        obj = object_path(repo.path, md5)
        good = obj.read_bytes()
        obj.chmod(0o644)
        obj.write_bytes(good[:-40] + b"\0" * 40)  # a damaged cache file (same size)
        repo.dm("promote", ANOMALY, OLD, "--stage", "prod")
        health = server.wait_for(lambda h: h["last_reload"]["result"] == "refused")
        assert health["version"] == NEW
        assert health["last_reload"]["version"] == OLD
        assert f"but dvc.lock records {md5}" in health["last_reload"]["message"]
        assert f"still serving {ANOMALY}@{NEW}" in health["last_reload"]["message"]
        status, headers, doc = server.score(rows)
        assert status == 200 and doc["version"] == NEW
        assert doc["results"] == score_json(repo, f"{ANOMALY}@{NEW}", csv)["results"]
        text = server.metrics()
        assert re.search(r'dvc_monitor_reloads_total\{result="refused"\} [1-9]', text)
        assert "dvc_monitor_last_reload_ok 0.0" in text
        # repaired: a forced reload swaps it in
        obj.write_bytes(good)
        status, _, doc = server.request("POST", "/reload")
        assert status == 200 and doc["result"] == "swapped" and doc["serving"] == OLD
        assert server.score(rows)[2]["version"] == OLD
    finally:
        code, err = server.stop()
    assert code == 0, err


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
                                          "id": doc["id"]}
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

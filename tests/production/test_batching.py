"""Adaptive micro-batching in `dvc-monitor serve`: concurrent requests are scored in one
model call and each gets exactly its own rows' results, in order. The batcher alone
(with a scoring function that records its batches), then a real server process hit by
many concurrent clients, its answers compared with `dvc-monitor score`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dvc_monitor.kinds import kind_for
from dvc_monitor.production.batching import Batcher
from tests.support.production import Server, score_json
from tests.support.repos import BIN, sample_csv
from tests.support.rollback import MODEL, copy_base

ROWS = 120  # distinct rows the clients send, scored once by `dvc-monitor score`
CLIENTS = 32


# -- the batcher alone ------------------------------------------------------------------


class Recorder:
    """A scoring function that records each batch: (key, items); answers item * 10."""

    def __init__(self):
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, key, items):
        self.batches.append((key, list(items)))
        await self.release.wait()
        if "bad" in items:
            raise ValueError("cannot score bad")
        return [item * 10 for item in items]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))  # the timeout bounds a hang only


def test_a_request_on_an_idle_batcher_is_scored_at_once():
    async def main():
        rec = Recorder()
        batcher = Batcher(rec, max_delay=3600, max_rows=100)  # a wait would hang the test
        batcher.expect()
        assert await batcher.submit("v1", 4, 1) == 40
        assert await batcher.submit("v1", 5, 1) == 50  # not announced: at once too
        return rec.batches

    assert run(main()) == [("v1", [4]), ("v1", [5])]


def test_concurrent_requests_share_one_call_and_get_their_own_results_in_order():
    async def main():
        rec = Recorder()
        batcher = Batcher(rec, max_delay=3600, max_rows=100)
        for _ in range(5):
            batcher.expect()  # five requests are being checked
        results = await asyncio.gather(*(batcher.submit("v1", i, 1) for i in range(5)))
        return results, rec.batches

    results, batches = run(main())
    assert results == [0, 10, 20, 30, 40]
    assert batches == [("v1", [0, 1, 2, 3, 4])]


def test_requests_wait_at_most_the_delay_for_ones_still_on_their_way():
    async def main():
        rec = Recorder()
        batcher = Batcher(rec, max_delay=0.005, max_rows=100)
        for _ in range(3):
            batcher.expect()  # the third never arrives (nor says it will not)
        return await asyncio.gather(batcher.submit("v1", 1, 1), batcher.submit("v1", 2, 1)), \
            rec.batches

    assert run(main()) == ([10, 20], [("v1", [1, 2])])


def test_a_refused_request_lets_the_waiting_ones_go():
    async def main():
        rec = Recorder()
        batcher = Batcher(rec, max_delay=3600, max_rows=100)
        batcher.expect()
        batcher.expect()
        waiting = asyncio.ensure_future(batcher.submit("v1", 1, 1))
        await asyncio.sleep(0)  # let it queue (a scheduling step, not a wait)
        assert rec.batches == []  # waits for the other one announced
        batcher.forget()  # its rows were refused: no reason to wait any more
        return await waiting, rec.batches

    assert run(main()) == (10, [("v1", [1])])


def test_batches_hold_one_model_and_at_most_max_rows():
    async def main():
        rec = Recorder()
        rec.release.clear()
        batcher = Batcher(rec, max_delay=3600, max_rows=5)
        first = asyncio.ensure_future(batcher.submit("v1", 0, 1))  # in flight, held
        await asyncio.sleep(0)
        rest = [asyncio.ensure_future(batcher.submit(key, item, rows)) for key, item, rows in
                [("v1", 1, 2), ("v2", 2, 1), ("v1", 3, 2), ("v1", 4, 2), ("v2", 5, 9)]]
        await asyncio.sleep(0)
        rec.release.set()
        return await first, await asyncio.gather(*rest), rec.batches

    first, rest, batches = run(main())
    assert (first, rest) == (0, [10, 20, 30, 40, 50])
    assert batches == [("v1", [0]), ("v1", [1, 3]), ("v2", [2]), ("v1", [4]), ("v2", [5])]


def test_a_failed_batch_fails_each_of_its_requests_and_the_batcher_goes_on():
    async def main():
        rec = Recorder()
        batcher = Batcher(rec, max_delay=3600, max_rows=100)
        batcher.expect()
        batcher.expect()
        got = await asyncio.gather(batcher.submit("v1", "bad", 1), batcher.submit("v1", 1, 1),
                                   return_exceptions=True)
        return got, await batcher.submit("v1", 2, 1)

    (bad, good), after = run(main())
    assert isinstance(bad, ValueError) and isinstance(good, ValueError) and after == 20


# -- a real server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(rollback_base, tmp_path_factory):
    """(server, rows, expected results): fraud-detector#prod served; ``ROWS`` sample rows
    and `dvc-monitor score`'s results on them."""
    base = tmp_path_factory.mktemp("batching")
    repo = copy_base(rollback_base, base / "copy")
    csv = sample_csv(base, "anomaly", 9)
    csv.write_text("\n".join(csv.read_text().splitlines()[:ROWS + 1]) + "\n")
    rows = kind_for("anomaly").sample_batch(9).head(ROWS).to_dict("records")
    expected = score_json(repo, f"{MODEL}#prod", csv)["results"]
    assert len(expected) == len(rows) == ROWS
    server = Server(repo, f"{MODEL}#prod", "--poll", "30", "--max-batch-delay", "5")
    yield server, rows, expected
    code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err


def _batches(metrics: str) -> tuple[float, float]:
    """(model calls, calls that scored one request) from /metrics."""
    count = re.search(r"^dvc_monitor_batch_requests_count (\S+)$", metrics, re.M)
    single = re.search(r'^dvc_monitor_batch_requests_bucket\{le="1\.0"\} (\S+)$', metrics, re.M)
    assert count and single, metrics
    return float(count.group(1)), float(single.group(1))


def _ask(client: httpx.Client, rows: list[dict], start: int, size: int, protocol: str):
    """Send rows[start:start+size] by ``protocol``; (status, results or error)."""
    mine = [rows[(start + i) % len(rows)] for i in range(size)]
    if protocol == "score":
        resp = client.post("/score", json={"rows": mine})
        doc = resp.json()
        return resp.status_code, doc.get("results", doc)
    resp = client.post("/invocations", json={"dataframe_records": mine})
    doc = resp.json()
    return resp.status_code, doc.get("predictions", doc)


def test_concurrent_clients_each_get_their_own_rows_scored_in_shared_calls(served):
    server, rows, expected = served
    before_calls, before_single = _batches(server.metrics())
    barrier = threading.Barrier(CLIENTS)

    def client(index: int) -> list[tuple[int, int, int, object]]:
        answers = []
        with httpx.Client(base_url=server.url, timeout=300) as http:  # bounds a hang only
            barrier.wait()
            for turn in range(6):
                start, size = (index * 7 + turn * 13) % ROWS, 1 + (index + turn) % 4
                protocol = "score" if (index + turn) % 3 else "invocations"
                answers.append((start, size, *_ask(http, rows, start, size, protocol)))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [a for got in pool.map(client, range(CLIENTS)) for a in got]
    assert len(answers) == CLIENTS * 6
    for start, size, status, results in answers:
        assert status == 200, results
        assert results == [expected[(start + i) % ROWS] for i in range(size)]
    metrics = server.metrics()
    calls, single = _batches(metrics)
    assert calls - before_calls < len(answers)  # fewer model calls than requests
    assert calls - before_calls > single - before_single  # some scored several requests
    scored = re.search(r'^dvc_monitor_rows_scored_total\{model="fraud-detector",'
                       r'version="[^"]+"\} (\S+)$', metrics, re.M)
    assert scored and float(scored.group(1)) >= sum(a[1] for a in answers)  # rows counted


def test_a_bad_request_among_concurrent_ones_fails_alone(served):
    server, rows, expected = served
    barrier = threading.Barrier(CLIENTS)
    bad = {"amount": "lots", "hour": 3}

    def client(index: int):
        with httpx.Client(base_url=server.url, timeout=300) as http:
            barrier.wait()
            body = {"rows": [rows[index], bad] if index % 4 == 0 else [rows[index]]}
            resp = http.post("/score", content=json.dumps(body),
                             headers={"Content-Type": "application/json"})
            return index, resp.status_code, resp.json()

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(client, range(CLIENTS)))
    for index, status, doc in answers:
        if index % 4 == 0:
            assert status == 422 and "row 2" in doc["error"] and "amount" in doc["error"], doc
        else:
            assert status == 200 and doc["results"] == [expected[index]], doc


def test_serve_refuses_a_negative_batch_delay(tmp_path):
    proc = subprocess.run([str(BIN / "dvc-monitor"), "serve", f"{MODEL}#prod",
                           "--max-batch-delay", "-1"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "--max-batch-delay" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

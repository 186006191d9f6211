"""Benchmark: ``dvc-monitor serve`` vs a minimal hand-written Starlette app, and a
rollback under load.

Builds a repository with the anomaly template and two registered versions (v1.0.0;
v1.1.0 with 60 trees), v1.1.0 in ``prod``. Then, in one run:

(a) throughput -- each load of ``--loads`` (default ``32x1,8x10``: 32 concurrent
    clients sending 1-row requests, then 8 sending 10-row requests), from another process
    (a bare asyncio HTTP/1.1 client, keep-alive connections), for ``--seconds`` each,
    against:
    hand-written:  a Starlette app on uvicorn that loads models/NAME/model.skops with the
                   safe loader and scores each POST /score on its own (score and alert)
    serve:         dvc-monitor serve NAME#prod (schema check, metrics, stage following,
                   concurrent requests batched into one model call: --max-batch-delay)
    prints requests/s, p50 and p99 latency for each, and the serve/hand-written ratios.
    targets: 32x1: serve at least 3x the throughput, p99 no worse; 8x10: at least 1.5x.

(b) the standard protocols -- on the same serve process, right after each load of (a),
    the same load (same clients, same rows) sent as the Open Inference Protocol (V2:
    ``POST /v2/models/NAME/infer``, one ``[N, F]`` FP64 tensor) and as MLflow's
    ``POST /invocations`` (``dataframe_split``); prints requests/s, p50 and p99 and the
    ratios of requests/s against ``/score``. target: each at least 0.9x.

(c) rollback under load -- the load runs against ``serve --poll P`` while
    ``dvc-monitor rollback NAME --previous --stage prod`` runs; prints the seconds from
    the rollback's end to the first response from v1.0.0, and the failed requests.
    target: 0 failed requests, a switch within P + 1 s.

(d) shadow -- ``shadow_part``: the same load against ``serve NAME#prod`` and ``serve
    NAME#prod --shadow NAME#staging`` (staging: the version prod does not hold),
    alternated ``--shadow-rounds`` times: requests of ROWS rows (``--shadow-load
    CLIENTSxROWS``, default 8x10) paced at half the requests/s ``serve`` answers with
    CLIENTS clients back to back (an open loop: the same requests per second for both,
    latency timed from the scheduled send); prints the p50 and p99 latency added by the
    shadow (medians over the rounds), and the shadow's dropped requests.
    target: p99 within 1.1x.

Usage: .venv/bin/python bench/bench_serve.py [--seconds 10] [--loads 32x1,8x10]
       [--concurrency 8] [--rows 10] [--poll 1] [--max-batch-delay MS] [--keep DIR]
       [--shadow-load 8x10] [--shadow-rounds 3] [--shadow-only]
(--concurrency and --rows: the load of (c).)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_rollback import BIN, NAME  # noqa: E402  (bench/ is on sys.path when run)
from bench_rollback import Bench as RollbackBench

HERE = Path(__file__).resolve()

# The hand-written server: what one would write without dvc-monitor.
PLAIN_APP = '''
import json, sys
import pandas as pd
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route
from dvc_monitor.model.files import load_model

model = load_model(sys.argv[1])
features = sys.argv[3].split(",")

def predict(rows):
    X = pd.DataFrame.from_records(rows)[features].to_numpy(dtype=float)
    scores = -model.score_samples(X)
    alerts = model.decision_function(X) < 0
    return [{"score": float(s), "alert": bool(a)} for s, a in zip(scores, alerts)]

async def score(request):
    rows = json.loads(await request.body())["rows"]
    return JSONResponse({"results": await run_in_threadpool(predict, rows)})

app = Starlette(routes=[Route("/score", score, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the load generator (run as: bench_serve.py --load URL ...) --------------------------


async def _post(reader, writer, request: bytes) -> tuple[int, str | None]:
    """One keep-alive HTTP/1.1 POST on an open connection: (status, X-Model-Version)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:] if line)}
    await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers.get("x-model-version")


async def _load(url: str, body: bytes, seconds: float, concurrency: int) -> list[list]:
    """``concurrency`` clients, each on its own keep-alive connection, posting ``body``
    back to back. A bare asyncio HTTP/1.1 client: an HTTP library's own CPU cost (httpx
    spends milliseconds per request) would take the cores the servers are measured on."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    records: list[list] = []  # [end time, latency, status, version]
    deadline = time.monotonic() + seconds

    async def worker():
        conn = None
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(parts.hostname, parts.port)
                status, version = await asyncio.wait_for(_post(*conn, request), 30)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                status, version = type(exc).__name__, None
                if conn is not None:
                    conn[1].close()
                conn = None
            records.append([time.time(), time.perf_counter() - start, status, version])
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return records


def load_main(args: argparse.Namespace) -> None:
    body = Path(args.body).read_bytes()
    records = asyncio.run(_load(args.load, body, args.seconds, args.concurrency))
    json.dump(records, sys.stdout)


def run_load(url: str, body: Path, seconds: float, concurrency: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE), "--load", url, "--body", str(body),
                             "--seconds", str(seconds), "--concurrency", str(concurrency)],
                            stdout=subprocess.PIPE, text=True)


# the paths of the protocols (b) compares, and the body each takes for ``rows``
PATHS = {"/score": "/score", "V2": f"/v2/models/{NAME}/infer", "/invocations": "/invocations"}


def protocol_body(protocol: str, rows: list[dict], features: list[str]) -> dict:
    """The body of one request of ``rows`` in ``protocol`` (a key of ``PATHS``)."""
    values = [[row[f] for f in features] for row in rows]
    if protocol == "V2":
        return {"inputs": [{"name": "input__0", "shape": [len(rows), len(features)],
                            "datatype": "FP64", "data": [v for row in values for v in row]}]}
    if protocol == "/invocations":
        return {"dataframe_split": {"columns": features, "data": values}}
    return {"rows": rows}


def summary(records: list[list], seconds: float) -> dict:
    ok = [r for r in records if r[2] == 200]
    lat = sorted(r[1] for r in ok) or [float("nan")]
    reasons = collections.Counter(str(r[2]) for r in records if r[2] != 200)
    return {"requests": len(records), "failed": len(records) - len(ok), "reasons": dict(reasons),
            "rps": len(ok) / seconds, "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


# -- the benchmark ----------------------------------------------------------------------


class Bench(RollbackBench):
    """bench_rollback's repository (v1.0.0; v1.1.0 with 60 trees), both through ``prod``."""

    def dm(self, *args: str) -> str:
        return self.sh(str(BIN / "dvc-monitor"), *args)

    def build(self) -> None:
        super().build()
        self.dm("promote", NAME, "v1.0.0", "--stage", "prod")
        self.dm("promote", NAME, "v1.1.0", "--stage", "prod")

    def start(self, args: list[str], port: int) -> subprocess.Popen:
        proc = subprocess.Popen(args, cwd=self.repo, env=self.env, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.stderr.read()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/score", timeout=2)
            except urllib.error.HTTPError:
                return proc  # it answers (405 for a GET)
            except OSError:
                time.sleep(0.2)
        raise SystemExit("server did not start")

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _paced(url: str, body: bytes, seconds: float, rate: float,
                 connections: int) -> list[list]:
    """An open-loop load: ``rate`` requests per second, whatever the server answers,
    spread over ``connections`` keep-alive connections (each sends its next request at its
    own schedule, or at once when late). The latency is timed from the scheduled send, so
    a server that falls behind is not hidden by a client that waits for it."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    records: list[list] = []
    start = time.perf_counter() + 0.2
    gap = connections / rate

    async def worker(k: int):
        conn = await asyncio.open_connection(parts.hostname, parts.port)
        due = start + k / rate
        while due < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                status, version = await asyncio.wait_for(_post(*conn, request), 30)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                status, version = type(exc).__name__, None
                conn[1].close()
                conn = await asyncio.open_connection(parts.hostname, parts.port)
            records.append([time.time(), time.perf_counter() - due, status, version])
            due += gap
        conn[1].close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    return records


def shadow_part(bench: Bench, root: Path, seconds: float, load: str, rounds: int,
                candidate: str = "v1.0.0", share: float = 0.5) -> dict:
    """(d) the latency ``serve --shadow`` adds to ``serve`` under the same load, with
    ``candidate`` in ``staging`` (a version prod does not hold): ``CLIENTSxROWS`` requests
    paced at ``share`` of the requests/s ``serve`` answers alone (measured first, with
    CLIENTS clients back to back), over 2 x CLIENTS connections."""
    import statistics

    from dvc_monitor.kinds import kind_for

    clients, n = (int(x) for x in load.split("x"))
    sample = kind_for("anomaly").sample_batch(5)
    features = [c for c in sample.columns if c != "is_fraud"]
    body = root / f"shadow-body-{n}.json"
    body.write_text(json.dumps({"rows": sample[features].head(n).to_dict("records")}))
    bench.dm("promote", NAME, candidate, "--stage", "staging")
    shadow_args = ["--shadow", f"{NAME}#staging"]

    def serving(extra: list[str], run):
        port = free_port()
        server = bench.start([str(BIN / "dvc-monitor"), "serve", f"{NAME}#prod", "--poll",
                              "2", "--port", str(port), *extra], port)
        try:
            return run(f"http://127.0.0.1:{port}")
        finally:
            bench.stop(server)

    def capacity(url: str) -> float:
        run_load(url + "/score", body, 1.0, clients).communicate()  # warm up
        out, _ = run_load(url + "/score", body, seconds, clients).communicate()
        return summary(json.loads(out), seconds)["rps"]

    rate = share * serving([], capacity)
    runs: dict[str, list[dict]] = {"serve": [], "serve --shadow": []}
    dropped = []
    for _ in range(rounds):
        for label, extra in (("serve", []), ("serve --shadow", shadow_args)):
            def paced(url: str, extra=extra) -> dict:
                asyncio.run(_paced(url + "/score", body.read_bytes(), 1.0, rate, 2 * clients))
                records = asyncio.run(_paced(url + "/score", body.read_bytes(), seconds, rate,
                                             2 * clients))
                if extra:
                    with urllib.request.urlopen(url + "/shadow") as resp:
                        doc = json.load(resp)
                    dropped.append((doc["dropped"], doc["offered"], len(doc["windows"])))
                return summary(records, seconds)

            runs[label].append(serving(extra, paced))
    med = {label: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")}
           for label, rs in runs.items()}
    plain, shadow = med["serve"], med["serve --shadow"]
    print(f"\n(d) shadow: {n}-row requests at {rate:.0f}/s ({share:.0%} of the {rate / share:.0f}"
          f"/s serve answers with {clients} clients back to back), {seconds:g} s, {rounds} "
          "round(s) each, medians")
    print(f"    {'':16}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    for label, rs in runs.items():
        failed = sum(r["failed"] for r in rs)
        print(f"    {label:16}{med[label]['rps']:9.1f}{med[label]['p50_ms']:9.2f}"
              f"{med[label]['p99_ms']:9.2f}{failed:8d}")
    print(f"    added by the shadow: p50 {shadow['p50_ms'] - plain['p50_ms']:+.2f} ms "
          f"({shadow['p50_ms'] / plain['p50_ms']:.2f}x), p99 "
          f"{shadow['p99_ms'] - plain['p99_ms']:+.2f} ms ({shadow['p99_ms'] / plain['p99_ms']:.2f}x;"
          " target <= 1.1x)")
    print("    per p99 round, serve: " + ", ".join(f"{r['p99_ms']:.1f}" for r in runs["serve"])
          + "; serve --shadow: " + ", ".join(f"{r['p99_ms']:.1f}" for r in runs["serve --shadow"]))
    print("    shadow dropped/offered requests, windows: "
          + ", ".join(f"{d}/{o} ({w} windows)" for d, o, w in dropped))
    return {"rate": rate, "serve": med["serve"], "shadow": med["serve --shadow"],
            "dropped": dropped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rows", type=int, default=10)
    ap.add_argument("--poll", type=float, default=1.0)
    ap.add_argument("--loads", default="32x1,8x10",
                    help="CLIENTSxROWS,... the throughput loads of (a)")
    ap.add_argument("--max-batch-delay", type=float, metavar="MS",
                    help="serve --max-batch-delay (default: serve's own; 0: no batching)")
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--shadow-load", default="8x10", help="CLIENTSxROWS: the load of (d)")
    ap.add_argument("--shadow-rounds", type=int, default=3)
    ap.add_argument("--shadow-only", action="store_true", help="run (d) alone")
    ap.add_argument("--load", help=argparse.SUPPRESS)
    ap.add_argument("--body", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        return load_main(args)

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        bench = Bench(root)
        print("building the repository (two trained versions) ...", flush=True)
        bench.build()
        sys.path.insert(0, str(HERE.parents[1]))
        if args.shadow_only:
            shadow_part(bench, root, args.seconds, args.shadow_load, args.shadow_rounds)
            return
        from dvc_monitor.kinds import kind_for

        sample = kind_for("anomaly").sample_batch(5)
        features = [c for c in sample.columns if c != "is_fraud"]

        def body_of(n: int, protocol: str = "/score") -> Path:
            path = root / f"body-{n}-{list(PATHS).index(protocol)}.json"
            rows = sample[features].head(n).to_dict("records")
            path.write_text(json.dumps(protocol_body(protocol, rows, features)))
            return path

        loads = [tuple(int(x) for x in item.split("x")) for item in args.loads.split(",")]
        serve_cmd = [str(BIN / "dvc-monitor"), "serve", f"{NAME}#prod", "--poll", "2"]
        if args.max_batch_delay is not None:
            serve_cmd += ["--max-batch-delay", str(args.max_batch_delay)]
        results: dict = {}
        for label, cmd in (
            ("hand-written", [sys.executable, "-c", PLAIN_APP,
                              str(bench.repo / "models" / NAME / "model.skops")]),
            ("serve", serve_cmd),
        ):
            port = free_port()
            full = cmd + ([str(port), ",".join(features)] if label == "hand-written"
                          else ["--port", str(port)])
            server = bench.start(full, port)
            try:
                for clients, n in loads:
                    for protocol in PATHS if label == "serve" else ("/score",):
                        url = f"http://127.0.0.1:{port}{PATHS[protocol]}"
                        body = body_of(n, protocol)
                        run_load(url, body, 1.0, clients).communicate()  # warm up
                        out, _ = run_load(url, body, args.seconds, clients).communicate()
                        key = label if protocol == "/score" else protocol
                        results[(clients, n, key)] = summary(json.loads(out), args.seconds)
            finally:
                bench.stop(server)

        print(f"\n(a) throughput, {args.seconds:g} s per load and server")
        for clients, n in loads:
            print(f"  {clients} concurrent clients x {n}-row requests")
            print(f"    {'':14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
            for label in ("hand-written", "serve"):
                r = results[(clients, n, label)]
                print(f"    {label:14}{r['rps']:9.1f}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}"
                      f"{r['failed']:8d}" + (f"  {r['reasons']}" if r["reasons"] else ""))
            serve, plain = results[(clients, n, "serve")], results[(clients, n, "hand-written")]
            print(f"    serve / hand-written: throughput {serve['rps'] / plain['rps']:.2f}x, "
                  f"p50 {serve['p50_ms'] / plain['p50_ms']:.2f}x, "
                  f"p99 {serve['p99_ms'] / plain['p99_ms']:.2f}x (latency: lower is better)")

        print(f"\n(b) the protocols on the same serve process, {args.seconds:g} s per load")
        for clients, n in loads:
            print(f"  {clients} concurrent clients x {n}-row requests")
            print(f"    {'':14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
            score = results[(clients, n, "serve")]
            for protocol in PATHS:
                r = results[(clients, n, "serve" if protocol == "/score" else protocol)]
                ratio = "" if protocol == "/score" else \
                    f"  {r['rps'] / score['rps']:.2f}x /score's requests/s (target >= 0.9x)"
                print(f"    {protocol:14}{r['rps']:9.1f}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}"
                      f"{r['failed']:8d}{ratio}" + (f"  {r['reasons']}" if r["reasons"] else ""))

        body = body_of(args.rows)

        # (c) rollback under load
        port = free_port()
        server = bench.start([str(BIN / "dvc-monitor"), "serve", f"{NAME}#prod", "--poll",
                              str(args.poll), "--port", str(port)], port)
        try:
            duration = 8.0 + 3 * args.poll + 20
            load = run_load(f"http://127.0.0.1:{port}/score", body, duration, args.concurrency)
            time.sleep(4)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as resp:
                standby = json.loads(resp.read()).get("standby")
            t0 = time.time()
            bench.dm("rollback", NAME, "--previous", "--stage", "prod", "-m", "bench")
            t_end = time.time()
            out, _ = load.communicate()
        finally:
            bench.stop(server)
        records = json.loads(out)
        failed = sum(1 for r in records if r[2] != 200)
        reasons = summary(records, duration)["reasons"]
        for r in records:
            if r[2] != 200:  # when it was sent and how long it waited, vs the rollback's end
                print(f"    failed: {r[2]} sent {r[0] - r[1] - t_end:+.2f} s from the rollback's "
                      f"end, after {r[1]:.1f} s")
        old = [r[0] for r in records if r[3] == "v1.0.0" and r[2] == 200]
        new_after = [r[0] for r in records if r[3] == "v1.1.0" and r[0] > (min(old) if old else 0)]
        print(f"\n(c) rollback under load ({args.concurrency} connections, --poll {args.poll:g}):")
        print(f"    rollback took {t_end - t0:.2f} s; {len(records)} requests during the run; "
              f"the server's standby before it: {standby or 'none'}")
        if old:
            print(f"    first v1.0.0 response {min(old) - t_end:.2f} s after the rollback ended "
                  f"(target <= {args.poll + 1:g} s)")
        else:
            print("    no v1.0.0 response seen")
        print(f"    failed requests: {failed} (target 0){' ' + str(reasons) if reasons else ''}; "
              f"v1.1.0 responses after the first v1.0.0 one: {len(new_after)}")
        # prod holds v1.0.0 after (c): the candidate is v1.1.0
        shadow_part(bench, root, args.seconds, args.shadow_load, args.shadow_rounds, "v1.1.0")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

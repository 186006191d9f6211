"""``dvc-monitor demo``: the whole story in a fresh repository, on embedded defaults.

A git repository and a local DVC remote folder are created in a temporary folder (or
``--dir``); sample card transactions are ingested batch by batch; each trained version is
registered and promoted; a bad version reaches prod and is rolled back with proof, while
``serve`` answers for the prod stage and follows the rollback; ``score`` scores a batch.
Every step is a real command, printed before it runs, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from dvc_monitor.errors import DvcMonitorError
from dvc_monitor.kinds import KINDS, kind_for


class _Demo:
    def __init__(self, base: Path, template: str):
        self.base = base
        self.repo = base / "repo"
        self.remote = base / "dvc-remote"
        self.template = template
        # an unknown template is refused by its first step, 'dvc-monitor init'
        self.kind = kind_for(template) if template in KINDS else None
        self.name = self.kind.demo.model_name if self.kind else "model"
        bindir = str(Path(sys.executable).parent)
        self.env = dict(os.environ)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "")
        self.env.setdefault("GIT_AUTHOR_NAME", "dvc-monitor demo")
        self.env.setdefault("GIT_AUTHOR_EMAIL", "demo@example.com")
        self.env.setdefault("GIT_COMMITTER_NAME", "dvc-monitor demo")
        self.env.setdefault("GIT_COMMITTER_EMAIL", "demo@example.com")
        self.env["DVC_NO_ANALYTICS"] = "1"

    def say(self, text: str) -> None:
        print(f"\n## {text}", flush=True)

    def run(self, *args: str, show: bool = True) -> str:
        """Run a command in the demo repository, printing it (and its output) like a shell."""
        print(f"$ {shlex.join(args)}", flush=True)
        exe = {"dvc-monitor": [sys.executable, "-m", "dvc_monitor"],
               "dvc": [sys.executable, "-m", "dvc"]}.get(args[0], [args[0]])
        proc = subprocess.run([*exe, *args[1:]], cwd=self.repo, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.stdout.rstrip()
        if show and out:
            print(out, flush=True)
        if proc.returncode != 0:
            if not show:
                print(out)
            raise DvcMonitorError(f"demo step failed: {shlex.join(args)} (exit {proc.returncode})")
        return proc.stdout

    def batch(self, index: int, **overrides) -> str:
        """Write sample batch ``index`` to a CSV outside the repository; return its path."""
        from dvc_monitor.model.data import write_batch

        path = self.base / "incoming" / f"batch-{index}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_batch(self.kind.sample_batch(index, **overrides), path)
        return str(path)

    def set_param(self, key: str, value: str) -> None:
        params = self.repo / "models" / self.name / "params.yaml"
        lines = params.read_text().splitlines()
        lines = [f"  {key}: {value}" if ln.strip().startswith(f"{key}:") else ln for ln in lines]
        params.write_text("\n".join(lines) + "\n")
        print(f"(edit models/{self.name}/params.yaml: {key} = {value})")

    def set_watch(self, key: str, value: str) -> None:
        """Set ``key`` in the ``watch:`` section of the model's params (added when absent)."""
        params = self.repo / "models" / self.name / "params.yaml"
        lines = [ln for ln in params.read_text().splitlines()
                 if not ln.strip().startswith(f"{key}:")]
        at = lines.index("watch:") + 1
        lines.insert(at, f"  {key}: {value}")
        params.write_text("\n".join(lines) + "\n")
        print(f"(edit models/{self.name}/params.yaml: watch.{key} = {value})")

    def get(self, url: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def feed(self, url: str, frame, until: str, per_request: int = 100) -> str:
        """Post ``frame``'s rows to ``url``/score in requests of ``per_request`` rows, then
        wait (polling ``/health``, bounded by a deadline) for ``until`` to be served and
        post once more; print the versions that answered. Returns the last one."""
        import time
        import urllib.request

        def post(rows) -> str:
            req = urllib.request.Request(url + "/score", method="POST",
                                         data=json.dumps({"rows": rows}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.headers["X-Model-Version"]

        deadline = time.monotonic() + 180
        while True:  # the server is up when /health answers
            try:
                self.get(url + "/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise DvcMonitorError("demo step failed: the server does not answer")
                time.sleep(0.3)
        print(f"$ curl -s {url}/score -d '{{\"rows\": [...{per_request} rows]}}'   # x "
              f"{-(-len(frame) // per_request)}: {len(frame)} drifted rows")
        answered = [post(frame.iloc[i:i + per_request].to_dict("records"))
                    for i in range(0, len(frame), per_request)]
        print(f"X-Model-Version: {', '.join(sorted(set(answered)))} (every request)")
        deadline = time.monotonic() + 180
        while self.get(url + "/health").get("version") != until \
                and time.monotonic() < deadline:
            time.sleep(0.3)  # the shadow's windows, its verdict, the promotion, the swap
        version = post(frame.head(per_request).to_dict("records"))
        print(f"$ curl -s {url}/score ...\nX-Model-Version: {version}", flush=True)
        return version

    def release(self, message: str, version: str) -> None:
        self.run("dvc", "repro", "-q", f"models/{self.name}/dvc.yaml")
        self.run("git", "add", "-A", show=False)
        self.run("git", "commit", "-q", "-m", message)
        self.run("dvc-monitor", "register", self.name, "--version", version, "-m", message)
        self.run("dvc-monitor", "promote", self.name, version, "--stage", "prod")
        self.run("dvc", "push", "-q")

    # -- production scoring (score, serve) ----------------------------------------------

    def score_batch(self, ref: str, index: int) -> None:
        """``dvc-monitor score`` of a fresh batch, showing the first rows of the output."""
        out = self.base / "scored" / f"batch-{index}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.run("dvc-monitor", "score", ref, self.batch(index), "-o", str(out))
        print("\n".join(out.read_text().splitlines()[:3]) + "\n...", flush=True)

    @contextlib.contextmanager
    def serving(self, ref: str, *extra: str, frame=None, log: Path | None = None):
        """``dvc-monitor serve REF EXTRA...`` on a free 127.0.0.1 port while the block runs;
        yields ``ask(until=None)``, which posts sample rows (``frame``: these rows) and
        prints the answer (waiting, with ``until``, for that version to answer); ``ask.url``
        is the server's address. ``log``: where the server's stderr goes."""
        import socket
        import time
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = ["dvc-monitor", "serve", ref, *extra, "--port", str(port), "--poll", "1"]
        print(f"$ {shlex.join(args)} &", flush=True)
        err = open(log, "w") if log is not None else None
        proc = subprocess.Popen([sys.executable, "-m", "dvc_monitor", *args[1:]], cwd=self.repo,
                                env=self.env, stdout=subprocess.DEVNULL, stderr=err)
        if frame is None:
            frame = self.kind.sample_batch(5)
            count = self.kind.demo.serve_rows
            frame = frame if count is None else frame.head(count)
        rows = frame
        body = json.dumps({"rows": rows.to_dict("records")}).encode()
        url = f"http://127.0.0.1:{port}/score"

        def post() -> tuple[str, dict]:
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.headers["X-Model-Version"], json.loads(resp.read())

        def ask(until: str | None = None) -> str:
            print(f"$ curl -s {url} -d '{{\"rows\": [...{len(rows)} rows]}}'", flush=True)
            deadline = time.monotonic() + 60
            while True:
                try:
                    version, doc = post()
                    if until is None or version == until or time.monotonic() > deadline:
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise DvcMonitorError("demo step failed: the server does not answer")
                time.sleep(0.3)
            print(f"X-Model-Version: {version}; last row: {json.dumps(doc['results'][-1])}",
                  flush=True)
            return version

        ask.url = f"http://127.0.0.1:{port}"
        try:
            yield ask
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            if err is not None:
                err.close()


def run_demo(directory: str | None = None, template: str = "anomaly") -> int:
    base = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="dvc-monitor-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    demo = _Demo(base.resolve(), template)
    if demo.repo.exists():
        raise DvcMonitorError(f"{demo.repo} already exists; pass another --dir")
    demo.repo.mkdir()
    name = demo.name
    print(f"dvc-monitor demo in {demo.base}")

    demo.say("A git repository with a monitoring model, sample data and a local DVC remote")
    demo.run("git", "init", "-q", "-b", "main")
    demo.run("dvc-monitor", "init", "--template", template, "--name", name, "--sample-data",
             "--remote", str(demo.remote))

    demo.say("v1.0.0: train with dvc repro, register, promote to prod, push")
    demo.release(f"Add {template} model {name}", "v1.0.0")

    demo.say("v1.1.0: a new batch of production data arrives")
    demo.run("dvc-monitor", "ingest", name, demo.batch(4))
    demo.release("Retrain on batch 4", "v1.1.0")

    demo.say("v1.2.0: a retrain with a bad parameter reaches prod")
    bad = demo.kind.demo.bad_param
    demo.set_param(*bad)
    demo.release(f"Tune {bad[0]}", "v1.2.0")
    demo.run("dvc-monitor", "versions", name)

    demo.say("What changed between the good and the bad version")
    demo.run("dvc-monitor", "diff", name, "v1.1.0", "v1.2.0")
    report = demo.base / "report" / "report.md"
    demo.run("dvc-monitor", "report", name, "--base", f"{name}@v1.1.0", "--head", f"{name}@v1.2.0",
             "-o", str(report))

    demo.say("Live windows arrive while a server follows the prod stage: watch catches the "
             "bad version and rolls prod back to the version proven to pass on the same "
             "windows (atomic, with proof); the server swaps models with no failed request")
    live, window = _live_windows(demo)
    timeline = demo.base / "report" / "watch.md"
    with demo.serving(f"{name}#prod") as ask:
        ask()
        out = demo.run("dvc-monitor", "watch", f"{name}#prod", "--data", str(live),
                       "--window", window, "--rollback", "-o", str(timeline))
        if "Proof (" not in out:  # this template's bad version passed the watch rules
            demo.run("dvc-monitor", "rollback", name, "--previous", "--stage", "prod",
                     "-m", "v1.2.0 is worse than v1.1.0")
        ask(until="v1.1.0")
    print(f"(the timeline, per window: {timeline})")
    demo.run("dvc-monitor", "versions", name)
    demo.run("dvc-monitor", "history", name)
    demo.run("git", "log", "--oneline", "-3")

    demo.say("Score a new batch with the model in prod")
    demo.score_batch(f"{name}#prod", 6)

    loop = _close_the_loop(demo)

    print(f"\nDone. Repository: {demo.repo}\nDVC remote: {demo.remote}\nPR report: {report}"
          f"\nWatch report: {timeline}"
          + "".join(f"\n{k}: {v}" for k, v in loop.items())
          + f"\nThe page: run 'dvc-monitor -C {demo.repo} serve {name}#prod' and open "
            "http://127.0.0.1:8080/")
    return 0


# -- closing the loop: drift -> retrain -> shadow -> promoted ------------------------------

LOOP_WINDOWS = 12  # drifted live windows the retrain ingests (the rows since the drift)
LOOP_SHADOW_WINDOWS = 3  # judged shadow windows that prove the candidate (serve --windows)
LOOP_MIN_INTERVAL = 10  # seconds: the demo's minutes stand for production's hours


def drifted(demo: _Demo, column: str, index: int, rows: int):
    """Sample batch ``index`` after a new segment arrived: its category-like input
    ``column`` takes values half again beyond those ever seen. The rows are otherwise as
    before: what tells fraud apart has not changed, so a model trained on the new rows can
    absorb the drift."""
    import numpy as np

    frame = demo.kind.sample_batch(index, rows=rows)
    top = int(demo.kind.sample_batch(1)[column].max()) + 1
    rng = np.random.default_rng([index, 23])
    return frame.assign(**{column: rng.integers(0, top + top // 2, len(frame))})


def segment_column(demo: _Demo) -> str | None:
    """The category-like input of the template's sample rows: the integer feature with the
    fewest values (more than two: not a label), e.g. a merchant category."""
    import pandas as pd

    frame = demo.kind.sample_batch(1)
    found = [(frame[c].nunique(), c) for c in demo.kind.drift_features(list(frame.columns))
             if pd.api.types.is_integer_dtype(frame[c]) and frame[c].nunique() > 2]
    return min(found)[1] if found else None


def _wait_for_hold(demo: _Demo) -> None:
    """Wait for the end of the hold of prod's automatic rollback (``min_interval`` after
    it): until then, watch decides ``hold`` and nothing changes prod automatically."""
    import time

    from dvc_monitor.monitoring.trust import last_automatic_rollback
    from dvc_monitor.registry.state import Registry

    last = last_automatic_rollback(Registry.load(demo.repo).history(demo.name), "prod")
    if last is None:
        return
    left = last.time + LOOP_MIN_INTERVAL + 1 - time.time()
    if left > 0:
        print(f"(waiting {left:.0f}s for the hold of {last.tag} to end: min_interval "
              f"{LOOP_MIN_INTERVAL}s)", flush=True)
        time.sleep(left)


def _close_the_loop(demo: _Demo) -> dict:
    """A segment drifts; watch --retrain makes a candidate in staging; serve --shadow
    --auto-promote proves it on live traffic and promotes it. Returns the files to show."""
    import re

    import pandas as pd

    from dvc_monitor.model.data import write_batch

    name, window = demo.name, int(demo.kind.demo.window)
    column = segment_column(demo)
    if column is None:
        print("\n(this template's sample rows have no category-like input to drift: the "
              "closed loop is shown with the anomaly template)")
        return {}
    demo.say(f"Drift: a new segment arrives ({column} takes values never seen). watch finds "
             f"the inputs drifted and no earlier version passes: it retrains on the "
             f"{LOOP_WINDOWS} live windows since, on a new branch, into staging")
    demo.set_watch("min_interval", f"{LOOP_MIN_INTERVAL}s")
    demo.run("git", "commit", "-q", "-am", f"watch: min_interval {LOOP_MIN_INTERVAL}s (demo)")
    _wait_for_hold(demo)
    folder = demo.base / "live-drift"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(LOOP_WINDOWS):
        write_batch(drifted(demo, column, 100 + i, window), folder / f"drift-{i + 1:02d}.csv")
    retrain_report = demo.base / "report" / "retrain.md"
    out = demo.run("dvc-monitor", "watch", f"{name}#prod", "--data", str(folder), "--window",
                   str(window), "--retrain", "--retrain-report", str(retrain_report))
    made = re.search(r"Retrained: \S+ (v\d+\.\d+\.\d+)", out)
    if made is None:
        print("(no retrain: the watch decided otherwise, see above)")
        return {}
    candidate = made.group(1)

    demo.say(f"Shadow {candidate} on live traffic; --auto-promote promotes it once it passed "
             f"every watch rule on {LOOP_SHADOW_WINDOWS} windows and the gate "
             f"(at most one automatic change of prod per min_interval)")
    traffic = pd.concat([drifted(demo, column, 200 + i, window) for i in range(LOOP_SHADOW_WINDOWS + 1)],
                        ignore_index=True)
    log = demo.base / "report" / "serve.log"
    with demo.serving(f"{name}#prod", "--shadow", f"{name}#staging", "--auto-promote",
                      "--window", str(window), "--windows", str(LOOP_SHADOW_WINDOWS),
                      log=log) as ask:
        print(f"(the page, while the server runs: {ask.url}/)")
        served = demo.feed(ask.url, traffic, candidate)
        shadow = demo.get(ask.url + "/shadow")
        print(f"$ curl -s {ask.url}/shadow")
        print(f"verdict: {shadow['verdict']['summary']}; recorded: "
              f"{shadow['recording']['last_verdict']}; auto-promote: "
              f"{(shadow['recording']['last_promotion'] or {}).get('message')}")
        if served != candidate:
            print(f"(not promoted: {candidate} was not proven; see {log})")
    demo.run("dvc-monitor", "versions", name)
    demo.run("dvc-monitor", "history", name)
    return {"Retrain report": retrain_report, "Server log": log}


def _live_windows(demo: _Demo) -> tuple[Path, str]:
    """Sample batches after the training data, as live windows; and the window size."""
    from dvc_monitor.model.data import write_batch

    script = demo.kind.demo
    folder = demo.base / "live"
    folder.mkdir(parents=True, exist_ok=True)
    for index in script.live_batches:
        write_batch(demo.kind.sample_batch(index), folder / f"live-{index}.csv")
    return folder, str(script.window)

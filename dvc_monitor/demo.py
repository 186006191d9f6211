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
    def serving(self, ref: str):
        """``dvc-monitor serve REF`` on a free 127.0.0.1 port while the block runs; yields
        ``ask(until=None)``, which posts sample rows and prints the answer (waiting, with
        ``until``, for that version to answer)."""
        import socket
        import time
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = ["dvc-monitor", "serve", ref, "--port", str(port), "--poll", "1"]
        print(f"$ {shlex.join(args)} &", flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "dvc_monitor", *args[1:]], cwd=self.repo,
                                env=self.env, stdout=subprocess.DEVNULL)
        frame = self.kind.sample_batch(5)
        count = self.kind.demo.serve_rows
        rows = frame if count is None else frame.head(count)
        body = json.dumps({"rows": rows.to_dict("records")}).encode()
        url = f"http://127.0.0.1:{port}/score"

        def post() -> tuple[str, dict]:
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.headers["X-Model-Version"], json.loads(resp.read())

        def ask(until: str | None = None) -> None:
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

        try:
            yield ask
        finally:
            proc.terminate()
            proc.wait(timeout=60)


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

    print(f"\nDone. Repository: {demo.repo}\nDVC remote: {demo.remote}\nPR report: {report}"
          f"\nWatch report: {timeline}")
    return 0


def _live_windows(demo: _Demo) -> tuple[Path, str]:
    """Sample batches after the training data, as live windows; and the window size."""
    from dvc_monitor.model.data import write_batch

    script = demo.kind.demo
    folder = demo.base / "live"
    folder.mkdir(parents=True, exist_ok=True)
    for index in script.live_batches:
        write_batch(demo.kind.sample_batch(index), folder / f"live-{index}.csv")
    return folder, str(script.window)

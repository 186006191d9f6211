"""Retrain on drift: what ``watch --retrain`` does when the decision is ``retrain``.

``retrain_candidate`` makes a candidate without touching the user's branch, working tree,
index or any stage but the candidate's:

1. a new branch ``dvc-monitor/retrain/NAME/<UTC time>`` from the watched version's commit,
   checked out in a separate git worktree (in a temporary folder) that shares the
   repository's DVC cache;
2. there, the live windows are ingested as one new batch (the normal atomic ``ingest``),
   ``dvc repro`` runs the model's pipeline, and the result is committed;
3. the commit is registered as a new version (its block's ``retrain`` part says from what
   and on which windows) and assigned the candidate stage (default ``staging``); the tags
   are written under the repository's lock;
4. the candidate is measured on the same live windows, and the review ``report``
   (markdown and plots, with the ``gate:``) compares it with the watched version.

The temporary worktree is removed in every case. A failure before the registration also
deletes the branch, so the repository is as it was; after it, the version stays and the
error says what is left to do. The stage the watched version holds is never touched:
``promote NAME VERSION --stage prod --if-better`` is the next step, once the candidate
has shadowed live traffic.

``serve --watch --retrain`` calls ``retrain_candidate`` with the windows of its alarm.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from dvc_monitor.errors import DvcMonitorError, RetrainFailed, one_line

if TYPE_CHECKING:
    from dvc_monitor.monitoring.results import Subject, WatchResult, WindowResult
    from dvc_monitor.monitoring.rules import WatchRules
    from dvc_monitor.monitoring.windows import Window

DEFAULT_CANDIDATE_STAGE = "staging"
BRANCH_PREFIX = "dvc-monitor/retrain"


@dataclass
class Retrained:
    """The candidate ``watch --retrain`` made, and how it compares."""

    name: str
    base_version: str  # the version watched (its commit is the branch's start)
    version: str
    commit: str
    branch: str
    stage: str
    partition: str  # the new batch
    rows: int  # live rows ingested
    windows: list[dict]  # per live window: the base's and the candidate's results
    passed: int  # live windows the candidate passes every rule on
    judged: int
    gate: dict | None  # the report's gate (GateResult.to_json()), None if not evaluated
    report: str | None  # the markdown file
    plots: list[str] = field(default_factory=list)
    next: str = ""  # the command to run next
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # step -> seconds

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        return to_jsonable(self)


def branch_name(name: str, now: float | None = None) -> str:
    """``dvc-monitor/retrain/NAME/<UTC time>`` (``DIR:NAME`` spelled ``DIR=NAME``)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return f"{BRANCH_PREFIX}/{name.replace(':', '=')}/{stamp.strftime('%Y%m%dT%H%M%SZ')}"


def live_batch(windows: Sequence["Window"]) -> bytes:
    """The live windows' rows as one CSV batch (their own columns, in order)."""
    import pandas as pd

    frame = pd.concat([w.rows for w in windows], ignore_index=True)
    return frame.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode()


def retrain_candidate(root: str | Path, result: "WatchResult", windows: Sequence["Window"],
                      rules: "WatchRules", base: "Subject", *,
                      stage: str = DEFAULT_CANDIDATE_STAGE, labels: str | None = None,
                      output: str | Path | None = None, plots: bool = True,
                      allow_unlabelled: bool = False,
                      progress: Callable[[str], None] | None = None) -> Retrained:
    """Make, register and review a candidate for ``result`` (a ``retrain`` decision on
    ``windows``, watched with ``base``); see the module docstring. ``output``: the report's
    markdown file (default: ``.git/dvc-monitor/retrain/NAME-VERSION/report.md``)."""
    from dvc_monitor.names import validate_stage_name
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.registry.writes import promote, register
    from dvc_monitor.repo.git import GitRepo
    from dvc_monitor.repo.locking import repo_lock

    say = progress or (lambda _m: None)
    validate_stage_name(stage)
    started = time.perf_counter()
    git = GitRepo.discover(root)
    name = result.name
    reg = Registry.load(git.root)
    commit = reg.resolve(name, base.version).commit
    branch = stem = branch_name(name)
    n = 1
    while git.ok("rev-parse", "-q", "--verify", f"refs/heads/{branch}"):
        n += 1  # two retrains within a second
        branch = f"{stem}-{n}"
    timings: dict[str, float] = {}
    folder = Path(tempfile.mkdtemp(prefix="dvc-monitor-retrain-"))
    work = folder / "work"
    registered = None
    step = "creating the branch"
    try:
        tick = time.perf_counter()
        git.run("-c", "core.hooksPath=/dev/null", "worktree", "add", "-q", "-b", branch,
                str(work), commit)
        say(f"Branch {branch} from {name} {base.version} ({commit[:7]})")
        step = "ingesting the live windows"
        partition, rows = _ingest(git.root, work, name, windows, allow_unlabelled)
        timings["ingest"] = time.perf_counter() - tick
        say(f"Ingested {rows} live rows as {partition}")
        step = "running dvc repro"
        tick = time.perf_counter()
        _repro(work, name)
        timings["repro"] = time.perf_counter() - tick
        step = "committing"
        tick = time.perf_counter()
        new_commit = _commit(work, name, base.version, result)
        step = "registering the candidate"
        block = _block(result, base, partition, rows, branch)
        with repo_lock(git.root, "retrain"):  # the worktree's own lock is another file
            registered = register(work, name, extra_meta=block).version
            step = f"assigning {stage} to {registered}"
            promote(work, name, registered, stage, extra_meta=block)
        timings["register"] = time.perf_counter() - tick
        say(f"Registered {name} {registered} ({new_commit[:7]}) in {stage}")
    except BaseException as exc:
        if registered is None:
            _drop_branch(git, work, branch)
        else:
            _remove_worktree(git, work)
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, Exception):
            raise _failure(name, step, exc, result, registered, branch) from None
        raise
    _remove_worktree(git, work)
    shutil.rmtree(folder, ignore_errors=True)
    step = "reviewing the candidate"
    try:
        tick = time.perf_counter()
        out = _review(git.root, result, windows, rules, base, registered, new_commit,
                      labels, output, plots, say)
        timings["review"] = time.perf_counter() - tick
    except Exception as exc:
        raise RetrainFailed(
            f"{name} {registered} was registered in {stage} (branch {branch}) but the review "
            f"failed: {one_line(str(exc), 300)}; run 'dvc-monitor report {name} --base "
            f"{commit[:12]} --head {new_commit[:12]} -o report.md'") from None
    report, plot_files, gate, judged_windows = out
    passed = sum(1 for w in judged_windows if w["candidate"]["passed"])
    judged = sum(1 for w in judged_windows if not w["candidate"]["too_few_rows"])
    return Retrained(
        name=name, base_version=base.version, version=registered, commit=new_commit,
        branch=branch, stage=stage, partition=partition, rows=rows, windows=judged_windows,
        passed=passed, judged=judged, gate=gate, report=report, plots=plot_files,
        next=f"dvc-monitor promote {name} {registered} --stage "
             f"{result.stage or 'prod'} --if-better",
        seconds=round(time.perf_counter() - started, 3),
        timings={k: round(v, 3) for k, v in timings.items()})


# -- the steps --------------------------------------------------------------------------


def _ingest(root: Path, work: Path, name: str, windows: Sequence["Window"],
            allow_unlabelled: bool) -> tuple[str, int]:
    from dvc_monitor.model.ingest import ingest
    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.repo import dvc as dvcops

    dvcops.share_cache(work, root)
    dvcops.checkout(work, [ModelLayout(name).dir])
    done = ingest(work, name, io.BytesIO(live_batch(windows)), allow_unlabelled=allow_unlabelled,
                  source="the live windows")
    return done.partition, done.rows


def _repro(work: Path, name: str) -> None:
    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.repo import dvc as dvcops

    dvcops.repro_at(work, [ModelLayout(name).dvc_yaml])


def _commit(work: Path, name: str, version: str, result: "WatchResult") -> str:
    from dvc_monitor.repo.git import GitRepo

    wt = GitRepo(work)
    wt.run("add", "-A")
    text = (f"Retrain {name} on {len(result.windows)} live window(s) (from {version})\n\n"
            f"watch: {result.evidence}"[:4000])
    wt.run("-c", "core.hooksPath=/dev/null", "commit", "-q", "--no-verify", "-m", text)
    return wt.run("rev-parse", "HEAD").strip()


def _block(result: "WatchResult", base: "Subject", partition: str, rows: int,
           branch: str) -> dict:
    return {"retrain": {
        "from": base.version, "stage": result.stage, "branch": branch, "partition": partition,
        "rows": rows, "windows": [w.window for w in result.windows],
        "breaching_windows": result.breaching_windows,
        "drifted_features": result.drifted_features, "why": result.evidence[:2000],
    }}


def _review(root: Path, result: "WatchResult", windows: Sequence["Window"],
            rules: "WatchRules", base: "Subject", version: str, commit: str, labels: str | None, output: str | Path | None,
            plots: bool, say: Callable[[str], None]):
    from dvc_monitor.monitoring.shadow import shadow_windows, subject_loader, window_record
    from dvc_monitor.registry.state import Registry
    from dvc_monitor.repo.state import state_dir
    from dvc_monitor.repo.git import GitRepo
    from dvc_monitor.review.report import build_report

    candidate = subject_loader(root, Registry.load(root), result.name)(version)
    say(f"Measuring {result.name} {version} on the {len(windows)} live window(s)")
    mine = shadow_windows(candidate, windows, rules, labels)
    theirs = shadow_windows(base, windows, rules, labels)
    compared = [{"window": a.window, "base": window_record(a), "candidate": window_record(b)}
                for a, b in zip(theirs, mine)]
    out = Path(output) if output else (state_dir(GitRepo(root)) / "retrain"
                                       / f"{result.name.replace('/', '-').replace(':', '=')}"
                                         f"-{version}" / "report.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    say(f"Writing the report {out}")
    base_commit = base.state.commit if base.state is not None else None
    report = build_report(root, result.name, base_commit, commit, output=out, plots=plots)
    with open(out, "a") as fh:
        fh.write(_live_section(result.name, base.version, version, mine, theirs))
    gate = report.gate.to_json() if report.gate is not None else None
    return str(out), [str(out.parent / p) for p in report.plots], gate, compared


def _live_section(name: str, base: str, version: str, mine: Sequence["WindowResult"],
                  theirs: Sequence["WindowResult"]) -> str:
    lines = ["", f"## Live windows: {base} (watched) and {version} (retrained)", "",
             "The candidate was trained on these windows too: this says it fits them, not "
             "that it will fit the next ones (shadow it on live traffic for that).", "",
             f"| window | rows | {base} | {version} |", "|---|---|---|---|"]
    for a, b in zip(theirs, mine):
        lines.append(f"| {a.window} | {b.rows} | {_status(a)} | {_status(b)} |")
    return "\n".join(lines) + "\n"


def _status(r: "WindowResult") -> str:
    if r.too_few_rows:
        return "too few rows"
    if not r.breaches:
        return "passes every rule"
    return "; ".join(b.detail for b in r.breaches).replace("|", "/")


# -- cleaning up ------------------------------------------------------------------------


def _remove_worktree(git, work: Path) -> None:
    git.run("worktree", "remove", "--force", str(work), check=False)
    git.run("worktree", "prune", check=False)


def _drop_branch(git, work: Path, branch: str) -> None:
    _remove_worktree(git, work)
    git.run("branch", "-D", branch, check=False)


def _failure(name: str, step: str, exc: Exception, result: "WatchResult",
             registered: str | None, branch: str) -> RetrainFailed:
    why = one_line(str(exc), 400)
    if registered is not None:
        return RetrainFailed(f"retrain of {name} registered {registered} (branch {branch}) but "
                             f"failed while {step}: {why}; run 'dvc-monitor promote {name} "
                             f"{registered} --stage STAGE' once that is fixed")
    failed = RetrainFailed(f"retrain of {name} failed while {step}: {why}; nothing was "
                           f"registered and the repository is as it was; fix that, then run "
                           f"'dvc-monitor watch {name}@{result.version} --data ... --retrain' "
                           "again")
    if isinstance(exc, DvcMonitorError):
        failed.exit_code = exc.exit_code
    return failed

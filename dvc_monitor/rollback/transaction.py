"""The rollback transaction: put one model back to a registered version, verified, atomically.

``rollback`` restores version V of model NAME in five steps, then commits::

    preflight  resolve V; refuse a dirty tree; take the repository lock; check that every
               object V needs is in the local cache or on the remote     (changes nothing)
    restore    V's pipeline files from git: dvc.yaml, dvc.lock, params, .dvc files, the
               git-tracked code its stages depend on, and its cache:false outputs
               (metrics.json, plots/) -- only this model's files
    fetch      the missing objects, exactly those, from the DVC remote
    checkout   the model's DVC outputs from the cache (forced for exactly these outputs)
    repro      ``dvc repro`` of the model's dvc.yaml: instant when the outputs were
               restored, a retrain (same bytes: models are byte-stable) when not
    verify     model md5, data hashes, params and version id equal what V registered
    commit     a new commit on the current branch; with ``--stage`` a GTO stage tag

Atomicity. Before touching anything, a journal (``.git/dvc-monitor/rollback.json``) and
backups of every file and output that will be touched (``.git/dvc-monitor/rollback-backup``;
hard links for DVC outputs, copies for git-tracked files) are written. Any failure or
signal (SIGINT, SIGTERM, SIGHUP) undoes everything from the backups: HEAD, index,
working-tree files and DVC outputs end exactly as before. A rollback killed outright is
finished (if it had committed) or undone by the next dvc-monitor command, which checks for
the journal (``pending_journal``: a file-exists test, no DVC import), or by
``dvc-monitor recover``.

Checkpoints: ``rollback(..., checkpoint=f)`` calls ``f(step)`` right after each step (one
of ``signals.STEPS``) and half way through an undo (``"undo"``). The default does nothing;
the tests install one that raises, hangs, pauses or kills the process there. Nothing in
the environment changes what a rollback does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ContextManager

from dvc_monitor.errors import (
    DvcMonitorError,
    ExternalCommandError,
    MissingObjects,
    RollbackError,
    UsageError,
    VerificationError,
    disk_full,
    disk_full_message,
    some,
)
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.dvcfiles import norm
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.rollback.journal import (
    JOURNAL_SCHEMA,
    TRAILER_ID,
    RollbackJournal,
    assign_stage,
    pending_journal,
    recover_locked,
    remove_path,
    repository_lock,
)
from dvc_monitor.rollback.plan import DEFAULT_STAGE, RollbackContext, RollbackPlan, preflight
from dvc_monitor.repo.signals import (
    Checkpoint,
    Terminated,
    no_checkpoint,
    signals_ignored,
    signals_raise,
)
from dvc_monitor.rollback.verify import Proof, mismatch_message, verify_restored

Progress = Callable[[str], ContextManager[Any]]





@dataclass
class RollbackResult:
    name: str
    version: str
    id: str
    dry_run: bool
    plan: RollbackPlan
    commit: str | None = None  # the new commit (None: dry run, or nothing to commit)
    tag: str | None = None  # the stage tag written
    retrained: bool = False
    stages_run: list[str] = field(default_factory=list)
    fetched: int = 0
    proof: Proof | None = None
    allowed_mismatch: bool = False
    recovered: str | None = None  # what was done about an earlier interrupted rollback
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        """The JSON form of a rollback (``rollback --json``; the API and the CLI share it)."""
        from dvc_monitor.values import to_jsonable

        plan = self.plan
        doc = {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "dry_run": self.dry_run,
            "commit": self.commit,
            "tag": self.tag,
            "retrained": self.retrained,
            "stages_run": self.stages_run,
            "fetched": self.fetched,
            "verified": None if self.proof is None else self.proof.ok,
            "allowed_mismatch": self.allowed_mismatch,
            "recovered": self.recovered,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
            "plan": {
                "target_commit": plan.commit,
                "short_id": plan.short_id,
                "from_version": plan.current_version,
                "from_id": plan.current_id,
                "branch": plan.branch,
                "head": plan.head,
                "stage": plan.stage,
                "stage_holder": plan.stage_holder,
                "restore": plan.restore,
                "delete": plan.delete,
                "shared": plan.shared,
                "outputs": plan.outputs,
                "objects": plan.objects,
                "fetch": plan.fetch,
                "missing": plan.missing,
                "remote": plan.remote,
                "cache": plan.cache_dir,
                "retrain": plan.retrain,
                "retrain_reason": plan.retrain_reason,
                "run_cache": plan.run_cache,
                "problems": plan.problems,
                "trainer": plan.trainer,
                "trainer_differs": plan.trainer_differs,
                "warnings": plan.warnings,
            },
            "expected": plan.expected,
            "proof": None,
        }
        if self.proof is not None:
            doc["proof"] = self.proof.to_json()
        return to_jsonable(doc)





# -- the public API ---------------------------------------------------------------------


def _noop_progress(message: str) -> ContextManager[Any]:
    return contextlib.nullcontext()


def rollback(root: str | os.PathLike[str], name: str, to: str | None = None,
             previous: bool = False, stage: str | None = None, message: str | None = None,
             dry_run: bool = False, allow_mismatch: bool = False,
             progress: Progress | None = None,
             lock_timeout: float | None = None,
             checkpoint: Checkpoint = no_checkpoint,
             trigger: str | None = None) -> RollbackResult:
    """Roll model ``name`` back to version ``to`` (or ``previous``), verified and atomic.

    See the module docstring for the steps. Raises ``DirtyWorkTree``, ``MissingObjects``,
    ``RepositoryLocked``, ``VerificationError`` or ``RollbackError``; after any of them
    (and after SIGINT/SIGTERM) the repository is as it was. ``trigger`` names what started
    an automatic rollback (``"watch"``); the stage tag's block records it.
    """
    from dvc_monitor.names import validate_artifact_name, validate_stage_name
    from dvc_monitor.repo import dvc as dvcops

    started = time.monotonic()
    step = progress or _noop_progress
    validate_artifact_name(name)
    if stage is not None:
        validate_stage_name(stage)
    if previous and to:
        raise UsageError("give either --to VERSION or --previous, not both")
    if not previous and not to:
        raise UsageError("say where to roll back to: --to VERSION (or a version id) or "
                         "--previous")
    git = GitRepo.discover(root)
    root = git.root

    if dry_run:
        with step("Preflight: resolve the version, check the tree and the objects"):
            with dvcops.session(root) as dvc:
                plan, _ = preflight(git, dvc, name, to, previous, stage, message,
                                    dry_run=True)
        result = RollbackResult(name, plan.version, plan.id, True, plan)
        result.notes = _notes(plan, previous)
        result.seconds = time.monotonic() - started
        return result

    with repository_lock(root, f"rollback {name}", lock_timeout):
        recovered = None
        if pending_journal(root) is not None:
            rec = recover_locked(git, checkpoint=checkpoint)
            recovered = rec.message
        with dvcops.session(root) as dvc:
            with step("Preflight: resolve the version, check the tree and the objects"):
                plan, ctx = preflight(git, dvc, name, to, previous, stage, message)
            result = RollbackResult(name, plan.version, plan.id, False, plan,
                                    recovered=recovered, allowed_mismatch=allow_mismatch)
            result.notes = _notes(plan, previous)
            if plan.trainer_differs:  # the train stage would refuse: say so before any change
                raise RollbackError(
                    f"{name} {plan.version} must be retrained ({plan.retrain_reason}), but it "
                    f"was {plan.trainer}; a retrain here would not give the registered model: "
                    "'dvc push' its objects where they exist, or install the recorded versions "
                    "(nothing was changed)")
            _run(ctx, plan, dvc, result, step, allow_mismatch, checkpoint, trigger)
    result.seconds = time.monotonic() - started
    return result


def _notes(plan: RollbackPlan, previous: bool) -> list[str]:
    notes = []
    if plan.shared:
        notes.append(f"restores files outside {plan.pipeline_dir}: {some(plan.shared)} "
                     "(other models that read them will see the change)")
    if plan.trainer:
        notes.append(f"trainer: {plan.trainer}")
    if previous and plan.stage is None and plan.stage_holder:
        notes.append(f"stage {DEFAULT_STAGE} still points to {plan.stage_holder}; add "
                     f"--stage {DEFAULT_STAGE} to move it to {plan.version}")
    return notes


def _journal_for(plan: RollbackPlan, ctx: RollbackContext, trigger: str | None = None) -> dict:
    return {
        "schema": JOURNAL_SCHEMA, "txn": uuid.uuid4().hex, "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "argv": sys.argv, "name": plan.name, "version": plan.version, "id": plan.id,
        "target_commit": plan.commit, "stage": plan.stage, "message": plan.message,
        "by": ctx.by, "from_version": ctx.from_version, "head": plan.head,
        "branch": plan.branch, "files": ctx.files, "outs": ctx.outs, "backup_files": {},
        "backup_outs": {}, "phase": "backup", "commit": None,
        "assign": bool(plan.stage) and plan.stage_holder != plan.version,
        "trigger": trigger,
    }


def _run(ctx: RollbackContext, plan: RollbackPlan, dvc, result: RollbackResult, step: Progress,
         allow_mismatch: bool, checkpoint: Checkpoint, trigger: str | None = None) -> None:
    tx = RollbackJournal(ctx.git, _journal_for(plan, ctx, trigger), checkpoint)
    try:
        with signals_raise():
            checkpoint("preflight")
            with step("Back up the files and outputs that will change"):
                tx.backup()
                checkpoint("backup")
            with step(f"Restore {plan.name} {plan.version}'s pipeline files from git "
                      f"({len(plan.restore)} to write, {len(plan.delete)} to remove)"):
                _restore_files(ctx)
                checkpoint("restore")
            label = (f"Fetch {len(plan.fetch)} object(s) from {plan.remote}" if plan.fetch
                     else "Fetch: every object is in the local cache")
            with step(label):
                in_ws = [o for o in plan.objects if o.location == "workspace"]
                for o in in_ws:
                    if o.oid.endswith(".dir"):
                        dvc.cache_workspace_dir(o.path, o.oid)
                dvc.cache_workspace_files({o.path: o.oid for o in in_ws
                                           if not o.oid.endswith(".dir")})
                if plan.fetch:
                    for oid, raw in ctx.remote_manifests.items():
                        dvc.add_manifest(oid, raw)
                    n, failed = dvc.fetch([o for o in plan.fetch if not o.endswith(".dir")])
                    result.fetched = n + len(ctx.remote_manifests)
                    failed = sorted(set(failed) | {oid for oid in plan.fetch
                                                   if not dvc.in_cache(oid)})
                    if failed:
                        raise RollbackError(
                            f"could not download {len(failed)} object(s) from {plan.remote} "
                            f"({some(failed)}); the repository was restored to its previous "
                            "state; check the remote and run again")
                checkpoint("fetch")
            with step("Check out the model's data and outputs from the DVC cache"):
                dvc.reset()
                dvc.checkout(ctx.dvc_targets, force=True)
                for rel in set(ctx.head_pl.cached) - set(ctx.target_pl.cached):
                    if os.path.lexists(ctx.root / rel):
                        remove_path(ctx.root / rel)
                checkpoint("checkout")
            label = ("Retrain with dvc repro (" + plan.retrain_reason + ")" if plan.retrain
                     else "Run dvc repro (outputs restored: nothing to retrain)")
            with step(label):
                # checkout changed outputs only, not dvc.yaml/dvc.lock: DVC's index is current
                result.stages_run = dvc.repro([norm(plan.pipeline_dir, ModelLayout.DVC_YAML)])
                model_stage = ctx.identity.stages[-1] if ctx.identity.stages else None
                result.retrained = any(s.rsplit(":", 1)[-1] == model_stage
                                       for s in result.stages_run)
                checkpoint("repro")
            with step("Verify model, data and params against the registered version"):
                proof = verify_restored(ctx, plan)
                result.proof = proof
                if not proof.ok and (not allow_mismatch or proof.unsafe):
                    raise VerificationError(mismatch_message(plan, proof, dvc,
                                                             result.retrained))
                checkpoint("verify")
            with step(f"Commit on {plan.branch}"):
                result.commit = _commit(ctx, plan, tx, proof)
                checkpoint("commit")
            if plan.stage:
                with step(f"Assign stage {plan.stage} to {plan.name} {plan.version}"):
                    if not tx.j["assign"]:
                        result.notes.append(f"{plan.version} already holds stage {plan.stage}; "
                                            "no stage tag written")
                    else:
                        tx.j["commit"] = result.commit
                        result.tag = assign_stage(ctx.root, tx.j)
                    checkpoint("tag")
    except BaseException as exc:
        with signals_ignored():
            try:
                tx.undo()
            except Exception as undo_exc:  # the journal stays: recover will try again
                full = disk_full(undo_exc)
                then = (disk_full_message(full, "run 'dvc-monitor recover'") if full
                        else "run 'dvc-monitor recover'")
                raise RollbackError(
                    f"the rollback failed ({_reason(exc)}) and undoing it failed too "
                    f"({_reason(undo_exc)}); the journal is kept in {tx.path}: "
                    f"{then}") from None
        if isinstance(exc, DvcMonitorError) and not isinstance(exc, ExternalCommandError):
            if isinstance(exc, (RollbackError, MissingObjects)):
                raise
            raise RollbackError(f"{exc} (the repository was restored to its previous state)") \
                from None
        if isinstance(exc, KeyboardInterrupt):
            err = RollbackError("interrupted (SIGINT); the repository was restored to its "
                                "previous state")
            err.exit_code = 130
            raise err from None
        if isinstance(exc, Terminated):
            err = RollbackError(f"interrupted ({exc}); the repository was restored to its "
                                "previous state")
            err.exit_code = 128 + exc.signum
            raise err from None
        if isinstance(exc, Exception):
            raise RollbackError(f"{_reason(exc)}; the repository was restored to its previous "
                                "state") from None
        raise
    # done: outside the try, so that nothing can undo a finished rollback (a kill from here
    # on leaves a journal that the next command finishes)
    tx.cleanup()


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, DvcMonitorError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _restore_files(ctx: RollbackContext) -> None:
    """Write the target's blobs (new inodes: backups stay intact) and remove stale files."""
    rev = ctx.target.commit
    blobs = ctx.git.read_blobs([f"{rev}:{p}" for p in ctx.write])
    for path, (mode, _) in ctx.write.items():
        data = blobs.get(f"{rev}:{path}")
        if data is None:
            raise RollbackError(f"cannot read {path} at {rev[:7]} from git")
        dst = ctx.root / path
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".dvc-monitor-tmp")
        if mode == "120000":
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(data.decode(), tmp)
        else:
            tmp.write_bytes(data)
            os.chmod(tmp, 0o755 if mode == "100755" else 0o644)
        os.replace(tmp, dst)
    for path in ctx.delete:
        dst = ctx.root / path
        if os.path.lexists(dst):
            remove_path(dst)


def _commit(ctx: RollbackContext, plan: RollbackPlan, tx: RollbackJournal,
            proof: Proof) -> str | None:
    git = ctx.git
    head_files = set(git.ls_tree(plan.head, ctx.files))
    paths = [p for p in ctx.files if p in head_files or os.path.lexists(ctx.root / p)]
    if paths:
        git.run("--literal-pathspecs", "add", "-A", "--", *paths)
    if git.ok("diff", "--cached", "--quiet"):
        return None  # the workspace was at the target already
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    current = plan.current_version or (f"id {plan.current_id}" if plan.current_id else "unknown")
    body = [
        f"Roll back {plan.name} to {plan.version} (id {plan.id})",
        "",
        f"Restores {plan.name} {plan.version} (commit {plan.commit[:12]}): its pipeline "
        "files, params, data and model, verified against the registered version.",
        "",
        f"model md5: {proof.model.got if proof.model else 'n/a'}"
        + (f" ({proof.model_match})" if proof.model_match else "")
        + ("" if proof.ok else " (MISMATCH allowed with --allow-mismatch)"),
    ]
    if plan.message:
        body += ["", plan.message]
    body += [
        "",
        f"Rollback-Model: {plan.name}",
        f"Rollback-From: {current}",
        f"Rollback-To: {plan.version} ({plan.id})",
        f"Rollback-Target-Commit: {plan.commit}",
        f"Rollback-By: {ctx.by}",
        f"Rollback-Date: {when}",
    ]
    if plan.message:
        body.append(f"Rollback-Reason: {' '.join(plan.message.split())}")
    if plan.stage:
        body.append(f"Rollback-Stage: {plan.stage}")
    body.append(f"{TRAILER_ID}: {tx.j['txn']}")
    git.run("commit", "-q", "--no-verify", "--cleanup=verbatim", "-F", "-",
            input="\n".join(body) + "\n")
    commit = git.head()
    tx.j["commit"] = commit
    tx.j["phase"] = "committed"
    tx.save()
    return commit

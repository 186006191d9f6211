"""``rollback`` and ``recover``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Iterator


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollback",
        help="restore a registered version of a model: git + DVC + repro, verified, atomic",
        description="Restore model NAME to a registered version in one verified, atomic step: "
                    "its pipeline files from git, its data and model from the DVC cache or "
                    "remote, dvc repro, a check of every hash, then a new commit (history is "
                    "never rewritten). On any failure the repository is left as it was.",
    )
    p.add_argument("name", nargs="?", help="model name")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--to", metavar="VERSION", help="vX.Y.Z, latest, or a (short) version id")
    where.add_argument("--previous", action="store_true",
                       help="the version that held the stage (--stage, default prod) before "
                            "the current one")
    p.add_argument("--stage", help="after the rollback, assign this stage to the version "
                                   "(a GTO stage tag); with --previous, the stage to look at")
    p.add_argument("-m", "--message", metavar="WHY", help="why (recorded in the commit and tag)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (files, objects, retrain, expected hashes); change nothing")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="commit even when the restored hashes differ from the registered ones")
    p.add_argument("--recover", action="store_true",
                   help="finish or undo an interrupted rollback (same as 'dvc-monitor recover')")
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="how long to wait for another dvc-monitor write in this repository "
                        "(default 30)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    from dvc_monitor.cli.team import add_push_options

    add_push_options(p)  # --push: publish the stage tag, and the branch if fast-forward
    p.set_defaults(func=run_rollback)

    p = sub.add_parser("recover", help="finish or undo an interrupted rollback")
    p.add_argument("--discard", action="store_true",
                   help="drop the journal of an interrupted rollback without changing anything")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_recover)


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """Keep stdout for the JSON document: stage commands that DVC runs inherit fd 1."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_rollback(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import info, print_json, step
    from dvc_monitor.errors import UsageError

    if args.recover:
        return _print_recovery(api.recover(args.repo, checkpoint=args.checkpoint), args.json)
    if not args.name:
        raise UsageError("give the model name: dvc-monitor rollback NAME --to VERSION")
    with _stdout_to_stderr(args.json):
        result = api.rollback(args.repo, args.name, to=args.to, previous=args.previous,
                              stage=args.stage, message=args.message, dry_run=args.dry_run,
                              allow_mismatch=args.allow_mismatch, progress=step,
                              wait=args.wait, checkpoint=args.checkpoint)
    for warning in result.plan.warnings:
        info(f"dvc-monitor: warning: {warning}")
    if args.json:
        print_json(result)
    elif result.dry_run:
        print_plan(result.plan)
    else:
        print_proof(result)
    if not result.dry_run:
        from dvc_monitor.cli.team import publish_after

        with _stdout_to_stderr(args.json):
            publish_after(args, [result.tag] if result.tag else [],
                          branch=bool(result.commit))
    return 0


def run_recover(args: argparse.Namespace) -> int:
    from dvc_monitor import api

    return _print_recovery(api.recover(args.repo, discard=args.discard,
                                       checkpoint=args.checkpoint), args.json)


def _print_recovery(rec, as_json: bool) -> int:
    from dvc_monitor.cli.output import print_json

    if as_json:
        print_json(rec)
    else:
        print(rec.message)
    return 0


# -- rendering --------------------------------------------------------------------------


def _counts(objects) -> str:
    labels = {"workspace": "in the workspace", "cache": "in the local cache",
              "remote": "on the remote", "missing": "missing"}
    by: dict[str, int] = {}
    for o in objects:
        by[o.location] = by.get(o.location, 0) + 1
    return ", ".join(f"{by[k]} {label}" for k, label in labels.items() if by.get(k))


def print_plan(plan) -> None:
    frm = plan.current_version or (plan.current_id[:19] if plan.current_id else "?")
    print(f"Rollback plan: {plan.name} {frm} -> {plan.version} (id {plan.id})")
    print(f"  target commit   {plan.commit[:12]}; commit on branch {plan.branch} "
          f"(HEAD {plan.head[:12]})")
    print(f"  restore (git)   {len(plan.restore)} file(s)")
    for path in plan.restore:
        print(f"                    {path}")
    if plan.delete:
        print(f"  remove          {len(plan.delete)} file(s)")
        for path in plan.delete:
            print(f"                    {path}")
    print(f"  outputs (DVC)   {', '.join(plan.outputs) or 'none'}")
    print(f"  objects         {_counts(plan.objects) or 'none'}")
    print(f"                  cache: {plan.cache_dir}; remote: {plan.remote or 'none'}")
    if plan.fetch:
        print(f"  fetch           {len(plan.fetch)} object(s) from {plan.remote}")
    for o in plan.missing:
        print(f"  missing         {o.path} ({o.oid}): rebuilt by dvc repro")
    print(f"  retrain         {'yes' if plan.retrain else 'no'}: {plan.retrain_reason}")
    if plan.trainer:
        print(f"  trainer         {'DIFFERS' if plan.trainer_differs else 'note'}: {plan.trainer}")
    for problem in plan.problems:
        print(f"  problem         {problem}")
    if plan.run_cache is not None:
        print(f"  run-cache       {'entry found' if plan.run_cache else 'no entry'} for the "
              "model's stage")
    _print_expected(plan.expected)
    if plan.stage:
        if plan.stage_holder == plan.version:
            print(f"  stage           {plan.version} holds {plan.stage} already")
        else:
            print(f"  stage           assign {plan.stage} to {plan.version} "
                  f"(now: {plan.stage_holder or 'nobody'})")
    for path in plan.shared:
        print(f"  note            {path} is outside {plan.pipeline_dir}: other models that "
              "read it see the change")
    if plan.current_id == plan.id and not plan.restore and not plan.delete:
        print(f"  note            the workspace holds {plan.version} already: nothing to commit")
    print("Dry run: nothing was changed.")


def _print_expected(expected: dict) -> None:
    print(f"  expected id     {expected['id']}")
    for path, md5 in expected["model"].items():
        print(f"  expected model  {path} md5 {md5}")
    for path, md5 in expected["data"].items():
        print(f"  expected data   {path} md5 {md5}")
    for fname, values in (expected.get("params") or {}).items():
        for key, value in (values or {}).items():
            print(f"  expected param  {fname}:{key} = {value}")


def print_proof(result) -> None:
    plan = result.plan
    proof = result.proof
    if result.recovered:
        print(f"Note: {result.recovered}")
    if result.commit:
        print(f"Rolled back {plan.name} to {plan.version} in commit {result.commit[:12]} "
              f"on {plan.branch}" + (" (retrained)" if result.retrained else ""))
    else:
        print(f"{plan.name} is already at {plan.version}: nothing to commit")
    if result.tag:
        print(f"Stage {plan.stage} -> {plan.version} (tag {result.tag})")
    for note in result.notes:
        print(f"Note: {note}")
    if proof is None:
        return
    verdict = "verified" if proof.ok else "MISMATCH (kept with --allow-mismatch)"
    print(f"Proof ({verdict}):" + (f" model {proof.model_match}" if proof.model_match else ""))
    print(f"  target id   {proof.target_id}")
    print(f"  got id      {proof.got_id}")
    if proof.model is not None:
        print(f"  model       {proof.model.path}")
        print(f"    expected  {proof.model.expected}")
        print(f"    got       {proof.model.got}  "
              f"{(proof.model_match or 'ok') if proof.model.ok else 'MISMATCH'}")
        if proof.model.note:
            print(f"    check     {proof.model.note}")
    for c in proof.checks:
        if c.what in ("data", "code", "output"):
            mark = "ok" if c.ok else f"MISMATCH (expected {c.expected})"
            print(f"  {c.what:<10}  {c.path} {c.got}  {mark}")
    for c in proof.checks:
        if c.what == "params":
            for fname, values in (c.expected or {}).items():
                for key, value in (values or {}).items():
                    got = (c.got or {}).get(fname, {}).get(key)
                    mark = "ok" if got == value else f"MISMATCH (got {got})"
                    print(f"  param       {fname}:{key} = {value}  {mark}")

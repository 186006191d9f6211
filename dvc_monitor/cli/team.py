"""push, sync, check: working as a team with a shared git origin and DVC remote.

Also ``add_push_options`` and ``publish_after``, used by register/promote/unassign/
deprecate/rollback for their ``--push``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", help="publish registry tags and the DVC objects their versions need",
        description="Push every DVC object the versions need to the DVC remote (from the "
                    "local cache), then the registry tags the git remote lacks, in one "
                    "atomic git push. A tag name taken on the origin meanwhile is renumbered "
                    "after theirs (GTO's counter) and the push retried; nothing is forced.")
    p.add_argument("names", nargs="*", metavar="NAME", help="models (default: all)")
    _remote_options(p)
    p.add_argument("--dvc-remote", metavar="NAME", help="DVC remote (default: the default remote)")
    p.add_argument("--allow-missing", action="store_true",
                   help="publish versions whose missing objects 'check' shows rebuildable")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_push)

    p = sub.add_parser(
        "sync", help="fetch the origin's registry tags (no clobbering) and show what differs",
        description="Fetch the registry tags of the git remote without overwriting local "
                    "ones, renumber local unpublished events whose names were taken there, "
                    "and print what differs between the local and the origin's registry.")
    _remote_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_sync)

    p = sub.add_parser(
        "check", help="where each version's objects are: local cache, DVC remote, rebuildable",
        description="For every registered version: are its model, data and cached outputs "
                    "in the local cache, on the DVC remote, or rebuildable (inputs present, "
                    "deterministic pipeline), with this install or only with the trainer "
                    "recorded in its trainer.json (named)? Exits 1 when a version cannot be "
                    "restored from the remote with this install.")
    p.add_argument("names", nargs="*", metavar="NAME", help="models (default: all)")
    p.add_argument("--dvc-remote", metavar="NAME", help="DVC remote (default: the default remote)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_check)


def _remote_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--git-remote", metavar="REMOTE",
                   help="git remote (default: origin, or the only remote)")


def add_push_options(p: argparse.ArgumentParser) -> None:
    """``--push`` (and ``--git-remote``/``--dvc-remote``) for a registry write."""
    p.add_argument("--push", action="store_true",
                   help="publish the new event (and its objects) to the git origin and "
                        "DVC remote, as 'dvc-monitor push' does")
    _remote_options(p)
    p.add_argument("--dvc-remote", metavar="NAME", help="DVC remote for --push")


def publish_after(args: argparse.Namespace, tags: list[str], branch: bool = False):
    """Run ``push`` for the tags a write just made (when ``--push`` was given)."""
    if not getattr(args, "push", False):
        return None
    from dvc_monitor import api
    from dvc_monitor.cli.output import step
    from dvc_monitor.errors import DvcMonitorError

    try:
        result = api.push(args.repo, git_remote=args.git_remote, dvc_remote=args.dvc_remote,
                          tags=[t for t in tags if t], branch=branch, progress=step)
    except DvcMonitorError as exc:
        made = ", ".join(t for t in tags if t) or "the change"
        raise api.PublishError(f"{made} was made locally but not published: {exc}") from None
    _print_push(result, brief=True)
    return result


def _print_push(result, brief: bool = False) -> None:
    from dvc_monitor.cli.output import info

    for r in result.renumbered:
        info(f"dvc-monitor: {'warning: ' if r.holder_changed else ''}{r.message}")
    for w in result.warnings:
        info(f"dvc-monitor: warning: {w}")
    for m in result.allowed_missing:
        info(f"dvc-monitor: warning: published without its object (rebuildable): {m}")
    objects = (f"all {result.objects_needed} object(s) on {result.dvc_remote}, "
               f"{result.objects_pushed} uploaded now" if result.dvc_remote
               else "no DVC objects involved")
    if result.pushed:
        print(f"Pushed {len(result.pushed)} tag(s) to {result.git_remote} ({objects}): "
              + ", ".join(result.pushed))
    elif not brief or result.objects_pushed:
        print(f"Nothing new to push to {result.git_remote}: it has all {result.already} "
              f"registry tag(s) ({objects})")
    if result.branch:
        print(f"Pushed branch {result.branch} to {result.git_remote}")


def run_push(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import print_json, step
    from dvc_monitor import api

    result = api.push(args.repo, args.names or None, git_remote=args.git_remote,
                      dvc_remote=args.dvc_remote, allow_missing=args.allow_missing,
                      progress=step)
    if args.json:
        print_json(result.to_json())
        return 0
    _print_push(result)
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import info, print_json, print_table, step
    from dvc_monitor import api

    result = api.sync(args.repo, git_remote=args.git_remote, progress=step)
    if args.json:
        print_json(result.to_json())
        return 0
    for r in result.renumbered:
        info(f"dvc-monitor: {'warning: ' if r.holder_changed else ''}{r.message}")
    for c in result.conflicts:
        info(f"dvc-monitor: warning: {c}")
    print(f"Fetched {len(result.fetched)} registry tag(s) from {result.git_remote}"
          + (": " + ", ".join(result.fetched[:10]) if result.fetched else "")
          + (f" and {len(result.fetched) - 10} more" if len(result.fetched) > 10 else ""))
    if result.unpushed:
        print(f"Not on {result.git_remote} yet ({len(result.unpushed)}): "
              + ", ".join(result.unpushed) + "; publish with 'dvc-monitor push'")
    if result.differences:
        print_table([(d.name, d.stage, d.local or "-", d.origin or "-")
                     for d in result.differences],
                    ["model", "stage", "here", result.git_remote],
                    title="Stage holders that differ")
    if result.identical:
        print(f"The local registry and {result.git_remote}'s are identical")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import info, print_json, print_table
    from dvc_monitor import api

    result = api.check(args.repo, args.names or None, dvc_remote=args.dvc_remote)
    if args.json:
        print_json(result.to_json())
        return 0 if result.ok else 1
    if result.remote is None:
        info("dvc-monitor: warning: no DVC remote is configured: nothing can be restored on "
             "another machine; add one with 'dvc remote add -d storage s3://bucket/path'")
    rows = [(v.name, v.version, len(v.objects), v.in_cache,
             "-" if result.remote is None else v.on_remote, v.status, v.rebuild_note, v.note)
            for v in result.versions]
    print_table(rows, ["model", "version", "objects", "in cache", "on remote", "status",
                       "rebuildable", "note"], title=f"DVC remote: {result.remote or 'none'}")
    bad = [v for v in result.versions if not v.restorable]
    if bad and result.remote is not None:
        info(f"dvc-monitor: {len(bad)} version(s) cannot be restored from the remote: "
             + ", ".join(f"{v.name} {v.version}" for v in bad[:5])
             + ("; 'dvc-monitor push' uploads objects found in the local cache"
                if any(v.in_cache for v in bad) else "")
             + ("; a needs-trainer version is rebuilt only by the trainer its note names"
                if any(v.status == "needs-trainer" for v in bad) else ""))
    return 0 if result.ok else 1

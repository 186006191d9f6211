"""gc: registry-aware garbage collection of the DVC cache (and, with --cloud, the remote)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dvc_monitor import api

    DEFAULT_KEEP_LAST = api.defaults().keep_last

    p = sub.add_parser(
        "gc", help="remove DVC objects no registered version needs (registry-aware dvc gc)",
        description="Keep every input of every registered version (data partitions, their "
                    "manifests), everything of the stage holders and of the last N "
                    "registered versions of each model, and what the workspace and branch "
                    "heads use. The model files and other outputs of the older (cold) "
                    "versions leave the local cache when 'check' shows them rebuildable and "
                    "the DVC remote holds them (a rollback fetches them, or retrains and "
                    "verifies them); the remote keeps every object of every registered "
                    "version. Objects nothing refers to are dropped.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="models whose cold versions are thinned (default: all)")
    p.add_argument("--keep-last", type=int, default=DEFAULT_KEEP_LAST, metavar="N",
                   help=f"registered versions per model kept whole (default: {DEFAULT_KEEP_LAST})")
    p.add_argument("--keep-stages", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the versions that hold a stage whole (default: yes)")
    p.add_argument("--cloud", action="store_true", help="apply the same rule to the DVC remote")
    p.add_argument("--dvc-remote", metavar="NAME", help="DVC remote for --cloud (default: the "
                                                        "default remote)")
    p.add_argument("--drop-rebuildable", action="store_true",
                   help="RISKY: also delete the LAST copy of the outputs of cold versions this "
                        "install can rebuild (from the remote with --cloud, and from the local "
                        "cache when the remote lacks them). Such a version can then only be "
                        "retrained: after any upgrade of dvc-monitor, scikit-learn, numpy, "
                        "scipy or skops it cannot be restored at all")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be removed (object, version, bytes); change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_gc)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def run_gc(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import info, print_json, print_table, step

    result = api.gc(args.repo, args.names or None, keep_last=args.keep_last,
                    keep_stages=args.keep_stages, cloud=args.cloud, dry_run=args.dry_run,
                    dvc_remote=args.dvc_remote, progress=step, checkpoint=args.checkpoint,
                    drop_rebuildable=args.drop_rebuildable)
    _warn(result, info)
    if args.json:
        print_json(result)
        return 0
    if args.dry_run:
        print_table([(o.where, o.ref or "-", o.path or "-", o.oid, o.bytes, o.reason)
                     for o in result.removed],
                    ["where", "version", "path", "object", "bytes", "reason"],
                    title="gc --dry-run: would remove")
    for line in summary(result):
        print(line)
    return 0


def _warn(result, info) -> None:
    """What the user must know on stderr: last copies deleted, copies that stay local."""
    if result.kept_cold:
        info("dvc-monitor: kept whole (cold but not rebuildable): " + ", ".join(result.kept_cold))
    if result.remote_note:
        info(f"dvc-monitor: warning: {result.remote_note}; the outputs of cold versions stay "
             "in the local cache")
    if result.not_on_remote:
        info("dvc-monitor: kept in the local cache (cold, but the DVC remote lacks their "
             "outputs): " + ", ".join(result.not_on_remote) + "; run 'dvc-monitor push', then "
             "gc again")
    if result.last_copy:
        from dvc_monitor import api

        verb = "would delete" if result.dry_run else "deleted"
        info(f"dvc-monitor: warning: --drop-rebuildable {verb} the last copy of the outputs of "
             + ", ".join(result.last_copy) + f": only a retrain with this trainer "
             f"({api.installed_trainer()}) can restore them; after an upgrade of dvc-monitor or "
             "of these libraries they are gone for good")


def summary(result) -> list[str]:
    """The closing lines of ``gc``, each a complete line."""
    verb = "Would free" if result.dry_run else "Freed"
    lines = [f"{verb} {_size(result.freed('cache'))} ({result.count('cache')} object(s)) in "
             f"the local cache, {result.kept_objects} object(s) kept"]
    if result.cloud:
        kept = "every object of every registered version kept"
        if any(o.where == "remote" and o.ref for o in result.removed):
            kept = "the last copies named above; every other object of every registered " \
                   "version kept"
        lines.append(f"{verb} {_size(result.freed('remote'))} ({result.count('remote')} "
                     f"object(s)) on {result.remote}: {kept}")
    left = "would leave" if result.dry_run else "left"
    lines.append(f"Hot (kept whole): {len(result.hot)} version(s); cold (outputs {left} the "
                 f"local cache, restored from the remote or rebuilt on rollback): "
                 f"{len(result.cold) - len(result.not_on_remote)}")
    return lines

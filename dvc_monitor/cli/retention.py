"""gc: registry-aware garbage collection of the DVC cache (and, with --cloud, the remote)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dvc_monitor.api import retention_defaults

    DEFAULT_KEEP_LAST = retention_defaults.DEFAULT_KEEP_LAST

    p = sub.add_parser(
        "gc", help="remove DVC objects no registered version needs (registry-aware dvc gc)",
        description="Keep every input of every registered version (data partitions, their "
                    "manifests), everything of the stage holders and of the last N "
                    "registered versions of each model, and what the workspace and branch "
                    "heads use; drop the model files and other outputs of the older (cold) "
                    "versions when 'check' shows them rebuildable (a rollback retrains and "
                    "verifies them), and every object nothing refers to.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="models whose cold versions are thinned (default: all)")
    p.add_argument("--keep-last", type=int, default=DEFAULT_KEEP_LAST, metavar="N",
                   help=f"registered versions per model kept whole (default: {DEFAULT_KEEP_LAST})")
    p.add_argument("--keep-stages", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the versions that hold a stage whole (default: yes)")
    p.add_argument("--cloud", action="store_true", help="apply the same rule to the DVC remote")
    p.add_argument("--dvc-remote", metavar="NAME", help="DVC remote for --cloud (default: the "
                                                        "default remote)")
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
    from dvc_monitor.api import gc
    from dvc_monitor.cli.output import info, print_json, print_table, step

    result = gc(args.repo, args.names or None, keep_last=args.keep_last,
                keep_stages=args.keep_stages, cloud=args.cloud, dry_run=args.dry_run,
                remote=args.dvc_remote, progress=step, checkpoint=args.checkpoint)
    if args.json:
        print_json(result)
        return 0
    if result.kept_cold:
        info("dvc-monitor: kept whole (cold but not rebuildable): " + ", ".join(result.kept_cold))
    if args.dry_run:
        print_table([(o.where, o.ref or "-", o.path or "-", o.oid, o.bytes, o.reason)
                     for o in result.removed],
                    ["where", "version", "path", "object", "bytes", "reason"],
                    title="gc --dry-run: would remove")
    verb = "Would free" if args.dry_run else "Freed"
    parts = [(f"{_size(result.freed('cache'))} ({result.count('cache')} object(s)) in the "
              f"local cache, {result.kept_objects} object(s) kept")]
    if result.cloud:
        parts.append(f"{_size(result.freed('remote'))} ({result.count('remote')} object(s)) "
                     f"on {result.remote}")
    print(f"{verb} {'; '.join(parts)}. Hot (kept whole): {len(result.hot)} version(s); "
          f"cold (outputs dropped, rebuilt on rollback): {len(result.cold)}")
    return 0

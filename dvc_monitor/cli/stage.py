"""``dvc-monitor stage prepare|train|evaluate``: what the dvc.yaml stages run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stage", help="run a pipeline stage (called by dvc.yaml, in the model folder)")
    p.add_argument("stage", choices=("prepare", "train", "evaluate"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dvc_monitor.cli.output import info
    from dvc_monitor import api

    summary = api.stage(args.repo, args.stage).summary
    shown = (f"{k}={round(v, 4) if isinstance(v, float) else v}"
             for k, v in sorted(summary.items()) if not isinstance(v, (dict, list)))
    info(f"{args.stage}: " + ", ".join(shown))
    return 0

"""``init``, ``ingest`` and ``demo``."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="scaffold a monitoring model into this git repository")
    p.add_argument("--template", required=True, metavar="KIND",
                   help="anomaly | forecast | risk")
    p.add_argument("--name", required=True, help="model (artifact) name, e.g. fraud-detector")
    p.add_argument("--sample-data", action="store_true", help="add seeded sample data batches")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--remote", metavar="URL_OR_DIR",
                   help="default DVC remote to configure when none is set "
                        "(default: a folder under ~/.local/share/dvc-monitor/remotes)")
    p.add_argument("--ci", choices=("github", "gitlab"), help="also write CI workflow files")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample data")
    p.set_defaults(func=run_init)

    p = sub.add_parser("ingest", help="add a CSV batch to a model's training data")
    p.add_argument("name", help="model name")
    p.add_argument("file", help="CSV file with the model's columns ('-': read standard input)")
    p.add_argument("--allow-unlabelled", action="store_true",
                   help="add a batch without the label column to labelled data (or a labelled "
                        "batch to unlabelled data); the labelled metrics then go away")
    p.set_defaults(func=run_ingest)

    p = sub.add_parser("demo", help="build a demo repository end to end and show the result")
    p.add_argument("--dir", help="where to create it (default: a new temporary folder)")
    p.add_argument("--template", default="anomaly", help="anomaly | forecast | risk")
    p.set_defaults(func=run_demo)


def run_init(args: argparse.Namespace) -> int:
    from dvc_monitor import api

    result = api.init(args.repo, args.template, args.name, sample_data=args.sample_data,
                      force=args.force, remote=args.remote, ci=args.ci, seed=args.seed)
    print(f"Created {result.kind} model '{result.name}':")
    for path in result.files:
        print(f"  {path}")
    if result.batches:
        print(f"  ({result.batches} sample data batches tracked by DVC)")
    if result.remote:
        print(f"Default DVC remote 'local': {result.remote}")
    print("Next:")
    for cmd in result.next_steps:
        print(f"  {cmd}")
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    from dvc_monitor import api

    batch = sys.stdin.buffer if args.file == "-" else args.file
    result = api.ingest(args.repo, args.name, batch, allow_unlabelled=args.allow_unlabelled)
    if result.sealed:
        print(f"Sealed the {result.sealed_batches} batches of data/ into {result.sealed} "
              "(a segment that never changes; see docs/storage.md).")
    print(f"Added {result.rows} rows to '{result.name}' as {result.partition} "
          f"({result.partitions} partitions). Next: dvc repro, then git commit.")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from dvc_monitor import api

    return api.demo(args.dir, template=args.template).exit_code

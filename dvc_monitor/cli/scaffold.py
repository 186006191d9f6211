"""``init``, ``adopt``, ``ingest`` and ``demo``."""

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

    p = sub.add_parser(
        "adopt", help="monitor a model your own pipeline trains (writes monitor.yaml)",
        description="Declare an artifact your own DVC pipeline trains (a skops file under "
                    "artifacts:) as a monitored model. Checks the file, its types, the "
                    "estimator's methods and the reference rows, then writes monitor.yaml "
                    "beside the pipeline for you to review and commit. Nothing is written "
                    "when a check fails.")
    p.add_argument("name", help="the artifact's name, as the root dvc.yaml's artifacts: declares it")
    p.add_argument("--kind", required=True, metavar="KIND",
                   help="anomaly (score_samples, predict == -1) | risk (predict_proba) | "
                        "forecast (predict)")
    p.add_argument("--features", required=True, metavar="COL,...",
                   help="the columns the model reads, comma-separated")
    p.add_argument("--label", metavar="COL",
                   help="the column of the truth: 0/1 for anomaly and risk, the value for forecast")
    p.add_argument("--reference", metavar="PATH",
                   help="a git- or DVC-tracked file or folder of rows (e.g. your test split): "
                        "each version's metrics and drift reference are computed on it")
    p.add_argument("--threshold", type=float, metavar="X",
                   help="alert above this score (risk: probability, default 0.5; anomaly: "
                        "default the estimator's own predict)")
    p.add_argument("--interval", type=float, metavar="SHARE",
                   help="forecast: the share of reference residuals the interval covers "
                        "(default 0.9)")
    p.add_argument("--trust", action="append", default=[], metavar="TYPE",
                   help="a type outside dvc-monitor's allow-list that you have reviewed and "
                        "trust (repeatable); written to trusted_types: in monitor.yaml")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_adopt)

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


def run_adopt(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dvc_monitor import api
    from dvc_monitor.cli.output import print_json

    reference = args.reference
    if reference is not None and not Path(reference).is_absolute():
        # like git and dvc: relative to where the command runs (-C: that folder)
        reference = str(Path(args.repo).absolute() / reference)
    result = api.adopt(args.repo, args.name, kind=args.kind, features=args.features,
                       label=args.label, reference=reference, threshold=args.threshold,
                       trust=args.trust, interval=args.interval)
    if args.json:
        print_json(result.to_json())
        return 0
    verb = "Updated" if result.updated else "Wrote"
    print(f"{verb} {result.monitor}: {result.name} ({result.kind}) is trained by its own "
          "pipeline and monitored by dvc-monitor.")
    for line in result.checks:
        print(f"  ok  {line}")
    if result.reference_metrics:
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in result.reference_metrics.items())
        print(f"  on the reference: {shown}")
    if result.trusted_types:
        print(f"  trusted by you (reviewers see this list): {', '.join(result.trusted_types)}")
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

"""watch: live monitoring of a stage's version, with a rollback proven to help.

Module-level imports stay light (argparse only); the work happens in ``dvc_monitor.api``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="measure live data windows with a version against its "
                                     "reference; decide ok / rollback / retrain / hold")
    p.add_argument("ref", metavar="REF",
                   help="NAME#STAGE (the stage's holder), NAME@vX.Y.Z or NAME (latest)")
    p.add_argument("--data", metavar="PATH", required=True,
                   help="a CSV file or a folder of CSV files; each file is one window "
                        "(--engine dask: CSV or Parquet, a file, folder or glob read as one "
                        "dataset that --window cuts)")
    p.add_argument("--window", type=int, metavar="ROWS",
                   help="cut the rows of each file into windows of ROWS rows")
    p.add_argument("--labels", metavar="COL",
                   help="label column of the windows (default: the model's label column, "
                        "when the windows have it)")
    p.add_argument("--rollback", action="store_true",
                   help="when the decision is rollback, roll the stage back to the target "
                        "(atomic and verified, like 'dvc-monitor rollback --stage')")
    p.add_argument("--retrain", action="store_true",
                   help="when the decision is retrain: ingest the live windows on a new branch "
                        "(dvc-monitor/retrain/NAME/TIME, in a separate worktree), dvc repro, "
                        "commit, register the candidate in --candidate-stage and review it; "
                        "your branch and the watched stage are not touched")
    p.add_argument("--candidate-stage", metavar="STAGE", default="staging",
                   help="with --retrain: the stage the candidate is assigned (default staging)")
    p.add_argument("--retrain-report", metavar="REPORT.md",
                   help="with --retrain: where the candidate's review goes (default: under "
                        ".git/dvc-monitor/retrain/)")
    p.add_argument("-o", "--output", metavar="REPORT.md",
                   help="write a markdown report and PNG plots next to it")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots in the report")
    p.add_argument("--json", action="store_true")
    from dvc_monitor.cli.production import engine_args

    engine_args(p)
    p.set_defaults(func=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.errors import WatchActionFailed
    from dvc_monitor.cli.output import info

    try:
        result = api.watch(args.repo, args.ref, args.data, window=args.window,
                           labels=args.labels, rollback=args.rollback, output=args.output,
                           no_plots=args.no_plots, progress=info, retrain=args.retrain,
                           candidate_stage=args.candidate_stage,
                           retrain_report=args.retrain_report,
                           engine=args.engine, scheduler=args.scheduler,
                           workers=args.workers)
    except WatchActionFailed as exc:
        _show(exc.result, args)
        raise
    _show(result, args)
    return 0


def _show(result, args: argparse.Namespace) -> None:
    from dvc_monitor.cli.output import info, print_json, print_table

    if args.json:
        print_json(result.to_json())
    else:
        measures = [m["measure"] for m in result.rules["rules"]]
        measures = list(dict.fromkeys(measures))
        rows = []
        for w in result.windows:
            rows.append([w.window, w.rows, *(_fmt(w.measures.get(m)) for m in measures),
                         w.status])
        print_table(rows, ["window", "rows", *measures, "status"],
                    title=f"{result.name} {result.version}"
                          + (f" ({result.stage})" if result.stage else ""))
        for c in result.candidates:
            verdict = "passes" if c.passed else "fails: " + "; ".join(c.failures[:3])
            print(f"  candidate {c.version} "
                  + (f"skipped: {c.skipped}" if c.skipped else verdict))
        target = f" -> {result.target}" if result.target else ""
        print(f"Decision: {result.decision}{target}")
        if result.hold:
            print(f"Hold: {result.hold['reason']}")
        print(f"Evidence: {result.evidence}")
        if result.rollback is not None:
            from dvc_monitor.cli.rollback import print_proof

            print_proof(result.rollback)
        if result.retrained:
            _show_retrained(result.retrained)
    for note in result.notes:
        info(f"note: {note}")
    if args.output:
        info(f"Wrote {args.output}")


def _show_retrained(r: dict) -> None:
    print(f"Retrained: {r['name']} {r['version']} ({r['commit'][:7]}) on branch {r['branch']}, "
          f"from {r['base_version']} plus {r['rows']} live rows ({r['partition']}); "
          f"registered in {r['stage']}")
    print(f"  on the live windows: passes every rule on {r['passed']} of {r['judged']}")
    gate = r["gate"]
    if gate is not None:
        print(f"  gate against {r['base_version']}: "
              + ("passes" if gate["passed"] else "fails: " + "; ".join(
                  c["detail"] for c in gate["checks"] if c["status"] == "fail")))
    print(f"  report: {r['report']}")
    print(f"Next: shadow it on live traffic, then: {r['next']}")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}"

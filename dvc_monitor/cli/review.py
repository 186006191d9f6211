"""report, gate, compare and tag-info: reviewing model changes (pull requests, CI).

Module-level imports stay light (argparse only); the work happens in ``dvc_monitor.api``.
"""

from __future__ import annotations

import argparse

BASE_HELP = ("git revision to compare against (default: the merge-base with main/master "
             "when on another branch, else HEAD when the model has uncommitted changes, "
             "else HEAD~1)")
HEAD_HELP = "git revision, or 'workspace' (default) for the files on disk"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="markdown review of a model change, with plots (for a PR)")
    p.add_argument("name", metavar="NAME", nargs="?",
                   help="model (default: the only model of the repository)")
    p.add_argument("--base", metavar="REV", help=BASE_HELP)
    p.add_argument("--head", metavar="REV", help=HEAD_HELP)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the markdown here and PNG plots next to it "
                        "(default: markdown on stdout, no plots)")
    p.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")
    p.add_argument("--plots-url", metavar="URL",
                   help="link the images as URL/FILE (e.g. a CI job's artifact URL) instead "
                        "of relative to the markdown file")
    p.add_argument("--plots-artifact", metavar="URL",
                   help="do not embed the images; name them and link to URL where they are "
                        "attached (e.g. a GitHub Actions run)")
    p.add_argument("--top-k", type=int, metavar="K",
                   help="rows compared in the top-k overlap (default: the larger number of "
                        "alerts of the two models, at least 10)")
    p.add_argument("--json", action="store_true",
                   help="print the report's numbers as JSON (the markdown still goes to -o)")
    p.set_defaults(func=run_report)

    p = sub.add_parser("gate", help="fail (exit 5) when a metric regresses beyond the "
                                    "thresholds in the model's params.yaml 'gate:' section; "
                                    "exit 6 when it cannot decide (a model dvc-monitor did "
                                    "not train or adopt, or an adopted model without "
                                    "reference rows)")
    p.add_argument("name", metavar="NAME", nargs="?",
                   help="model (default: the only model of the repository)")
    p.add_argument("--base", metavar="REV", help=BASE_HELP)
    p.add_argument("--head", metavar="REV", help=HEAD_HELP)
    p.add_argument("--thresholds-from", choices=("head", "base"), default="head",
                   help="whose gate: section applies (default: head; 'base' keeps a pull "
                        "request from loosening its own gate)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_gate)

    p = sub.add_parser("compare", help="evaluate several versions of a model on the same data")
    p.add_argument("name", metavar="NAME")
    p.add_argument("versions", metavar="VERSION", nargs="+",
                   help="vX.Y.Z, latest, a version id, NAME@vX.Y.Z, NAME#STAGE or 'workspace'")
    p.add_argument("--data", metavar="CSV",
                   help="rows to evaluate on (default: the holdout rows of the workspace data)")
    p.add_argument("--metric", metavar="M",
                   help="metric that ranks the versions (default: f1 for anomaly, mae for "
                        "forecast, roc_auc for risk)")
    p.add_argument("--best", action="store_true", help="name the best version by --metric")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_compare)

    p = sub.add_parser("tag-info", help="what a GTO tag records: model, event, version, stage "
                                        "(for CI jobs triggered by a tag)")
    p.add_argument("tag", metavar="TAG")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--env", action="store_true",
                     help="KEY=value lines (for $GITHUB_OUTPUT or a GitLab dotenv report)")
    p.set_defaults(func=run_tag_info)


def run_report(args: argparse.Namespace) -> int:
    import sys

    from dvc_monitor import api
    from dvc_monitor.cli.output import info, print_json

    report = api.report(args.repo, args.name, base=args.base, head=args.head,
                        output=args.output, no_plots=args.no_plots, top_k=args.top_k,
                        plots_url=args.plots_url, plots_artifact=args.plots_artifact)
    if args.json:
        print_json(report.to_json())
    elif not args.output:
        sys.stdout.write(report.markdown)
    if args.output:
        files = ", ".join([args.output, *report.plots])
        info(f"Wrote {files} ({report.seconds:.1f}s)")
    return 0


def run_gate(args: argparse.Namespace) -> int:
    from dvc_monitor import api

    # shown before the verdict: a failed gate still prints its table, then exits 5
    result = api.gate(args.repo, args.name, base=args.base, head=args.head,
                      thresholds_from=args.thresholds_from,
                      show=lambda result: _show_gate(result, args.json))
    if not args.json:
        print("Quality gate passed." if result.enforced else "No quality gate declared.")
    return 0


def _show_gate(result, as_json: bool) -> None:
    from dvc_monitor.cli.output import info, print_json, print_table

    if as_json:
        print_json(result.to_json())
    else:
        rows = []
        for r in result.rows:
            status = result.status_of(r.metric) or r.change
            rows.append([r.metric, _fmt(r.base), _fmt(r.head), _signed(r.delta),
                         r.direction or "", status])
        print_table(rows, ["metric", "base", "head", "delta", "better", "status"],
                    title=f"{result.name}: {result.base} -> {result.head}")
        for c in result.checks:
            print(f"  {c.status:>13}  {c.metric}: {c.detail}")
    for note in result.notes:
        info(f"note: {note}")
    if not result.enforced:
        info(f"note: {result.name} declares no gate: thresholds in its params.yaml; "
             "nothing to enforce")


def run_compare(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import info, print_json, print_table

    comparison = api.compare(args.repo, args.name, args.versions, data=args.data,
                             metric=args.metric, best=args.best)
    result = comparison.result
    if args.json:
        print_json(comparison)
        return 0
    columns, rows = comparison.columns, comparison.table
    label = "labelled" if result.labelled else "no labels"
    print_table(rows, columns, title=f"{result.name}: {result.rows} rows from "
                                     f"{result.data} ({label})")
    for note in result.notes:
        info(f"note: {note}")
    if args.best and result.best:
        value = next(v.metrics[result.metric] for v in result.versions
                     if v.version == result.best)
        tie = f" (tied with {', '.join(result.tie)})" if result.tie else ""
        print(f"Best by {result.metric} ({result.direction} is better): {result.best} "
              f"({value:.6g}){tie}")
    return 0


def run_tag_info(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import print_json

    info = api.tag_info(args.repo, args.tag)
    if args.json:
        print_json(info)
    elif args.env:
        for key, value in api.tag_info_env(info).items():
            print(f"{key}={value}")
    else:
        what = {
            "register": f"registered version {info.version}",
            "deregister": f"deregistered version {info.version}",
            "assign": f"assigned stage {info.stage} to version {info.version or '?'}",
            "unassign": f"took stage {info.stage} from version {info.version or '?'}",
            "deprecate": "deprecated the model",
        }[info.event]
        print(f"{info.tag}: {info.name} {what}"
              + (f" (commit {info.commit[:7]})" if info.commit else ""))
    return 0


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _signed(x) -> str:
    if x is None:
        return "-"
    return "0" if abs(x) < 1e-12 else f"{x:+.6g}"

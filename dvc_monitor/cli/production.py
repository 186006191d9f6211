"""``score`` and ``serve``: the model of a stage (or version) in production."""

from __future__ import annotations

import argparse

REF_HELP = ("NAME#STAGE (the stage's holder), NAME@vX.Y.Z, NAME@<short id>, "
            "or NAME (the latest version)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a batch of any size with a registered version",
                       description="Score the rows of INPUT with the model REF names, loaded "
                                   "from the DVC cache or remote, md5-checked. The input is "
                                   "read and scored in chunks; with -o the results are "
                                   "written as they come, so memory holds one chunk.")
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument("input", metavar="INPUT",
                   help="a CSV file (plain, .gz, .bz2, .xz or .zst), a Parquet file (.parquet, "
                        ".pq), a folder or a quoted glob of them, or - (a CSV on stdin; "
                        "not with --engine dask)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write the input's columns plus the results here, chunk by chunk: "
                        "Parquet for OUT.parquet or OUT.pq, else CSV; a file is replaced "
                        "only once complete ('-': CSV on standard output, as it goes; a "
                        "symlink or device is written through). Without -o the CSV (or "
                        "--json) goes to standard output, for at most 1,000,000 rows. "
                        "--engine dask: OUT/ for Parquet part files, or OUT.csv")
    p.add_argument("--chunk-rows", type=int, default=None, metavar="ROWS",
                   help="rows read and scored at a time, rounded up to a multiple of 64 so "
                        "that results equal those of one piece (default 100000)")
    p.add_argument("--max-expansion", type=float, default=None, metavar="RATIO",
                   help="refuse a compressed input that expands to more than RATIO times "
                        "its size, past 64 MiB (default 100; 0: no bound)")
    _repo_args(p)
    engine_args(p)
    p.add_argument("--json", action="store_true",
                   help='print {"model", "version", "id", "results": [...]}')
    p.set_defaults(func=run_score)

    from dvc_monitor import api

    defaults = api.defaults()
    DEFAULT_HOST, DEFAULT_MAX_BODY = defaults.host, defaults.max_body
    DEFAULT_POLL, DEFAULT_PORT = defaults.poll, defaults.port

    p = sub.add_parser("serve", help="serve a stage's model over HTTP, following the stage",
                       description="An HTTP scoring service (POST /score, GET /health, /version, "
                                   "/metrics, POST /reload, GET / (a page), /status, /shadow; "
                                   "the Open Inference Protocol (V2) "
                                   "under /v2, and MLflow's POST /invocations and GET /ping). "
                                   "Every --poll seconds it re-reads "
                                   "the registry; a new holder is loaded and verified in the "
                                   "background, then swapped in without failing a request.")
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    _repo_args(p)
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--poll", type=float, default=DEFAULT_POLL, metavar="SECONDS",
                   help=f"how often to re-read the registry (default {DEFAULT_POLL:g})")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes (default 1); each follows the stage itself")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES",
                   help=f"largest request body accepted (default {DEFAULT_MAX_BODY})")
    p.add_argument("--max-batch-delay", type=float, default=defaults.max_batch_delay,
                   metavar="MS",
                   help="milliseconds a request may wait to be scored in one model call with "
                        "concurrent requests; a request on an idle server never waits "
                        f"(default {defaults.max_batch_delay:g}; 0: no batching)")
    p.add_argument("--max-batch-rows", type=int, default=defaults.max_batch_rows,
                   metavar="ROWS",
                   help=f"rows scored in one model call, at most (default "
                        f"{defaults.max_batch_rows})")
    DEFAULT_WATCH_WINDOW = defaults.watch_window

    p.add_argument("--watch", action="store_true",
                   help="apply the model's watch: rules to the live traffic, in windows of "
                        "--window rows (measures and decisions in /metrics and /health)")
    p.add_argument("--window", type=int, default=DEFAULT_WATCH_WINDOW, metavar="ROWS",
                   help=f"rows per live window for --watch and --shadow (default "
                        f"{DEFAULT_WATCH_WINDOW})")
    p.add_argument("--auto-rollback", action="store_true",
                   help="with --watch (implied): on an alarm, roll the stage back to the "
                        "earlier holder that passes the rules on the same windows "
                        "(a local repository only)")
    p.add_argument("--shadow", metavar="REF",
                   help="score every request with this version too (NAME#STAGE, followed like "
                        "REF, or a version), off the request path: only REF answers; "
                        "GET /shadow and /metrics compare the two in windows of --window rows")
    p.add_argument("--shadow-queue", type=int, default=defaults.shadow_queue, metavar="N",
                   help="requests waiting for the shadow, at most; more are dropped and "
                        f"counted, never delayed (default {defaults.shadow_queue})")
    p.add_argument("--windows", type=int, default=None, metavar="N",
                   help="with --shadow: judged shadow windows per recorded verdict, and the "
                        "passing windows --auto-promote needs (default 3)")
    p.add_argument("--auto-promote", action="store_true",
                   help="with --shadow: promote the shadow to REF's stage once it passed every "
                        "watch: rule on --windows windows and the gate (as promote "
                        "--if-better; at most once per min_interval; a local repository only)")
    p.add_argument("--retrain", action="store_true",
                   help="with --watch (implied): on a retrain decision, register a candidate "
                        "trained on the alarm's windows in staging (as watch --retrain)")
    p.set_defaults(func=run_serve)


def engine_args(p: argparse.ArgumentParser) -> None:
    """``--engine``, ``--scheduler``, ``--workers`` (score and watch)."""
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: this process (default); dask: a Dask cluster, reading CSV or "
                        "Parquet (needs: pip install 'dvc-monitor[dask]')")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: a running Dask scheduler (tcp://HOST:8786)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --engine dask: worker processes of a local cluster "
                        "(default: one per CPU)")


def _repo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", dest="registry", metavar="PATH|URL",
                   help="the registry: a repository path or a git URL (default: -C, or here)")
    p.add_argument("--cache-dir", metavar="PATH",
                   help="where clones of git URLs are kept (default: the user cache folder)")


def run_score(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import info, print_json
    from dvc_monitor.errors import UsageError

    if args.json and args.output == "-":
        raise UsageError("--json and -o - would both write to standard output; "
                         "give -o a file name, or drop one of them")
    result = api.score(args.registry or args.repo, args.ref, args.input, output=args.output,
                       cache_dir=args.cache_dir, chunk_rows=args.chunk_rows,
                       max_expansion=args.max_expansion, engine=args.engine,
                       scheduler=args.scheduler, workers=args.workers, progress=info)
    m = result.model
    if args.json:
        print_json(result.to_json())
    elif not args.output:
        result.write("-")  # the CSV goes to stdout by default
    info(f"scored {result.rows} rows with {m.ref} (id {m.id or 'none'}, {m.kind})"
         + (f"; wrote {result.output}" if args.output not in (None, "-") else ""))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from dvc_monitor import api
    from dvc_monitor.cli.output import info

    api.serve(args.registry or args.repo, args.ref, host=args.host, port=args.port,
              poll=args.poll, workers=args.workers, max_body=args.max_body,
              max_batch_delay=args.max_batch_delay, max_batch_rows=args.max_batch_rows,
              watch=args.watch,
              window=args.window, auto_rollback=args.auto_rollback, shadow=args.shadow,
              shadow_queue=args.shadow_queue, windows=args.windows,
              auto_promote=args.auto_promote, retrain=args.retrain, cache_dir=args.cache_dir,
              info=info)
    return 0

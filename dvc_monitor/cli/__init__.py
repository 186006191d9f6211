"""Command line: argparse over ``dvc_monitor.api``. No logic lives here.

Each feature has a module in this package with ``register(subparsers)``, which adds
its sub-commands and sets ``func`` on them. ``main`` turns ``DvcMonitorError`` into a
one-line message and an exit code, and never shows a traceback for one.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

from dvc_monitor import __version__
from dvc_monitor.errors import (
    EXIT_CODES, EXIT_ERROR, EXIT_INTERRUPTED, DvcMonitorError, disk_full, disk_full_message,
    one_line,
)

# Modules that register sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "dvc_monitor.cli.scaffold",   # init, adopt, ingest, demo
    "dvc_monitor.cli.registry",   # register, promote, unassign, deprecate, versions, show, history, diff
    "dvc_monitor.cli.rollback",   # rollback, recover
    "dvc_monitor.cli.review",     # report, gate, compare
    "dvc_monitor.cli.team",       # push, sync, check
    "dvc_monitor.cli.retention",  # gc
    "dvc_monitor.cli.monitoring", # watch
    "dvc_monitor.cli.production", # score, serve
    "dvc_monitor.cli.trainer",    # trainer (the trainer fingerprint)
    "dvc_monitor.cli.stage",      # stage (called by dvc.yaml)
    "dvc_monitor.cli.completion", # completion (shell completion scripts)
)


# Command -> the module above that registers it. A run builds only its command's parser
# (importing one module, not eleven); --help and unknown words build them all.
# tests/cli/test_errors_help_and_output.py checks this table against what the modules register.
COMMANDS = {
    **dict.fromkeys(("init", "adopt", "ingest", "demo"), "dvc_monitor.cli.scaffold"),
    **dict.fromkeys(("register", "promote", "unassign", "deregister", "deprecate", "versions",
                     "show", "history", "diff"), "dvc_monitor.cli.registry"),
    **dict.fromkeys(("rollback", "recover"), "dvc_monitor.cli.rollback"),
    **dict.fromkeys(("report", "gate", "compare", "tag-info"), "dvc_monitor.cli.review"),
    **dict.fromkeys(("push", "sync", "check"), "dvc_monitor.cli.team"),
    "gc": "dvc_monitor.cli.retention",
    "watch": "dvc_monitor.cli.monitoring",
    **dict.fromkeys(("score", "serve"), "dvc_monitor.cli.production"),
    "trainer": "dvc_monitor.cli.trainer",
    "stage": "dvc_monitor.cli.stage",
    "completion": "dvc_monitor.cli.completion",
}


def _command_word(argv: list[str]) -> str | None:
    """The sub-command word of ``argv`` (after ``-C PATH``), or None."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "-C":
            i += 2
            continue
        if word.startswith("-C") and not word.startswith("--"):
            i += 1
            continue
        return None if word.startswith("-") else word
    return None


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) that points at --help."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"dvc-monitor: error: {one_line(message)} (see '{self.prog} --help')\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the sub-command it names (when it names one)."""
    parser = _Parser(
        prog="dvc-monitor",
        description="Versioning, release tags and verified rollback for monitoring models on DVC.",
        epilog="exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dvc-monitor {__version__}")
    parser.add_argument("-C", dest="repo", default=".", metavar="PATH",
                        help="run as if started in PATH (default: current directory)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    only = COMMANDS.get(_command_word(argv)) if argv is not None else None
    for name in COMMAND_MODULES if only is None else (only,):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a feature not built yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None, checkpoint: Callable[[str], None] | None = None) -> int:
    """Run the command line. ``checkpoint`` is called after each rollback step (the
    default does nothing; tests pass their own to cause faults at exact points)."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.checkpoint = checkpoint  # None: the default, which does nothing
    try:
        _recover_interrupted_rollback(args)
        _recover_interrupted_ingest(args)
        result = args.func(args)
    except DvcMonitorError as exc:
        print(f"dvc-monitor: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dvc-monitor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, or a failure we did not foresee: still one line
        if os.environ.get("DVC_MONITOR_DEBUG"):
            raise
        full = disk_full(exc)
        if full is not None:
            print(f"dvc-monitor: error: {one_line(disk_full_message(full))}", file=sys.stderr)
            return EXIT_ERROR
        detail = one_line(str(exc)) or type(exc).__name__
        print(f"dvc-monitor: error: {type(exc).__name__}: {detail} "
              "(set DVC_MONITOR_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_ERROR
    return int(result or 0)


# Commands that only read the registry (tags, commits): on a full disk, where an
# interrupted rollback cannot be undone yet, they still answer (with a warning).
READ_COMMANDS = frozenset({"versions", "show", "history", "tag-info", "completion"})


def _recover_interrupted_rollback(args: argparse.Namespace) -> None:
    """Finish or undo a rollback that was killed midway (its journal is in .git/).

    A file-exists check (``_journal_exists``): the rollback machinery and DVC are
    imported only when a journal is there. Skipped for ``recover``/``rollback --recover``
    (they do it themselves) and for ``stage`` (run by dvc repro, maybe inside a rollback).
    """
    if args.command in ("recover", "stage") or getattr(args, "recover", False):
        return
    if not _rollback_journal_exists(args.repo):
        return
    from dvc_monitor import api

    try:
        rec = api.recover_interrupted(args.repo)
    except Exception as exc:
        full = disk_full(exc)
        if full is None:
            raise
        message = disk_full_message(full, "run 'dvc-monitor recover'")
        if args.command not in READ_COMMANDS:
            raise DvcMonitorError(f"an interrupted rollback could not be undone: {message}") \
                from None
        print(f"dvc-monitor: warning: an interrupted rollback could not be undone yet, so "
              f"the work tree is half rolled back: {one_line(message)}", file=sys.stderr)
        return
    if rec is not None and rec.action not in ("none", "busy"):
        print(f"dvc-monitor: {rec.message}", file=sys.stderr)


def _recover_interrupted_ingest(args: argparse.Namespace) -> None:
    """Undo an ingest that was killed midway (its journal is in .git/; see ``ingesting``)."""
    if args.command == "stage" or not _journal_exists(args.repo, "ingest.json"):
        return
    from dvc_monitor import api

    rec = api.recover_ingest(args.repo)
    if rec is not None:
        print(f"dvc-monitor: {rec.message}", file=sys.stderr)


def _rollback_journal_exists(start: str) -> bool:
    return _journal_exists(start, "rollback.json")


def _journal_exists(start: str, journal: str) -> bool:
    """True when ``<git dir>/dvc-monitor/JOURNAL`` may exist (always in a linked worktree,
    where the owner of the journal checks it: see rollback.pending_journal).

    Walks up from ``start`` to the first ``.git`` (folder, or file of a linked worktree)
    with a few ``stat`` calls: no subprocess, no import.
    """
    try:
        folder = os.path.abspath(start)
    except OSError:
        return False
    while True:
        dotgit = os.path.join(folder, ".git")
        if os.path.isdir(dotgit):
            return os.path.isfile(os.path.join(dotgit, "dvc-monitor", journal))
        if os.path.isfile(dotgit):  # a linked worktree: the real implementation checks
            return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent

"""``completion``: a shell completion script, generated from the parser by shtab."""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh", "tcsh")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("completion", help="print a shell completion script",
                       description="Print a completion script for SHELL. Enable it with e.g. "
                                   "'eval \"$(dvc-monitor completion bash)\"' in ~/.bashrc, or "
                                   "'dvc-monitor completion zsh > ~/.zfunc/_dvc-monitor'.")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help=" | ".join(SHELLS))
    p.set_defaults(func=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    import shtab

    from dvc_monitor.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0

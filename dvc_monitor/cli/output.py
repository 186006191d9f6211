"""Rendering for the CLI: tables (rich, imported lazily), JSON, progress and proof blocks."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, Iterable, Iterator, Sequence

from dvc_monitor.values import to_jsonable


def print_json(obj: Any) -> None:
    if hasattr(obj, "to_json"):
        obj = obj.to_json()
    json.dump(to_jsonable(obj), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def print_table(rows: Iterable[Sequence[Any]], columns: Sequence[str], title: str | None = None) -> None:
    """A table on stdout; plain tab-separated text when stdout is not a terminal.

    Piped, the first line holds the column names and each row is one line (tabs and
    newlines in a value become spaces); the title goes to stderr. ``NO_COLOR`` (any
    value) drops colour and bold from the terminal table.
    """
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not sys.stdout.isatty():
        if title:
            info(title)
        for line in [list(columns), *cells]:
            sys.stdout.write("\t".join(" ".join(v.split()) for v in line) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    plain = "NO_COLOR" in os.environ
    table = Table(title=title, show_lines=False, header_style="" if plain else "bold",
                  title_style="" if plain else None)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in cells:
        table.add_row(*row)
    Console(width=max(100, _term_width()), no_color=plain).print(table)


def _term_width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def info(message: str) -> None:
    """A progress or status line, on stderr so that stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    """Show a spinner with ``message`` while a long step runs (plain line when not a tty)."""
    if not sys.stderr.isatty():
        info(f"- {message}")
        yield
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(message):
        yield
    console.print(f"[green]✓[/green] {message}")

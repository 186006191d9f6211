"""``dvc-monitor score``: score a CSV batch with the model a reference names."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_monitor.errors import UsageError, shown
from dvc_monitor.production.loader import LoadedModel, load_version, open_repo, resolve, version_state

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class BatchScore:
    """The results of scoring one batch, and the version that scored it."""

    model: LoadedModel
    rows: int
    results: list
    output: str | None = None
    table: Any = field(default=None, repr=False)  # the input's columns plus the results

    def to_json(self) -> dict:
        from dvc_monitor.production.server import score_response

        return score_response(self.model, self.results)


def score_batch(ref: str, input: str, repo: str | Path = ".", output: str | None = None,
                cache_dir: str | Path | None = None) -> BatchScore:
    """Score the CSV ``input`` (``-``: stdin) with ``ref``; write ``output`` (input +
    results; ``-``: stdout; see ``write_output``), formula-like text escaped (``csv_safe``).

    The input is read and checked against the version's schema before its model file is
    read, so bad input is refused at once."""
    from dvc_monitor.production.scoring import fit_rows, score_fitted, with_results

    root = open_repo(repo, cache_dir)
    mv = resolve(root, ref)
    state = version_state(root, mv)
    frame = _read_csv(input)
    source = "stdin" if input == "-" else input
    rows = fit_rows(state.spec, state.config, frame, source, f"{mv.ref} ({state.kind})")
    loaded = load_version(root, mv, state)
    results = score_fitted(loaded, rows).results
    table = csv_safe(with_results(frame, loaded.spec, results))
    if output:
        write_output(table, output)
    return BatchScore(loaded, len(frame), results, output, table)


# A text cell starting with one of these is a formula to a spreadsheet (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_safe(table: "pd.DataFrame") -> "pd.DataFrame":
    """``table`` with every text cell (and column name) that a spreadsheet would run as a
    formula prefixed with a single quote, as OWASP's CSV-injection guidance says. Numbers
    stay numbers: numeric columns are not touched, nor is text that is a plain number
    (``-5``)."""
    def safe(value: Any) -> Any:
        if (isinstance(value, str) and value.startswith(FORMULA_START)
                and not _PLAIN_NUMBER.fullmatch(value)):
            return "'" + value
        return value

    text = _text_columns(table)
    if not text and not any(isinstance(c, str) and safe(c) != c for c in table.columns):
        return table
    out = table.copy()
    for c in text:
        out[c] = out[c].map(safe)
    out.columns = [safe(c) for c in out.columns]
    return out


def _text_columns(table: "pd.DataFrame") -> list:
    from pandas.api.types import is_numeric_dtype

    return [c for c in table.columns if not is_numeric_dtype(table[c])]


def csv_format(table: "pd.DataFrame") -> dict:
    """The canonical CSV form, every field quoted when a text cell holds a carriage return:
    Python's CSV writer leaves a lone CR unquoted with a "\\n" line end, and readers take it
    for the end of the row."""
    import csv

    from dvc_monitor.model.data import CSV_FORMAT

    cr = any(table[c].astype(str).str.contains("\r", regex=False).any()
             for c in _text_columns(table))
    return {**CSV_FORMAT, "quoting": csv.QUOTE_ALL} if cr else CSV_FORMAT


def write_output(table: "pd.DataFrame", output: str | Path) -> None:
    """``table`` as CSV to ``output``. ``-`` is standard output. A new or regular file is
    written atomically (a temporary file beside it, renamed over it); an existing symlink
    stays one (its target is written); a device or pipe (``/dev/stdout``) is written in
    place, never replaced by a regular file."""
    from dvc_monitor.model.data import write_batch

    fmt = csv_format(table)
    if str(output) == "-":
        table.to_csv(sys.stdout, **fmt)
        sys.stdout.flush()
        return
    path = Path(output)
    try:
        if path.is_symlink() and Path(os.path.realpath(path)).is_file():
            path = Path(os.path.realpath(path))  # replace the target, keep the link
        if path.is_dir():
            raise UsageError(f"-o {shown(str(output))} is a folder; give a file name")
        if path.is_symlink() or (path.exists() and not path.is_file()):
            with open(path, "w", newline="") as handle:  # a device, a pipe: through it
                table.to_csv(handle, **fmt)
            return
        write_batch(table, path, fmt)
    except OSError as exc:
        raise UsageError(f"cannot write -o {shown(str(output))}: "
                         f"{exc.strerror or type(exc).__name__}") from None


def _read_csv(input: str):
    from dvc_monitor.model.data import read_batch

    if input != "-":
        return read_batch(input)
    with tempfile.TemporaryDirectory(prefix="dvc-monitor-score-") as tmp:
        path = Path(tmp) / "stdin.csv"
        path.write_bytes(sys.stdin.buffer.read())
        return read_batch(path, "standard input")

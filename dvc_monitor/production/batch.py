"""``dvc-monitor score``: score a batch of any size with the model a reference names.

The input (a CSV file, plain or compressed, a Parquet file, a folder or a glob of them,
or ``-``: a CSV on standard input) is read in chunks (``model.reading.iter_chunks``) and
each chunk is checked and scored as it comes (``scoring.ChunkScorer``):

- with an output (``-o OUT``), every chunk is written as soon as it is scored, so memory
  holds one chunk whatever the input's size. ``OUT.parquet``/``OUT.pq`` is written as
  Parquet, anything else as CSV; a file is written beside its name and renamed into place
  at the end, so a failure leaves no partial ``OUT`` (``-``: standard output, as it goes);
- without one, the results are kept for the caller (``BatchScore.table``,
  ``BatchScore.results``), at most ``max_rows`` rows: a larger input is refused, and
  told to give an output.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_monitor.errors import UsageError, shown
from dvc_monitor.model.reading import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_EXPANSION,
    Chunk,
    is_parquet,
    iter_chunks,
)
from dvc_monitor.production.loader import LoadedModel, load_version, open_repo, resolve, version_state

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BatchScore", "Chunk", "DEFAULT_CHUNK_ROWS", "DEFAULT_MAX_EXPANSION", "MAX_HELD_ROWS",
           "csv_safe", "iter_chunks", "score_batch", "write_output"]

MAX_HELD_ROWS = 1_000_000  # rows scored without an output (results held in memory), at most


@dataclass(frozen=True)
class BatchScore:
    """The results of scoring one batch, and the version that scored it. ``table`` (the
    input's columns plus the results) is kept only without an output."""

    model: LoadedModel
    rows: int
    output: str | None = None
    table: Any = field(default=None, repr=False)
    chunks: int = 0

    @property
    def results(self) -> list[dict]:
        """The JSON result of each row (none when the rows were written to an output)."""
        from dvc_monitor.kinds.base import result_dicts

        if self.table is None:
            return []
        spec = self.model.spec
        fields = [f for f in spec.result_fields if f in self.table.columns]
        return result_dicts(self.table[fields], spec.optional_fields)

    def write(self, output: str | Path) -> None:
        """Write the kept table to ``output`` (see ``write_output``)."""
        write_output(self.table, output)

    def to_json(self) -> dict:
        """``POST /score``'s document; with an output, the rows written there instead of
        the results (``rows``, ``output``)."""
        from dvc_monitor.production.server import score_response

        if self.output:
            doc = score_response(self.model, [])
            del doc["results"]
            return {**doc, "rows": self.rows, "output": self.output}
        return score_response(self.model, self.results)


def score_batch(ref: str, input: str, repo: str | Path = ".", output: str | None = None,
                cache_dir: str | Path | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                max_expansion: float = DEFAULT_MAX_EXPANSION,
                max_rows: int = MAX_HELD_ROWS) -> BatchScore:
    """Score ``input`` (see the module) with ``ref``, ``chunk_rows`` rows at a time
    (rounded up to a multiple of ``scoring.CHUNK_ALIGN``: the results equal those of one
    piece, float for float).

    With ``output``, the input's columns plus the results are written there as they come
    (formula-like text escaped in CSV: ``csv_safe``); without, they are kept in the result,
    and an input of more than ``max_rows`` rows is refused. The first chunk is read and
    checked against the version's schema before its model file is read, so bad input is
    refused at once."""
    from dvc_monitor.production.scoring import ChunkScorer, aligned_chunk_rows

    if chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    chunk_rows = aligned_chunk_rows(chunk_rows)
    root = open_repo(repo, cache_dir)
    mv = resolve(root, ref)
    state = version_state(root, mv)
    chunks = iter_chunks(input, chunk_rows, max_expansion)
    first = next(chunks)
    _check_schema(state, mv, first)
    loaded = load_version(root, mv, state)
    scorer = ChunkScorer(loaded, safe=not (output and is_parquet(output)))
    every = _chain(first, chunks)
    if output:
        count = write_chunks((scorer(c.frame, c.source, c.first_row) for c in every), output)
        return BatchScore(loaded, scorer.rows, output, None, count)
    tables = []
    for chunk in every:
        if scorer.rows + len(chunk.frame) > max_rows:
            where = "standard input" if str(input) == "-" else str(input)
            raise UsageError(f"{shown(where)} has more than {max_rows:,} rows, too many to hold "
                             "in memory without an output; pass -o OUT.csv (or OUT.parquet, "
                             "or -o - for CSV on standard output) to stream the results")
        tables.append(scorer(chunk.frame, chunk.source, chunk.first_row))
    import pandas as pd

    table = tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)
    return BatchScore(loaded, scorer.rows, None, table, len(tables))


def _check_schema(state, mv, chunk: Chunk) -> None:
    """``chunk`` checked against ``state``'s schema, no model needed."""
    from dvc_monitor.production.scoring import fit_rows

    fit_rows(state.spec, state.config, chunk.frame, chunk.source, f"{mv.ref} ({state.kind})")


def _chain(first: Chunk, rest):
    yield first
    yield from rest


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
    """``table`` to ``output`` (see ``write_chunks``)."""
    write_chunks([table], output)


def write_chunks(tables, output: str | Path) -> int:
    """The tables of ``tables`` (an iterable, consumed as it goes) one after the other to
    ``output``, as Parquet for a ``.parquet``/``.pq`` name, else as CSV (one header); the
    number of tables written. ``-`` is standard output. A new or regular file is written
    atomically (a temporary file beside it, renamed over it at the end; on any failure it
    is removed and ``output`` is untouched); an existing symlink stays one (its target is
    written); a device or pipe (``/dev/stdout``) is written in place, never replaced by a
    regular file."""
    if str(output) == "-":
        count = _write_csv(tables, sys.stdout)
        sys.stdout.flush()
        return count
    path = Path(output)
    try:
        if path.is_symlink() and Path(os.path.realpath(path)).is_file():
            path = Path(os.path.realpath(path))  # replace the target, keep the link
        if path.is_dir():
            raise UsageError(f"-o {shown(str(output))} is a folder; give a file name")
        if path.is_symlink() or (path.exists() and not path.is_file()):  # a device, a pipe
            if is_parquet(path):
                return _write_parquet(tables, path)
            with open(path, "w", newline="") as handle:
                return _write_csv(tables, handle)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write -o {shown(str(output))}: "
                         f"{exc.strerror or type(exc).__name__}") from None
    try:
        if is_parquet(path):
            os.close(fd)
            count = _write_parquet(tables, Path(tmp))
        else:
            with open(fd, "w", newline="") as handle:
                count = _write_csv(tables, handle)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
        return count
    except OSError as exc:
        raise UsageError(f"cannot write -o {shown(str(output))}: "
                         f"{exc.strerror or type(exc).__name__}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_csv(tables, handle) -> int:
    count = 0
    for table in tables:
        table.to_csv(handle, header=count == 0, **csv_format(table))
        count += 1
    return count


def _write_parquet(tables, path: Path) -> int:
    """Parquet, one row group per table, every table cast to the first one's schema (a
    column that reads as integers in the first chunk and holds fractions later is
    refused: give a larger --chunk-rows, or write CSV)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dvc_monitor.errors import SchemaError

    writer, count = None, 0
    try:
        for table in tables:
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, arrow.schema)
            elif arrow.schema != writer.schema:
                try:
                    arrow = arrow.cast(writer.schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                    detail = " ".join(str(exc).split())
                    raise SchemaError(f"a later chunk does not fit the Parquet columns of the "
                                      f"first ({shown(detail, 120)}); give a larger "
                                      "--chunk-rows, or write CSV") from None
            writer.write_table(arrow)
            count += 1
    finally:
        if writer is not None:
            writer.close()
    return count

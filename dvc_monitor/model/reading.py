"""Rows of any size, a chunk at a time: CSV (plain or compressed) and Parquet files, a
folder or a glob of them, or standard input.

``iter_chunks`` yields ``Chunk``s of at most ``chunk_rows`` rows, so a reader of a
10-million-row input holds one chunk, not the input. ``score`` streams through it, and a
Dask job can read the same files the same way.

- CSV: ``.csv``, or compressed ``.gz``, ``.bz2``, ``.xz`` and ``.zst`` (the last needs the
  ``zstandard`` package). A compressed file whose expansion passes ``max_expansion``
  times its size (and at least ``EXPANSION_FLOOR`` bytes) is refused once that many bytes
  have come out of it, in one line, before more is read: a few kilobytes that expand to
  gigabytes are a mistake or an attack, not a batch. Raise the bound with
  ``max_expansion`` (``--max-expansion``; 0: no bound).
- Parquet: ``.parquet``, ``.pq`` (pyarrow), read a record batch at a time.
- A header that names a column twice is refused (pandas would rename the second); every
  file of a folder or glob must have the first file's columns.
"""

from __future__ import annotations

import glob as globbing
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from dvc_monitor.errors import SchemaError, TemplateError, UsageError, shown

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CHUNK_ROWS = 100_000
DEFAULT_MAX_EXPANSION = 100.0  # a compressed CSV may expand to this many times its size
EXPANSION_FLOOR = 64 * 2**20  # ... and always to this many bytes
MAX_HEADER_BYTES = 2**20  # the header line of a CSV file, at most
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", *(".csv" + c for c in COMPRESSIONS))
ROW_FILE_SUFFIXES = (*CSV_SUFFIXES, *PARQUET_SUFFIXES)


@dataclass(frozen=True)
class Chunk:
    """Rows of one input file: ``frame``, read from ``source``, whose first row is data
    row ``first_row`` (1-based, counted across the whole file)."""

    frame: "pd.DataFrame"
    source: str
    first_row: int


def is_parquet(path: str | Path) -> bool:
    """True for a ``.parquet`` or ``.pq`` file name."""
    return str(path).lower().endswith(PARQUET_SUFFIXES)


def input_files(input: str | Path) -> list[Path]:  # noqa: A002 - the INPUT argument
    """The files ``input`` names: a file, every CSV/Parquet file under a folder (sorted
    by path), or the files a glob matches (sorted). ``SchemaError`` for nothing there."""
    path = Path(input)
    text = str(input)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and p.name.lower().endswith(ROW_FILE_SUFFIXES))
        if not files:
            raise SchemaError(f"{shown(text)} holds no CSV or Parquet file; give a file, a "
                              f"folder or a glob of {', '.join(ROW_FILE_SUFFIXES)} files")
        return files
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise SchemaError(f"{shown(text)} is not a regular file (a device or pipe?); "
                              "give a CSV or Parquet file, or pipe a CSV to '-'")
        return [path]
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in globbing.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise SchemaError(f"{shown(text)} matches no file")
        return files
    raise SchemaError(f"{shown(text)}: no such file")


def iter_chunks(input: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS,  # noqa: A002
                max_expansion: float = DEFAULT_MAX_EXPANSION,
                stdin: BinaryIO | None = None) -> Iterator[Chunk]:
    """The rows of ``input`` (see ``input_files``; ``-``: a CSV on ``stdin``, standard
    input by default) in chunks of at most ``chunk_rows`` rows, file by file. Each file
    must have the first one's columns. Errors are ``SchemaError``s of one line."""
    if chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    if max_expansion < 0:
        raise UsageError(f"--max-expansion must be 0 (no bound) or more, got {max_expansion:g}")
    if str(input) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        yield from _csv_chunks(stream, "standard input", chunk_rows)
        return
    columns: list | None = None
    first_source = ""
    for path in input_files(input):
        source = str(path)
        for chunk in file_chunks(path, chunk_rows, max_expansion, source):
            names = list(chunk.frame.columns)
            if columns is None:
                columns, first_source = names, source
            elif names != columns:
                raise SchemaError(f"{shown(source)} has the columns {shown(', '.join(map(str, names)))}, "
                                  f"not those of {shown(first_source)} "
                                  f"({shown(', '.join(map(str, columns)))}); give files with "
                                  "the same columns")
            yield chunk


def file_chunks(path: Path, chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
                max_expansion: float = DEFAULT_MAX_EXPANSION,
                source: str | None = None) -> Iterator[Chunk]:
    """The rows of one CSV or Parquet file in chunks (see ``iter_chunks``; ``chunk_rows``
    None: one chunk of every row)."""
    source = source or str(path)
    if is_parquet(path):
        yield from _parquet_chunks(path, source, chunk_rows)
        return
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise SchemaError(f"{shown(source)}: cannot be read ({exc.strerror})") from None
    with raw:
        stream = _decompressed(raw, path, source, max_expansion)
        yield from _csv_chunks(stream, source, chunk_rows)


def read_rows(path: str | Path, source: str | None = None,
              max_expansion: float = DEFAULT_MAX_EXPANSION) -> "pd.DataFrame":
    """All the rows of one CSV (plain or compressed: bounded, see the module) or Parquet
    file, with the same checks as ``iter_chunks``; a CSV is read in one piece (column
    types inferred from all its rows)."""
    import pandas as pd

    frames = [c.frame for c in file_chunks(Path(path), None, max_expansion, source)]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


# -- CSV --------------------------------------------------------------------------------


def _csv_chunks(stream: BinaryIO, source: str, chunk_rows: int | None) -> Iterator[Chunk]:
    import pandas as pd

    header = _header(stream, source)
    replay = io.BufferedReader(_Replay(header, stream), buffer_size=1 << 20)
    first, any_chunk = 1, False
    try:
        if chunk_rows is None:  # the whole file in one frame
            yield Chunk(pd.read_csv(replay), source, 1)
            return
        reader = pd.read_csv(replay, chunksize=chunk_rows)
        with reader:
            for frame in reader:
                if any_chunk and len(frame) == 0:
                    continue
                yield Chunk(frame, source, first)
                first, any_chunk = first + len(frame), True
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{shown(source)}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchemaError(f"{shown(source)}: not a readable CSV file ({shown(text)})") from None
    except (EOFError, OSError) as exc:  # a truncated or corrupt compressed file
        text = str(exc) or type(exc).__name__
        raise SchemaError(f"{shown(source)}: cannot be read ({shown(text)})") from None
    if not any_chunk:
        yield Chunk(pd.read_csv(io.BytesIO(header)), source, 1)  # a header without rows


def _header(stream: BinaryIO, source: str) -> bytes:
    """The header line (checked: no column named twice), read off ``stream``."""
    import csv

    try:
        line = stream.readline(MAX_HEADER_BYTES + 1)
    except (EOFError, OSError) as exc:
        raise SchemaError(f"{shown(source)}: cannot be read ({shown(str(exc) or type(exc).__name__)})") \
            from None
    if len(line) > MAX_HEADER_BYTES:
        raise SchemaError(f"{shown(source)}: the header line is longer than "
                          f"{MAX_HEADER_BYTES // 2**20} MiB; give a CSV file with a header row")
    try:
        names = next(csv.reader([line.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SchemaError(f"{shown(source)}: not a readable CSV file ({shown(str(exc))})") from None
    _check_names(names, source)
    return line


def _check_names(names, source: str) -> None:
    seen: set[str] = set()
    for name in names:
        name = str(name)
        if name in seen and name.strip():  # blank names are pandas' "Unnamed: N"
            raise SchemaError(f"{shown(source)}: the header names column {shown(name)} twice; "
                              "give each column once")
        seen.add(name)


class _Replay(io.RawIOBase):
    """``prefix``, then the rest of ``stream``: the header, read back for pandas."""

    def __init__(self, prefix: bytes, stream: BinaryIO):
        self.prefix, self.stream = prefix, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class _Bounded(io.RawIOBase):
    """The decompressed bytes of a file, refused past ``limit`` bytes."""

    def __init__(self, stream: BinaryIO, limit: float, message: str):
        self.stream, self.limit, self.message, self.total = stream, limit, message, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.total += len(data)
        if self.total > self.limit:
            raise ExpansionRefused(self.message)
        buffer[:len(data)] = data
        return len(data)


class ExpansionRefused(SchemaError):
    """A compressed input expanded past its bound."""


def _decompressed(raw: BinaryIO, path: Path, source: str, max_expansion: float) -> BinaryIO:
    """``raw``'s bytes, decompressed by its name's suffix and bounded (see the module)."""
    suffix = path.suffix.lower()
    if suffix not in COMPRESSIONS:
        return raw
    if suffix == ".gz":
        import gzip

        stream: BinaryIO = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    elif suffix == ".bz2":
        import bz2

        stream = bz2.BZ2File(raw)  # type: ignore[assignment]
    elif suffix == ".xz":
        import lzma

        stream = lzma.LZMAFile(raw)  # type: ignore[assignment]
    else:
        try:
            import zstandard
        except ImportError:
            raise TemplateError(f"{shown(source)} is zstd-compressed, which needs the zstandard "
                                "package: pip install zstandard") from None
        stream = zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[assignment]
    if not max_expansion:
        return io.BufferedReader(_Bounded(stream, float("inf"), ""), buffer_size=1 << 20)
    size = path.stat().st_size
    limit = max(max_expansion * size, EXPANSION_FLOOR)
    message = (f"{shown(source)} expands to more than {limit / 2**20:,.0f} MiB from "
               f"{size:,} bytes (over {max_expansion:g} times its size); it was refused "
               "before more was read. If the data is real, raise the bound "
               "(--max-expansion RATIO, 0: none)")
    return io.BufferedReader(_Bounded(stream, limit, message), buffer_size=1 << 20)


# -- Parquet ----------------------------------------------------------------------------


def _parquet_chunks(path: Path, source: str, chunk_rows: int | None) -> Iterator[Chunk]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise TemplateError(f"{shown(source)} is a Parquet file, which needs pyarrow: "
                            "pip install pyarrow") from None
    try:
        handle = pq.ParquetFile(path)
        _check_names(handle.schema_arrow.names, source)
        first = 1
        for batch in handle.iter_batches(batch_size=chunk_rows or max(handle.metadata.num_rows, 1)):
            frame = batch.to_pandas()
            yield Chunk(frame, source, first)
            first += len(frame)
        if first == 1:
            yield Chunk(handle.schema_arrow.empty_table().to_pandas(), source, 1)
    except (pa.ArrowException, OSError, ValueError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise SchemaError(f"{shown(source)}: not a readable Parquet file ({shown(text)})") from None

"""``watch REF --data BIG --window N`` in one process without holding the input: a
``monitoring.watch.WindowSource`` over ``model.reading.iter_chunks``.

- ``windows`` reads the input once to count its rows (checking the columns of its first
  chunk) and cuts windows of ``N`` rows by position, named as ``read_windows`` names the
  windows of one file (``NAME[start:end]``). No window's rows are kept.
- ``measure`` reads it again, chunk by chunk: each chunk's slice of a window is scored
  (``engine.count_window``) and the counts of a window's slices are added up
  (``evaluation.measures.WindowCounts``, exact), then judged (``engine.judge_window``):
  the measures a single in-memory read gives. A window whose label column is complete in
  some slices but not in others is unlabelled as a whole; its counts are taken again from
  its rows, read back.
- A window's rows are read back (one more pass, up to its last row) only when asked
  for: the windows of an alarm's streak, on which its candidates are judged.

Peak memory is one chunk (``chunk_rows`` rows) plus the windows read back. A kind that
needs earlier rows (forecast) is not watched this way (``watch`` reads its windows whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from dvc_monitor.errors import SchemaError, shown

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.monitoring.results import Subject, WindowResult
    from dvc_monitor.monitoring.rules import WatchRules

PROGRESS_ROWS = 1_000_000  # a progress line each time this many more rows are measured


class RowsWindow:
    """A window of rows ``start`` to ``end`` of a source (``source.rows(start, end)``),
    read only when asked for (a candidate judged on an alarm's streak)."""

    context = None

    def __init__(self, name: str, source, start: int, end: int):
        self.name, self.source, self.start, self.end = name, source, start, end
        self._rows = None

    @property
    def rows(self) -> "pd.DataFrame":
        if self._rows is None:
            self._rows = self.source.rows(self.start, self.end)
        return self._rows


def window_slices(offset: int, rows: int,
                  bounds: list[tuple[int, int, int]]) -> Iterator[tuple[int, int, int]]:
    """(window, first, end) positions inside a part of ``rows`` rows starting at global
    row ``offset``, for each window (``bounds``: window, start, end) it overlaps."""
    for w, start, end in bounds:
        lo, hi = max(start, offset), min(end, offset + rows)
        if lo < hi:
            yield w, lo - offset, hi - offset


def cut(name: str, source, total: int, window: int | None) -> list[RowsWindow]:
    """The windows of ``total`` rows: ``window`` rows each (None: one window ``name``)."""
    if total == 0:
        raise SchemaError(f"window {shown(name)} has no rows; remove it or add rows")
    if window is None:
        return [RowsWindow(name, source, 0, total)]
    return [RowsWindow(f"{name}[{s}:{min(s + window, total)}]", source, s,
                       min(s + window, total)) for s in range(0, total, window)]


class StreamingWindows:
    """The windows of one CSV (plain or compressed) or Parquet file, read ``chunk_rows``
    rows at a time (see the module)."""

    def __init__(self, path: str | Path, chunk_rows: int | None = None,
                 max_expansion: float | None = None, name: str | None = None):
        from dvc_monitor.model.reading import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_EXPANSION

        self.path = Path(path)
        self.name = name or self.path.name
        self.chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
        self.max_expansion = DEFAULT_MAX_EXPANSION if max_expansion is None else max_expansion

    def chunks(self) -> Iterator[tuple[int, "pd.DataFrame"]]:
        """(offset of its first row, rows) of each chunk, in order."""
        from dvc_monitor.model.reading import iter_chunks

        offset = 0
        for chunk in iter_chunks(self.path, self.chunk_rows, self.max_expansion):
            yield offset, chunk.frame
            offset += len(chunk.frame)

    def windows(self, window: int | None,
                check: Callable[["pd.DataFrame"], None]) -> list[RowsWindow]:
        total = 0
        for offset, frame in self.chunks():
            if offset == 0:
                check(frame.iloc[:0])
            total += len(frame)
        return cut(self.name, self, total, window)

    def rows(self, start: int, end: int) -> "pd.DataFrame":
        """Rows ``start`` to ``end``, read up to ``end``."""
        import pandas as pd

        parts = []
        for offset, frame in self.chunks():
            if offset >= end:
                break
            parts += [frame.iloc[a:b] for _w, a, b in window_slices(offset, len(frame),
                                                                    [(0, start, end)])]
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else \
            parts[0].reset_index(drop=True)

    def measure(self, subject: "Subject", windows: list, rules: "WatchRules",
                labels: str | None, progress: Callable[[str], None]) -> list["WindowResult"]:
        from dvc_monitor.monitoring.engine import count_window, judge_window
        from dvc_monitor.monitoring.windows import labelled

        bounds = [(i, w.start, w.end) for i, w in enumerate(windows)]
        totals: dict[int, object] = {}
        flags: dict[int, set[bool]] = {}
        for offset, frame in self.chunks():
            for w, a, b in window_slices(offset, len(frame), bounds):
                part = frame.iloc[a:b]
                flag = labelled(subject.config, part, labels, subject.spec)
                flags.setdefault(w, set()).add(flag)
                counts = count_window(subject, part, windows[w].name, labels,
                                      with_labels=flag)
                totals[w] = counts if w not in totals else totals[w] + counts
            if (offset + len(frame)) // PROGRESS_ROWS > offset // PROGRESS_ROWS:
                progress(f"{subject.name} {subject.version}: {offset + len(frame):,} rows "
                         "measured")
        for w, seen in flags.items():
            if len(seen) > 1:  # labelled in some slices only: the window is unlabelled
                rows = self.rows(windows[w].start, windows[w].end)
                totals[w] = count_window(subject, rows, windows[w].name, labels,
                                         with_labels=False)
        return [judge_window(subject, totals[i], rules, i, w.name)
                for i, w in enumerate(windows)]

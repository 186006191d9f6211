"""Windows of rows to watch: read from CSV files, checked, and (forecast) given the rows
that precede them.

A ``Window`` is what the engine (``monitoring.engine``) measures; ``watch`` reads its
windows from files here, ``serve --watch`` cuts them from its own traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_monitor.errors import SchemaError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.kinds import Kind
    from dvc_monitor.model.data import ModelConfig
    from dvc_monitor.monitoring.rules import WatchRules

CONTEXT_ROWS = 2000  # forecast: rows before a window kept for its lags


@dataclass
class Window:
    """Rows to measure; ``context``: the rows just before them (forecast lags)."""

    name: str
    rows: "pd.DataFrame"
    context: "pd.DataFrame | None" = None


def labelled(config: "ModelConfig", rows: "pd.DataFrame", labels: str | None = None,
             kind: "str | Kind | None" = None) -> bool:
    """Whether a window of ``rows`` is judged with its labels (see ``usable_rows``): the
    kind reads 0/1 labels and the label column is there, complete unless ``labels`` names
    it. A window cut in parts is labelled when each part is."""
    from dvc_monitor.kinds import kind_for

    label = labels or config.label
    return bool((kind is None or kind_for(kind).uses_labels) and label
                and label in rows.columns and (labels or rows[label].notna().all()))


def usable_rows(config: "ModelConfig", rows: "pd.DataFrame", source: str, who: str,
                labels: str | None = None, kind: "str | Kind | None" = None,
                with_labels: bool | None = None):
    """``(rows, labels, skipped)``: the rows of a window that can be judged, their 0/1
    labels (None: the window is unlabelled) and ``{reason: rows}`` left out. ``kind``: the
    model's ``spec`` (whether it reads 0/1 labels).

    A missing feature column (or an explicit ``labels`` column) is a ``SchemaError``: the
    file is wrong. A row whose feature is missing, NaN, infinite or not a number, or whose
    label is not 0 or 1, is left out and counted under its first reason. Without
    ``labels``, a window whose label column is absent or has an empty cell is unlabelled
    (labels arrive late); with ``labels``, a row without one is left out.
    ``with_labels``: that decision (``labelled``), made on the whole window when
    ``rows`` are a part of it.
    """
    import numpy as np
    import pandas as pd

    from dvc_monitor.model.state import check_fits

    if any(c not in rows.columns for c in config.features):
        check_fits(replace(config, label_required=False), rows, source, who)  # names them
    if labels and labels not in rows.columns:
        raise SchemaError(f"{source} has no label column {labels!r}; drop --labels or add "
                          "the column")
    keep = np.ones(len(rows), dtype=bool)
    skipped: dict[str, int] = {}

    def drop(bad, reason: str) -> None:
        new = bad & keep
        if new.any():
            skipped[reason] = skipped.get(reason, 0) + int(new.sum())
            keep[new] = False

    for col in config.features:
        given = rows[col]
        values = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float)
        missing = given.isna().to_numpy()
        drop(missing, f"{col} is missing or NaN")
        drop(np.isnan(values) & ~missing, f"{col} is not a number")
        drop(np.isinf(values), f"{col} is infinite")
    label = labels or config.label
    y = None
    if with_labels is None:
        with_labels = labelled(config, rows, labels, kind)
    if with_labels:
        given = rows[label]
        values = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float)
        drop(given.isna().to_numpy(), f"{label} is missing")
        drop(~np.isin(values, (0, 1)), f"{label} is not 0 or 1")
        y = values[keep].astype(int)
    if keep.all():
        return rows, y, skipped
    return rows[keep].reset_index(drop=True), y, skipped


def check_window(rows: int, rules: "WatchRules", params: str, flag: str = "--window") -> None:
    """Refuse windows of ``rows`` rows that could never be judged (fewer than the rules'
    ``min_rows``): a one-line ``UsageError`` that says how to go on."""
    if rows < 1:
        raise UsageError(f"{flag} must be at least 1 row, got {rows}")
    if rows < rules.min_rows:
        raise UsageError(f"{flag} {rows} is below the {rules.min_rows} rows a window needs to "
                         f"be judged; use {flag} {rules.min_rows} or more, or lower "
                         f"watch.min_rows in {params}")


def read_windows(path: str | Path, window_rows: int | None = None) -> list[Window]:
    """A CSV (plain or compressed) or Parquet file, or a folder of them (sorted by name):
    each file is one window, or chunks of ``window_rows`` rows when given."""
    from dvc_monitor.model.data import read_batch
    from dvc_monitor.model.reading import ROW_FILE_SUFFIXES

    path = Path(path)
    if window_rows is not None and window_rows < 1:
        raise UsageError(f"--window must be at least 1 row, got {window_rows}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.name.lower().endswith(ROW_FILE_SUFFIXES) and p.is_file())
        if not files:
            raise UsageError(f"{path} has no CSV or Parquet files; give a CSV or Parquet file "
                             "or a folder of them")
    elif path.is_file():
        files = [path]
    else:
        raise UsageError(f"{path}: no such file or folder")
    windows = []
    for f in files:
        frame = read_batch(f)
        if len(frame) == 0:
            raise SchemaError(f"window {f.name} has no rows; remove it or add rows")
        if window_rows is None:
            windows.append(Window(f.name, frame))
            continue
        for start in range(0, len(frame), window_rows):
            part = frame.iloc[start:start + window_rows].reset_index(drop=True)
            windows.append(Window(f"{f.name}[{start}:{start + len(part)}]", part))
    return windows


def with_context(windows: list[Window], before: "pd.DataFrame",
                 time_column: str) -> list[Window]:
    """Windows of a kind that needs history (forecast) with the rows that precede each
    (``before``, then the numeric rows of earlier windows: a skipped row is no lag
    either); ``time_column`` is the kind's time column."""
    import numpy as np
    import pandas as pd

    out = []
    tail = before
    for w in windows:
        ctx = tail[~tail[time_column].isin(w.rows[time_column])] if len(tail) else tail
        out.append(Window(w.name, w.rows, ctx.tail(CONTEXT_ROWS).reset_index(drop=True)))
        rows = w.rows[list(before.columns.intersection(w.rows.columns))].apply(
            pd.to_numeric, errors="coerce")
        rows = rows[np.isfinite(rows.to_numpy(dtype=float)).all(axis=1)]
        tail = pd.concat([tail, rows], ignore_index=True).tail(CONTEXT_ROWS)
    return out

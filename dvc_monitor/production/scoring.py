"""Rows in, the kind's results out, with the schema checked against the model's config.

Results per row (higher score = more anomalous / riskier, as everywhere in dvc-monitor):

- anomaly: ``{"score", "alert"}``; ``alert`` is the model's own threshold (``contamination``);
- forecast: ``{"prediction", "lower", "upper"}``, plus ``"anomaly"`` when the row carries
  its actual ``value``. A row is forecast from the earlier rows of the same batch (its
  lags); a row without enough history gets nulls;
- risk: ``{"probability", "alert"}`` (probability at or above 0.5).

An adopted model (trained by its user's own pipeline) is scored by its adopted kind
(``LoadedModel.spec``): risk ``{"probability", "alert"}`` from ``predict_proba``, anomaly
``{"score", "alert"}`` from ``-score_samples``, forecast ``{"prediction", "lower",
"upper"}`` from ``predict`` row by row, plus ``"anomaly"`` when the row carries its label.

Scoring itself is ``evaluation.scoring.score_rows``, the function report, gate and compare
use; the results are the kind's, as columns (``Kind.result_table``, ``Kind.result_fields``):
``Scores.results`` turns them into JSON dicts only when a JSON answer asks for them.
``score_chunk`` scores one chunk of a large input (``score -o``, a Dask partition);
``ChunkScorer`` scores an input's chunks in order, carrying a forecast's lags across.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvc_monitor.errors import SchemaError, shown
from dvc_monitor.kinds import Kind, kind_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from dvc_monitor.production.loader import LoadedModel

ROW_KEYS_FLOOR = 64  # keys a row may carry: 4 per model column, and at least this many


@dataclass
class Scores:
    """The results as columns (``table``: the kind's ``result_fields``, one row per
    input row), and the raw scores and alerts of the rows that got one."""

    table: "pd.DataFrame"
    score: "np.ndarray"
    alert: "np.ndarray"
    optional: tuple[str, ...] = ()  # result fields a JSON result leaves out when null

    @functools.cached_property
    def results(self) -> list[dict]:
        """One JSON-ready result per row (built on first use: only a JSON answer needs
        them; ``score -o`` never does)."""
        from dvc_monitor.kinds.base import result_dicts

        return result_dicts(self.table, self.optional)


def to_frame(rows: Any, source: str = "the rows") -> "pd.DataFrame":
    """A DataFrame from a DataFrame or a list of JSON-like dicts (one per row)."""
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        return rows
    if not isinstance(rows, (list, tuple)):
        raise SchemaError(f"{source} must be a list of rows (objects of column: value)")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SchemaError(f"{source}: row {i + 1} is not an object of column: value")
    return pd.DataFrame.from_records(list(rows))


def max_row_keys(columns: int) -> int:
    """How many keys a row may have for a model with ``columns`` columns."""
    return max(4 * columns, ROW_KEYS_FLOOR)


def select_columns(rows: list, config, source: str) -> list[dict]:
    """The rows of a JSON request cut down to the model's columns (``config``: its
    features and its label), so nothing else is scored or kept. A row must be an object
    of at most ``max_row_keys`` keys holding at least one of those columns, each a JSON
    number or null (the label may also be true or false). ``SchemaError`` names the first
    row that is not."""
    columns, label = config.columns, config.label
    limit = max_row_keys(len(columns))
    needs = ", ".join(columns)
    out = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise SchemaError(f"{source}: row {i} is not an object of column: value")
        if len(row) > limit:
            raise SchemaError(f"{source}: row {i} has {len(row)} keys; a row may have at most "
                              f"{limit}: send the model's columns ({needs})")
        kept = {c: row[c] for c in columns if c in row}
        if not kept:
            raise SchemaError(f"{source}: row {i} has none of the model's columns; "
                              f"send {needs}")
        for column, value in kept.items():
            if value is None or (isinstance(value, (int, float))
                                 and (not isinstance(value, bool) or column == label)):
                continue
            raise SchemaError(f"{source}: column {column!r} has a non-numeric value "
                              f"{_json_shown(value)} on row {i}; send numbers (not text, "
                              "true/false, lists or objects)")
        out.append(kept)
    return out


def _json_shown(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "[...]" if isinstance(value, list) else "{...}"
    return shown(value, 40)


def score_frame(loaded: "LoadedModel", df: "pd.DataFrame", source: str) -> Scores:
    """Check ``df`` against the model's schema and score every row."""
    return score_fitted(loaded, fit_model_rows(loaded, df, source))


def fit_model_rows(loaded: "LoadedModel", rows: Any, source: str) -> "pd.DataFrame":
    """``rows`` (a DataFrame or a list of row objects) checked against ``loaded``'s
    schema: the numeric rows ``score_fitted`` scores (``SchemaError`` when they do not fit)."""
    return fit_rows(loaded.spec, loaded.config, to_frame(rows, source), source,
                    f"{loaded.ref} ({loaded.kind})")


def fit_rows(kind: "str | Kind", config, df: "pd.DataFrame", source: str,
             who: str) -> "pd.DataFrame":
    """The numeric rows a model of ``kind`` (pass the model's ``spec``: an adopted model
    is scored by its adopted kind) and ``config`` scores, after checking ``df`` against its
    schema (``SchemaError`` names the problem). The features are required; the label is
    not: a kind whose rows carry their own truth (``uses_labels`` False: a forecast's actual
    value) keeps it when given, empty where unknown. Needs no model, so bad input is
    refused before a model file is read."""
    from dvc_monitor.model.state import check_fits

    if len(df) == 0:
        raise SchemaError(f"{source} has no rows; send at least one")
    spec = kind_for(kind)
    if spec.value_column is not None:
        _check_series(spec, config, df, source, who)
        return df[[spec.time_column, spec.value_column]].apply(_numeric)
    features = list(config.features)
    rows = _numeric_fast(df, features)
    if rows is None:  # some column is not plain numbers: let check_fits name it
        # production rows carry no label: score on the features alone
        check_fits(dataclasses.replace(config, label_required=False), df, source, who)
        rows = df[features].astype(float)
    label = config.label
    if not spec.uses_labels and label and label in df.columns and label not in features:
        _check_nullable_numbers(df, label, source, who)
        rows = rows.assign(**{label: _numeric(df[label])})
    return rows


def score_fitted(loaded: "LoadedModel", rows: "pd.DataFrame",
                 history: "pd.DataFrame | None" = None) -> Scores:
    """Score rows that ``fit_rows`` checked, in one model call (``history``: the rows
    before them, for a kind that ``needs_history``)."""
    import numpy as np

    from dvc_monitor.evaluation.scoring import score_rows

    spec = loaded.spec
    scored = score_rows(spec, loaded.model, loaded.config, rows, history)
    table = spec.result_table(scored.frame, rows)
    seen = ~np.isnan(scored.score)  # a row without its actual value has no score
    return Scores(table, scored.score[seen], scored.alert[seen], spec.optional_fields)


def score_fitted_many(loaded: "LoadedModel", frames: "list[pd.DataFrame]") -> list[Scores]:
    """Score several requests' checked rows (``fit_rows``) in one model call and split
    the results back: one ``Scores`` per frame, in order. Only for a kind that scores each
    row on its own (``needs_history`` False): its frame has one row per input row."""
    import numpy as np
    import pandas as pd

    from dvc_monitor.evaluation.scoring import score_rows

    if len(frames) == 1:
        return [score_fitted(loaded, frames[0])]
    spec = loaded.spec
    rows = pd.concat(frames, ignore_index=True)
    scored = score_rows(spec, loaded.model, loaded.config, rows)
    if len(scored.frame) != len(rows):  # not one result per row: score them apart
        return [score_fitted(loaded, frame) for frame in frames]
    table = spec.result_table(scored.frame, rows)
    out, start = [], 0
    for frame in frames:
        end = start + len(frame)
        score, alert = scored.score[start:end], scored.alert[start:end]
        seen = ~np.isnan(score)
        out.append(Scores(table.iloc[start:end].reset_index(drop=True), score[seen],
                          alert[seen], spec.optional_fields))
        start = end
    return out


# -- chunks of a large input (score -o, and a Dask job's partitions) --------------------

# Chunks are a multiple of this many rows: a linear model's BLAS kernel sums a row's
# products by its position in a block of rows, so a row lands in the same place as in
# one piece only when every chunk before it is a whole number of blocks (4 rows today;
# 64 leaves room). With it, chunked results equal the results in one piece, float for float.
CHUNK_ALIGN = 64


def aligned_chunk_rows(rows: int) -> int:
    """``rows`` rounded up to a multiple of ``CHUNK_ALIGN`` (at least one)."""
    return max(1, -(-rows // CHUNK_ALIGN)) * CHUNK_ALIGN


def score_chunk(loaded: "LoadedModel", frame: "pd.DataFrame", source: str,
                first_row: int = 1, history: "pd.DataFrame | None" = None,
                safe: bool = True) -> "pd.DataFrame":
    """One chunk of a large input, checked and scored: ``frame``'s columns plus the
    kind's result columns (``result_fields``), CSV-safe (``batch.csv_safe``) unless
    ``safe`` is False. ``first_row`` is the number of ``frame``'s first row in
    ``source`` (1-based), so a ``SchemaError`` names the row of the whole input.
    ``history``: the checked rows before the chunk, for a kind that ``needs_history``
    (``ChunkScorer`` carries them from chunk to chunk); without it, the chunk's first
    rows are scored as the first rows of a batch are. For results equal, float for float,
    to those of one piece, start chunks at multiples of ``CHUNK_ALIGN`` rows."""
    rows = fit_chunk(loaded, frame, source, first_row)
    return chunk_table(frame, score_fitted(loaded, rows, history).table, safe)


def fit_chunk(loaded: "LoadedModel", frame: "pd.DataFrame", source: str,
              first_row: int = 1) -> "pd.DataFrame":
    """``fit_model_rows`` of a chunk whose first row is data row ``first_row`` of
    ``source``: a ``SchemaError`` names the row counted from the start of ``source``."""
    try:
        return fit_model_rows(loaded, frame, source)
    except SchemaError as exc:
        if first_row == 1:
            raise
        message = _DATA_ROW.sub(lambda m: f"data row {int(m.group(1)) + first_row - 1}",
                                str(exc))
        raise type(exc)(message) from None


_DATA_ROW = re.compile(r"\bdata row (\d+)")


def chunk_table(frame: "pd.DataFrame", table: "pd.DataFrame", safe: bool = True) -> "pd.DataFrame":
    """``frame``'s columns plus the result columns ``table`` (a result column replaces
    an input column of its name), CSV-safe when ``safe``."""
    from dvc_monitor.production.batch import csv_safe

    out = with_result_columns(frame, table)
    return csv_safe(out) if safe else out


class ChunkScorer:
    """Scores the chunks of one input in order (``score_chunk``), carrying the last
    ``Kind.history_rows`` checked rows of each chunk into the next, so that every row is
    scored as in one batch. A kind with a time column needs the chunks in time order:
    a chunk that starts at or before the end of the one before is refused."""

    def __init__(self, loaded: "LoadedModel", safe: bool = True):
        spec = loaded.spec
        self.loaded, self.safe = loaded, safe
        self.keep = spec.history_rows(loaded.model) if spec.needs_history else 0
        self.time = spec.time_column
        self.history: "pd.DataFrame | None" = None
        self.rows = 0

    def __call__(self, frame: "pd.DataFrame", source: str, first_row: int = 1) -> "pd.DataFrame":
        import pandas as pd

        rows = fit_chunk(self.loaded, frame, source, first_row)
        if self.time is not None and self.history is not None and len(self.history):
            self._check_order(rows, source, first_row)
        table = score_fitted(self.loaded, rows, self.history).table
        if self.keep:
            ordered = rows.sort_values(self.time, kind="stable") if self.time else rows
            both = ordered if self.history is None else pd.concat([self.history, ordered])
            self.history = both.tail(self.keep).reset_index(drop=True)
        self.rows += len(frame)
        return chunk_table(frame, table, self.safe)

    def _check_order(self, rows: "pd.DataFrame", source: str, first_row: int) -> None:
        times = rows[self.time].to_numpy()
        last = self.history[self.time].iloc[-1]
        early = times <= last
        if early.any():
            at = int(early.nonzero()[0][0])
            raise SchemaError(
                f"{shown(source)}: column {self.time!r} is not in order across chunks: data "
                f"row {first_row + at} has {shown(times[at], 40)}, not after {shown(last, 40)} "
                f"of an earlier row; sort the rows by {self.time}, or score them in one "
                "chunk (a larger --chunk-rows)")


def _numeric_fast(df: "pd.DataFrame", features: list[str]) -> "pd.DataFrame | None":
    """The feature columns as floats when they all exist, are numeric and finite (the
    usual case, checked in one pass); None when ``check_fits`` must look closer."""
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if any(c not in df.columns or not is_numeric_dtype(df[c]) or is_bool_dtype(df[c])
           for c in features):
        return None
    rows = df[features].astype(float)
    return rows if np.isfinite(rows.to_numpy()).all() else None


def _numeric(col: "pd.Series") -> "pd.Series":
    import pandas as pd

    return pd.to_numeric(col, errors="coerce").astype(float)


def _check_series(kind: Kind, config, df: "pd.DataFrame", source: str, who: str) -> None:
    """A series kind's rows: the time column must be a number on every row (each time
    once); the value column may be null (a future hour, to forecast)."""

    from dvc_monitor.model.state import check_fits

    time, value = kind.time_column, kind.value_column
    if value not in df.columns:
        raise SchemaError(f"{source} does not fit {who}: missing column(s) {value}; "
                          f"the model needs {', '.join(config.features)} (value may be null "
                          "for the hours to forecast)")
    check_fits(dataclasses.replace(config, features=(time,)), df, source, who)
    _check_nullable_numbers(df, value, source, who)
    if df[time].duplicated().any():
        raise SchemaError(f"{source}: column {time!r} repeats a timestamp; "
                          "give one row per hour")


def _check_nullable_numbers(df: "pd.DataFrame", column: str, source: str, who: str) -> None:
    """A column that may be null (a value not known yet) but is otherwise a finite
    number on every row; ``SchemaError`` names the first row that is not."""
    import pandas as pd

    given = df[column]
    numbers = pd.to_numeric(given, errors="coerce")
    bad = (numbers.isna() & given.notna()) | numbers.isin([math.inf, -math.inf])
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise SchemaError(f"{source} does not fit {who}: column {column!r} has a "
                          f"non-numeric value {shown(given.iloc[row], 40)} on data row "
                          f"{row + 1}")


def with_result_columns(df: "pd.DataFrame", table: "pd.DataFrame") -> "pd.DataFrame":
    """The input's columns plus the result columns ``table`` (a ``Kind.result_table``,
    one row per row of ``df``, in order): for ``score -o OUT``."""
    import pandas as pd

    extra = table.set_axis(df.index)
    clash = [c for c in extra.columns if c in df.columns]
    return pd.concat([df.drop(columns=clash), extra], axis=1)


def with_results(df: "pd.DataFrame", kind: "str | Kind", results: list[dict]) -> "pd.DataFrame":
    """The input's columns plus the result columns from JSON results (``kind``: the
    model's ``spec``)."""
    import pandas as pd

    fields = kind_for(kind).result_fields
    return with_result_columns(df, pd.DataFrame([{f: r.get(f) for f in fields}
                                                 for r in results]))

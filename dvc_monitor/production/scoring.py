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
use; the per-row results are the kind's (``Kind.results``, ``Kind.result_fields``).
"""

from __future__ import annotations

import dataclasses
import math
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
    """The per-row results, and the raw scores and alerts of the rows that got one."""

    results: list[dict]
    score: "np.ndarray"
    alert: "np.ndarray"


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


def score_fitted(loaded: "LoadedModel", rows: "pd.DataFrame") -> Scores:
    """Score rows that ``fit_rows`` checked."""
    import numpy as np

    from dvc_monitor.evaluation.scoring import score_rows

    spec = loaded.spec
    scored = score_rows(spec, loaded.model, loaded.config, rows)
    results = spec.results(scored.frame, rows)
    seen = ~np.isnan(scored.score)  # a row without its actual value has no score
    return Scores(results, scored.score[seen], scored.alert[seen])


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
    results = spec.results(scored.frame, rows)
    out, start = [], 0
    for frame in frames:
        end = start + len(frame)
        score, alert = scored.score[start:end], scored.alert[start:end]
        seen = ~np.isnan(score)
        out.append(Scores(results[start:end], score[seen], alert[seen]))
        start = end
    return out


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


def with_results(df: "pd.DataFrame", kind: "str | Kind", results: list[dict]) -> "pd.DataFrame":
    """The input's columns plus the result columns (for ``score -o OUT.csv``; ``kind``:
    the model's ``spec``)."""
    import pandas as pd

    fields = kind_for(kind).result_fields
    extra = pd.DataFrame([{f: r.get(f) for f in fields} for r in results],
                         index=df.index)
    clash = [c for c in extra.columns if c in df.columns]
    return pd.concat([df.drop(columns=clash), extra], axis=1)

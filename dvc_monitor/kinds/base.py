"""The ``Kind`` protocol: everything dvc-monitor needs to know about a kind of model.

A kind turns rows into a fitted model (``fit``), scores rows with it (``score``: columns
in, columns out, one score and one alert per row), evaluates it on its holdout
(``evaluate``), and says how its numbers read (metric directions, the primary metric, the
metrics that need labels, what ``watch`` measures on a live window). The pipeline stages,
review (report, gate, compare), ``watch``, production scoring and ``init``/``demo`` ask the
kind rather than its name, so a new kind plugs in by implementing this protocol.

``BuiltinKind`` holds what the built-in kinds share (row keys, drift features, the
score/alert results of a row-wise kind); a kind need not derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:  # pandas/numpy are imported lazily
    import numpy as np
    import pandas as pd

# The columns every ``Kind.score`` frame carries (a kind may add its own after them).
SCORE_COLUMNS = ("key", "score", "alert")


@dataclass(frozen=True)
class DemoScript:
    """How ``dvc-monitor demo`` tells its story with a kind's sample data."""

    model_name: str  # the demo model's name
    bad_param: tuple[str, str]  # a params.yaml key and a value that trains a worse version
    live_batches: tuple[int, ...]  # the sample batches replayed as live data
    window: int  # rows per watch window
    serve_rows: int | None  # sample rows posted to the server (None: a whole batch)


@runtime_checkable
class Kind(Protocol):
    """A kind of monitoring model (anomaly, forecast, risk, or one a user brings).

    Models, rows and frames are the kind's own (``pd.DataFrame`` rows, whatever model
    object ``fit`` returns); ``config`` is the model's ``ModelConfig`` (its ``features``
    and ``label``); ``params`` the stage's section of ``params.yaml``.
    """

    name: str
    """The kind's name, as ``monitor.yaml`` and ``init --template`` spell it."""
    description: str
    """One line for the model's ``artifacts:`` entry in dvc.yaml."""
    metric_directions: Mapping[str, str | None]
    """Metric -> "higher", "lower" or None (watched, not optimised), for every metric
    ``evaluate`` may record (besides ``n_holdout``)."""
    primary_metric: str
    """The metric that ranks versions (``compare --best``, watch's trust check)."""
    gate_metrics: tuple[str, ...]
    """The metrics a quality gate checks when the model declares no thresholds (an
    adopted model's default gate): those with a better direction that hinge on no single
    alert threshold or binning, so a few hundred reference rows measure them steadily."""
    label_metrics: frozenset[str]
    """The metrics that exist only when the rows carry labels of both classes."""
    uses_labels: bool
    """True: the kind reads the 0/1 label column of ``config``; False: its rows carry
    their own truth (a forecast's actual values), so they always count as labelled."""
    needs_history: bool
    """True: scoring a row needs the rows before it (``history``: lag features)."""
    time_column: str | None
    """The column of unix seconds that orders the rows (each time once), if any."""
    value_column: str | None
    """The column a series kind forecasts; may be null on rows to score, if any."""
    window_measures: Mapping[str, str | None]
    """What ``watch`` measures on a window besides the PSIs -> better direction."""
    live_rate: str
    """The window measure that is the kind's live rate at the model's threshold."""
    min_window_rows: int | None
    """Rows a watch window needs to be judged, when the kind has its own (else None)."""
    score_label: str
    """What a score means, for plot axes."""
    review_plot: str
    """The kind's plot in a review report: "pr_curve", "calibration" or "forecast"."""
    result_fields: tuple[str, ...]
    """The fields of one row's result when production scores it (``result_table``)."""
    optional_fields: tuple[str, ...]
    """The result fields a JSON result leaves out when they are null (``results``)."""
    demo: DemoScript
    """How ``dvc-monitor demo`` runs this kind."""

    def sample_batch(self, index: int, seed: int = 0, **options: Any) -> "pd.DataFrame":
        """Seeded synthetic batch ``index`` (1, 2, ...) of the kind's sample data."""
        ...

    def holdout_mask(self, df: "pd.DataFrame", rule: dict) -> "np.ndarray":
        """Boolean mask of the holdout rows under the ``prepare:`` rule (stable per row)."""
        ...

    def fit(self, train: "pd.DataFrame", config: Any, params: dict) -> Any:
        """The model fitted on ``train`` (deterministic for the same rows and params)."""
        ...

    def score(self, model: Any, rows: "pd.DataFrame", config: Any,
              history: "pd.DataFrame | None" = None) -> "pd.DataFrame":
        """One row per scored row: ``key`` (identifies the row across models), ``score``
        (float, higher = more anomalous / riskier / a worse miss), ``alert`` (bool), then
        any columns of the kind's own. Vectorised over ``rows``."""
        ...

    def alerts(self, model: Any, rows: "pd.DataFrame", config: Any) -> "np.ndarray":
        """True for each row the model alerts on: the ``alert`` column of ``score``, one
        per scored row (a row-wise kind scores every row)."""
        ...

    def alert_threshold(self, model: Any) -> float:
        """The score above which the model alerts."""
        ...

    def evaluate(self, model: Any, holdout: "pd.DataFrame", config: Any, params: dict,
                 history: "pd.DataFrame | None" = None) -> "tuple[dict, dict[str, pd.DataFrame]]":
        """(metrics, plot tables by file name) of ``model`` on its ``holdout`` rows."""
        ...

    def drift_features(self, features: "tuple[str, ...] | list[str]") -> list[str]:
        """The features whose drift ``watch`` measures (not, e.g., a time column)."""
        ...

    def window_rates(self, scored: "pd.DataFrame",
                     labels: "np.ndarray | None") -> dict[str, float | None]:
        """``window_measures`` on a frame from ``score`` (None: not measurable there):
        ``window_rates_of(window_sums(scored, labels))``."""
        ...

    def window_sums(self, scored: "pd.DataFrame",
                    labels: "np.ndarray | None") -> dict[str, Any]:
        """What ``window_measures`` are made of, as counts and exact sums
        (``common.exact_sum``; None: not measurable there): the sums of a window's parts
        add up (``common.add_sums``) to the sums of the whole window."""
        ...

    def window_rates_of(self, sums: dict[str, Any]) -> dict[str, float | None]:
        """``window_measures`` from ``window_sums`` (of one window, or of its parts added)."""
        ...

    def history_rows(self, model: Any) -> int:
        """How many earlier rows scoring a row needs (its lags; 0 for a row-wise kind):
        chunked scoring carries that many rows of one chunk into the next."""
        ...

    def result_table(self, scored: "pd.DataFrame", rows: "pd.DataFrame") -> "pd.DataFrame":
        """The results as columns: ``result_fields``, one row per row of ``rows`` in order
        (a ``RangeIndex``), from ``score``; a result a row has none of is null (NaN, or
        NA in a nullable ``boolean`` column)."""
        ...

    def results(self, scored: "pd.DataFrame", rows: "pd.DataFrame") -> list[dict]:
        """One JSON-ready result per row of ``rows`` (``result_fields``), from ``score``:
        ``result_table`` as dicts (``result_dicts``)."""
        ...


def result_dicts(table: "pd.DataFrame", optional: tuple[str, ...] = ()) -> list[dict]:
    """The rows of a ``result_table`` as JSON-ready dicts (Python floats and bools, None
    for null); a field in ``optional`` is left out of a row where it is null."""
    fields = list(table.columns)
    columns = [table[f].to_numpy(dtype=object, na_value=None) for f in fields]
    if not any(f in optional for f in fields):
        return [dict(zip(fields, values)) for values in zip(*columns)]
    return [{f: v for f, v in zip(fields, values) if v is not None or f not in optional}
            for values in zip(*columns)]


class BuiltinKind:
    """Defaults the built-in kinds share: a row-wise kind keyed by ``_row``."""

    name: str
    result_fields: tuple[str, ...]
    optional_fields: tuple[str, ...] = ()
    uses_labels = True
    needs_history = False
    time_column: str | None = None
    value_column: str | None = None
    min_window_rows: int | None = None

    def drift_features(self, features) -> list[str]:
        """Every feature but the time column."""
        return [f for f in features if f != self.time_column]

    @staticmethod
    def row_keys(rows: "pd.DataFrame") -> "np.ndarray":
        """The ``_row`` ids of ``rows`` (their positions when there are none)."""
        import numpy as np

        return rows["_row"].to_numpy() if "_row" in rows.columns else np.arange(len(rows))

    @staticmethod
    def scored_frame(key, score, alert) -> "pd.DataFrame":
        """The ``SCORE_COLUMNS`` frame of a row-wise kind."""
        import numpy as np
        import pandas as pd

        return pd.DataFrame({"key": key, "score": np.asarray(score, dtype=float),
                             "alert": np.asarray(alert, dtype=bool)})

    def history_rows(self, model: Any) -> int:
        """A row-wise kind scores each row on its own."""
        return 0

    def result_table(self, scored: "pd.DataFrame", rows: "pd.DataFrame") -> "pd.DataFrame":
        """``<score field>`` (the first result field) and ``alert`` of a row-wise kind:
        ``score``'s columns as they are."""
        import numpy as np
        import pandas as pd

        return pd.DataFrame({self.result_fields[0]: np.asarray(scored["score"], dtype=float),
                             "alert": np.asarray(scored["alert"], dtype=bool)})

    def window_rates(self, scored: "pd.DataFrame", labels) -> dict[str, float | None]:
        """The window measures: ``window_rates_of`` the ``window_sums``."""
        return self.window_rates_of(self.window_sums(scored, labels))

    def results(self, scored: "pd.DataFrame", rows: "pd.DataFrame") -> list[dict]:
        """``result_table`` as JSON-ready dicts, one per row."""
        return result_dicts(self.result_table(scored, rows), self.optional_fields)

    def __repr__(self) -> str:
        return f"<kind {self.name}>"

"""The reference profile of a version: what its holdout looked like, for ``watch``.

The evaluate stage writes ``reference.json`` next to ``metrics.json`` (a DVC-cached output,
so a rollback restores it with the model)::

    {"schema": 1, "kind": "anomaly", "rows": 612, "bins": 10, "threshold": 0.61,
     "score": {"edges": [...], "fractions": [...], "quantiles": {"p0": ..., "p100": ...}},
     "features": {"amount": {"edges": [...], "fractions": [...]}, ...},
     "measures": {"alert_rate": 0.02, "precision": 0.4, ...}}

``edges`` are the inner edges of quantile bins of the holdout (duplicates merged) and
``fractions`` the holdout's share in each bin, so the PSI of new rows needs no holdout.
``measures`` are the window measures (``measures.rates``) on the holdout, the base of the
relative rules. A version registered before reference.json existed gets the same profile
computed on the fly from its own holdout (``load_profile``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvc_monitor.errors import TemplateError

if TYPE_CHECKING:
    import pandas as pd

    from dvc_monitor.kinds import Kind
    from dvc_monitor.model.data import ModelConfig
    from dvc_monitor.model.state import ModelState

SCHEMA = 1
MAX_BINS = 10
ROWS_PER_BIN = 30  # small holdouts get fewer bins, so the PSI of a stable window stays small
QUANTILES = tuple(range(0, 101, 5))
COMPUTED = "computed from the holdout"


def bins_for(rows: int) -> int:
    return max(4, min(MAX_BINS, rows // ROWS_PER_BIN))


@dataclass
class Profile:
    kind: str
    rows: int
    bins: int
    threshold: float | None
    score: dict  # edges, fractions, quantiles
    features: dict  # name -> {edges, fractions}
    measures: dict  # measure -> holdout value (None: not measurable there)
    source: str = "reference.json"  # where it was read from, or COMPUTED

    def to_json(self) -> dict:
        from dvc_monitor.kinds.common import clean_number

        return clean_number({
            "schema": SCHEMA, "kind": self.kind, "rows": self.rows, "bins": self.bins,
            "threshold": self.threshold, "score": self.score, "features": self.features,
            "measures": self.measures,
        })

    @classmethod
    def from_json(cls, doc: Any, source: str) -> "Profile":
        try:
            if doc["schema"] != SCHEMA:
                raise ValueError(f"schema {doc['schema']!r}")
            prof = cls(kind=str(doc["kind"]), rows=int(doc["rows"]), bins=int(doc["bins"]),
                       threshold=doc.get("threshold"), score=dict(doc["score"]),
                       features=dict(doc["features"]), measures=dict(doc["measures"]),
                       source=source)
            for b in [prof.score, *prof.features.values()]:
                if len(b["fractions"]) != len(b["edges"]) + 1:
                    raise ValueError("bins and edges do not match")
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateError(f"{source} is not a dvc-monitor reference profile ({exc}); "
                                "run 'dvc repro' to rewrite it") from None
        return prof


def build_profile(kind: "str | Kind", model: Any, config: "ModelConfig", holdout: "pd.DataFrame",
                  history: "pd.DataFrame | None" = None) -> Profile:
    """The profile of ``model`` on its ``holdout`` rows (``history``: forecast lags)."""
    import numpy as np

    from dvc_monitor.evaluation.measures import drift_features, rates
    from dvc_monitor.evaluation.scoring import quantile_bins, score_rows
    from dvc_monitor.kinds import kind_for
    from dvc_monitor.kinds.common import labels_of

    spec = kind = kind_for(kind)
    scored = score_rows(spec, model, config, holdout, history)
    if len(scored.score) == 0:
        raise TemplateError(f"the holdout of the {spec.name} model gives no scored rows; "
                            "a reference profile needs some")
    bins = bins_for(len(scored.score))

    def binned(values) -> dict:
        edges, fractions = quantile_bins(values, bins)
        return {"edges": edges.tolist(), "fractions": fractions.tolist()}

    score = binned(scored.score) | {"quantiles": {
        f"p{q}": float(np.quantile(scored.score, q / 100)) for q in QUANTILES}}
    features = {f: binned(holdout[f].to_numpy(dtype=float))
                for f in drift_features(kind, config.features)}
    labels = labels_of(holdout, config) if spec.uses_labels else None
    return Profile(kind=spec.name, rows=int(len(scored.score)), bins=bins,
                   threshold=scored.threshold, score=score, features=features,
                   measures=rates(kind, scored, labels), source=COMPUTED)


def load_profile(state: "ModelState", model: Any) -> Profile:
    """The profile of the version at ``state``: its cached reference.json, or (for versions
    evaluated before it existed) one computed from its holdout. Changes nothing on disk
    but the DVC cache (a fetch of a missing object)."""
    import json

    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.model.state import cache_objects, holdout_data

    layout = state.layout
    lock = state.parsed_lock
    md5 = lock.out_md5("evaluate", ModelLayout.REFERENCE) if lock is not None else None
    if md5:
        raw = cache_objects(state, [md5], layout.reference,
                            f"the reference profile of {state.name}")[md5]
        source = f"{layout.reference} at {state.label}"
        try:
            doc = json.loads(raw)
        except ValueError:
            raise TemplateError(f"{source} is not valid JSON; run 'dvc repro'") from None
        return Profile.from_json(doc, source)
    split = holdout_data(state)
    return build_profile(state.spec, model, state.config, split.holdout,
                         split.history if state.spec.needs_history else None)

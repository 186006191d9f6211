"""Two versions of a model judged on the same rows, as report and gate compare them.

The rows are the head's: its holdout (a model dvc-monitor trained: its data cut by its
recorded holdout rule) or its reference rows (an adopted model: ``reference:`` in its
``monitor.yaml``, read at the head's revision). Each version is loaded safely and scored
and evaluated by its own kind (``state.spec``: the adopted form for an adopted model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dvc_monitor.model import state as model_state

if TYPE_CHECKING:  # pandas/numpy are imported lazily
    import numpy as np
    import pandas as pd

    from dvc_monitor.evaluation.scoring import Scored
    from dvc_monitor.model.state import ModelState


@dataclass
class BothOnSameRows:
    """Both versions on the head's rows."""

    rows: "pd.DataFrame"
    history: "pd.DataFrame | None"
    source: str  # what the rows are, for headings and notes
    params: dict  # the evaluation settings both were scored with
    labels: "np.ndarray | None"
    base_scored: "Scored"
    head_scored: "Scored"
    base_metrics: dict
    head_metrics: dict

    @property
    def labelled(self) -> bool:
        """The rows carry labels of both classes."""
        return self.labels is not None and 0 < int(self.labels.sum()) < len(self.labels)


def judged_as_head(base_state: "ModelState", head_state: "ModelState",
                   whose: str = "the head's") -> "ModelState":
    """``base_state``, or, when the head is an adopted model and the base predates its
    ``monitor.yaml`` (the pull request that adopts it), the base with the head's
    ``monitor.yaml``: its pipeline trained the same artifact, so it is judged the same way.
    A note on the returned state says so."""
    import dataclasses

    if base_state.is_monitor_model or not head_state.adopted:
        return base_state
    note = (f"{head_state.name} at {base_state.label} has no {base_state.layout.monitor} (it "
            f"was adopted later): its model is judged with {whose}")
    return dataclasses.replace(base_state, config=head_state.config,
                               notes=[*base_state.notes, note])


def review_params(state: "ModelState") -> dict:
    """The evaluation settings a version is reviewed with: its recorded ``evaluate:``
    params, none for an adopted model (its params.yaml is its own pipeline's)."""
    return {} if state.adopted else state.evaluate_params


def rows_source(state: "ModelState") -> str:
    """The rows a version at ``state`` is judged on, in words."""
    if state.adopted:
        return f"reference rows ({state.reference_path})"
    return "holdout rows"


def both_on_same_rows(base_state: "ModelState", head_state: "ModelState") -> BothOnSameRows:
    """Load both models and score and evaluate them on the head's rows (see the module doc).

    A one-line error when the rows cannot be read (e.g. a reference that does not exist
    at the head's revision) or do not fit the base model."""
    from dvc_monitor.evaluation import scoring
    from dvc_monitor.kinds.common import labels_of

    base_model = model_state.load_model(base_state)
    head_model = model_state.load_model(head_state)
    split = model_state.holdout_data(head_state)
    source = rows_source(head_state)
    model_state.check_fits(base_state.config, split.holdout, f"the head's {source}",
                           f"{head_state.name} at {base_state.label}")
    params = review_params(head_state)
    scored: dict[str, Any] = {}
    for side, state, model in (("base", base_state, base_model), ("head", head_state, head_model)):
        spec = state.spec
        history = split.history if spec.needs_history else None
        scored[side] = scoring.score_rows(spec, model, state.config, split.holdout, history)
        scored[f"{side}_metrics"] = scoring.evaluate_on(spec, model, state.config, split.holdout,
                                                        params, history)
    return BothOnSameRows(
        rows=split.holdout,
        history=split.history if head_state.spec.needs_history else None,
        source=source, params=params, labels=labels_of(split.holdout, head_state.config),
        base_scored=scored["base"], head_scored=scored["head"],
        base_metrics=scored["base_metrics"], head_metrics=scored["head_metrics"],
    )

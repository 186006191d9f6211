"""Model kinds: what turns rows into a fitted model, scores, alerts and metrics.

``base.py`` defines the ``Kind`` protocol, the one seam between dvc-monitor and a kind of
model; ``anomaly.py``, ``forecast.py`` and ``risk.py`` are the built-in kinds (one class
each); ``common.py`` holds what they share (holdout split, deterministic JSON/CSV output).
Callers look a kind up by name with ``kind_for`` and ask it, never its name, what varies.
"""

from __future__ import annotations

import importlib

from dvc_monitor.errors import TemplateError
from dvc_monitor.kinds.base import Kind

__all__ = ["KINDS", "Kind", "kind_for", "metric_directions"]

# The built-in kinds: name -> the module and class implementing it (imported on first use,
# so reading ``KINDS`` costs no pandas); and the adopted form of each (a model its user's
# own pipeline trains, scored through the estimator's own methods: kinds/adopted.py).
_BUILTIN = {"anomaly": ("anomaly", "Anomaly"), "forecast": ("forecast", "Forecast"),
            "risk": ("risk", "Risk")}
_ADOPTED = {"anomaly": ("adopted", "AdoptedAnomaly"), "forecast": ("adopted", "AdoptedForecast"),
            "risk": ("adopted", "AdoptedRisk")}
KINDS = tuple(_BUILTIN)


def kind_for(name: "str | Kind", adopted: bool = False) -> Kind:
    """The ``Kind`` called ``name`` (its adopted form when ``adopted``); a ``Kind`` is
    returned as it is. ``TemplateError`` for a name that is not a kind."""
    if not isinstance(name, str):
        return name
    if name not in _BUILTIN:
        raise TemplateError(f"unknown kind {name!r}; expected one of {', '.join(KINDS)}")
    module, cls = (_ADOPTED if adopted else _BUILTIN)[name]
    return getattr(importlib.import_module(f"dvc_monitor.kinds.{module}"), cls)()


def metric_directions(kind: "str | Kind") -> dict[str, str | None]:
    """Metric -> better direction ("higher", "lower" or None) of the kind ``kind``."""
    return dict(kind_for(kind).metric_directions)

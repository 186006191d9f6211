"""Model kinds: what turns rows into a fitted model, scores, alerts and metrics.

``anomaly.py``, ``forecast.py`` and ``risk.py`` are the built-in kinds; ``common.py`` holds
what they share (holdout split, deterministic JSON/CSV output).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def kind_module(kind: str) -> ModuleType:
    """The module implementing a model kind (anomaly, forecast, risk)."""
    return importlib.import_module(f"dvc_monitor.kinds.{kind}")


def metric_directions(kind: str) -> dict[str, str | None]:
    return dict(kind_module(kind).METRIC_DIRECTIONS)

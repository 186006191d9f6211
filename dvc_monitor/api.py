"""The Python API of dvc-monitor. The CLI is a thin skin over these functions.

Every function takes the repository path first and returns small dataclasses.
"""

from __future__ import annotations

from dvc_monitor.scaffold import IngestResult, InitResult, ingest, init

__all__ = ["init", "ingest", "InitResult", "IngestResult"]

# -- registry (identity.py, registry.py, diffing.py) -------------------------------------
from dvc_monitor.identity import VersionIdentity, identity_from_lock  # noqa: E402
from dvc_monitor.registry import (  # noqa: E402
    Event,
    ModelVersion,
    Registry,
    deprecate,
    deregister,
    promote,
    register,
    unassign,
)

__all__ += [
    "VersionIdentity", "identity_from_lock", "Event", "ModelVersion", "Registry",
    "register", "promote", "unassign", "deregister", "deprecate",
]
from dvc_monitor.diffing import ModelDiff, MetricRow, diff_refs, diff_revisions  # noqa: E402

__all__ += ["ModelDiff", "MetricRow", "diff_revisions", "diff_refs"]

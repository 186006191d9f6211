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

# -- review: report, gate, compare, tag-info (review.py, report.py, gate.py, compare.py) --
from dvc_monitor.compare import CompareResult, VersionResult, compare  # noqa: E402
from dvc_monitor.gate import GateResult, evaluate_gate, gate  # noqa: E402
from dvc_monitor.report import Report  # noqa: E402
from dvc_monitor.report import build_report as report  # noqa: E402
from dvc_monitor.review import TagInfo, tag_info, tag_info_env  # noqa: E402


def report_json(r: "Report") -> dict:
    """The numbers of a report as plain JSON (metrics rows match ``dvc metrics diff``)."""
    from dvc_monitor.output import to_jsonable

    return {
        "name": r.name, "kind": r.kind, "base": r.base, "head": r.head,
        "base_commit": r.base_commit, "head_commit": r.head_commit,
        "metrics": [{"metric": m.metric, "base": m.base, "head": m.head, "delta": m.delta,
                     "direction": m.direction, "change": m.change,
                     "gate": r.gate.status_of(m.metric) if r.gate else ""} for m in r.metrics],
        "gate": gate_json(r.gate) if r.gate else None,
        "same_data": to_jsonable(r.same_data),
        "changes": r.changes.to_dict() if hasattr(r.changes, "to_dict") else to_jsonable(r.changes),
        "plots": r.plots, "notes": r.notes, "seconds": r.seconds,
    }


def gate_json(g: "GateResult") -> dict:
    from dvc_monitor.output import to_jsonable

    return to_jsonable(g) | {"passed": g.passed}


__all__ += ["report", "Report", "report_json", "evaluate_gate", "gate", "GateResult",
            "gate_json", "compare", "CompareResult", "VersionResult", "tag_info", "TagInfo",
            "tag_info_env"]

# -- rollback (rollback.py) -------------------------------------------------------------
from dvc_monitor.rollback import (  # noqa: E402
    Proof,
    RecoveryResult,
    RollbackPlan,
    RollbackResult,
    recover,
    rollback,
)

__all__ += ["rollback", "recover", "RollbackPlan", "RollbackResult", "RecoveryResult", "Proof"]

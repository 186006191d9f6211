"""The Python API of dvc-monitor. The CLI is a thin skin over these functions.

Every function takes the repository path first and returns small dataclasses::

    from dvc_monitor import api
    api.init("repo", "anomaly", "fraud-detector", sample_data=True)
    v = api.register("repo", "fraud-detector", version="v1.0.0")
    api.promote("repo", "fraud-detector", "v1.0.0", "prod")
    api.Registry.load("repo").versions("fraud-detector")
    api.rollback("repo", "fraud-detector", previous=True, stage="prod", message="why")

Names are resolved lazily (PEP 562), so ``import dvc_monitor.api`` costs nothing and a
program that only lists versions never imports the rollback or review machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    # scaffolding (scaffold.py)
    "init": ("scaffold", "init"),
    "ingest": ("scaffold", "ingest"),
    "InitResult": ("scaffold", "InitResult"),
    "IngestResult": ("scaffold", "IngestResult"),
    # registry (identity.py, registry.py, diffing.py)
    "VersionIdentity": ("identity", "VersionIdentity"),
    "identity_from_lock": ("identity", "identity_from_lock"),
    "Event": ("registry", "Event"),
    "ModelVersion": ("registry", "ModelVersion"),
    "Registry": ("registry", "Registry"),
    "register": ("registry", "register"),
    "promote": ("registry", "promote"),
    "unassign": ("registry", "unassign"),
    "deregister": ("registry", "deregister"),
    "deprecate": ("registry", "deprecate"),
    "ModelDiff": ("diffing", "ModelDiff"),
    "MetricRow": ("diffing", "MetricRow"),
    "diff_revisions": ("diffing", "diff_revisions"),
    "diff_refs": ("diffing", "diff_refs"),
    # review (report.py, gate.py, compare.py, review.py)
    "report": ("report", "build_report"),
    "Report": ("report", "Report"),
    "gate": ("gate", "gate"),
    "evaluate_gate": ("gate", "evaluate_gate"),
    "GateResult": ("gate", "GateResult"),
    "compare": ("compare", "compare"),
    "CompareResult": ("compare", "CompareResult"),
    "VersionResult": ("compare", "VersionResult"),
    "tag_info": ("review", "tag_info"),
    "TagInfo": ("review", "TagInfo"),
    "tag_info_env": ("review", "tag_info_env"),
    # rollback (rollback.py)
    "rollback": ("rollback", "rollback"),
    "recover": ("rollback", "recover"),
    "RollbackPlan": ("rollback", "RollbackPlan"),
    "RollbackResult": ("rollback", "RollbackResult"),
    "RecoveryResult": ("rollback", "RecoveryResult"),
    "Proof": ("rollback", "Proof"),
    # production scoring (production/)
    "load_model": ("production.loader", "load_model"),
    "load_ref": ("production.loader", "load_ref"),
    "LoadedModel": ("production.loader", "LoadedModel"),
    "score_batch": ("production.batch", "score_batch"),
    "BatchScore": ("production.batch", "BatchScore"),
    "create_app": ("production.server", "create_app"),
    "ServeSettings": ("production.server", "ServeSettings"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'dvc_monitor.api' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"dvc_monitor.{module}"), attr)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return __all__

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
_EXPORTS: dict[str, tuple[str, str | None]] = {
    # scaffolding (scaffold.py)
    "init": ("model.scaffold", "init"),
    "ingest": ("model.ingest", "ingest"),
    "InitResult": ("model.scaffold", "InitResult"),
    "IngestResult": ("model.ingest", "IngestResult"),
    # registry (identity.py, registry.py, diffing.py)
    "VersionIdentity": ("registry.identity", "VersionIdentity"),
    "identity_from_lock": ("registry.identity", "identity_from_lock"),
    "Event": ("registry.values", "Event"),
    "ModelVersion": ("registry.values", "ModelVersion"),
    "Registry": ("registry.state", "Registry"),
    "register": ("registry.writes", "register"),
    "promote": ("registry.writes", "promote"),
    "unassign": ("registry.writes", "unassign"),
    "deregister": ("registry.writes", "deregister"),
    "deprecate": ("registry.writes", "deprecate"),
    "ModelDiff": ("registry.diff", "ModelDiff"),
    "MetricRow": ("registry.diff", "MetricRow"),
    "diff_revisions": ("registry.diff", "diff_revisions"),
    "diff_refs": ("registry.diff", "diff_refs"),
    "show": ("registry.show", "show"),
    "Listing": ("registry.snapshot", "Listing"),
    "versions_listing": ("registry.snapshot", "versions_listing"),
    "history_listing": ("registry.snapshot", "history_listing"),
    "models_listing": ("registry.snapshot", "models_listing"),
    "detail_listing": ("registry.snapshot", "detail_listing"),
    "VersionDetail": ("registry.show", "VersionDetail"),
    # review (report.py, gate.py, compare.py, review.py)
    "report": ("review.report", "build_report"),
    "Report": ("review.report", "Report"),
    "gate": ("review.gate", "gate"),
    "evaluate_gate": ("review.gate", "evaluate_gate"),
    "GateResult": ("review.gate", "GateResult"),
    "compare": ("review.compare", "compare"),
    "CompareResult": ("review.compare", "CompareResult"),
    "VersionResult": ("review.compare", "VersionResult"),
    "tag_info": ("review.taginfo", "tag_info"),
    "TagInfo": ("review.taginfo", "TagInfo"),
    "tag_info_env": ("review.taginfo", "tag_info_env"),
    # model files (modelio.py): checked from their bytes, never unpickled
    "content_digest": ("model.files", "content_digest"),
    "inspect_model_file": ("model.files", "inspect_model_file"),
    "verify_model_file": ("model.files", "verify_model_file"),
    "ModelFileCheck": ("model.files", "ModelFileCheck"),
    "ModelMatch": ("model.files", "ModelMatch"),
    # rollback (rollback.py)
    "rollback": ("rollback.transaction", "rollback"),
    "recover": ("rollback.journal", "recover"),
    "RollbackPlan": ("rollback.plan", "RollbackPlan"),
    "RollbackResult": ("rollback.transaction", "RollbackResult"),
    "RecoveryResult": ("rollback.journal", "RecoveryResult"),
    "Proof": ("rollback.verify", "Proof"),
    # the trainer fingerprint (model/trainer.py)
    "trainer_status": ("model.trainer", "status"),
    "TrainerStatus": ("model.trainer", "TrainerStatus"),
    # team work (registry/publish.py, registry/restorable.py)
    "push": ("registry.publish", "push"),
    "sync": ("registry.publish", "sync"),
    "PushResult": ("registry.publish", "PushResult"),
    "SyncResult": ("registry.publish", "SyncResult"),
    "Renumbered": ("registry.publish", "Renumbered"),
    "check": ("registry.restorable", "check"),
    "CheckResult": ("registry.restorable", "CheckResult"),
    "VersionState": ("registry.restorable", "VersionState"),
    "ObjectState": ("registry.restorable", "ObjectState"),
    # monitoring (monitoring/)
    "watch": ("monitoring.watch", "watch"),
    "evaluate_windows": ("monitoring.watch", "evaluate_windows"),
    "Watcher": ("monitoring.watch", "Watcher"),
    "decide": ("monitoring.watch", "decide"),
    "Decision": ("monitoring.watch", "Decision"),
    "Window": ("monitoring.watch", "Window"),
    "Subject": ("monitoring.watch", "Subject"),
    "WatchResult": ("monitoring.watch", "WatchResult"),
    "WindowResult": ("monitoring.watch", "WindowResult"),
    "read_windows": ("monitoring.watch", "read_windows"),
    "WatchRules": ("monitoring.rules", "WatchRules"),
    "parse_watch_rules": ("monitoring.rules", "parse_rules"),
    "Profile": ("evaluation.profiles", "Profile"),
    "build_profile": ("evaluation.profiles", "build_profile"),
    # production scoring (production/)
    "load_model": ("production.loader", "load_model"),
    "load_ref": ("production.loader", "load_ref"),
    "LoadedModel": ("production.loader", "LoadedModel"),
    "score_batch": ("production.batch", "score_batch"),
    "BatchScore": ("production.batch", "BatchScore"),
    "create_app": ("production.server", "create_app"),
    "ServeSettings": ("production.server", "ServeSettings"),
    "PublishError": ("registry.publish", "PublishError"),
    "unpublished_stage_tags": ("registry.publish", "unpublished_stage_tags"),
    "unpublished_warning": ("registry.publish", "unpublished_warning"),
    # a model at a revision, in any layout (model/revision.py)
    "ModelAtRevision": ("model.revision", "ModelAtRevision"),
    "read_model": ("model.revision", "read_model"),
    "read_models": ("model.revision", "read_models"),
    # what the CLI renders with (the CLI imports nothing but this module)
    "GitRepo": ("repo.git", "GitRepo"),
    "tags": ("registry.tags", None),  # GTO's tag grammar, as a module
    "key_metrics": ("registry.facts", "key_metrics"),
    "partitions_of": ("model.data", "partitions_of"),
    "raise_if_failed": ("review.gate", "raise_if_failed"),
    "compare_table": ("review.compare", "table"),
    "run_demo": ("demo", "run_demo"),
    "run_stage": ("stages", "run_stage"),
    "to_jsonable": ("values", "to_jsonable"),
    "DvcMonitorError": ("errors", "DvcMonitorError"),
    "UsageError": ("errors", "UsageError"),
    "GateFailed": ("errors", "GateFailed"),
    "GateUndecided": ("errors", "GateUndecided"),
    "no_checkpoint": ("repo.signals", "no_checkpoint"),
    "recover_pending": ("rollback.journal", "recover_pending"),
    "pending_journal": ("repo.state", "pending_journal"),
    "EXIT_CODES": ("errors", "EXIT_CODES"),
    "EXIT_ERROR": ("errors", "EXIT_ERROR"),
    "EXIT_INTERRUPTED": ("errors", "EXIT_INTERRUPTED"),
    "one_line": ("errors", "one_line"),
    # more of what the CLI renders with
    "production_server": ("production.server", None),
    "production_loader": ("production.loader", None),
    "production_watching": ("production.watching", None),
    "recover_pending_ingest": ("model.ingest", "recover_pending"),
    "summarize_models": ("registry.overview", "summarize"),
    "WatchActionFailed": ("errors", "WatchActionFailed"),
    # retention (registry/retention.py)
    "gc": ("registry.retention", "gc"),
    "GcResult": ("registry.retention", "GcResult"),
    "GcObject": ("registry.retention", "GcObject"),
    "retention_defaults": ("registry.retention", None),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'dvc_monitor.api' has no attribute {name!r}") from None
    loaded = importlib.import_module(f"dvc_monitor.{module}")
    value = loaded if attr is None else getattr(loaded, attr)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return __all__

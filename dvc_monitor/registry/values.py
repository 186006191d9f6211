"""Registry value objects: an event (one tag) and a model version, with their JSON shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from dvc_monitor.model.files import verified_as
from dvc_monitor.registry.identity import VersionIdentity
from dvc_monitor.registry.tags import Action

SCHEMA = 1
MIN_SHORT_ID = 6
METRICS_FILE = "metrics.json"
PREFERRED_METRICS = (
    "roc_auc", "average_precision", "f1", "precision", "recall", "alert_rate",
    "auc", "accuracy", "mape", "smape", "rmse", "mae", "r2", "brier", "log_loss",
)
# keys of a tag's block that ``extra_meta`` cannot override
RESERVED_META = frozenset({"schema", "event", "time_ns", "version", "stage", "id"})



# -- data classes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One registry event, read from one git tag."""

    artifact: str
    action: Action
    version: str | None  # for stage events: the version at the tag's commit (as GTO)
    stage: str | None
    commit: str
    tag: str
    time: int  # tagger time, unix seconds
    order_key: tuple
    author: str
    author_email: str
    message: str  # the human part of the tag message (block removed)
    meta: dict | None  # our block, None for tags without one

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.time, tz=timezone.utc)

    @property
    def time_ns(self) -> int:
        return self.order_key[0]

    @property
    def counter(self) -> int | None:
        return None if self.order_key[1] < 0 else self.order_key[1]

    def to_json(self) -> dict:
        """The JSON form of an event (``history --json`` rows; the API and the CLI share it)."""
        return {
            "name": self.artifact, "event": self.action.value, "version": self.version,
            "stage": self.stage, "commit": self.commit, "tag": self.tag,
            "time": self.created_at.isoformat(), "timestamp": self.time,
            "time_ns": self.time_ns, "author": self.author, "author_email": self.author_email,
            "message": self.message, "meta": self.meta,
        }


@dataclass(frozen=True)
class ModelVersion:
    """A registered version of a model (or, as in GTO, an unregistered commit with stages)."""

    name: str
    version: str  # "vX.Y.Z"; the commit hexsha for an unregistered commit with stages
    commit: str
    id: str | None
    short_id: str | None
    identity: VersionIdentity | None  # filled by resolve/get/stage_holder; None in listings
    created_at: datetime
    author: str
    stages: tuple  # stages this version holds now (same as `gto show`)
    metrics: dict
    model_md5: str | None
    registered: bool
    active: bool  # registered and not deregistered (GTO's is_active)
    message: str
    events: tuple = ()
    author_email: str = ""
    updated_at: datetime | None = None  # time of the last event that touched it
    model_path: str | None = None  # repository-relative
    data: dict = field(default_factory=dict)  # data dependency (repo-relative) -> md5
    lock_path: str | None = None
    warning: str | None = None  # why id is None, if it is
    model_digest: str | None = None  # content digest from the tag block (model/files.py)
    model_form: str | None = None  # "canonical" | "as-written", from the tag block

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self, deprecated: bool = False) -> dict:
        """The JSON form of a version (``versions --json`` rows; the API and the CLI share it).

        ``deprecated``: whether the model is deprecated (a registry fact, not the version's).
        """
        return {
            "name": self.name, "version": self.version, "id": self.id,
            "short_id": self.short_id, "commit": self.commit,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "author": self.author, "author_email": self.author_email,
            "stages": list(self.stages), "metrics": self.metrics, "model_md5": self.model_md5,
            "digest": self.model_digest, "model_form": self.model_form,
            "verified_as": verified_as(self.model_form) if self.model_form else None,
            "model_path": self.model_path, "data": self.data, "registered": self.registered,
            "active": self.active, "deprecated": deprecated, "message": self.message,
        }



"""``show`` without a NAME: every model with its latest version and stage holders, as
``gto show`` lists them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSummary:
    """One model of the registry: its latest registered version and who holds each stage."""

    name: str
    latest: str | None
    latest_id: str | None
    stages: dict[str, str]  # stage -> version
    deprecated: bool

    def to_json(self) -> dict:
        return {"name": self.name, "latest": self.latest, "latest_id": self.latest_id,
                "stages": dict(self.stages), "deprecated": self.deprecated}


def summarize(reg, include_deprecated: bool = False) -> list[ModelSummary]:
    """A ``ModelSummary`` per model of ``reg`` (a loaded ``Registry``), by name."""
    out = []
    for name in reg.models(include_deprecated=include_deprecated):
        latest = reg.latest(name)
        stages = {stage: mv.version for stage, mv in sorted(reg.stages(name).items())}
        out.append(ModelSummary(name, latest.version if latest else None,
                                latest.short_id if latest else None, stages,
                                reg.is_deprecated(name)))
    return out

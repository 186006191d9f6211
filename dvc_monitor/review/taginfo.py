"""What a GTO event tag records, for CI jobs that a pushed tag triggers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_monitor.errors import (
    DvcMonitorError,
    NotFound,
    UsageError,
    shown,
)
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.values import JsonValue

if TYPE_CHECKING:  # pandas/numpy are imported lazily
    pass

WORKSPACE = "workspace"


# -- tags for CI ------------------------------------------------------------------------


@dataclass(frozen=True)
class TagInfo(JsonValue):
    """What a GTO event tag records, for a CI job that a pushed tag triggered."""

    tag: str
    name: str
    event: str  # register | deregister | assign | unassign | deprecate
    version: str | None  # for stage events: the version registered at the tag's commit
    stage: str | None
    counter: int | None
    commit: str
    model_path: str | None
    model_md5: str | None


def tag_info(root: str | Path, tag: str) -> TagInfo:
    """Parse ``tag`` (GTO grammar) and add what the repository knows about it."""
    from dvc_monitor.registry.tags import parse_tag

    parsed = parse_tag(tag) if isinstance(tag, str) else None
    if parsed is None:
        raise UsageError(f"{tag!r} is not a GTO event tag; expected NAME@vX.Y.Z, "
                         "NAME@vX.Y.Z!, NAME#STAGE#N, NAME#STAGE!#N or NAME@deprecated")
    git = GitRepo(root)
    commit = git.resolve(f"refs/tags/{tag}")
    if commit is None:
        raise NotFound(f"no tag {shown(tag)} in this repository; fetch the tags "
                       "('git fetch --tags', or a CI checkout with fetch-depth: 0) or check "
                       "the name with 'git tag -l'")
    name = parsed.artifact
    version = parsed.version
    if version is None and parsed.stage is not None:
        version = _version_of_stage_tag(Path(root), name, tag, commit)
    model_path = model_md5 = None
    if ":" not in name:
        model_path = ModelLayout(name).model
        try:
            from dvc_monitor.model.state import read_state
            model_md5 = read_state(root, name, commit).model_md5
        except DvcMonitorError:
            model_md5 = None
    return TagInfo(tag=tag, name=name, event=parsed.action.value, version=version,
                   stage=parsed.stage, counter=parsed.counter, commit=commit,
                   model_path=model_path, model_md5=model_md5)


def _version_of_stage_tag(root: Path, name: str, tag: str, commit: str) -> str | None:
    """The version a stage tag points at, as GTO reports it (registry events)."""
    try:
        from dvc_monitor.registry.state import Registry

        for event in Registry.load(root).history(name):
            if event.tag == tag:
                return event.version
    except DvcMonitorError:
        pass
    return None


def tag_info_env(info: TagInfo) -> dict[str, str]:
    """``KEY=value`` pairs for $GITHUB_OUTPUT / a GitLab dotenv report (empty = unknown)."""
    values = {
        "MODEL_EVENT": info.event, "MODEL_NAME": info.name, "MODEL_VERSION": info.version,
        "MODEL_STAGE": info.stage, "MODEL_COMMIT": info.commit,
        "MODEL_PATH": info.model_path, "MODEL_MD5": info.model_md5,
    }
    return {k: "" if v is None else str(v) for k, v in values.items()}

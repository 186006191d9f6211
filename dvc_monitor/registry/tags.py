"""GTO's tag grammar, name validation and the machine-readable block in tag messages.

This is the only module that knows how GTO event tags are spelled:

==================  ======================
registration        ``NAME@vX.Y.Z``
deregistration      ``NAME@vX.Y.Z!``
stage assignment    ``NAME#STAGE#N``
unassignment        ``NAME#STAGE!#N``
deprecation         ``NAME@deprecated``
==================  ======================

and one form of dvc-monitor's own that GTO ignores (its pattern does not match it, so
``gto show`` and ``gto history`` skip it, as they skip any other tag):

==================  ======================
shadow verdict      ``NAME@vX.Y.Z@shadow#N``
==================  ======================

The ``#N`` counter is optional on every GTO form. An artifact declared outside the
repository root has the GTO name ``DIR:NAME``, spelled ``DIR=NAME`` in tags.
Names, versions and references (``names.py``) are the grammar's parts.
Nothing here imports GTO, DVC or pydantic.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable

from dvc_monitor.errors import InvalidName
from dvc_monitor.names import (
    DIRNAME_PATTERN,
    DIRNAME_RE,
    NAME_PATTERN,
    NAME_RE,
    SEMVER_PATTERN,
    git_ref_problem,
    validate_artifact_name,
    validate_stage_name,
    validate_version,
)

SEPARATOR_IN_NAME = ":"
SEPARATOR_IN_TAG = "="

BEGIN_MARKER = "-----BEGIN DVC-MONITOR-----"
END_MARKER = "-----END DVC-MONITOR-----"

_TAG_RE = re.compile(
    rf"(?P<artifact>(?:{DIRNAME_PATTERN}=)?{NAME_PATTERN})"
    rf"(?:(?:#(?P<stage>{NAME_PATTERN})|@(?P<version>v{SEMVER_PATTERN}))(?P<cancel>!?)"
    r"|@(?P<deprecated>deprecated)|@(?P<created>created))"
    r"(?:#(?P<counter>[0-9]+))?"
)
SHADOW_EVENT = "shadow"
_VERDICT_RE = re.compile(
    rf"(?P<artifact>(?:{DIRNAME_PATTERN}=)?{NAME_PATTERN})@(?P<version>v{SEMVER_PATTERN})"
    rf"@{SHADOW_EVENT}#(?P<counter>[0-9]+)"
)



# -- actions and tag names --------------------------------------------------------------


class Action(enum.Enum):
    """A GTO event that a tag records."""

    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"
    SHADOW = "shadow"  # a shadow verdict: dvc-monitor's own, no GTO event (GTO skips it)

    @property
    def priority(self) -> int:
        """GTO's order for events with equal timestamps (gto.base; used by gto history)."""
        return _PRIORITY[self]


_PRIORITY = MappingProxyType(
    {
        Action.DEPRECATE: 2,
        Action.REGISTER: 3,
        Action.DEREGISTER: 4,
        Action.ASSIGN: 5,
        Action.UNASSIGN: 6,
        Action.SHADOW: 7,
    }
)
# the actions GTO knows (a shadow verdict is ours alone)
GTO_ACTIONS = frozenset(a for a in Action if a is not Action.SHADOW)
_VERSION_ACTIONS = frozenset({Action.REGISTER, Action.DEREGISTER, Action.SHADOW})
_STAGE_ACTIONS = frozenset({Action.ASSIGN, Action.UNASSIGN})


@dataclass(frozen=True)
class TagName:
    """A parsed GTO event tag. ``artifact`` is the GTO name (``DIR:NAME`` form)."""

    artifact: str
    action: Action
    version: str | None = None
    stage: str | None = None
    counter: int | None = None

    def __post_init__(self) -> None:
        for field, needed in (
            ("version", self.action in _VERSION_ACTIONS),
            ("stage", self.action in _STAGE_ACTIONS),
        ):
            if needed != (getattr(self, field) is not None):
                state = "required" if needed else "not allowed"
                raise ValueError(f"{self.action.value} tag: {field} is {state}")
        if self.counter is not None and self.counter < 0:
            raise ValueError(f"counter must be >= 0, got {self.counter}")


def name_to_tag(artifact: str) -> str:
    """GTO's spelling of an artifact name inside a tag (``DIR:NAME`` -> ``DIR=NAME``)."""
    return artifact.replace(SEPARATOR_IN_NAME, SEPARATOR_IN_TAG)


def tag_to_name(artifact_in_tag: str) -> str:
    """Inverse of ``name_to_tag``."""
    return artifact_in_tag.replace(SEPARATOR_IN_TAG, SEPARATOR_IN_NAME)


def format_tag(t: TagName) -> str:
    """The git tag name GTO uses for ``t``; raises ``InvalidName`` for bad parts."""
    artifact = _artifact_in_tag(t.artifact)
    if t.action is Action.SHADOW:
        if t.counter is None:
            raise ValueError("a shadow verdict tag needs its counter")
        return f"{artifact}@{_tag_version(t.version)}@{SHADOW_EVENT}#{t.counter}"
    if t.action is Action.DEPRECATE:
        event = "@deprecated"
    elif t.action in _VERSION_ACTIONS:
        event = "@" + _tag_version(t.version)
    else:
        event = "#" + validate_stage_name(t.stage)
    cancel = "!" if t.action in (Action.DEREGISTER, Action.UNASSIGN) else ""
    counter = "" if t.counter is None else f"#{t.counter}"
    return f"{artifact}{event}{cancel}{counter}"


def parse_tag(name: str) -> TagName | None:
    """The event ``name`` records, or None when it is not a GTO event tag.

    Accepts exactly what ``gto.constants.tag_re`` accepts, except ``NAME@created``
    (matched by GTO's pattern but no event; GTO 1.10.1 itself fails on such tags).
    """
    m = _TAG_RE.fullmatch(name)
    if m is None or m["created"]:
        return None
    if m["deprecated"]:
        action = Action.DEPRECATE
    elif m["version"]:
        action = Action.DEREGISTER if m["cancel"] else Action.REGISTER
    else:
        action = Action.UNASSIGN if m["cancel"] else Action.ASSIGN
    return TagName(
        artifact=tag_to_name(m["artifact"]),
        action=action,
        version=m["version"],
        stage=m["stage"],
        counter=int(m["counter"]) if m["counter"] else None,
    )


def parse_verdict_tag(name: str) -> TagName | None:
    """The shadow verdict ``name`` records (``NAME@vX.Y.Z@shadow#N``), or None."""
    m = _VERDICT_RE.fullmatch(name)
    if m is None:
        return None
    return TagName(artifact=tag_to_name(m["artifact"]), action=Action.SHADOW,
                   version=m["version"], counter=int(m["counter"]))


def is_event_like(name: str) -> bool:
    """True for a tag that uses ``@`` or ``#`` but is neither a GTO event nor a shadow
    verdict (worth a warning).

    This includes ``NAME@created``, which GTO's pattern matches but which records no event.
    """
    return (("@" in name or "#" in name) and parse_tag(name) is None
            and parse_verdict_tag(name) is None)


def next_counter(tag_names: Iterable[TagName], artifact: str) -> int:
    """1 + the highest counter among ``artifact``'s tags, as GTO's ``name_tag`` computes it."""
    return 1 + max(
        (t.counter for t in tag_names if t.artifact == artifact and t.counter is not None),
        default=0,
    )


def _artifact_in_tag(artifact: str) -> str:
    dirname, sep, name = artifact.rpartition(SEPARATOR_IN_NAME)
    if not sep:
        return validate_artifact_name(name)
    if not DIRNAME_RE.fullmatch(dirname) or not NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid artifact name {artifact!r}: use DIR:NAME with one ':', "
            "DIR made of letters, digits, '-', '_', '.', '/'"
        )
    in_tag = name_to_tag(artifact)
    problem = git_ref_problem(in_tag)
    if problem:
        raise InvalidName(f"invalid artifact name {artifact!r}: {problem}")
    return in_tag


def _tag_version(version: str | None) -> str:
    if version is None or validate_version(version) != version:
        raise InvalidName(f"invalid version {version!r} for a tag: it must start with 'v'")
    return version


# -- tag messages -----------------------------------------------------------------------


def format_message(summary: str, meta: dict) -> str:
    """An annotated tag message: the summary line, then ``meta`` as a JSON block."""
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    body = json.dumps(meta, sort_keys=True, ensure_ascii=True, allow_nan=False)
    return f"{summary.strip()}\n\n{BEGIN_MARKER}\n{body}\n{END_MARKER}\n"


def parse_message(message: str) -> dict | None:
    """The JSON object in the message's (last) block; None if absent or invalid."""
    if not _may_have_block(message):
        return None
    lines = _lines(message)
    block = _find_block(lines)
    if block is None:
        return None
    begin, end = block
    try:
        meta = json.loads("\n".join(lines[begin + 1:end]))
    except (ValueError, RecursionError):
        return None
    return meta if isinstance(meta, dict) else None


def has_block(message: str) -> bool:
    """True when the message has BEGIN/END markers (whether or not the JSON inside parses)."""
    return _may_have_block(message) and _find_block(_lines(message)) is not None


def message_summary(message: str) -> str:
    """The human part of a tag message: the text before the block, stripped."""
    lines = _lines(message)
    block = _find_block(lines) if _may_have_block(message) else None
    return "\n".join(lines if block is None else lines[:block[0]]).strip()


def _may_have_block(message: Any) -> bool:
    """A quick test before splitting lines (most tags, made by gto or git, have no block)."""
    return isinstance(message, str) and END_MARKER in message


def _lines(message: Any) -> list[str]:
    """The message's lines without trailing blanks or CRs (none for a non-string)."""
    if not isinstance(message, str):
        return []
    return [line.rstrip() for line in message.replace("\r\n", "\n").split("\n")]


def _find_block(lines: list[str]) -> tuple[int, int] | None:
    """(begin, end) line numbers of the last BEGIN/END marker pair, or None."""
    end = None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == END_MARKER:
            end = i
        elif lines[i].strip() == BEGIN_MARKER and end is not None:
            return i, end
    return None


def default_summary(tag: TagName, version: str | None = None) -> str:
    """GTO's default message for the event ``tag`` records (``version`` for stage events)."""
    name, stage, version = tag.artifact, tag.stage, version or tag.version
    if tag.action is Action.REGISTER:
        return f"Registering artifact {name} version {version}"
    if tag.action is Action.DEREGISTER:
        return f"Deregistering artifact {name} version {version}"
    if tag.action is Action.ASSIGN:
        target = f" version {version}" if version else ""
        return f"Assigning stage {stage} to artifact {name}{target}"
    if tag.action is Action.SHADOW:
        return f"Shadow verdict on artifact {name} version {version}"
    if tag.action is Action.UNASSIGN:
        return f"Unassigning stage '{stage}' to artifact '{name}' version '{version}'"
    return f"Deprecating artifact '{name}'"

"""GTO's tag grammar, name validation and the machine-readable block in tag messages.

This is the only module that knows how GTO event tags are spelled:

==================  ======================
registration        ``NAME@vX.Y.Z``
deregistration      ``NAME@vX.Y.Z!``
stage assignment    ``NAME#STAGE#N``
unassignment        ``NAME#STAGE!#N``
deprecation         ``NAME@deprecated``
==================  ======================

The ``#N`` counter is optional on every form. An artifact declared outside the
repository root has the GTO name ``DIR:NAME``, spelled ``DIR=NAME`` in tags.
The patterns below are equivalent to ``gto.constants`` (GTO 1.10.1); tests check it.
Nothing here imports GTO, DVC or pydantic.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Literal

from dvc_monitor.errors import InvalidName

MAX_NAME_LENGTH = 100
SEPARATOR_IN_NAME = ":"
SEPARATOR_IN_TAG = "="

BEGIN_MARKER = "-----BEGIN DVC-MONITOR-----"
END_MARKER = "-----END DVC-MONITOR-----"

# -- patterns (equivalent to gto.constants) ---------------------------------------------

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
_DIRNAME = r"[a-zA-Z0-9\-_./]+"
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    rf"(?:-(?P<prerelease>{_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)

_NAME_RE = re.compile(_NAME)
_DIRNAME_RE = re.compile(_DIRNAME)
_SEMVER_RE = re.compile(_SEMVER)
_TAG_RE = re.compile(
    rf"(?P<artifact>(?:{_DIRNAME}=)?{_NAME})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)"
    r"|@(?P<deprecated>deprecated)|@(?P<created>created))"
    r"(?:#(?P<counter>[0-9]+))?"
)

_NAME_RULE = "use letters, digits, '-', '_' and '/', starting and ending with a letter or digit"
_VERSION_RULE = "use a semantic version like v1.2.3 (optionally with -rc.1 or +build.5)"
_REFERENCE_RULE = "use NAME, NAME@vX.Y.Z, NAME@latest or NAME#STAGE"


# -- actions and tag names --------------------------------------------------------------


class Action(enum.Enum):
    """A GTO event that a tag records."""

    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"

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
    }
)
_VERSION_ACTIONS = frozenset({Action.REGISTER, Action.DEREGISTER})
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


def is_event_like(name: str) -> bool:
    """True for a tag that uses ``@`` or ``#`` but is not a GTO event (worth a warning).

    This includes ``NAME@created``, which GTO's pattern matches but which records no event.
    """
    return ("@" in name or "#" in name) and parse_tag(name) is None


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
    if not _DIRNAME_RE.fullmatch(dirname) or not _NAME_RE.fullmatch(name):
        raise InvalidName(
            f"invalid artifact name {artifact!r}: use DIR:NAME with one ':', "
            "DIR made of letters, digits, '-', '_', '.', '/'"
        )
    in_tag = name_to_tag(artifact)
    problem = _git_ref_problem(in_tag)
    if problem:
        raise InvalidName(f"invalid artifact name {artifact!r}: {problem}")
    return in_tag


def _tag_version(version: str | None) -> str:
    if version is None or validate_version(version) != version:
        raise InvalidName(f"invalid version {version!r} for a tag: it must start with 'v'")
    return version


# -- names ------------------------------------------------------------------------------


def validate_artifact_name(name: str) -> str:
    """Return ``name`` if it is a usable model name, else raise ``InvalidName``.

    GTO's name rule, at most ``MAX_NAME_LENGTH`` characters, and nothing git refuses in a
    ref. The rule also excludes a leading '-' (which could be read as an option).
    """
    return _validate_name(name, "model name")


def validate_stage_name(stage: str | None) -> str:
    """Return ``stage`` if it is a usable stage name (GTO's name rule), else raise."""
    return _validate_name(stage, "stage name")


def _validate_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName(f"invalid {what} {name!r}: it must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"invalid {what} {name[:20]!r}...: use at most {MAX_NAME_LENGTH} characters "
            f"(this one has {len(name)})"
        )
    if not _NAME_RE.fullmatch(name):
        raise InvalidName(f"invalid {what} {name!r}: {_NAME_RULE}")
    problem = _git_ref_problem(name)
    if problem:
        raise InvalidName(f"invalid {what} {name!r}: {problem}")
    return name


def _git_ref_problem(name: str) -> str | None:
    """Why ``git check-ref-format`` would refuse ``name`` (for our character set), or None."""
    if name.startswith("-"):
        return "it must not start with '-'"
    if "//" in name:
        return "git does not allow '//' in a tag name"
    if ".." in name:
        return "git does not allow '..' in a tag name"
    for part in name.split("/"):
        if part.startswith("."):
            return "git does not allow a path component starting with '.'"
        if part.endswith(".lock") or part.endswith("."):
            return "git does not allow a path component ending with '.lock' or '.'"
    if name.startswith("/") or name.endswith("/"):
        return "it must not start or end with '/'"
    return None


# -- versions ---------------------------------------------------------------------------


def validate_version(v: str) -> str:
    """Return ``v`` as GTO's ``vX.Y.Z[-pre][+build]``; ``1.2.3`` becomes ``v1.2.3``."""
    body = v[1:] if isinstance(v, str) and v.startswith("v") else v
    if not isinstance(body, str) or not _SEMVER_RE.fullmatch(body):
        raise InvalidName(f"invalid version {v!r}: {_VERSION_RULE}")
    return "v" + body


def parse_semver(v: str) -> tuple:
    """A sort key with semver precedence (a prerelease sorts before its release).

    Build metadata is ignored, as semver requires.
    """
    m = _SEMVER_RE.fullmatch(validate_version(v)[1:])
    assert m is not None
    release = (int(m["major"]), int(m["minor"]), int(m["patch"]))
    if m["prerelease"] is None:
        return (*release, 1, ())
    return (*release, 0, tuple(_prerelease_key(p) for p in m["prerelease"].split(".")))


def _prerelease_key(ident: str) -> tuple[int, int, str]:
    # numeric identifiers compare numerically and sort before alphanumeric ones
    return (0, int(ident), "") if ident.isdigit() else (1, 0, ident)


def bump_version(latest: str | None, part: Literal["major", "minor", "patch"]) -> str:
    """The version after ``latest`` (prerelease and build dropped, like GTO/semver).

    With no ``latest``: v0.0.1 / v0.1.0 / v1.0.0 for patch / minor / major.
    """
    if part not in ("major", "minor", "patch"):
        raise ValueError(f"part must be 'major', 'minor' or 'patch', got {part!r}")
    if latest is None:
        return {"major": "v1.0.0", "minor": "v0.1.0", "patch": "v0.0.1"}[part]
    major, minor, patch = parse_semver(latest)[:3]
    if part == "major":
        return f"v{major + 1}.0.0"
    if part == "minor":
        return f"v{major}.{minor + 1}.0"
    return f"v{major}.{minor}.{patch + 1}"


# -- references (GTO shortcuts) ---------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """``NAME``, ``NAME@vX.Y.Z``, ``NAME@latest`` or ``NAME#STAGE``."""

    name: str
    version: str | None = None
    stage: str | None = None
    latest: bool = False


def parse_reference(ref: str) -> Reference:
    """Parse a model reference; ``@greatest`` means ``@latest`` as in GTO."""
    cut = min((i for i in (ref.find("@"), ref.find("#")) if i >= 0), default=-1)
    if cut < 0:
        return Reference(validate_artifact_name(ref))
    name, sep, rest = ref[:cut], ref[cut], ref[cut + 1:]
    if not name or not rest:
        raise InvalidName(f"invalid reference {ref!r}: {_REFERENCE_RULE}")
    validate_artifact_name(name)
    if sep == "#":
        return Reference(name, stage=validate_stage_name(rest))
    if rest in ("latest", "greatest"):
        return Reference(name, latest=True)
    return Reference(name, version=validate_version(rest))


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
    if tag.action is Action.UNASSIGN:
        return f"Unassigning stage '{stage}' to artifact '{name}' version '{version}'"
    return f"Deprecating artifact '{name}'"

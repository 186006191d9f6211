"""The GTO name grammar: model and stage names, semantic versions and references.

The patterns are equivalent to ``gto.constants`` (GTO 1.10.1); tests check it. Nothing
here imports GTO, DVC or pydantic; ``registry/tags.py`` builds the tag grammar on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from dvc_monitor.errors import InvalidName

MAX_NAME_LENGTH = 100

# -- patterns (equivalent to gto.constants) ---------------------------------------------

NAME_PATTERN = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
DIRNAME_PATTERN = r"[a-zA-Z0-9\-_./]+"
_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER_PATTERN = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    rf"(?:-(?P<prerelease>{_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)

NAME_RE = re.compile(NAME_PATTERN)
DIRNAME_RE = re.compile(DIRNAME_PATTERN)
SEMVER_RE = re.compile(SEMVER_PATTERN)

NAME_RULE = "use letters, digits, '-', '_' and '/', starting and ending with a letter or digit"
_VERSION_RULE = "use a semantic version like v1.2.3 (optionally with -rc.1 or +build.5)"
_REFERENCE_RULE = "use NAME, NAME@vX.Y.Z, NAME@latest or NAME#STAGE"


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
    if not NAME_RE.fullmatch(name):
        raise InvalidName(f"invalid {what} {name!r}: {NAME_RULE}")
    problem = git_ref_problem(name)
    if problem:
        raise InvalidName(f"invalid {what} {name!r}: {problem}")
    return name


def git_ref_problem(name: str) -> str | None:
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
    if not isinstance(body, str) or not SEMVER_RE.fullmatch(body):
        raise InvalidName(f"invalid version {v!r}: {_VERSION_RULE}")
    return "v" + body


def parse_semver(v: str) -> tuple:
    """A sort key with semver precedence (a prerelease sorts before its release).

    Build metadata is ignored, as semver requires.
    """
    m = SEMVER_RE.fullmatch(validate_version(v)[1:])
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

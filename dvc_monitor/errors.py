"""Every error a user can see. Messages are one line and say what to do next.

The CLI prints ``dvc-monitor: error: <message>`` and exits with ``exit_code``;
nothing below the CLI prints errors or calls ``sys.exit``.
"""

from __future__ import annotations

# How much of a user's input an error message may echo.
ECHO_LIMIT = 200
# How long a whole error line may be (a net for messages that echo tool output).
MESSAGE_LIMIT = 2000


def escape_controls(text: str) -> str:
    """``text`` with every control (non-printable) character written as an escape, so an
    echoed value can neither break the one-line message nor drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """User text as an error message echoes it: quoted, control characters escaped, and
    at most ``limit`` characters of it (the rest is counted, not shown)."""
    text = str(value)
    more = len(text) - limit
    out = repr(text[:limit]) if more > 0 else repr(text)
    return f"{out}... ({more} more characters)" if more > 0 else out


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """An error message made safe to print: one line, no control characters, capped."""
    text = escape_controls(" ".join(str(message).split()))
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


class DvcMonitorError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is the one-line message."""

    exit_code = 1


class UsageError(DvcMonitorError):
    """The command was given something it cannot use (a bad name, flag or path)."""

    exit_code = 2


class InvalidName(UsageError):
    """A model, stage or version name that GTO's grammar or git would not accept."""


class NotAGitRepository(DvcMonitorError):
    pass


class DirtyWorkTree(DvcMonitorError):
    pass


class TemplateError(DvcMonitorError):
    """Scaffolding would clobber files or the template is unknown."""


class SchemaError(DvcMonitorError):
    """A data batch does not fit the model's data schema."""


class ModelFileError(DvcMonitorError):
    """A model file is unsafe, corrupt, or does not match its recorded hash."""


class UnknownModel(DvcMonitorError):
    pass


class UnknownVersion(DvcMonitorError):
    pass


class AmbiguousVersion(DvcMonitorError):
    pass


class RegistryError(DvcMonitorError):
    """A registry write (register, promote, ...) was refused."""


class StalePipeline(RegistryError):
    pass


class MissingLockFile(DvcMonitorError):
    pass


class RepositoryLocked(DvcMonitorError):
    """Another dvc-monitor write is running in this repository."""


class RollbackError(DvcMonitorError):
    """A rollback failed; the repository was restored to its previous state."""


class VerificationError(RollbackError):
    pass


class MissingObjects(DvcMonitorError):
    """Objects a version needs are in neither the local cache nor the remote."""


class GateFailed(DvcMonitorError):
    """A quality gate found a regression beyond its threshold."""


class ExternalCommandError(DvcMonitorError):
    """git or dvc failed; the message carries its last line of output."""

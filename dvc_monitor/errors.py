"""Every error a user can see. Messages are one line and say what to do next.

The CLI prints ``dvc-monitor: error: <message>`` and exits with ``exit_code``;
nothing below the CLI prints errors or calls ``sys.exit``.
"""

from __future__ import annotations


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


class GcRefused(DvcMonitorError):
    """gc would be unsafe now (an unfinished rollback, a version that cannot be rebuilt)."""


def some(items: list[str], n: int = 3) -> str:
    """The first ``n`` items joined, and how many more: for messages that list paths."""
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")

"""Every error a user can see. Messages are one line and say what to do next.

The CLI prints ``dvc-monitor: error: <message>`` and exits with ``exit_code``;
nothing below the CLI prints errors or calls ``sys.exit``. The exit codes
(``EXIT_CODES``, shown by ``--help`` and the README):

0 success; 1 error (git or DVC failed, a rollback failed and was undone, a bug);
2 usage (bad name, flag, revision or path); 3 not found (model, version, repository);
4 refused (dirty tree, stale pipeline, bad data, unsafe model, locked, would clobber);
5 gate failed; 6 gate undecided; 7 not proven (``promote --if-better``); 130 interrupted (the command was undone).
"""

from __future__ import annotations

import errno

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


EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
EXIT_GATE_FAILED = 5
EXIT_GATE_UNDECIDED = 6
EXIT_NOT_PROVEN = 7
EXIT_INTERRUPTED = 130

EXIT_CODES = (
    (EXIT_OK, "success"),
    (EXIT_ERROR, "error: git or DVC failed, a rollback failed and was undone, or a bug"),
    (EXIT_USAGE, "usage: a bad name, flag, revision or path"),
    (EXIT_NOT_FOUND, "not found: no such model, version or repository"),
    (EXIT_REFUSED, "refused: dirty tree, stale pipeline, bad data, unsafe model, locked"),
    (EXIT_GATE_FAILED, "gate failed: a metric regressed beyond its threshold"),
    (EXIT_GATE_UNDECIDED, "gate undecided: the gate could not be evaluated"),
    (EXIT_NOT_PROVEN, "not proven: too few shadowed live windows passed every watch rule"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C, SIGTERM); the command was undone"),
)


class DvcMonitorError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is the one-line message."""

    exit_code = EXIT_ERROR


class Refused(DvcMonitorError):
    """The command would not act on what it found (it changed nothing)."""

    exit_code = EXIT_REFUSED


class NotFound(DvcMonitorError):
    """What the command was asked about does not exist."""

    exit_code = EXIT_NOT_FOUND


class UsageError(DvcMonitorError):
    """The command was given something it cannot use (a bad name, flag or path)."""

    exit_code = EXIT_USAGE


class InvalidName(UsageError):
    """A model, stage or version name that GTO's grammar or git would not accept."""


class NotAGitRepository(NotFound):
    pass


class DirtyWorkTree(Refused):
    pass


class TemplateError(Refused):
    """Scaffolding would clobber files or the template is unknown."""


class SchemaError(Refused):
    """A data batch does not fit the model's data schema."""


class ModelFileError(Refused):
    """A model file is unsafe, corrupt, or does not match its recorded hash."""


class UnsafeModelFile(ModelFileError):
    """A model file that is not a canonical skops archive of trusted types (a pickle,
    an untrusted type): refused without loading it."""


class UnknownModel(NotFound):
    pass


class UnknownVersion(NotFound):
    pass


class AmbiguousVersion(UsageError):
    pass


class RegistryError(Refused):
    """A registry write (register, promote, ...) was refused."""


class SameIdDifferentModel(RegistryError):
    """A new version with a registered version's id but other model bytes."""


class StalePipeline(RegistryError):
    pass


class MissingLockFile(Refused):
    pass


class RepositoryLocked(Refused):
    """Another dvc-monitor write is running in this repository."""


class RollbackError(DvcMonitorError):
    """A rollback failed; the repository was restored to its previous state."""


class VerificationError(RollbackError):
    pass


class MissingObjects(DvcMonitorError):
    """Objects a version needs are in neither the local cache nor the remote."""


class GateFailed(DvcMonitorError):
    """A quality gate found a regression beyond its threshold."""

    exit_code = EXIT_GATE_FAILED


class GateUndecided(DvcMonitorError):
    """A quality gate could not decide (a metric it needs could not be computed, or a model
    dvc-monitor did not train): neither pass nor fail."""

    exit_code = EXIT_GATE_UNDECIDED


class NotProven(DvcMonitorError):
    """``promote --if-better``: the candidate has not passed every ``watch:`` rule on enough
    shadowed live windows."""

    exit_code = EXIT_NOT_PROVEN


class RetrainFailed(DvcMonitorError):
    """``watch --retrain`` could not make a candidate (the repository is as it was)."""


class TrainerMismatch(DvcMonitorError):
    """trainer.json records another trainer (stage code, library versions) than this install."""


class ExternalCommandError(DvcMonitorError):
    """git or dvc failed; the message carries its last line of output."""


class WorkerFailed(DvcMonitorError):
    """A Dask worker failed on a partition (or died); the message names the partition."""


class GcRefused(Refused):
    """gc would be unsafe now (an unfinished rollback, a version that cannot be rebuilt)."""


def some(items: list[str], n: int = 3) -> str:
    """The first ``n`` items joined, and how many more: for messages that list paths."""
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


class WatchActionFailed(DvcMonitorError):
    """``watch --rollback`` decided but could not act; ``result`` is the decision."""

    def __init__(self, message: str, result: object, exit_code: int = 1):
        super().__init__(message)
        self.result = result
        self.exit_code = exit_code


def disk_full(exc: BaseException | None) -> BaseException | None:
    """The "no space left" failure in ``exc`` or its causes (an ``OSError`` ENOSPC/EDQUOT,
    or SQLite's "database or disk is full" from DVC's caches), or None."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        if type(exc).__name__ == "OperationalError" and "disk is full" in str(exc):
            return exc  # sqlite3, not imported here
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def disk_full_message(exc: BaseException, then: str = "run the command again") -> str:
    """One line for a full disk: where, and what to do."""
    where = getattr(exc, "filename", None)
    at = f" (writing {shown(where)})" if where else ""
    return f"no space left on the device{at}: free some space (df -h shows it), then {then}"

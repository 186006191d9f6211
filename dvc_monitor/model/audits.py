"""skops' type audit of a model archive, remembered by the archive's content digest.

``skops.io.get_untrusted_types`` reads schema.json and names the types an archive would
build. Running it takes milliseconds, but importing skops (and with it scikit-learn and
scipy) takes seconds, which ``register`` and a rollback's verification would pay just
to check a file the trainer wrote moments before. The answer is a pure function of the
archive's content and of the installed skops, scikit-learn and numpy, so it is stored
under that key (``.git/dvc-monitor/skops-audit-1/``) and never needs invalidating:

* the trainer records the audit of the file it has just written (skops is loaded then);
* ``inspect_model_file`` looks the audit up by the file's content digest and runs skops
  only when it is missing, then stores it.

Only skops' raw list is stored; the trust decision (``TRUSTED_TYPES``), the format, the
canonical form and the md5 are checked afresh every time. A store that cannot be read
or written is not used. One small JSON file per key, written through a temporary file
and ``os.replace``, so a reader never sees half a record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

FORMAT = 1
_LIBS = ("skops", "scikit-learn", "numpy")  # what decides get_untrusted_types' answer


def _installed() -> dict[str, str]:
    out = {}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "none"
    return out


class TypeAudits:
    """Stored results of ``skops.io.get_untrusted_types``, keyed by content digest and the
    installed library versions."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self._libs: dict[str, str] | None = None

    @classmethod
    def for_repo(cls, path: str | os.PathLike) -> "TypeAudits":
        """The store of the git repository containing ``path`` (none outside git)."""
        from dvc_monitor.repo.git import GitRepo

        common = GitRepo(path).common_dir()
        return cls(common / "dvc-monitor" / f"skops-audit-{FORMAT}" if common else None)

    def libs(self) -> dict[str, str]:
        if self._libs is None:
            self._libs = _installed()
        return self._libs

    def _path(self, digest: str) -> Path | None:
        if self.directory is None:
            return None
        key = json.dumps([digest, self.libs()], sort_keys=True).encode()
        return self.directory / f"{hashlib.sha256(key).hexdigest()[:40]}.json"

    def get(self, digest: str) -> tuple[str, ...] | None:
        """skops' untrusted types for content ``digest``, or None if not stored."""
        path = self._path(digest)
        if path is None:
            return None
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("digest") != digest or doc.get("libs") != self.libs():
            return None
        untrusted = doc.get("untrusted")
        if not isinstance(untrusted, list) or not all(isinstance(t, str) for t in untrusted):
            return None
        return tuple(untrusted)

    def put(self, digest: str, untrusted: tuple[str, ...] | list[str]) -> None:
        path = self._path(digest)
        if path is None:
            return
        doc = {"digest": digest, "libs": self.libs(), "untrusted": list(untrusted)}
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, path)
        except OSError:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

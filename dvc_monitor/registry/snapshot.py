"""The registry's listings (``versions``, ``history``, ``show`` of every model), kept under
``.git`` and keyed by the object id of every tag.

A listing is a pure function of the tags (each tag object names its commit, and the facts
of a commit never change) and of the code that computes it. Its key is a digest of every
``refs/tags`` name with its object id, the arguments, and the source of the modules that
shape the rows, so a stored listing is either exactly what a fresh computation would
print or not used. A new, moved or deleted tag gives a new key, and the listing is
computed again (through the fact cache, so only new commits are read).

A read that hits costs one ``for-each-ref`` of names and ids and one file read, whatever
the number of versions. Layout: ``.git/dvc-monitor/views-<format>/<view>-<args>.jsonl``,
line 1 the key, line 2 the warnings (a JSON list), then one row per line as JSON text.
Files are replaced whole (temporary file and ``os.replace``); a file that cannot be read
or written is simply not used. The 64 most recently written listings are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dvc_monitor.repo.git import GitRepo

FORMAT = 1
_DIR = f"views-{FORMAT}"
_KEEP = 64  # stored listings kept (the most recently written); ``show REF`` makes one per REF
# the modules whose code decides what a listing holds (their source is part of the key)
_SHAPERS = ("registry/snapshot.py", "registry/state.py", "registry/values.py",
            "registry/tags.py", "registry/facts.py", "registry/identity.py",
            "registry/factcache.py", "registry/blocks.py", "registry/overview.py",
            "model/revision.py", "repo/dvcfiles.py", "names.py")


@dataclass(frozen=True)
class Listing:
    """Rows of a registry listing (each the ``to_json()`` of a version, event or model,
    as JSON text) and the warnings that go with them."""

    view: str
    rows: tuple[str, ...]
    warnings: tuple[str, ...]
    cached: bool = False  # answered from the stored listing

    def dicts(self) -> list[dict]:
        return [json.loads(r) for r in self.rows]

    def to_json(self) -> list[dict]:
        return self.dicts()

    def json_text(self) -> str:
        """The rows as a JSON list, one row per line (no re-encoding)."""
        if not self.rows:
            return "[]\n"
        return "[\n  " + ",\n  ".join(self.rows) + "\n]\n"


Compute = Callable[[object], tuple[list[dict], list[str]]]


def listing(root: str | Path, view: str, args: dict, compute: Compute,
            unpublished: bool = False) -> Listing:
    """The listing ``view`` with ``args``: stored, or ``compute(registry)`` then stored.

    ``compute`` gets a loaded ``Registry`` and returns (rows, warnings); whatever it
    raises (an unknown model) propagates and nothing is stored. ``unpublished`` adds the
    warning about stage tags not on the origin, from the same ref read (never stored:
    it depends on the mirror refs, not only on the tags).
    """
    from dvc_monitor.registry.publish import MIRROR, unpublished_in, unpublished_warning

    git = GitRepo.discover(root)
    path = _path(git, view, args)
    oids = git.ref_oids("refs/tags", MIRROR)
    fresh = unpublished_warning(unpublished_in(oids)) if unpublished else None
    extra = (fresh,) if fresh else ()
    if path is not None:
        stored = _read(path, _key(view, args, _pairs_from_oids(oids)))
        if stored is not None:
            return Listing(view, stored[1], stored[0] + extra, cached=True)
    from dvc_monitor.registry.state import Registry

    refs = git.tags()
    rows, warnings = compute(Registry.from_tags(git, refs))
    texts = tuple(json.dumps(r, ensure_ascii=False) for r in rows)
    result = Listing(view, texts, tuple(warnings))
    if path is not None:  # keyed by the tags this computation actually read
        _write(path, _key(view, args, sorted((r.name, r.oid) for r in refs)), result)
    return Listing(view, texts, tuple(warnings) + extra)


# -- the key and the file -----------------------------------------------------------------


def _pairs_from_oids(oids: dict[str, str]) -> list[tuple[str, str]]:
    return sorted((ref[len("refs/tags/"):], oid) for ref, oid in oids.items()
                  if ref.startswith("refs/tags/"))


def _code_digest() -> str:
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in _SHAPERS:
        try:
            h.update(rel.encode() + b"\0" + (package / rel).read_bytes() + b"\0")
        except OSError:
            h.update(rel.encode() + b"\0missing\0")
    return h.hexdigest()


def _key(view: str, args: dict, pairs: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT, view, args, _code_digest()], sort_keys=True).encode())
    for name, oid in pairs:
        h.update(f"{name}\0{oid}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _path(git: GitRepo, view: str, args: dict) -> Path | None:
    git_dir = git.common_dir()
    if git_dir is None:
        return None
    arg_key = hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    return git_dir / "dvc-monitor" / _DIR / f"{view}-{arg_key}.jsonl"


def _read(path: Path, key: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    try:
        with open(path, "rb") as f:
            if f.readline().rstrip(b"\n").decode("ascii", "replace") != key:
                return None
            rest = f.read()
    except OSError:
        return None
    if not rest.endswith(b"\n"):  # torn: not ours to trust
        return None
    try:
        lines = rest.decode("utf-8").split("\n")[:-1]
        warnings = json.loads(lines[0])
    except (UnicodeDecodeError, ValueError, IndexError):
        return None
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        return None
    return tuple(warnings), tuple(lines[1:])


def _write(path: Path, key: str, result: Listing) -> None:
    body = "".join([key, "\n", json.dumps(list(result.warnings), ensure_ascii=False), "\n",
                    *(row + "\n" for row in result.rows)])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body.encode("utf-8", "surrogateescape"))
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _prune(path.parent)
    except OSError:
        return


def _prune(folder: Path) -> None:
    """Keep the ``_KEEP`` most recently written listings."""
    files = [(p.stat().st_mtime_ns, p) for p in folder.glob("*.jsonl")]
    if len(files) > _KEEP:
        for _, old in sorted(files)[: len(files) - _KEEP]:
            _unlink_quietly(str(old))


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- the listings -------------------------------------------------------------------------


def versions_listing(root: str | Path, name: str | None = None,
                     include_inactive: bool = False) -> Listing:
    """``versions [NAME] [--all]``: a row per version (``ModelVersion.to_json``)."""
    from dvc_monitor.names import validate_artifact_name

    if name is not None:
        validate_artifact_name(name)

    def compute(reg) -> tuple[list[dict], list[str]]:
        warnings = list(reg.warnings)
        if name is not None:
            reg.versions(name)  # unknown model: one-line error
            names = [name]
            if reg.is_deprecated(name) and not include_inactive:
                warnings.append(f"{name} is deprecated (register a version to revive it)")
        else:
            names = reg.models(include_deprecated=include_inactive)
        warnings += reg.check_blocks([e for n in names for e in reg.history(n)])
        rows = []
        for n in names:
            deprecated = reg.is_deprecated(n)
            for mv in reg.versions(n, include_inactive=include_inactive):
                if mv.id is None and mv.warning:
                    warnings.append(f"{n} {mv.version}: no version id ({mv.warning})")
                rows.append(mv.to_json(deprecated))
        return rows, warnings

    return listing(root, "versions", {"name": name, "all": include_inactive}, compute,
                   unpublished=True)


def history_listing(root: str | Path, name: str | None = None) -> Listing:
    """``history [NAME]``: a row per registry event, oldest first (``Event.to_json``)."""
    from dvc_monitor.names import validate_artifact_name

    if name is not None:
        validate_artifact_name(name)

    def compute(reg) -> tuple[list[dict], list[str]]:
        events = reg.history(name)
        return [e.to_json() for e in events], [*reg.warnings, *reg.check_blocks(events)]

    return listing(root, "history", {"name": name}, compute)


def models_listing(root: str | Path) -> Listing:
    """``show`` with no NAME: a row per model (``ModelSummary.to_json``)."""
    from dvc_monitor.registry.overview import summarize

    def compute(reg) -> tuple[list[dict], list[str]]:
        return [m.to_json() for m in summarize(reg)], list(reg.warnings)

    return listing(root, "models", {}, compute)


def detail_listing(root: str | Path, ref: str) -> Listing:
    """``show REF``: one row, ``VersionDetail.to_json``. What it says of the data partitions
    depends on the local DVC cache, not on the tags, so that part is read fresh."""
    from dvc_monitor.registry.show import data_partitions, show

    def compute(reg) -> tuple[list[dict], list[str]]:
        detail = show(reg, ref)
        doc = detail.to_json()
        doc["data"] = {path: {"md5": entry["md5"]} for path, entry in doc["data"].items()}
        doc["notes"] = []
        return [doc], [*reg.warnings, *reg.check_blocks(detail.version.events)]

    stored = listing(root, "detail", {"ref": ref}, compute, unpublished=True)
    doc = json.loads(stored.rows[0])
    doc["data"], doc["notes"] = data_partitions(
        GitRepo.discover(root).root, doc["name"], doc["commit"],
        {p: e["md5"] for p, e in doc["data"].items()})
    return Listing(stored.view, (json.dumps(doc, ensure_ascii=False),), stored.warnings,
                   stored.cached)

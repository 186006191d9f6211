"""A cache of facts (identity, metrics, paths) of a model at a commit, under ``.git``.

The facts of model NAME at commit C are a pure function of C's tree (``read_facts``
reads only files at C), so an entry keyed by (NAME, C) is valid for ever and never
needs invalidating. The directory name carries the id recipe and the record format, so
a dvc-monitor that computes ids differently starts a fresh cache.

Layout: ``.git/dvc-monitor/facts-<format>/<key of NAME>.jsonl``, one JSON record per
line, ``{"c": commit, "f": facts}``. Writers append whole lines with one ``O_APPEND``
write (two writers never interleave; at worst a commit is stored twice). Readers skip a
line that does not parse (a torn or corrupted tail); a file with bad lines is rewritten
from its good lines through a temporary file and ``os.replace``, so no reader ever sees
half a file. A cache that cannot be read or written is simply not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from dvc_monitor.registry.facts import Facts, read_facts
from dvc_monitor.registry.identity import RECIPE, VersionIdentity, is_version_id
from dvc_monitor.repo.git import GitRepo

FORMAT = 2  # 2: an adopted model's metrics are the files its pipeline declares
_FEW = 8  # up to this many commits are looked up without parsing the whole file
_OID_RE = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_DIR = f"facts-{FORMAT}-" + hashlib.sha1(RECIPE.encode()).hexdigest()[:8]


class FactCache:
    """Facts of models at commits: read from the cache file, computed (and stored) if missing."""

    def __init__(self, git: GitRepo):
        self.git = git
        self._dir: Path | None | bool = False  # False: not looked up yet
        self._loaded: dict[str, dict[str, Facts]] = {}

    # -- public -------------------------------------------------------------------------

    def facts(self, name: str, commits: list[str]) -> dict[str, Facts]:
        """Facts of ``name`` at each commit; computes only the commits not cached yet."""
        wanted = list(dict.fromkeys(commits))
        if name not in self._loaded and len(wanted) <= _FEW:
            known = self._peek(name, wanted)  # a write or one lookup: never parse every line
        else:
            known = self._load(name)
        missing = [c for c in wanted if c not in known]
        if missing:
            fresh = read_facts(self.git, name, missing)
            store = {c: f for c, f in fresh.items() if _is_commit_id(c)}
            known.update(store)
            self._append(name, store)
            return {c: known.get(c) or fresh[c] for c in commits}
        return {c: known[c] for c in commits}

    # -- the file -----------------------------------------------------------------------

    def directory(self) -> Path | None:
        if self._dir is False:
            self._dir = self.git.common_dir()
            if self._dir is not None:
                self._dir = self._dir / "dvc-monitor" / _DIR
        return self._dir  # type: ignore[return-value]

    def path(self, name: str) -> Path | None:
        d = self.directory()
        if d is None:
            return None
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:40]
        return d / f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:10]}.jsonl"

    def _load(self, name: str) -> dict[str, Facts]:
        if name in self._loaded:
            return self._loaded[name]
        known: dict[str, Facts] = {}
        self._loaded[name] = known
        path = self.path(name)
        if path is None:
            return known
        try:
            raw = path.read_bytes()
        except OSError:
            return known
        lines = raw.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline; else a torn line
        bad = 0
        records = _parse_all(lines)
        if records is None:  # something is off: go line by line
            records = []
            for line in lines:
                try:
                    records.append(json.loads(line))
                except (ValueError, UnicodeDecodeError, RecursionError):
                    records.append(None)
        for rec in records:
            got = _decode(rec)
            if got is None:
                bad += 1
                continue
            known[got[0]] = got[1]
        if bad or (tail and not _is_prefix_of_record(tail)):
            self._rewrite(path, known)
        return known

    def _peek(self, name: str, commits: list[str]) -> dict[str, Facts]:
        """The cached facts of a few commits, found by searching the file's bytes."""
        path = self.path(name)
        found: dict[str, Facts] = {}
        try:
            raw = path.read_bytes() if path is not None else b""
        except OSError:
            return found
        for c in commits:
            if not _is_commit_id(c):
                continue
            key = b'{"c":"' + c.encode() + b'"'
            at = raw.rfind(b"\n" + key)
            start = at + 1 if at >= 0 else (0 if raw.startswith(key) else -1)
            end = raw.find(b"\n", start) if start >= 0 else -1
            if end < 0:
                continue
            try:
                got = _decode(json.loads(raw[start:end]))
            except (ValueError, UnicodeDecodeError, RecursionError):
                got = None
            if got is not None and got[0] == c:
                found[c] = got[1]
        return found

    def _append(self, name: str, facts: dict[str, Facts]) -> None:
        path = self.path(name)
        if path is None:
            return
        lines = []
        for commit, f in facts.items():
            line = _encode(commit, f)
            if line is not None:
                lines.append(line)
        if not lines:
            return
        data = ("".join(lines)).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            finally:
                os.close(fd)
        except OSError:
            pass  # a read-only repository: the cache is an optimisation only

    def _rewrite(self, path: Path, known: dict[str, Facts]) -> None:
        """Replace a damaged file by its good records (atomically)."""
        text = "".join(filter(None, (_encode(c, f) for c, f in known.items())))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".facts-", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            pass


# -- helpers ----------------------------------------------------------------------------


def _is_commit_id(text: object) -> bool:
    """A full object id (a revision like HEAD moves: its facts are never stored)."""
    return isinstance(text, str) and _OID_RE.fullmatch(text) is not None


def _parse_all(lines: list[bytes]) -> list | None:
    """Every line as JSON in one parse (the fast path), or None if any line is bad."""
    if not lines:
        return []
    try:
        parsed = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return parsed if isinstance(parsed, list) and len(parsed) == len(lines) else None


def _is_prefix_of_record(tail: bytes) -> bool:
    """A last line without its newline: a concurrent append still being written."""
    return tail.startswith(b'{"c":')


def _encode(commit: str, f: Facts) -> str | None:
    ident = f.identity
    rec = {"c": commit, "f": {
        "i": None if ident is None else {
            "id": ident.id, "params": ident.params, "deps": ident.deps, "cmds": ident.cmds,
            "outs": ident.outs, "model_path": ident.model_path, "model_md5": ident.model_md5,
            "stages": list(ident.stages)},
        "m": f.metrics, "mp": f.model_path, "lp": f.lock_path, "e": f.error,
        "d": f.declared, "fl": f.found_lock}}
    try:
        line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if json.loads(line) != rec:  # non-string keys, tuples...: not stored, recomputed
        return None
    return line + "\n"


def _decode(rec: object) -> tuple[str, Facts] | None:
    try:
        commit, f = rec["c"], rec["f"]  # type: ignore[index]
        if not _is_commit_id(commit):
            return None
        i = f["i"]
        identity = None
        if i is not None:
            if not is_version_id(i["id"]) or not all(
                    isinstance(i[k], dict) for k in ("params", "deps", "cmds", "outs")):
                return None
            identity = VersionIdentity(
                id=i["id"], params=i["params"], deps=i["deps"], cmds=i["cmds"],
                outs=i["outs"], model_path=i["model_path"], model_md5=i["model_md5"],
                stages=tuple(i["stages"]))
        facts = Facts(identity, f["m"], f["mp"], f["lp"], f["e"], bool(f["d"]),
                       bool(f["fl"]))
    except (KeyError, TypeError):
        return None
    if not isinstance(facts.metrics, dict):
        return None
    return commit, facts

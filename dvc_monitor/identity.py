"""The version id: what defines a model, read from ``dvc.lock``, hashed canonically.

A version of model NAME is a commit at which the model file is the output of an
up-to-date pipeline. Its id is::

    "sha256:" + sha256(canonical_json({
        "recipe": "dvc-monitor/1",
        "params": {params file: {key: value}},     # merged over the lineage stages
        "deps":   {path: md5},                      # data and code the lineage reads
        "cmds":   {stage: cmd},                     # lineage stage commands
    }))

where the *lineage* is the stage whose outs include the model, plus (recursively) every
stage of the same ``dvc.lock`` that produces one of their deps. Deps produced by a
lineage stage are left out (their producer's inputs are in the id instead); outputs,
metrics and downstream stages (evaluate) are not part of the id. See docs/identity.md.

Reading is fast and light: ``dvc.lock`` files are parsed by a small strict parser for
the YAML subset DVC writes; anything else falls back to ruamel.yaml with DVC's own
settings (``YAML(typ="safe")``), so the values are always typed as DVC reads them.
Nothing here imports DVC.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from posixpath import normpath
from typing import Any

from dvc_monitor.errors import DvcMonitorError, MissingLockFile

ID_PREFIX = "sha256:"
RECIPE = "dvc-monitor/1"
SHORT_LEN = 12
HEX_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VersionIdentity:
    """What defines one model version, as recorded in ``dvc.lock``."""

    id: str  # "sha256:<64 hex>"
    params: dict  # {"params.yaml": {"prepare": {...}, "train": {...}}}
    deps: dict  # path -> md5 of every dep not produced by a lineage stage
    cmds: dict  # lineage stage -> cmd
    outs: dict  # path -> md5 of every out of the lineage stages
    model_path: str  # relative to the dvc.yaml folder
    model_md5: str | None
    stages: tuple = field(default_factory=tuple)  # lineage stages, producers first

    @property
    def hex(self) -> str:
        return self.id[len(ID_PREFIX):]

    @property
    def short(self) -> str:
        return short_id(self.id)

    @property
    def data_deps(self) -> dict:
        """Deps that are directories (``.dir`` md5): the partitioned data sets."""
        return {p: m for p, m in self.deps.items() if m and m.endswith(".dir")}


def short_id(version_id: str | None) -> str | None:
    """The first 12 hex digits of a version id (what tables show)."""
    if not version_id:
        return None
    return version_id[len(ID_PREFIX):][:SHORT_LEN] if version_id.startswith(ID_PREFIX) \
        else version_id[:SHORT_LEN]


def is_version_id(text: str) -> bool:
    return isinstance(text, str) and text.startswith(ID_PREFIX) and bool(
        HEX_RE.fullmatch(text[len(ID_PREFIX):]))


# -- the id -----------------------------------------------------------------------------


def canonical_payload(params: dict, deps: dict, cmds: dict) -> bytes:
    """The exact bytes that are hashed (documented in docs/identity.md)."""
    doc = {"recipe": RECIPE, "params": params, "deps": deps, "cmds": cmds}
    return json.dumps(
        _canon(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def compute_id(params: dict, deps: dict, cmds: dict) -> str:
    return ID_PREFIX + hashlib.sha256(canonical_payload(params, deps, cmds)).hexdigest()


def _canon(value: Any) -> Any:
    """JSON-ready canonical form: str keys, lists for sequences, special floats as text."""
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"float": "nan"}
        if math.isinf(value):
            return {"float": "inf" if value > 0 else "-inf"}
        return value
    if hasattr(value, "isoformat"):  # YAML timestamps
        return {"timestamp": value.isoformat()}
    return str(value)


# -- from dvc.lock ----------------------------------------------------------------------


def identity_from_lock(lock: Any, model_path: str, source: str = "dvc.lock") -> VersionIdentity:
    """The identity of the model at ``model_path`` (relative to the lock's folder).

    ``lock`` is the text, bytes or parsed dict of a ``dvc.lock``. Raises
    ``MissingLockFile`` for None or an empty lock, ``DvcMonitorError`` for a malformed
    lock or one where no stage produces ``model_path``.
    """
    data = load_lock(lock, source)
    stages = data.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise DvcMonitorError(f"{source} has no stages; run 'dvc repro' and commit")
    model = _norm(model_path)

    producers: dict[str, str] = {}  # out path -> stage
    parsed: dict[str, dict] = {}
    for stage, body in stages.items():
        if not isinstance(body, dict):
            raise DvcMonitorError(f"{source} is malformed: stage {stage!r} is not a mapping")
        entry = {
            "cmd": _cmd(body.get("cmd")),
            "deps": _entries(body.get("deps"), source, stage, "deps"),
            "outs": _entries(body.get("outs"), source, stage, "outs"),
            "params": body.get("params") or {},
        }
        if not isinstance(entry["params"], dict):
            raise DvcMonitorError(f"{source} is malformed: params of stage {stage!r}")
        parsed[str(stage)] = entry
        for path, _ in entry["outs"]:
            producers.setdefault(path, str(stage))

    top = _producer(model, producers)
    if top is None:
        raise DvcMonitorError(
            f"no stage in {source} produces {model_path}; is the model an output of the pipeline?"
        )

    # lineage: the producer of the model and, recursively, the producers of their deps
    lineage: list[str] = []
    seen: set[str] = set()

    def visit(stage: str, trail: tuple[str, ...]) -> None:
        if stage in seen:
            return
        if stage in trail:  # a cycle: DVC refuses these, but never loop
            return
        for path, _ in parsed[stage]["deps"]:
            prod = _producer(path, producers)
            if prod is not None and prod != stage:
                visit(prod, trail + (stage,))
        seen.add(stage)
        lineage.append(stage)

    visit(top, ())

    lineage_outs: dict[str, str] = {}
    for stage in lineage:
        for path, md5 in parsed[stage]["outs"]:
            lineage_outs[path] = md5
    lineage_set = set(lineage)

    params: dict = {}
    deps: dict[str, str] = {}
    cmds: dict[str, str] = {}
    for stage in lineage:
        entry = parsed[stage]
        cmds[stage] = entry["cmd"]
        for fname, values in entry["params"].items():
            target = params.setdefault(str(fname), {})
            if isinstance(values, dict):
                target.update(values)
        for path, md5 in entry["deps"]:
            prod = _producer(path, producers)
            if prod is not None and prod in lineage_set:
                continue
            if path in deps and deps[path] != md5:
                md5 = "+".join(sorted({deps[path], md5}))
            deps[path] = md5

    params = {k: params[k] for k in sorted(params)}
    deps = {k: deps[k] for k in sorted(deps)}
    return VersionIdentity(
        id=compute_id(params, deps, cmds),
        params=params,
        deps=deps,
        cmds=cmds,
        outs=lineage_outs,
        model_path=model,
        model_md5=lineage_outs.get(model) or _inside_md5(model, lineage_outs),
        stages=tuple(lineage),
    )


def lock_model_path(lock: Any, model_path: str, source: str = "dvc.lock") -> bool:
    """True when a stage of ``lock`` produces ``model_path``."""
    try:
        data = load_lock(lock, source)
    except DvcMonitorError:
        return False
    outs = set()
    for body in (data.get("stages") or {}).values():
        if isinstance(body, dict):
            for item in body.get("outs") or []:
                if isinstance(item, dict) and "path" in item:
                    outs.add(_norm(str(item["path"])))
    return _producer(_norm(model_path), {o: o for o in outs}) is not None


def _cmd(cmd: Any) -> str:
    if isinstance(cmd, list):
        return " && ".join(str(c) for c in cmd)
    return "" if cmd is None else str(cmd)


def _entries(items: Any, source: str, stage: str, what: str) -> list[tuple[str, str]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise DvcMonitorError(f"{source} is malformed: {what} of stage {stage!r} is not a list")
    result = []
    for item in items:
        if not isinstance(item, dict) or "path" not in item:
            raise DvcMonitorError(f"{source} is malformed: an entry of {what} of stage {stage!r}")
        result.append((_norm(str(item["path"])), _hash_of(item)))
    return result


def _hash_of(item: dict) -> str:
    for key in ("md5", "etag", "checksum", "sha256"):
        if item.get(key):
            return str(item[key])
    return ""


def _norm(path: str) -> str:
    path = path.replace("\\", "/")
    norm = normpath(path)
    return "" if norm == "." else norm


def _producer(path: str, producers: dict[str, str]) -> str | None:
    """The stage whose out is ``path`` or a folder containing it."""
    if path in producers:
        return producers[path]
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        prefix = "/".join(parts[:i])
        if prefix in producers:
            return producers[prefix]
    return None


def _inside_md5(path: str, outs: dict[str, str]) -> str | None:
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        prefix = "/".join(parts[:i])
        if prefix in outs:
            return outs[prefix]
    return None


# -- parsing ----------------------------------------------------------------------------


def load_lock(lock: Any, source: str = "dvc.lock") -> dict:
    """A ``dvc.lock`` as a dict; ``MissingLockFile`` for None or empty input."""
    if isinstance(lock, dict):
        if not lock:
            raise MissingLockFile(f"{source} is empty; run 'dvc repro' and commit")
        return lock
    if lock is None:
        raise MissingLockFile(f"{source} not found; run 'dvc repro' and commit it")
    if isinstance(lock, (bytes, bytearray)):
        try:
            lock = bytes(lock).decode("utf-8")
        except UnicodeDecodeError:
            raise DvcMonitorError(f"{source} is not UTF-8 text") from None
    if not isinstance(lock, str):
        raise TypeError(f"lock must be text, bytes or dict, got {type(lock).__name__}")
    if not lock.strip():
        raise MissingLockFile(f"{source} is empty; run 'dvc repro' and commit")
    data = parse_yaml(lock, source)
    if not isinstance(data, dict):
        raise DvcMonitorError(f"{source} is malformed: expected a mapping at the top")
    if not data:
        raise MissingLockFile(f"{source} is empty; run 'dvc repro' and commit")
    return data


def parse_yaml(text: str, source: str = "YAML file") -> Any:
    """Parse YAML as DVC does (ruamel, YAML 1.2, safe), fast for the usual subset."""
    try:
        return _FastYaml(text).parse()
    except _Unsupported:
        pass
    return _ruamel_load(text, source)


def _ruamel_load(text: str, source: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml import YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        line = " ".join(str(exc).split())[:160]
        raise DvcMonitorError(f"{source} is not valid YAML: {line}") from None
    except Exception as exc:  # ruamel raises a few non-YAMLError errors on odd input
        raise DvcMonitorError(f"{source} is not valid YAML: {type(exc).__name__}") from None


class _Unsupported(Exception):
    """The fast parser does not handle this input; use ruamel."""


_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[1-9][0-9]*[eE][-+]?[0-9]+)")
_NULLS = frozenset({"~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_PLAIN_START_RE = re.compile(r"[A-Za-z_/]")
_HASH_RE = re.compile(r"[0-9a-f]{32,64}(?:\.dir)?")
_NUMERIC_CHARS = frozenset("0123456789eE.+-_")
_SPECIAL_WORDS = _NULLS | _TRUE | _FALSE


class _FastYaml:
    """A strict parser for block-style YAML as ruamel writes it (DVC's lock files).

    Raises ``_Unsupported`` on anything outside the subset, so it never guesses.
    """

    def __init__(self, text: str):
        lines = []
        for raw in text.split("\n"):
            if "\t" in raw or "\r" in raw:
                raise _Unsupported
            stripped = raw.lstrip(" ")
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith(("---", "...", "%")) and len(raw) == len(stripped):
                raise _Unsupported
            lines.append((len(raw) - len(stripped), stripped.rstrip(" ")))
        self.lines = lines
        self.n = len(lines)

    def parse(self) -> Any:
        if not self.lines:
            return None
        value, i = self._node(0, self.lines[0][0])
        if i != self.n:
            raise _Unsupported
        return value

    def _node(self, i: int, indent: int) -> tuple[Any, int]:
        ind, content = self.lines[i]
        if ind != indent:
            raise _Unsupported
        if content == "-" or content.startswith("- "):
            return self._seq(i, indent)
        return self._map(i, indent)

    def _seq(self, i: int, indent: int) -> tuple[list, int]:
        items = []
        lines = self.lines
        while i < self.n:
            ind, content = lines[i]
            if ind < indent or (ind == indent and not (
                    content == "-" or content.startswith("- "))):
                break  # the parent mapping goes on (a sequence may sit at its key's indent)
            if ind > indent:
                raise _Unsupported
            if content == "-":
                i += 1
                if i < self.n and lines[i][0] > indent:
                    value, i = self._node(i, lines[i][0])
                else:
                    value = None
                items.append(value)
                continue
            rest = content[2:]
            stripped = rest.lstrip(" ")
            col = indent + 2 + (len(rest) - len(stripped))
            if stripped.startswith(("- ", "? ")) or stripped == "-":
                raise _Unsupported
            if self._is_map_entry(stripped):
                lines[i] = (col, stripped)
                value, i = self._map(i, col)
            else:
                value = self._scalar(stripped)
                i += 1
                if i < self.n and lines[i][0] > indent:
                    raise _Unsupported  # a multi-line scalar
            items.append(value)
        return items, i

    @staticmethod
    def _is_map_entry(content: str) -> bool:
        if content.startswith(("'", '"')):
            if ": " in content or content.endswith(":"):
                raise _Unsupported  # a quoted key
            return False
        return ": " in content or content.endswith(":")

    def _map(self, i: int, indent: int) -> tuple[dict, int]:
        result: dict = {}
        lines = self.lines
        while i < self.n:
            ind, content = lines[i]
            if ind < indent:
                break
            if ind > indent or content == "-" or content.startswith("- "):
                raise _Unsupported
            key, rest = self._split_key(content)
            if key in result:
                raise _Unsupported  # duplicate keys: let ruamel report it
            i += 1
            if rest:
                result[key] = self._scalar(rest)
                if i < self.n and lines[i][0] > indent:
                    raise _Unsupported  # a multi-line scalar
                continue
            if i < self.n and lines[i][0] > indent:
                result[key], i = self._node(i, lines[i][0])
            elif i < self.n and lines[i][0] == indent and (
                    lines[i][1] == "-" or lines[i][1].startswith("- ")):
                result[key], i = self._seq(i, indent)
            else:
                result[key] = None
        return result, i

    def _split_key(self, content: str) -> tuple[str, str]:
        if content.endswith(":") and ": " not in content:
            key, rest = content[:-1], ""
        else:
            pos = content.find(": ")
            if pos < 0:
                raise _Unsupported
            key, rest = content[:pos], content[pos + 2:].lstrip(" ")
        if not _PLAIN_KEY_RE.fullmatch(key) or key in _SPECIAL_WORDS:
            raise _Unsupported
        return key, rest

    def _scalar(self, s: str) -> Any:
        c = s[0]
        if c == "'":
            if len(s) < 2 or not s.endswith("'"):
                raise _Unsupported
            body = s[1:-1]
            if "'" in body.replace("''", ""):
                raise _Unsupported
            return body.replace("''", "'")
        if c == '"':
            if len(s) < 2 or not s.endswith('"') or "\\" in s:
                raise _Unsupported
            body = s[1:-1]
            if '"' in body:
                raise _Unsupported
            return body
        if s == "[]":
            return []
        if s == "{}":
            return {}
        if " #" in s:
            raise _Unsupported
        if s in _NULLS:
            return None
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        if _INT_RE.fullmatch(s):
            return int(s)
        if _FLOAT_RE.fullmatch(s):
            return float(s)
        if _PLAIN_START_RE.match(s) and ": " not in s and not s.endswith(":"):
            return s
        if _HASH_RE.fullmatch(s) and not set(s) <= _NUMERIC_CHARS:
            return s
        raise _Unsupported

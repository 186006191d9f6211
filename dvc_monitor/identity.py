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


def canonical_payload(params: dict, deps: dict, cmds: dict, plain: bool = False) -> bytes:
    """The exact bytes that are hashed (documented in docs/identity.md).

    ``plain`` promises that every key is a string and every value JSON-native (what the
    fast lock reader produces): the canonicalising pass is then skipped, unless a
    non-finite float turns up.
    """
    doc = {"recipe": RECIPE, "params": params, "deps": deps, "cmds": cmds}
    if plain:
        try:
            return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode("utf-8")
        except (ValueError, TypeError):
            pass
    return json.dumps(
        _canon(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def compute_id(params: dict, deps: dict, cmds: dict, plain: bool = False) -> str:
    return ID_PREFIX + hashlib.sha256(canonical_payload(params, deps, cmds, plain)).hexdigest()


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
    data, plain = _load_lock(lock, source)
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
        id=compute_id(params, deps, cmds, plain),
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
    if "\\" not in path and "." not in path[:2] and "//" not in path and "/." not in path \
            and not path.endswith("/"):
        return path  # already normal (the usual case)
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
    return _load_lock(lock, source)[0]


def _load_lock(lock: Any, source: str) -> tuple[dict, bool]:
    """(the lock as a dict, whether the fast reader produced it)."""
    if isinstance(lock, dict):
        if not lock:
            raise MissingLockFile(f"{source} is empty; run 'dvc repro' and commit")
        return lock, False
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
    try:
        data, plain = _fast_parse(lock), True
    except _Unsupported:
        data, plain = _ruamel_load(lock, source), False
    if not isinstance(data, dict):
        raise DvcMonitorError(f"{source} is malformed: expected a mapping at the top")
    if not data:
        raise MissingLockFile(f"{source} is empty; run 'dvc repro' and commit")
    return data, plain


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
_HASH_RE = re.compile(r"[0-9a-f]{32,64}(?:\.dir)?")
_NUMERIC_CHARS = frozenset("0123456789eE.+-_")
_SPECIAL_WORDS = _NULLS | _TRUE | _FALSE


class _FastYaml:
    """A strict parser for block-style YAML as ruamel writes it (DVC's lock files).

    Raises ``_Unsupported`` on anything outside the subset, so it never guesses.
    """

    def __init__(self, text: str):
        self.text = text

    def parse(self) -> Any:
        return _fast_parse(self.text)


_MAP, _SEQ = 0, 1
_NO_VALUE = object()  # "key:" or a lone "-": the value is on the following lines
_NEW_LIST = object()  # "[]": a fresh list each time
_NEW_DICT = object()  # "{}"
_LINE_CACHE: dict[str, tuple | None] = {}
_LINE_CACHE_MAX = 100_000


def _classify(raw: str) -> tuple | None:
    """(indent, dash, item column, key, value) for one line; None for blanks/comments.

    ``key`` is None for a sequence item that is a plain value; ``value`` is
    ``_NO_VALUE`` when the value follows on the next lines.
    """
    content = raw.lstrip(" ")
    if not content or content[0] == "#":
        return None
    ind = len(raw) - len(content)
    content = content.rstrip(" ")
    dash = content[0] == "-" and (len(content) == 1 or content[1] == " ")
    if not dash:
        key, value = _split_key(content)
        return ind, False, ind, key, _scalar(value) if value else _NO_VALUE
    if len(content) == 1:
        return ind, True, ind + 2, None, _NO_VALUE
    rest = content[2:]
    item = rest.lstrip(" ")
    col = ind + 2 + len(rest) - len(item)
    c0 = item[0]
    if c0 == "-" and (len(item) == 1 or item[1] == " ") or c0 == "?":
        raise _Unsupported
    if ": " in item or item[-1] == ":":
        if c0 in "'\"":
            raise _Unsupported  # a quoted key
        key, value = _split_key(item)
        return ind, True, col, key, _scalar(value) if value else _NO_VALUE
    return ind, True, col, None, _scalar(item)


def _fast_parse(text: str) -> Any:  # noqa: C901 - one tight loop, on purpose
    """One pass over the lines with an explicit stack of open containers.

    Stack entries are ``[indent, kind, container, pending_key]``; ``pending_key`` is a
    mapping key whose value starts on a later line (for a sequence: ``_SEQ`` marks an
    item given as a lone ``-``). Lines repeat a lot between lock files (``hash: md5``,
    ``- path: data``): their classification is cached.
    """
    if "\t" in text or "\r" in text:
        raise _Unsupported
    cache = _LINE_CACHE
    if len(cache) > _LINE_CACHE_MAX:
        cache.clear()
    stack: list = []
    root = None
    for raw in text.split("\n"):
        try:
            info = cache[raw]
        except KeyError:
            info = cache[raw] = _classify(raw)
        if info is None:
            continue
        ind, dash, col, key, value = info
        if value is _NEW_LIST:
            value = []
        elif value is _NEW_DICT:
            value = {}
        if not stack:
            if root is not None or ind != 0 or raw.startswith(("---", "...", "%")):
                raise _Unsupported
            root = [] if dash else {}
            stack.append([0, _SEQ if dash else _MAP, root, None])
        top = stack[-1]
        pending = top[3]
        if pending is not None:
            top[3] = None
            if ind > top[0] or (dash and ind == top[0] and top[1] == _MAP):
                child = [] if dash else {}
                if top[1] == _MAP:
                    top[2][pending] = child
                else:
                    top[2].append(child)
                top = [ind, _SEQ if dash else _MAP, child, None]
                stack.append(top)
            elif top[1] == _MAP:
                top[2][pending] = None
            else:
                top[2].append(None)
        while top[0] > ind or (top[1] == _SEQ and top[0] == ind and not dash):
            stack.pop()
            if not stack:
                raise _Unsupported
            top = stack[-1]
        if top[0] != ind:
            raise _Unsupported  # deeper than expected: a continuation line
        if top[1] == _SEQ:
            if not dash:
                raise _Unsupported
            if key is None:
                if value is _NO_VALUE:
                    top[3] = _SEQ  # the item's value follows on deeper lines
                else:
                    top[2].append(value)
                continue
            child = {}
            top[2].append(child)
            top = [col, _MAP, child, None]
            stack.append(top)
        elif dash:
            raise _Unsupported
        container = top[2]
        if key in container:
            raise _Unsupported  # duplicate keys: let ruamel report it
        if value is _NO_VALUE:
            top[3] = key
        else:
            container[key] = value
    if stack and stack[-1][3] is not None:
        top = stack[-1]
        if top[1] == _MAP:
            top[2][top[3]] = None
        else:
            top[2].append(None)
    return root


def _split_key(content: str) -> tuple[str, str]:
    pos = content.find(": ")
    if pos < 0:
        if content[-1] != ":":
            raise _Unsupported
        key, rest = content[:-1], ""
    else:
        key, rest = content[:pos], content[pos + 2:].lstrip(" ")
    if not _PLAIN_KEY_RE.fullmatch(key) or key in _SPECIAL_WORDS:
        raise _Unsupported
    return key, rest


def _scalar(s: str) -> Any:
    c = s[0]
    if c.isalpha() or c == "_" or c == "/":
        if ": " in s or " #" in s or s[-1] == ":":
            raise _Unsupported
        if s in _SPECIAL_WORDS:
            return None if s in _NULLS else s in _TRUE
        return s
    if c == "'":
        if len(s) < 2 or s[-1] != "'":
            raise _Unsupported
        body = s[1:-1]
        if "'" in body:
            if "'" in body.replace("''", ""):
                raise _Unsupported
            return body.replace("''", "'")
        return body
    if c == '"':
        if len(s) < 2 or s[-1] != '"' or "\\" in s:
            raise _Unsupported
        body = s[1:-1]
        if '"' in body:
            raise _Unsupported
        return body
    if s == "[]":
        return _NEW_LIST
    if s == "{}":
        return _NEW_DICT
    if " #" in s:
        raise _Unsupported
    if s == "~":
        return None
    if _INT_RE.fullmatch(s):
        return int(s)
    if _FLOAT_RE.fullmatch(s):
        return float(s)
    if _HASH_RE.fullmatch(s) and not set(s) <= _NUMERIC_CHARS:
        return s
    raise _Unsupported

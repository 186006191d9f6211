"""DVC's files, read without DVC: ``dvc.lock`` and ``dvc.yaml`` parsing (the one YAML reader
of the package), and the path rules of DVC stages.

``dvc.lock`` files are parsed by a small strict parser for the YAML subset DVC writes;
anything else falls back to ruamel.yaml with DVC's own settings (``YAML(typ="safe")``),
so values are typed as DVC reads them. Nothing here imports DVC.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from dvc_monitor.errors import DvcMonitorError, MissingLockFile


def norm(*parts: str) -> str:
    """A repo-relative POSIX path, normalised ("" for the root)."""
    path = posixpath.normpath(posixpath.join(*parts).replace("\\", "/"))
    return "" if path == "." else path


def inside(path: str) -> bool:
    """True when a normalised repo-relative path stays inside the repository."""
    return bool(path) and not path.startswith("../") and path != ".." and not path.startswith("/")


def stage_wdir(yaml_doc: dict, stage: str) -> str:
    """The ``wdir`` of a stage in a parsed ``dvc.yaml`` ("." when unset or templated)."""
    stages = yaml_doc.get("stages") if isinstance(yaml_doc, dict) else None
    body = stages.get(stage.split("@")[0]) if isinstance(stages, dict) else None
    wdir = body.get("wdir") if isinstance(body, dict) else None
    return wdir if isinstance(wdir, str) and "${" not in wdir else "."


# -- parsing ----------------------------------------------------------------------------


def load_lock(lock: Any, source: str = "dvc.lock") -> dict:
    """A ``dvc.lock`` as a plain dict; ``MissingLockFile`` for None or empty input."""
    return _load_lock(lock, source)[0]


def read_lock(lock: Any, source: str = "dvc.lock", strict: bool = False) -> "Lock":
    """A ``dvc.lock`` (text, bytes, a parsed dict or a ``Lock``) as a typed ``Lock``.

    ``MissingLockFile`` for None or empty input, ``DvcMonitorError`` for text that is not
    a YAML mapping. ``strict`` also refuses a malformed stage (a stage, ``deps``/``outs``
    entry or ``params`` of the wrong shape) with a one-line ``DvcMonitorError``; without
    it such parts are skipped.
    """
    if isinstance(lock, Lock):
        return lock
    data, plain = _load_lock(lock, source)
    return Lock.from_dict(data, source, strict=strict, plain=plain)


@dataclass(frozen=True)
class LockEntry:
    """One ``deps:`` or ``outs:`` entry of a dvc.lock stage (or of a ``.dvc`` file)."""

    path: str  # as written: relative to the stage's wdir (the .dvc file's folder)
    md5: str | None = None
    size: int | None = None
    nfiles: int | None = None
    hash: str | None = None  # the hash name DVC 3 writes ("md5"); None in a DVC 2 entry
    oid: str = ""  # md5, else etag, checksum or sha256 ("" when none): the recorded hash

    @classmethod
    def from_dict(cls, item: dict) -> "LockEntry":
        """The entry of one parsed ``{path: ..., md5: ...}`` mapping (it has a ``path``)."""
        md5 = item.get("md5")
        oid = next((str(item[k]) for k in ("md5", "etag", "checksum", "sha256")
                    if item.get(k)), "")
        return cls(path=str(item["path"]), md5=str(md5) if md5 else None,
                   size=_int_or_none(item.get("size")), nfiles=_int_or_none(item.get("nfiles")),
                   hash=str(item["hash"]) if item.get("hash") else None, oid=oid)


LockOut = LockEntry
LockDep = LockEntry


def lock_entries(items: Any, source: str = "dvc.lock", stage: str = "", what: str = "outs",
                 strict: bool = False) -> tuple[LockEntry, ...]:
    """The ``deps:``/``outs:`` entries of a stage (or ``outs:`` of a ``.dvc`` file).

    ``strict``: a list that is not one, or an entry without a path, is a one-line
    ``DvcMonitorError``; otherwise it is skipped.
    """
    if items is None:
        return ()
    if not isinstance(items, list):
        if strict:
            raise DvcMonitorError(f"{source} is malformed: {what} of stage {stage!r} is not a list")
        return ()
    out = []
    for item in items:
        if not isinstance(item, dict) or "path" not in item:
            if strict:
                raise DvcMonitorError(
                    f"{source} is malformed: an entry of {what} of stage {stage!r}")
            continue
        out.append(LockEntry.from_dict(item))
    return tuple(out)


@dataclass(frozen=True)
class LockStage:
    """One stage of a ``dvc.lock``: its command, deps, outs and the params it ran with."""

    name: str
    cmd: str | tuple | None  # a list of commands is a tuple
    deps: tuple[LockEntry, ...] = ()
    outs: tuple[LockEntry, ...] = ()
    params: dict = field(default_factory=dict)  # params file -> {key: value}
    raw: dict = field(default_factory=dict, compare=False)  # the stage's mapping as written

    @property
    def commands(self) -> tuple:
        """The commands as written (one, or each of a list)."""
        return self.cmd if isinstance(self.cmd, tuple) else (self.cmd,)

    @property
    def command(self) -> str:
        """The command as one line (a list joined with `` && ``; "" when none)."""
        if isinstance(self.cmd, tuple):
            return " && ".join(str(c) for c in self.cmd)
        return "" if self.cmd is None else str(self.cmd)

    def out(self, path: str) -> LockEntry | None:
        """The output written as ``path``, or None."""
        return next((o for o in self.outs if o.path == path), None)

    def params_of(self, file: str = "params.yaml") -> dict | None:
        """The values of params file ``file`` the stage ran with (None: not recorded)."""
        values = self.params.get(file)
        return values if isinstance(values, dict) else None


@dataclass(frozen=True)
class Lock:
    """A parsed ``dvc.lock``: its stages, typed, and the plain mapping they came from."""

    stages: dict[str, LockStage]
    data: dict = field(default_factory=dict, compare=False)  # the parsed document
    plain: bool = False  # the fast reader produced ``data`` (JSON-native values only)

    @classmethod
    def from_dict(cls, data: dict, source: str = "dvc.lock", strict: bool = False,
                  plain: bool = False) -> "Lock":
        """The typed view of a parsed lock (see ``read_lock`` for ``strict``)."""
        stages: dict[str, LockStage] = {}
        raw_stages = data.get("stages")
        for name, body in (raw_stages.items() if isinstance(raw_stages, dict) else ()):
            if not isinstance(body, dict):
                if strict:
                    raise DvcMonitorError(
                        f"{source} is malformed: stage {name!r} is not a mapping")
                continue
            cmd = body.get("cmd")
            deps = lock_entries(body.get("deps"), source, name, "deps", strict)
            outs = lock_entries(body.get("outs"), source, name, "outs", strict)
            params = body.get("params") or {}
            if not isinstance(params, dict):
                if strict:
                    raise DvcMonitorError(f"{source} is malformed: params of stage {name!r}")
                params = {}
            stages[str(name)] = LockStage(str(name), tuple(cmd) if isinstance(cmd, list) else cmd,
                                          deps, outs, params, body)
        return cls(stages, data, plain)

    def stage(self, name: str) -> LockStage | None:
        """Stage ``name``, or None."""
        return self.stages.get(name)

    def out(self, stage: str, path: str) -> LockEntry | None:
        """Output ``path`` (as written) of ``stage``, or None."""
        body = self.stages.get(stage)
        return body.out(path) if body is not None else None

    def out_md5(self, stage: str, path: str) -> str | None:
        """The md5 recorded for output ``path`` of ``stage``, or None."""
        out = self.out(stage, path)
        return out.md5 if out is not None else None

    def stage_params(self, stage: str, file: str = "params.yaml") -> dict | None:
        """The section ``stage`` of params file ``file`` that ``stage`` ran with (None: not
        recorded)."""
        body = self.stages.get(stage)
        values = body.params_of(file) if body is not None else None
        section = values.get(stage) if values is not None else None
        return dict(section) if isinstance(section, dict) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    except UnsupportedYaml:
        data, plain = _ruamel_load(lock, source), False
    if not isinstance(data, dict):
        raise DvcMonitorError(f"{source} is malformed: expected a mapping at the top")
    if not data:
        raise MissingLockFile(f"{source} is empty; run 'dvc repro' and commit")
    return data, plain


def parse_yaml(text: str, source: str = "YAML file") -> Any:
    """Parse YAML as DVC does (ruamel, YAML 1.2, safe), fast for the usual subset."""
    try:
        return FastYaml(text).parse()
    except UnsupportedYaml:
        pass
    return _ruamel_load(text, source)


def _ruamel_load(text: str, source: str) -> Any:
    from ruamel.yaml import YAML, YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        line = " ".join(str(exc).split())[:160]
        raise DvcMonitorError(f"{source} is not valid YAML: {line}") from None
    except Exception as exc:  # ruamel raises a few non-YAMLError errors on odd input
        raise DvcMonitorError(f"{source} is not valid YAML: {type(exc).__name__}") from None


class UnsupportedYaml(Exception):
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


class FastYaml:
    """A strict parser for block-style YAML as ruamel writes it (DVC's lock files).

    Raises ``UnsupportedYaml`` on anything outside the subset, so it never guesses.
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
        raise UnsupportedYaml
    if ": " in item or item[-1] == ":":
        if c0 in "'\"":
            raise UnsupportedYaml  # a quoted key
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
        raise UnsupportedYaml
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
                raise UnsupportedYaml
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
                raise UnsupportedYaml
            top = stack[-1]
        if top[0] != ind:
            raise UnsupportedYaml  # deeper than expected: a continuation line
        if top[1] == _SEQ:
            if not dash:
                raise UnsupportedYaml
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
            raise UnsupportedYaml
        container = top[2]
        if key in container:
            raise UnsupportedYaml  # duplicate keys: let ruamel report it
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
            raise UnsupportedYaml
        key, rest = content[:-1], ""
    else:
        key, rest = content[:pos], content[pos + 2:].lstrip(" ")
    if not _PLAIN_KEY_RE.fullmatch(key) or key in _SPECIAL_WORDS:
        raise UnsupportedYaml
    return key, rest


def _scalar(s: str) -> Any:
    c = s[0]
    if c.isalpha() or c == "_" or c == "/":
        if ": " in s or " #" in s or s[-1] == ":":
            raise UnsupportedYaml
        if s in _SPECIAL_WORDS:
            return None if s in _NULLS else s in _TRUE
        return s
    if c == "'":
        if len(s) < 2 or s[-1] != "'":
            raise UnsupportedYaml
        body = s[1:-1]
        if "'" in body:
            if "'" in body.replace("''", ""):
                raise UnsupportedYaml
            return body.replace("''", "'")
        return body
    if c == '"':
        if len(s) < 2 or s[-1] != '"' or "\\" in s:
            raise UnsupportedYaml
        body = s[1:-1]
        if '"' in body:
            raise UnsupportedYaml
        return body
    if s == "[]":
        return _NEW_LIST
    if s == "{}":
        return _NEW_DICT
    if " #" in s:
        raise UnsupportedYaml
    if s == "~":
        return None
    if _INT_RE.fullmatch(s):
        return int(s)
    if _FLOAT_RE.fullmatch(s):
        return float(s)
    if _HASH_RE.fullmatch(s) and not set(s) <= _NUMERIC_CHARS:
        return s
    raise UnsupportedYaml


MISSING = object()  # what ``param_value`` returns for a key that is not there


def param_value(params: Any, key: str) -> Any:
    """The value of params key ``key`` as a dvc.yaml stage names it (a section, or a
    dotted path into one), or ``MISSING``."""
    if isinstance(params, dict) and key in params:
        return params[key]
    value = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def dvc_file_md5(doc: Any) -> str | None:
    """The md5 of the first output of a parsed ``.dvc`` file, or None."""
    try:
        return doc["outs"][0]["md5"]
    except (KeyError, TypeError, IndexError):
        return None

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

from dvc_monitor.errors import DvcMonitorError
from dvc_monitor.repo.dvcfiles import Lock, read_lock
from dvc_monitor.values import JsonValue

ID_PREFIX = "sha256:"
RECIPE = "dvc-monitor/1"
SHORT_LEN = 12
HEX_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VersionIdentity(JsonValue):
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

    ``lock`` is the text, bytes, parsed dict or ``Lock`` of a ``dvc.lock``. Raises
    ``MissingLockFile`` for None or an empty lock, ``DvcMonitorError`` for a malformed
    lock or one where no stage produces ``model_path``.
    """
    parsed_lock = read_lock(lock, source, strict=True)
    stages = parsed_lock.data.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise DvcMonitorError(f"{source} has no stages; run 'dvc repro' and commit")
    if isinstance(lock, Lock):  # parsed leniently before: check its shape now
        parsed_lock = Lock.from_dict(lock.data, source, strict=True, plain=lock.plain)
    model = _norm(model_path)

    producers: dict[str, str] = {}  # out path -> stage
    parsed: dict[str, dict] = {}
    for stage, body in parsed_lock.stages.items():
        entry = {
            "cmd": body.command,
            "deps": [(_norm(d.path), d.oid) for d in body.deps],
            "outs": [(_norm(o.path), o.oid) for o in body.outs],
            "params": body.params,
        }
        parsed[stage] = entry
        for path, _ in entry["outs"]:
            producers.setdefault(path, stage)

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
        id=compute_id(params, deps, cmds, parsed_lock.plain),
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
        parsed = read_lock(lock, source)
    except DvcMonitorError:
        return False
    outs = {_norm(o.path) for body in parsed.stages.values() for o in body.outs}
    return _producer(_norm(model_path), {o: o for o in outs}) is not None


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

"""Facts of a model at a commit, read from git in bulk: identity, metrics, model and lock paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath

from dvc_monitor.errors import DvcMonitorError
from dvc_monitor.model.revision import artifact_path, model_dirs
from dvc_monitor.model.revision import parents
from dvc_monitor.registry.identity import VersionIdentity, identity_from_lock
from dvc_monitor.registry.values import PREFERRED_METRICS, METRICS_FILE
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.dvcfiles import parse_yaml
from dvc_monitor.repo.git import GitRepo

MONITOR = ModelLayout.MONITOR


@dataclass(frozen=True)
class Facts:
    """What the registry knows of a model at one commit: its version identity, metrics,
    model and lock paths, and why it is not a version (``error``)."""

    identity: VersionIdentity | None
    metrics: dict
    model_path: str | None
    lock_path: str | None
    error: str | None = None
    declared: bool = False  # an artifacts: entry names the model at that commit
    found_lock: bool = False  # some dvc.lock above the model path exists




def join_path(base: str, rel: str) -> str:
    """``rel`` inside folder ``base`` ("" or "." for the root), as git paths are written."""
    return rel if base in ("", ".") else f"{base}/{rel}"


# -- facts from commits -----------------------------------------------------------------


def read_facts(git: GitRepo, name: str, commits: list[str]) -> dict[str, Facts]:
    """Facts of ``name`` at each commit, normally in one ``cat-file --batch`` call.

    The model path comes from the ``artifacts:`` entry of the dvc.yaml at that commit
    (fallback: ``models/NAME/model.skops``); its lock is the nearest ``dvc.lock`` above
    it with a stage producing it. A second batch is read only for artifacts declared at
    paths other than the default layout.
    """
    ydir, art_name, default_model = model_dirs(name)
    dvc_yaml = join_path(ydir, "dvc.yaml")
    default_dir = str(PurePosixPath(default_model).parent)
    default_lock = join_path(default_dir, "dvc.lock")
    default_metrics = join_path(default_dir, METRICS_FILE)
    monitors = (join_path(ydir, MONITOR), join_path(default_dir, MONITOR))
    specs = []
    for c in commits:
        specs += (f"{c}:{dvc_yaml}", f"{c}:{default_lock}", f"{c}:{default_metrics}")
        specs += (f"{c}:{m}" for m in monitors)
    blobs = git.read_blobs(specs)

    yaml_cache: dict[bytes, object] = {}
    model_paths: dict[str, str] = {}
    declared: dict[str, bool] = {}
    for c in commits:
        raw = blobs.get(f"{c}:{dvc_yaml}")
        path = _artifact_path(raw, art_name, ydir, yaml_cache)
        declared[c] = path is not None
        model_paths[c] = path or default_model
    extra = []
    for c in commits:
        mp = model_paths[c]
        if mp == default_model and blobs.get(f"{c}:{default_lock}") is not None:
            continue  # the usual layout: everything is read already
        for d in parents(mp):
            extra.append(f"{c}:{join_path(d, 'dvc.lock')}")
            extra.append(f"{c}:{join_path(d, METRICS_FILE)}")
            extra.append(f"{c}:{join_path(d, MONITOR)}")
    if extra:
        blobs.update(git.read_blobs([s for s in extra if s not in blobs]))

    lock_cache: dict[tuple[bytes, str], VersionIdentity | Exception] = {}
    metrics_cache: dict[bytes, dict] = {}
    result: dict[str, Facts] = {}
    for c in commits:
        mp = model_paths[c]
        identity = None
        lock_path = None
        error = None
        found_lock = False
        for d in parents(mp):
            lp = join_path(d, "dvc.lock")
            raw = blobs.get(f"{c}:{lp}")
            if raw is None:
                continue
            found_lock = True
            rel = mp[len(d) + 1:] if d else mp
            key = (raw, rel)
            got = lock_cache.get(key)
            if got is None:
                try:
                    got = identity_from_lock(raw, rel, source=f"{lp} at {c[:7]}")
                except DvcMonitorError as exc:
                    got = exc
                lock_cache[key] = got
            if isinstance(got, VersionIdentity):
                identity, lock_path, error = got, lp, None
                break
            if error is None:
                error = str(got)
        if identity is None and error is None:
            error = f"no dvc.lock for {mp} at commit {c[:7]}"
        metrics = {}
        if lock_path is not None:
            mraw = blobs.get(f"{c}:{join_path(str(PurePosixPath(lock_path).parent), METRICS_FILE)}"
                             if "/" in lock_path else f"{c}:{METRICS_FILE}")
            if mraw is not None:
                if mraw not in metrics_cache:
                    metrics_cache[mraw] = flatten_metrics(mraw)
                metrics = metrics_cache[mraw]
        result[c] = Facts(identity, metrics, mp, lock_path, error, declared[c], found_lock)
    adopted = [c for c in commits if result[c].lock_path is not None
               and _is_adopted(blobs.get(f"{c}:{join_path(_folder(result[c].lock_path), MONITOR)}"))]
    for c, metrics in _declared_metrics(git, adopted, result, blobs).items():
        if metrics:
            f = result[c]
            result[c] = Facts(f.identity, metrics, f.model_path, f.lock_path, f.error,
                              f.declared, f.found_lock)
    return result


def _folder(lock_path: str) -> str:
    return str(PurePosixPath(lock_path).parent) if "/" in lock_path else ""


def _is_adopted(raw: bytes | None) -> bool:
    """A monitor.yaml that says its own pipeline trains the model (``adopted: true``)."""
    from dvc_monitor.model.data import ModelConfig

    if raw is None or b"adopted" not in raw:
        return False
    try:
        return ModelConfig.from_text(raw.decode("utf-8", errors="replace"), MONITOR).adopted
    except DvcMonitorError:
        return False


def _declared_metrics(git: GitRepo, commits: list[str], facts: dict[str, Facts],
                      blobs: dict[str, bytes | None]) -> dict[str, dict]:
    """An adopted model's own metrics: the git-tracked metrics files its pipeline declares
    (``metrics:``, ``cache: false``), flattened, in one batch for all ``commits``. Cached
    metrics files are not read: facts depend on the commit's tree alone."""
    from dvc_monitor.model.revision import declared_metrics
    from dvc_monitor.repo.dvcfiles import read_lock

    if not commits:
        return {}
    yamls = [f"{c}:{join_path(_folder(facts[c].lock_path or ''), 'dvc.yaml')}" for c in commits]
    blobs = dict(blobs)
    blobs.update(git.read_blobs([s for s in yamls if s not in blobs]))
    files: dict[str, list[str]] = {}
    for c, spec in zip(commits, yamls):
        d = _folder(facts[c].lock_path or "")
        try:
            ydoc = parse_yaml((blobs.get(spec) or b"").decode("utf-8", errors="replace"), spec)
            lock = read_lock(blobs.get(f"{c}:{facts[c].lock_path}"), spec)
        except DvcMonitorError:
            continue
        files[c] = [m.path for m in declared_metrics(d, ydoc or {}, lock) if not m.cached]
    wanted = [f"{c}:{p}" for c, paths in files.items() for p in paths]
    got = git.read_blobs(wanted) if wanted else {}
    out: dict[str, dict] = {}
    for c, paths in files.items():
        read = {p: _metrics_doc(got.get(f"{c}:{p}"), p) for p in paths}
        read = {p: m for p, m in read.items() if m}
        if len(read) == 1:
            out[c] = next(iter(read.values()))
        else:  # several files: each key says which file it is from
            out[c] = {f"{p}:{k}": v for p, m in read.items() for k, v in m.items()}
    return out


def _metrics_doc(raw: bytes | None, path: str) -> dict:
    """A metrics file (JSON, or YAML by its name) flattened; {} when absent or unreadable."""
    if raw is None:
        return {}
    if path.endswith((".yaml", ".yml")):
        try:
            doc = parse_yaml(raw.decode("utf-8", errors="replace"), path)
        except DvcMonitorError:
            return {}
        return flatten_metrics(doc) if isinstance(doc, dict) else {}
    return flatten_metrics(raw)


def _artifact_path(raw: bytes | None, art_name: str, ydir: str,
                   cache: dict[bytes, object]) -> str | None:
    """``model.revision.artifact_path`` on a dvc.yaml blob, parsed once per content."""
    if raw is None:
        return None
    if raw not in cache:
        try:
            cache[raw] = parse_yaml(raw.decode("utf-8"), "dvc.yaml")
        except (DvcMonitorError, UnicodeDecodeError):
            cache[raw] = None
    return artifact_path(cache[raw], art_name, ydir)


def flatten_metrics(raw: bytes | str | dict) -> dict:
    """Numeric metrics, nested keys joined with '.'; {} for anything unreadable."""
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    out: dict = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if value == value and value not in (float("inf"), float("-inf")):
                out[prefix] = value

    walk("", raw)
    return out


def key_metrics(metrics: dict, n: int = 3) -> dict:
    """The few metrics a table shows: well-known quality metrics first."""
    chosen = [k for k in PREFERRED_METRICS if k in metrics][:n]
    if len(chosen) < n:
        chosen += [k for k in sorted(metrics) if k not in chosen][: n - len(chosen)]
    return {k: metrics[k] for k in chosen}



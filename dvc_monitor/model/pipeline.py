"""A model's pipeline folder at a commit, read from git without checkout: the files git
tracks there, its ``dvc.yaml``, ``dvc.lock`` and ``.dvc`` files, the DVC-cached outputs and
inputs they record, the outputs kept in git, the deps and params files its stages read,
and the deps that are neither in git nor made by a stage (``external``).

Rollback planning reads the target and HEAD pipelines with it; ``check`` reads each
registered version's to say whether it can be restored or rebuilt.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from dvc_monitor.errors import DvcMonitorError
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.dvcfiles import Lock, inside, lock_entries, norm, read_lock, stage_wdir
from dvc_monitor.repo.git import GitRepo

__all__ = ["Pipeline", "read_pipeline", "recorded_trainer"]


@dataclass
class Pipeline:
    """A model's pipeline folder at a commit: its tracked files, dvc.yaml, dvc.lock and .dvc
    files, and what they make of its outputs and inputs (read from git, no checkout)."""

    rev: str
    dir: str  # repo-relative folder of the model's dvc.yaml
    tree: dict[str, tuple[str, str]]  # tracked file -> (mode, blob oid), under dir + extras
    yaml: dict
    lock: Lock | None
    lock_raw: bytes | None
    dvcfiles: dict[str, dict]  # .dvc file -> parsed
    cached: dict[str, str] = field(default_factory=dict)  # DVC-cached output -> oid
    sources: set[str] = field(default_factory=set)  # cached outputs from .dvc files (data)
    git_outs: set[str] = field(default_factory=set)  # cache: false outputs (in git)
    git_deps: set[str] = field(default_factory=set)  # git-tracked deps of its stages
    params_files: set[str] = field(default_factory=set)
    external: set[str] = field(default_factory=set)  # deps neither in git nor made here
    legacy: list[str] = field(default_factory=list)  # outputs with DVC 2 hashes

    def tracked(self, path: str) -> bool:
        """``path`` is a file git tracks here, or a folder holding some."""
        return path in self.tree or any(p.startswith(path + "/") for p in self.tree)

    def files_under(self, path: str) -> list[str]:
        """The tracked files at ``path`` (the file itself, or those of the folder)."""
        if path in self.tree:
            return [path]
        return sorted(p for p in self.tree if p.startswith(path + "/"))

    def own_files(self) -> set[str]:
        """This model's pipeline files and cache:false outputs (written by rollback)."""
        own = set()
        for path in self.tree:
            if not path.startswith(self.dir + "/") and self.dir:
                continue
            base = posixpath.basename(path)
            if base in (ModelLayout.DVC_YAML, ModelLayout.DVC_LOCK, ".gitignore", ".dvcignore") \
                    or base.endswith(".dvc"):
                own.add(path)
        for p in self.params_files:
            own.update(self.files_under(p))
        for p in self.git_outs:
            own.update(self.files_under(p))
        return own

    def dep_files(self) -> set[str]:
        """The tracked files the stages read (their git-tracked deps)."""
        out = set()
        for p in self.git_deps:
            out.update(self.files_under(p))
        return out


def read_pipeline(git: GitRepo, rev: str, pdir: str, extra: set[str] = frozenset(),
                   broken: list[str] | None = None) -> Pipeline:
    """The pipeline in folder ``pdir`` at ``rev``. With a ``broken`` list (HEAD's pipeline,
    which a rollback overwrites), a corrupt or binary dvc.yaml/dvc.lock/.dvc file is
    read as empty and named in ``broken`` instead of raising."""
    from dvc_monitor.repo.dvcfiles import parse_yaml

    tree = git.ls_tree(rev, [pdir or "."])
    yaml_path = norm(pdir, ModelLayout.DVC_YAML)
    lock_path = norm(pdir, ModelLayout.DVC_LOCK)
    dvc_paths = sorted(p for p in tree if p.endswith(".dvc"))
    blobs = git.read_blobs([f"{rev}:{p}" for p in (yaml_path, lock_path, *dvc_paths)])

    def tolerant(read, path: str) -> Any:
        try:
            return read()
        except DvcMonitorError as exc:
            if broken is None:
                raise
            broken.append(f"{path} ({exc})")
            return None

    def parsed(path: str) -> Any:
        raw = blobs.get(f"{rev}:{path}")
        if raw is None:
            return None
        return tolerant(lambda: parse_yaml(raw.decode("utf-8", errors="replace"),
                                           f"{path} at {rev[:7]}"), path)

    yaml_doc = parsed(yaml_path) or {}
    lock_raw = blobs.get(f"{rev}:{lock_path}")
    lock = tolerant(lambda: read_lock(lock_raw, f"{lock_path} at {rev[:7]}"),
                    lock_path) if lock_raw else None
    dvcfiles = {p: (d if isinstance(d := parsed(p), dict) else {}) for p in dvc_paths}
    pl = Pipeline(rev, pdir, tree, yaml_doc if isinstance(yaml_doc, dict) else {}, lock,
                   lock_raw, dvcfiles)

    # DVC-tracked data: outs of .dvc files
    for dpath, doc in dvcfiles.items():
        base = norm(posixpath.dirname(dpath), str(doc.get("wdir") or "."))
        for out in lock_entries(doc.get("outs"), dpath):
            path = norm(base, out.path)
            if out.md5:
                pl.cached[path] = out.md5
                pl.sources.add(path)
                if out.hash != "md5":
                    pl.legacy.append(path)

    # stages: outs (cached or in git), deps, params
    outs_of_stages: dict[str, str] = {}
    deps: set[str] = set()
    for stage, body in (lock.stages if lock is not None else {}).items():
        base = norm(pdir, stage_wdir(pl.yaml, stage))
        for out in body.outs:
            path = norm(base, out.path)
            outs_of_stages[path] = out.md5 or ""
            if out.md5 and out.hash != "md5":
                pl.legacy.append(path)
        deps.update(norm(base, dep.path) for dep in body.deps)
        pl.params_files.update(norm(base, str(fname)) for fname in body.params)
    pl.params_files.add(norm(pdir, ModelLayout.PARAMS))

    outside = sorted({p for p in (*outs_of_stages, *deps, *pl.params_files, *extra)
                      if inside(p) and pdir and not p.startswith(pdir + "/")})
    pl.tree.update(git.ls_tree(rev, outside))

    def made_here(path: str) -> bool:
        return any(path == o or path.startswith(o + "/") for o in (*outs_of_stages, *pl.cached))

    for path, md5 in outs_of_stages.items():
        if pl.tracked(path):
            pl.git_outs.add(path)
        elif md5:
            pl.cached[path] = md5
    for path in deps:
        if not inside(path) or made_here(path):
            continue
        if pl.tracked(path):
            pl.git_deps.add(path)
        else:
            pl.external.add(path)
    return pl


def recorded_trainer(git: GitRepo, rev: str, pdir: str, pl: Pipeline) -> bytes | None:
    """The bytes of the model's ``trainer.json`` at ``rev`` (None: it records no trainer)."""
    from dvc_monitor.model.trainer import FILE

    path = norm(pdir, FILE)
    return git.read_blobs([f"{rev}:{path}"]).get(f"{rev}:{path}") if path in pl.tree else None

"""``show``: one version in detail (stages, params, deps, data partitions, events)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dvc_monitor.registry.values import ModelVersion


@dataclass
class VersionDetail:
    """A version with what ``show`` adds to its row: its pipeline and its history."""

    ref: str
    version: ModelVersion
    deprecated: bool
    deps: dict  # repo-relative dependency -> md5
    data: dict  # data path -> {"md5", "partitions" (None: not in the local cache)}
    notes: list[str] = field(default_factory=list)

    @property
    def stage_history(self) -> list[dict]:
        return [e for e in self.events if e["stage"] is not None]

    @property
    def events(self) -> list[dict]:
        return [{"event": e.action.value, "stage": e.stage, "time": e.created_at.isoformat(),
                 "tag": e.tag, "author": e.author} for e in self.version.events]

    def to_json(self) -> dict:
        """The JSON form (``show --json``; the API and the CLI share it)."""
        mv, identity = self.version, self.version.identity
        doc = mv.to_json(self.deprecated)
        doc.update(
            ref=self.ref, params=identity.params if identity else {}, deps=self.deps,
            cmds=identity.cmds if identity else {},
            lineage=list(identity.stages) if identity else [], data=self.data,
            stage_history=self.stage_history, events=self.events, notes=self.notes,
        )
        return doc


def show(reg, ref: str) -> VersionDetail:
    """``ref`` (NAME@vX.Y.Z, NAME#STAGE, ...) in the loaded registry ``reg``, in detail."""
    mv = reg.get(ref)
    identity = mv.identity
    data, notes = data_partitions(reg.root, mv.name, mv.commit, mv.data)
    base = mv.lock_path.rpartition("/")[0] if mv.lock_path else ""
    deps = {(f"{base}/{p}" if base else p): m for p, m in identity.deps.items()} \
        if identity else {}
    return VersionDetail(ref, mv, reg.is_deprecated(mv.name), deps, data, notes)


def data_partitions(root, name: str, commit: str, data: dict[str, str]) -> tuple[dict, list[str]]:
    """``{path: {"md5", "partitions"}}`` of the data of ``name`` at ``commit`` (from the local
    DVC cache, sealed segments included; partitions None where a manifest is not there)
    and a note for each such path."""
    from dvc_monitor.registry.diff import dir_partitions
    from dvc_monitor.repo.git import GitRepo

    git = GitRepo(root)
    out, notes = {}, []
    for path, md5 in data.items():
        parts, note = dir_partitions(git, name, path, md5, commit)
        out[path] = {"md5": md5, "partitions": parts}
        if note:
            notes.append(f"{path}: {note}")
    return out, notes

"""``ingest`` as one transaction: a new partition, ``data.dvc`` and the index, or nothing.

When ``data/`` already holds ``segment_size`` batches, the ingest first seals them into a
new segment (``segments/sNNNN/`` and its ``.dvc`` file, see ``model.segments``), in the
same transaction: a seal is undone with the rest of a failed or killed ingest.

Before the first change, a journal (``<git dir>/dvc-monitor/ingest.json``) records what
the ingest is about to write, the partitions a seal moves, and the bytes and index
entries of the files it may change (``data.dvc``, the model's ``.gitignore``; for a seal
also the segment's ``.dvc`` file, ``segments/.gitignore`` and ``dvc.yaml``). It is
removed once the partition, the new ``data.dvc`` and the index are all in place. A failure undoes the ingest at once; a
process killed midway (``kill -9``, power loss) leaves the journal, and the next
dvc-monitor command (a retry included) undoes what the ingest had done, so a retry adds
the batch exactly once.

A batch whose content equals a partition the model already has is refused, by hash: the
canonical CSV bytes of the batch against the partitions in the work tree and in the
``.dir`` manifests of the data and of the sealed segments.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dvc_monitor.model.data import ModelConfig, expected_columns, next_partition_name, \
    partition_files, read_batch, read_partitions, validate_batch
from dvc_monitor.errors import DvcMonitorError, SchemaError, UnknownModel, UsageError, shown
from dvc_monitor.kinds import kind_for
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.values import JsonValue
from dvc_monitor.model.layout import ModelLayout
from dvc_monitor.repo.state import INGEST_JOURNAL, state_dir

JOURNAL_SCHEMA = 1


@dataclass(frozen=True)
class IngestResult:
    name: str
    partition: str
    rows: int
    partitions: int
    sealed: str | None = None  # the segment folder this ingest sealed first, if any
    sealed_batches: int = 0

    def to_json(self) -> dict:
        return {"name": self.name, "partition": self.partition, "rows": self.rows,
                "partitions": self.partitions, "sealed": self.sealed,
                "sealed_batches": self.sealed_batches}


@dataclass(frozen=True)
class IngestRecovery(JsonValue):
    """What the next command did about an interrupted ingest."""

    name: str
    partition: str
    message: str


def journal_path(git: GitRepo) -> Path:
    """Where an unfinished ingest's journal lives (beside the rollback journal)."""
    return state_dir(git) / INGEST_JOURNAL


def canonical_bytes(df) -> bytes:
    """The bytes ``data.write_batch`` writes for ``df``."""
    return df.to_csv(index=False, float_format="%.10g", lineterminator="\n").encode()


def ingest(path: str | Path, name: str, batch_file: str | Path | BinaryIO,
           allow_unlabelled: bool = False, source: str | None = None) -> IngestResult:
    """Check a CSV batch against model ``name``'s schema and add it as a new partition.

    ``batch_file`` is a path (relative to ``path``) or a binary stream (``source`` names
    it in messages, e.g. ``-`` for standard input).
    """
    from dvc_monitor.repo.locking import repo_lock

    layout = ModelLayout(name)
    git = GitRepo.discover(path)
    root = git.root
    config_path = root / layout.monitor
    if not config_path.is_file():
        from dvc_monitor.model.state import refuse_adopted

        refuse_adopted(root, name, "ingest its data", "add the rows to its pipeline's data, "
                       "then 'dvc repro'")
        raise UnknownModel(f"no model {name!r} here ({layout.monitor} not found); "
                           f"create it with 'dvc-monitor init --name {name}'")
    config = ModelConfig.load(config_path)
    if config.adopted:
        raise UsageError(f"{name} is trained by its own pipeline (adopted), not from batches "
                         "dvc-monitor ingests; add the rows to its pipeline's data, then "
                         "'dvc repro'")
    if hasattr(batch_file, "read"):
        label = source or "-"
        df = read_batch(batch_file, "standard input" if label == "-" else label)
    else:
        label = str(batch_file)
        batch_path = Path(batch_file)
        if not batch_path.is_absolute():
            batch_path = Path(path) / batch_path
        df = read_batch(batch_path, label)
    data_dir, segments_dir = root / layout.data, root / layout.segments
    existing = partition_files(data_dir, segments_dir)
    # a series kind's batch may not repeat a time already ingested: read the rows it must not
    old_rows = read_partitions(data_dir, segments_dir) \
        if existing and kind_for(config.kind).time_column is not None else None
    df = validate_batch(df, config, expected_columns(config, data_dir, segments_dir), label,
                        first=not existing, allow_unlabelled=allow_unlabelled, existing=old_rows)
    content = canonical_bytes(df)
    with repo_lock(root, "ingest"):
        recover(git)
        same = duplicate_of(root, layout, content)
        if same is not None:
            raise SchemaError(f"{shown(label)} has the same content as partition {same} of "
                              f"{name!r}: it was ingested already; nothing to add")
        part = next_partition_name(data_dir, segments_dir)
        seal = _plan_seal(root, layout, config)
        _Transaction(git, layout, part, seal).run(content)
    return IngestResult(name, part, len(df), len(partition_files(data_dir, segments_dir)),
                        seal.folder if seal else None, len(seal.moved) if seal else 0)


@dataclass(frozen=True)
class _Seal:
    """What sealing the open segment does: move ``moved`` from data/ into ``folder``."""

    folder: str  # repo-relative, models/NAME/segments/sNNNN
    moved: tuple[str, ...]  # partition file names
    dvc_yaml: str | None  # the new dvc.yaml text when it gains the segments dependency


def _plan_seal(root: Path, layout: ModelLayout, config: ModelConfig) -> _Seal | None:
    """The seal this ingest does first, or None: data/ holds fewer than ``segment_size``
    batches, or no stage of ``dvc.yaml`` reads ``data`` (the layout then stays flat)."""
    from dvc_monitor.model.segments import next_segment, with_segments_dep

    open_parts = partition_files(root / layout.data)
    dvc_yaml = root / layout.dvc_yaml
    if len(open_parts) < config.segment_size or not dvc_yaml.is_file():
        return None
    text = dvc_yaml.read_text()
    new_text = with_segments_dep(text)
    if new_text is None:
        return None
    return _Seal(next_segment(root, layout), tuple(p.name for p in open_parts),
                 None if new_text == text else new_text)


def duplicate_of(root: Path, layout: ModelLayout, content: bytes) -> str | None:
    """The partition of the model whose bytes equal ``content``, or None.

    Compares md5s (DVC's own hash of a file): those of the ``.dir`` manifests that
    ``data.dvc`` and the sealed segments' ``.dvc`` files record, when they are in the
    cache, and those of same-sized partition files on disk.
    """
    from dvc_monitor.model.segments import sealed_at
    from dvc_monitor.model.data import partitions_of
    from dvc_monitor.repo.dvcfiles import parse_yaml
    from dvc_monitor.repo.dvcfiles import dvc_file_md5

    digest = hashlib.md5(content).hexdigest()
    manifests = list(sealed_at(GitRepo(root), None, layout).values())
    data_dvc = root / layout.data_dvc
    if data_dvc.is_file():
        try:
            manifests.append(dvc_file_md5(parse_yaml(data_dvc.read_text(), layout.data_dvc)))
        except DvcMonitorError:
            pass
    for md5 in manifests:
        parts, _ = partitions_of(root, md5) if md5 else ([], None)
        for entry in parts or []:
            if entry["md5"] == digest:
                return entry["relpath"]
    for file in partition_files(root / layout.data, root / layout.segments):
        if file.stat().st_size == len(content) and \
                hashlib.md5(file.read_bytes()).hexdigest() == digest:
            return file.name
    return None


class _Transaction:
    """One ingest: journal, partition, ``dvc add``, ``git add``; undone on any failure."""

    def __init__(self, git: GitRepo, layout: ModelLayout, part: str, seal: _Seal | None = None):
        self.git = git
        self.root = git.root
        self.layout = layout
        self.rel = f"{layout.data}/{part}"
        self.seal = seal
        self.tracked = [layout.data_dvc, f"{layout.dir}/.gitignore"]
        if seal is not None:
            self.tracked += [f"{seal.folder}.dvc", f"{layout.segments}/.gitignore",
                             layout.dvc_yaml]
        self.path = journal_path(git)

    def run(self, content: bytes) -> None:
        from dvc_monitor.repo import dvc as dvcops

        self._write_journal()
        try:
            if self.seal is not None:
                self._seal(dvcops)
            data_dir = self.root / self.layout.data
            data_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f"{self.rel}.tmp"
            tmp.write_bytes(content)
            tmp.replace(self.root / self.rel)
            dvcops.add(self.root, self.layout.data)
            self.git.run("add", "--", *self.tracked)
        except BaseException as exc:
            undo(self.git, json.loads(self.path.read_text()))
            _drop(self.path)
            if isinstance(exc, Exception) and not isinstance(exc, DvcMonitorError):
                raise SchemaError(f"could not add the batch: {exc}") from None
            raise
        _drop(self.path)

    def _seal(self, dvcops) -> None:
        """Move the open segment's partitions into a new sealed segment and track it."""
        seal = self.seal
        if seal.dvc_yaml is not None:
            (self.root / self.layout.dvc_yaml).write_text(seal.dvc_yaml)
        folder = self.root / seal.folder
        folder.mkdir(parents=True)
        for name in seal.moved:
            os.replace(self.root / self.layout.data / name, folder / name)
        dvcops.add(self.root, seal.folder)

    def _write_journal(self) -> None:
        saved = {}
        for rel in self.tracked:
            file = self.root / rel
            saved[rel] = base64.b64encode(file.read_bytes()).decode() if file.is_file() else None
        index = self.git.run("ls-files", "-s", "--", *self.tracked)
        journal = {
            "schema": JOURNAL_SCHEMA, "name": self.layout.name, "partition": self.rel,
            "data_dir_existed": (self.root / self.layout.data).is_dir(),
            "saved": saved, "index": index,
        }
        if self.seal is not None:
            journal["seal"] = {
                "segment": self.seal.folder, "data": self.layout.data,
                "moved": list(self.seal.moved),
                "segments_existed": (self.root / self.layout.segments).is_dir(),
            }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(journal, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


def undo(git: GitRepo, journal: dict) -> None:
    """Put back what an ingest described by ``journal`` may have changed."""
    root = git.root
    rel = journal["partition"]
    for leftover in (root / rel, root / f"{rel}.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    data_dir = root / Path(rel).parent
    seal = journal.get("seal")
    if seal:  # move the sealed partitions back, then drop the segment the seal created
        segment, data = root / seal["segment"], root / seal["data"]
        data.mkdir(parents=True, exist_ok=True)
        for name in seal["moved"]:
            if os.path.lexists(segment / name) and not os.path.lexists(data / name):
                os.replace(segment / name, data / name)
        shutil.rmtree(segment, ignore_errors=True)
    if not journal.get("data_dir_existed", True) and data_dir.is_dir() \
            and not any(data_dir.iterdir()):
        shutil.rmtree(data_dir, ignore_errors=True)
    for path, content in journal["saved"].items():
        file = root / path
        if content is None:
            with contextlib.suppress(FileNotFoundError):
                file.unlink()
        else:
            file.write_bytes(base64.b64decode(content))
    if seal and not seal.get("segments_existed", True):
        with contextlib.suppress(OSError):  # empty once its .gitignore is gone
            (root / seal["segment"]).parent.rmdir()
    # the index as it was: a mode-0 line drops a path, the saved lines put entries back
    drop = "".join(f"0 {'0' * 40}\t{path}\n" for path in journal["saved"])
    git.run("update-index", "--index-info", input=drop + journal.get("index", ""))


def _drop(journal: Path) -> None:
    """Remove the journal, and its folder when nothing else is kept there."""
    journal.unlink()
    with contextlib.suppress(OSError):
        journal.parent.rmdir()


def recover(git: GitRepo) -> IngestRecovery | None:
    """Undo an ingest that was killed midway (its journal is in .git/), or None.

    The caller holds the repository lock. A journal that cannot be read was damaged from
    outside; it is removed, as an ingest always writes it whole.
    """
    path = journal_path(git)
    if not path.is_file():
        return None
    try:
        journal = json.loads(path.read_text())
        name, part = journal["name"], journal["partition"]
    except (OSError, ValueError, KeyError, TypeError):
        _drop(path)
        return IngestRecovery("", "", "removed an unreadable ingest journal")
    from dvc_monitor.repo import dvc as dvcops

    dvcops.repair_rwlock(git.root)  # a kill during 'dvc add' may leave it torn
    undo(git, journal)
    _drop(path)
    return IngestRecovery(name, part, f"undid an interrupted ingest into {name!r} "
                                      f"({Path(part).name} removed); run that ingest again")


def recover_pending(start: str | Path = ".") -> IngestRecovery | None:
    """``recover`` under the repository lock, for the CLI's start-up check."""
    from dvc_monitor.repo.locking import repo_lock

    git = GitRepo.discover(start)
    if not journal_path(git).is_file():
        return None
    with repo_lock(git.root, "recover ingest"):
        return recover(git)

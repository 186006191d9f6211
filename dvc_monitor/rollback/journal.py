"""The rollback journal and backups in .git/dvc-monitor/: undo, finish and recovery after a kill."""


import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dvc_monitor.errors import (
    RepositoryLocked,
    RollbackError,
)
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.repo.processes import kill_children, kill_orphans
from dvc_monitor.repo.state import ROLLBACK_JOURNAL, pending_journal, state_dir
from dvc_monitor.repo.signals import Checkpoint, no_checkpoint, signals_ignored
from dvc_monitor.values import JsonValue


BACKUP_NAME = "rollback-backup"
JOURNAL_SCHEMA = 1
TRAILER_ID = "Rollback-Id"
# A DVC checkout writes each file as ``[NAME].<22 random characters>.tmp`` next to it and
# renames it; a checkout that fails (a full disk) or is killed leaves it behind.
DVC_TEMPORARY = re.compile(r"\.[A-Za-z0-9_-]{22}\.tmp$")
# What the rollback itself writes before an ``os.replace`` (restored files, undo).
OWN_TEMPORARY = ".dvc-monitor-tmp"





@dataclass
class RecoveryResult(JsonValue):
    action: str  # "none" | "undone" | "finished" | "cleaned" | "busy" | "discarded"
    name: str | None = None
    version: str | None = None
    commit: str | None = None
    message: str = ""


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a folder tree."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _link_tree(src: Path, dst: Path) -> None:
    """Back up ``src`` (file or folder) at ``dst`` with hard links (copies across devices).

    DVC never writes an output in place (checkout and repro delete, then create), so a
    hard link keeps the old bytes safe at no cost.
    """
    def one(s: Path, d: Path) -> None:
        try:
            os.link(s, d, follow_symlinks=False)
        except OSError:
            shutil.copy2(s, d, follow_symlinks=False)

    if src.is_dir() and not src.is_symlink():
        dst.mkdir(parents=True)
        for dirpath, dirnames, filenames in os.walk(src):
            rel = Path(dirpath).relative_to(src)
            for dn in dirnames:
                (dst / rel / dn).mkdir()
            for fn in filenames:
                one(Path(dirpath) / fn, dst / rel / fn)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        one(src, dst)



class RollbackJournal:
    """Journal, backups, steps and undo of one rollback (recovery reuses undo/finish)."""

    def __init__(self, git: GitRepo, journal: dict, checkpoint: Checkpoint = no_checkpoint):
        self.checkpoint = checkpoint
        self.git = git
        self.root = git.root
        self.dir = state_dir(git)
        self.path = self.dir / ROLLBACK_JOURNAL
        self.backups = self.dir / BACKUP_NAME
        self.j = journal

    def save(self) -> None:
        _write_json_atomic(self.path, self.j)

    # -- backups ------------------------------------------------------------------------

    def backup(self) -> None:
        """Write the journal, then back up every file and output that may be touched."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.backups.exists():
            shutil.rmtree(self.backups)
        self.j["phase"] = "backup"
        self.save()
        self.backups.mkdir()
        for i, rel in enumerate(self.j["files"]):
            src = self.root / rel
            if src.is_file() or src.is_symlink():
                name = f"f{i}"
                shutil.copy2(src, self.backups / name, follow_symlinks=False)
                self.j["backup_files"][rel] = name
        for i, rel in enumerate(self.j["outs"]):
            src = self.root / rel
            if os.path.lexists(src):
                name = f"o{i}"
                _link_tree(src, self.backups / (name + ".tmp"))
                os.replace(self.backups / (name + ".tmp"), self.backups / name)
                self.j["backup_outs"][rel] = name
        self.j["phase"] = "apply"
        self.save()

    # -- undo ---------------------------------------------------------------------------

    def undo(self) -> None:
        """Put HEAD, the index, the files and the outputs back; then drop the journal."""
        kill_children()
        if self.j.get("phase") == "backup":  # backups incomplete: nothing was touched yet
            self.cleanup()
            return
        if self.j.get("phase") != "undo":  # a recovery after a kill goes on undoing
            self.j["phase"] = "undo"
            self.save()
        git = self.git
        commit = self.j.get("commit")
        head = git.head()
        if commit and head == commit:
            for tag in self._our_tags():
                git.run("tag", "-d", "--end-of-options", tag, check=False)
            git.run("update-ref", "-m", "dvc-monitor: undo interrupted rollback",
                    f"refs/heads/{self.j['branch']}", self.j["head"], commit)
        # files: bytes from the backups, index from the original HEAD
        for rel in self.j["files"]:
            dst = self.root / rel
            name = self.j["backup_files"].get(rel)
            if name is not None:
                src = self.backups / name
                if not src.exists():
                    raise RollbackError(f"the backup of {rel} is missing from {self.backups}; "
                                        "restore it with 'git checkout HEAD -- "
                                        f"{rel}'")
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".dvc-monitor-tmp")
                shutil.copy2(src, tmp, follow_symlinks=False)
                os.replace(tmp, dst)
            elif os.path.lexists(dst):
                remove_path(dst)
        paths = [p for p in self.j["files"]]
        if paths:
            in_head = set(git.ls_tree(self.j["head"], paths))
            back = [p for p in paths if p in in_head]
            gone = [p for p in paths if p not in in_head]
            if back:
                git.run("--literal-pathspecs", "reset", "-q", self.j["head"], "--", *back,
                        check=False)
            if gone:
                git.run("--literal-pathspecs", "rm", "-q", "--cached", "--ignore-unmatch",
                        "--", *gone, check=False)
        self.checkpoint("undo")
        # DVC outputs: move each backup back (a missing backup was moved back already)
        for rel in self.j["outs"]:
            dst = self.root / rel
            name = self.j["backup_outs"].get(rel)
            if name is None:
                if os.path.lexists(dst):
                    remove_path(dst)
                continue
            src = self.backups / name
            if not os.path.lexists(src):
                continue
            if os.path.lexists(dst):
                remove_path(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        _repair_dvc_locks(self.root)
        self.remove_temporaries()
        self.cleanup()

    def remove_temporaries(self) -> None:
        """Remove the temporary files a failed or killed step left next to the files and
        outputs of the rollback (DVC's ``.*.tmp``, ours); files git tracks are kept."""
        rels = list(self.j["files"]) + list(self.j["outs"])
        found: dict[Path, str] = {}
        for rel in rels:
            path = self.root / rel
            own = path.with_name(path.name + OWN_TEMPORARY)
            if os.path.lexists(own):
                found[own] = f"{rel}{OWN_TEMPORARY}"
            folder = path.parent
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder):
                    if DVC_TEMPORARY.search(entry.name) and entry.is_file(follow_symlinks=False):
                        found[Path(entry.path)] = Path(entry.path).relative_to(self.root).as_posix()
        if not found:
            return
        tracked = set(self.git.run("--literal-pathspecs", "ls-files", "-z", "--",
                                   *found.values()).split("\0"))
        for path, rel in found.items():
            if rel not in tracked:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def cleanup(self) -> None:
        # the journal goes first: backups without a journal are stale and removed by the
        # next rollback, a journal without its backups could not be undone
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        shutil.rmtree(self.backups, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()

    def _our_tags(self) -> list[str]:
        from dvc_monitor.registry.tags import parse_message

        txn = self.j["txn"]
        found = []
        for ref in self.git.tags():
            if not ref.annotated or "#" not in ref.name:
                continue
            meta = parse_message(ref.message) or {}
            rb = meta.get("rollback")
            if isinstance(rb, dict) and rb.get("txn") == txn:
                found.append(ref.name)
        return found

    # -- finishing after a commit -------------------------------------------------------

    def finish(self) -> str | None:
        """Write the stage tag if it is due and missing; drop the journal. Returns the tag."""
        tag = None
        if self.j.get("assign"):
            existing = self._our_tags()
            if existing:
                tag = existing[0]
            else:
                tag = assign_stage(self.root, self.j)
        self.remove_temporaries()
        self.cleanup()
        return tag


def _repair_dvc_locks(root: Path) -> None:
    """A DVC call interrupted while rewriting its rwlock file leaves it torn: repair it."""
    from dvc_monitor.repo import dvc as dvcops

    with contextlib.suppress(Exception):
        dvcops.repair_rwlock(root)


@contextlib.contextmanager
def repository_lock(root: Path, command: str, timeout: float | None = None) -> Iterator[None]:
    """The repository lock (re-entrant: ``registry.promote`` takes it again inside)."""
    from dvc_monitor.repo.locking import repo_lock

    with repo_lock(root, command, **({} if timeout is None else {"timeout": timeout})):
        yield


def assign_stage(root: Path, j: dict) -> str:
    """Write the stage tag the journal ``j`` asks for (its block records the rollback)."""
    from dvc_monitor.registry.writes import promote

    meta = {"rollback": {
        "from": j.get("from_version"), "to": j["version"], "by": j["by"], "why": j.get("message"),
        "commit": j.get("commit") or j["head"], "txn": j["txn"], "at": j["started"],
    }}
    if j.get("trigger"):  # an automatic rollback (watch); a person's has no trigger
        meta["rollback"]["trigger"] = j["trigger"]
    message = (f"Roll back {j['name']}: assign stage {j['stage']} to {j['version']}"
               + (f" ({j['message']})" if j.get("message") else ""))
    event = promote(root, j["name"], j["version"], j["stage"], message=message, extra_meta=meta)
    return event.tag


# -- verification -----------------------------------------------------------------------




# -- recovery ---------------------------------------------------------------------------


def _commit_is_ours(git: GitRepo, commit: str, j: dict) -> bool:
    msg = git.run("log", "-1", "--format=%B%x00%P", commit, check=False)
    text, _, parents = msg.partition("\0")
    return f"{TRAILER_ID}: {j['txn']}" in text and parents.strip() == j["head"]


def recover_locked(git: GitRepo, discard: bool = False,
                   checkpoint: Checkpoint = no_checkpoint) -> RecoveryResult:
    """Finish or undo the rollback the journal describes. The caller holds the lock."""
    state = state_dir(git)
    path = state / ROLLBACK_JOURNAL
    try:
        j = json.loads(path.read_text())
    except FileNotFoundError:
        return RecoveryResult("none", message="no interrupted rollback")
    except ValueError:
        # journals are written atomically, so this one was damaged from outside; without
        # backups nothing had been touched, with backups a person must look
        if (state / BACKUP_NAME).exists() and not discard:
            raise RollbackError(
                f"the rollback journal {path} is unreadable; the backups of the files it "
                f"touched are in {state / BACKUP_NAME}: compare with 'git status', then run "
                "'dvc-monitor recover --discard'") from None
        shutil.rmtree(state / BACKUP_NAME, ignore_errors=True)
        path.unlink()
        with contextlib.suppress(OSError):
            state.rmdir()
        return RecoveryResult("cleaned", message="removed an unreadable rollback journal "
                              "(the rollback had not changed anything)")
    tx = RollbackJournal(git, j, checkpoint)
    name, version = j.get("name"), j.get("version")
    if discard:
        tx.cleanup()
        return RecoveryResult("discarded", name, version,
                              message=f"discarded the journal of the rollback of {name} to "
                                      f"{version} without changing the repository")
    kill_orphans(git.root)
    _repair_dvc_locks(git.root)
    head = git.head()
    if j.get("phase") == "backup":
        tx.cleanup()
        return RecoveryResult("cleaned", name, version,
                              message=f"an interrupted rollback of {name} to {version} had not "
                                      "changed anything; removed its journal")
    commit = j.get("commit")
    if not commit and head != j["head"] and head and _commit_is_ours(git, head, j):
        commit = j["commit"] = head
    if commit and head == commit and j.get("phase") != "undo":
        tag = tx.finish()
        extra = f" and tagged {tag}" if tag else ""
        return RecoveryResult("finished", name, version, commit,
                              message=f"finished an interrupted rollback of {name} to {version} "
                                      f"(commit {commit[:7]}{extra})")
    if head != j["head"] and not (commit and head == commit):
        raise RollbackError(
            f"an interrupted rollback of {name} started at commit {j['head'][:7]}, but HEAD is "
            f"now {(head or '?')[:7]}; undo it by hand (backups in {state / BACKUP_NAME}) or "
            "run 'dvc-monitor recover --discard' to drop its journal")
    with signals_ignored():
        tx.undo()
    return RecoveryResult("undone", name, version, j["head"],
                          message=f"undid an interrupted rollback of {name} to {version}: the "
                                  f"repository is back at {j['head'][:7]} as before")


def recover(root: str | os.PathLike[str] = ".", discard: bool = False,
            wait: bool = True, checkpoint: Checkpoint = no_checkpoint) -> RecoveryResult:
    """Finish or undo an interrupted rollback (``dvc-monitor recover``).

    With ``wait=False``, return ``action="busy"`` at once when another dvc-monitor
    command holds the repository lock (a rollback still running is not interrupted).
    """
    git = GitRepo.discover(root)
    if pending_journal(git.root) is None:
        return RecoveryResult("none", message="no interrupted rollback in this repository")
    try:
        with repository_lock(git.root, "recover", None if wait else 0):
            return recover_locked(git, discard=discard, checkpoint=checkpoint)
    except RepositoryLocked:
        if wait:
            raise
        return RecoveryResult("busy", message="a rollback is running in this repository")


def recover_pending(start: str | os.PathLike[str] = ".",
                    checkpoint: Checkpoint = no_checkpoint) -> RecoveryResult | None:
    """What every command runs first: recover an interrupted rollback, if there is one."""
    if pending_journal(start) is None:
        return None
    return recover(start, wait=False, checkpoint=checkpoint)

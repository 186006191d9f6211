"""Git access for dvc-monitor: one small class over the ``git`` command line.

Reads are done in bulk: all tags with their peeled commits, taggers and messages in
one ``git for-each-ref``; file contents at many commits in one ``git cat-file --batch``.
Arguments are passed as a list (never through a shell), and user-supplied names are
validated by ``dvc_monitor.registry.tags`` before they get here.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from dvc_monitor.errors import ExternalCommandError, NotAGitRepository, UsageError, shown

# Field and record separators that cannot appear in ref names or (practically) messages.
_FS = "\x1f"
_RS = "\x1e"

_TAG_FIELDS = (
    "%(refname:strip=2)",
    "%(objecttype)",
    "%(objectname)",
    "%(*objectname)",
    "%(taggername)",
    "%(taggeremail:trim)",
    "%(taggerdate:unix)",
    "%(*authorname)%(authorname)",
    "%(*authoremail:trim)%(authoremail:trim)",
    "%(*committerdate:unix)%(committerdate:unix)",
    "%(contents)",
)


# Suffixes that make one revision into a set of commits (git help revisions).
_RANGE_SUFFIX = re.compile(r"\^(!|@|-\d*)$")
_IDENT = re.compile(r"^(?P<name>.*) <(?P<email>[^<>]*)> \d+ [+-]\d{4}$")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def check_rev(rev: object, what: str = "revision") -> str:
    """``rev`` when it can name one commit; else a one-line ``UsageError``.

    Every revision a user gives (``diff A B``, ``--base``, ``--head``) passes here before
    git sees it: no option-like text (``-x``), no newline or control character, and no
    range (``A..B``, ``A...B``, ``A^!``, ``A^@``, ``A^-``), which names many commits.
    """
    if not isinstance(rev, str) or not rev.strip():
        raise UsageError(f"empty {what}; give a branch, tag or commit")
    if rev.startswith("-"):
        raise UsageError(f"invalid {what} {shown(rev)}: it starts with '-'; "
                         "give a branch, tag or commit")
    if any(not c.isprintable() for c in rev):
        raise UsageError(f"invalid {what} {shown(rev)}: it contains a newline or control "
                         "character; give a branch, tag or commit")
    if ".." in rev or _RANGE_SUFFIX.search(rev):
        raise UsageError(f"{what} {shown(rev)} is a range of commits; give one revision "
                         "(a branch, tag or commit, e.g. HEAD~1)")
    return rev


@dataclass(frozen=True)
class TagRef:
    """One git tag as read by ``for-each-ref``, with the commit it points to."""

    name: str
    annotated: bool
    commit: str  # the peeled commit
    tagger_name: str  # tagger for annotated tags, commit author for lightweight ones
    tagger_email: str
    time: int  # unix seconds: tagger date, or commit date for lightweight tags
    message: str  # empty for lightweight tags
    commit_author: str
    commit_email: str
    commit_time: int
    oid: str = ""  # the tag object's id (the commit's, for a lightweight tag)


@dataclass(frozen=True)
class Identity:
    """Who is writing: the committer identity git would use (see ``GitRepo.identity``)."""

    name: str
    email: str


class GitRepo:
    """A git work tree. All git calls of dvc-monitor go through ``run``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @classmethod
    def discover(cls, path: str | os.PathLike[str] = ".") -> "GitRepo":
        """The repository containing ``path``, or ``NotAGitRepository``."""
        start = Path(path).resolve()
        if not start.exists():
            raise NotAGitRepository(f"{path} does not exist")
        proc = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise NotAGitRepository(
                f"{start} is not inside a git repository; run 'git init' there first"
            )
        return cls(proc.stdout.strip())

    # -- running git -------------------------------------------------------------------

    def run(
        self,
        *args: str,
        input: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        text: bool = True,
    ) -> str:
        """Run ``git ARGS`` in the work tree and return stdout.

        ``env`` adds variables for this call only (``os.environ`` is never modified).
        """
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        if isinstance(input, str) and not text:
            input = input.encode()
        proc = subprocess.run(
            ["git", *args],
            cwd=self.root,
            input=input,
            capture_output=True,
            text=text,
            env=full_env,
        )
        if check and proc.returncode != 0:
            err = proc.stderr if text else proc.stderr.decode(errors="replace")
            last = (err.strip().splitlines() or ["(no output)"])[-1]
            raise ExternalCommandError(f"git {args[0]} failed: {last}")
        return proc.stdout

    def ok(self, *args: str) -> bool:
        """True if ``git ARGS`` exits 0 (output discarded)."""
        proc = subprocess.run(["git", *args], cwd=self.root, capture_output=True)
        return proc.returncode == 0

    # -- state -------------------------------------------------------------------------

    def _answer(self, *args: str) -> str | None:
        """Stripped stdout of a git query, or None when it prints nothing (or fails)."""
        return self.run(*args, check=False).strip() or None

    def head(self) -> str | None:
        """The commit HEAD points to, or None in a repository with no commits."""
        return self._answer("rev-parse", "--verify", "-q", "HEAD^{commit}")

    def branch(self) -> str | None:
        """The current branch name, or None when HEAD is detached."""
        return self._answer("symbolic-ref", "-q", "--short", "HEAD")

    def remote_default_branch(self, remote: str = "origin") -> str | None:
        """``origin/NAME`` when ``refs/remotes/origin/HEAD`` is set (by clone, or
        ``git remote set-head origin --auto``), else None."""
        return self._answer("symbolic-ref", "-q", "--short", f"refs/remotes/{remote}/HEAD")

    def status_porcelain(self, *paths: str) -> str:
        """``git status --porcelain`` (untracked files included), optionally limited to paths."""
        args = ["status", "--porcelain", "--untracked-files=all"]
        if paths:
            args += ["--", *paths]
        return self.run(*args)

    def is_dirty(self, *paths: str) -> bool:
        return bool(self.status_porcelain(*paths).strip())

    def resolve(self, rev: str) -> str | None:
        """The full commit id of ``rev``, or None when it names no commit.

        ``rev`` is checked by ``check_rev`` (a ``UsageError`` when it is no single revision).
        """
        check_rev(rev)
        out = self._answer("rev-parse", "--verify", "-q", "--end-of-options", f"{rev}^{{commit}}")
        return out if out and _OBJECT_ID.fullmatch(out) else None

    def identity(self) -> Identity:
        """Who is writing, as git decides it for a commit (``git var GIT_COMMITTER_IDENT``):
        ``GIT_COMMITTER_NAME``/``EMAIL`` over ``user.name``/``user.email``."""
        match = _IDENT.match(self._answer("var", "GIT_COMMITTER_IDENT") or "")
        if match is None:  # git knows no identity: it would refuse to commit too
            return Identity("unknown", "unknown")
        return Identity(match["name"] or "unknown", match["email"] or "unknown")

    def common_dir(self) -> Path | None:
        """The repository's common git directory (shared by its worktrees), or None."""
        dot = self.root / ".git"
        if dot.is_dir():
            return dot
        try:
            proc = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=self.root,
                                  capture_output=True, text=True)
        except OSError:
            return None
        out = proc.stdout.strip()
        if proc.returncode != 0 or not out:
            return None
        path = Path(out)
        return path if path.is_absolute() else (self.root / path).resolve()

    # -- bulk reads --------------------------------------------------------------------

    def tags(self, pattern: str = "refs/tags", strip: int | None = None) -> list[TagRef]:
        """Every tag under ``pattern`` in one ``git for-each-ref`` call.

        Names are relative to ``pattern`` (``refs/tags/a@v1`` and, for a mirror namespace,
        ``refs/dvc-monitor/remotes/origin/tags/a@v1`` are both ``a@v1``), or have their
        first ``strip`` components removed (``tags("refs/tags/a@v1", strip=2)``: one tag).
        """
        depth = strip if strip is not None else len([p for p in pattern.split("/") if p])
        fields = (f"%(refname:strip={depth})",) + _TAG_FIELDS[1:]
        fmt = _FS.join(fields) + _RS
        out = self.run("for-each-ref", f"--format={fmt}", pattern)
        result = []
        for record in out.split(_RS):
            record = record.lstrip("\n")
            if not record:
                continue
            fields = record.split(_FS)
            if len(fields) != len(_TAG_FIELDS):
                continue
            (name, otype, oid, peeled, tagger, temail, tdate,
             author, aemail, cdate, message) = fields
            annotated = otype == "tag"
            commit = peeled if annotated else oid
            if annotated and not peeled:
                continue  # a tag of a tag or of a tree: not a GTO event
            if not annotated and otype != "commit":
                continue
            ctime = int(cdate) if cdate.strip().isdigit() else 0
            result.append(
                TagRef(
                    name=name,
                    annotated=annotated,
                    commit=commit,
                    tagger_name=tagger if annotated else author,
                    tagger_email=temail if annotated else aemail,
                    time=int(tdate) if annotated and tdate.strip().isdigit() else ctime,
                    message=message if annotated else "",
                    commit_author=author,
                    commit_email=aemail,
                    commit_time=ctime,
                    oid=oid,
                )
            )
        return result

    def ls_tree(self, rev: str, paths: list[str]) -> dict[str, tuple[str, str]]:
        """Tracked files under ``paths`` at ``rev``: path -> (mode, blob oid)."""
        if not paths:
            return {}
        out = self.run("--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", rev, "--",
                       *paths, check=False)
        tree = {}
        for rec in out.split("\0"):
            if not rec:
                continue
            meta, _, path = rec.partition("\t")
            mode, otype, oid = meta.split()
            if otype == "blob":
                tree[path] = (mode, oid)
        return tree

    def read_blobs(self, specs: Iterable[str]) -> dict[str, bytes | None]:
        """Contents of many ``REV:PATH`` objects in one ``git cat-file --batch`` call.

        Missing objects map to None. Duplicate specs are read once.
        """
        wanted = list(dict.fromkeys(specs))
        if not wanted:
            return {}
        for spec in wanted:
            if "\n" in spec:
                raise ValueError(f"object name with a newline: {spec!r}")
        proc = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.root,
            input=("\n".join(wanted) + "\n").encode(),
            capture_output=True,
        )
        if proc.returncode != 0:
            raise ExternalCommandError(
                f"git cat-file failed: {proc.stderr.decode(errors='replace').strip()}"
            )
        out = proc.stdout
        pos = 0
        result: dict[str, bytes | None] = {}
        for spec in wanted:
            eol = out.index(b"\n", pos)
            header = out[pos:eol].decode(errors="replace")
            pos = eol + 1
            parts = header.split()
            if len(parts) == 3 and parts[1] in ("blob", "tree", "commit", "tag"):
                size = int(parts[2])
                result[spec] = out[pos:pos + size] if parts[1] == "blob" else None
                pos += size + 1  # content and its trailing newline
            else:  # "<spec> missing" or "ambiguous"
                result[spec] = None
        return result

    def read_blob(self, rev: str, path: str) -> bytes | None:
        return self.read_blobs([f"{rev}:{path}"])[f"{rev}:{path}"]

    def list_files(self, rev: str, path: str) -> list[str]:
        """Tracked files under ``path`` at ``rev`` (recursive)."""
        out = self.run("ls-tree", "-r", "--name-only", "--end-of-options", rev, "--", path, check=False)
        return [line for line in out.splitlines() if line]

    # -- writes ------------------------------------------------------------------------

    def create_annotated_tag(
        self,
        name: str,
        commit: str,
        message: str,
        when: int | None = None,
        tagger: Identity | None = None,
    ) -> None:
        """Create an annotated tag. ``when`` sets the tagger time (unix seconds).

        The message is kept verbatim (git would otherwise strip ``#`` lines).
        """
        env: dict[str, str] = {}
        if when is not None:
            env["GIT_COMMITTER_DATE"] = f"{int(when)} +0000"
        if tagger is not None:
            env["GIT_COMMITTER_NAME"] = tagger.name
            env["GIT_COMMITTER_EMAIL"] = tagger.email
        self.run(
            "tag", "-a", "--cleanup=verbatim", "-F", "-", "--end-of-options", name, commit,
            input=message,
            env=env,
        )

    def delete_tag(self, name: str) -> None:
        self.run("tag", "-d", "--end-of-options", name)

    # -- remotes (team work: push, sync) ---------------------------------------------------

    def remotes(self) -> list[str]:
        """Names of the configured git remotes."""
        return [line.strip() for line in self.run("remote").splitlines() if line.strip()]

    def _network(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A git call that talks to a remote: never prompts (no terminal, ssh batch mode)."""
        env = dict(os.environ)
        env["GIT_TERMINAL_PROMPT"] = "0"
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        try:
            return subprocess.run(["git", *args], cwd=self.root, capture_output=True,
                                  text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ExternalCommandError(f"git {args[0]} timed out after {timeout:.0f} s") from None

    @staticmethod
    def _last_line(proc: subprocess.CompletedProcess) -> str:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit code {proc.returncode}"

    def ls_remote_tags(self, remote: str) -> dict[str, str]:
        """tag name -> object id (the tag object, not peeled) of every tag on ``remote``."""
        proc = self._network("ls-remote", "--tags", "--refs", remote)
        if proc.returncode != 0:
            raise ExternalCommandError(
                f"cannot reach git remote '{remote}': {self._last_line(proc)}")
        result = {}
        for line in proc.stdout.splitlines():
            oid, _, ref = line.partition("\t")
            if ref.startswith("refs/tags/"):
                result[ref[len("refs/tags/"):]] = oid
        return result

    def fetch_tags_into(self, remote: str, namespace: str) -> None:
        """Copy ``remote``'s tags to ``NAMESPACE/*`` (never to ``refs/tags``: nothing local
        is clobbered); refs gone from the remote are pruned from the namespace."""
        proc = self._network("fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                             "--prune", remote, f"+refs/tags/*:{namespace}/*")
        if proc.returncode != 0:
            raise ExternalCommandError(
                f"cannot fetch tags from git remote '{remote}': {self._last_line(proc)}")

    def ref_oids(self, *patterns: str) -> dict[str, str]:
        """Full ref name -> object id (unpeeled) for the refs under ``patterns``."""
        out = self.run("for-each-ref", "--format=%(refname) %(objectname)", *patterns)
        pairs = (line.split(" ", 1) for line in out.splitlines() if " " in line)
        return {ref: oid for ref, oid in pairs}

    def create_ref(self, ref: str, oid: str) -> bool:
        """Create ``ref`` at ``oid`` only if it does not exist yet; False if it does."""
        proc = subprocess.run(["git", "update-ref", "--no-deref", ref, oid, ""],
                              cwd=self.root, capture_output=True, text=True)
        return proc.returncode == 0

    def push_refs(self, remote: str, refspecs: list[str], atomic: bool = True) -> "PushOutcome":
        """``git push [--atomic] --porcelain REMOTE REFSPEC...``; never forced.

        Returns what the remote did with each ref; a remote that cannot be reached raises.
        """
        args = ["push", "--porcelain"]
        if atomic:
            args.append("--atomic")
        proc = self._network(*args, remote, *refspecs)
        rejected: dict[str, str] = {}
        done: list[str] = []
        for line in proc.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or len(parts[0]) != 1:
                continue
            flag, spec, summary = parts[0], parts[1], parts[2]
            dst = spec.rpartition(":")[2]
            if flag == "!":
                rejected[dst] = summary.strip()
            elif flag in ("*", " ", "+", "-", "="):
                done.append(dst)
        if proc.returncode != 0 and not rejected:
            raise ExternalCommandError(
                f"cannot push to git remote '{remote}': {self._last_line(proc)}")
        return PushOutcome(done=done, rejected=rejected, detail=self._last_line(proc)
                           if proc.returncode else "")


@dataclass(frozen=True)
class PushOutcome:
    """What ``git push --porcelain`` reported: refs updated, refs rejected (ref -> reason)."""

    done: list
    rejected: dict
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.rejected

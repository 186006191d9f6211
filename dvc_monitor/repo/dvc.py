"""Every call dvc-monitor makes into DVC. DVC is imported here, lazily, and nowhere else.

Read-only commands (versions, show, history, diff) never come here: they read
``dvc.lock`` from git directly. Writes go through DVC's own Python API so that what
lands in ``.dvc`` files, ``dvc.lock`` and the cache is exactly what ``dvc`` would write.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Iterator

from dvc_monitor.errors import ExternalCommandError


@contextlib.contextmanager
def open_repo(root: str | Path) -> Iterator["object"]:
    """A ``dvc.repo.Repo`` for ``root``; DVC errors become one-line ``ExternalCommandError``."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            yield repo
    except DvcException as exc:
        raise ExternalCommandError(f"dvc: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text}: {str(cause).strip()}"
    return " ".join(text.split())


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence DVC's own logging and progress output (our commands print their own)."""
    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def is_dvc_repo(root: str | Path) -> bool:
    return (Path(root) / ".dvc").is_dir()


def init(root: str | Path) -> None:
    """``dvc init`` (which also stages DVC's files in git)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with quiet():
            Repo.init(str(root))
    except DvcException as exc:
        raise ExternalCommandError(f"dvc init: {_one_line(exc)}") from None


def remotes(root: str | Path) -> dict[str, str]:
    """Configured remotes (name -> url) from the repository's DVC config."""
    with open_repo(root) as repo:
        return {name: conf.get("url", "") for name, conf in repo.config["remote"].items()}


def add_default_remote(root: str | Path, name: str, url: str) -> None:
    """``dvc remote add -d NAME URL`` into the project config (``.dvc/config``)."""
    with open_repo(root) as repo:
        with repo.config.edit("repo") as conf:
            conf["remote"][name] = {"url": url}
            conf["core"]["remote"] = name


def add(root: str | Path, target: str) -> None:
    """``dvc add TARGET`` (relative to ``root``); writes TARGET.dvc and caches the data."""
    with open_repo(root) as repo, quiet():
        repo.add(str(Path(root) / target))


def repro(root: str | Path, targets: list[str] | None = None, force: bool = False) -> None:
    """``dvc repro TARGETS``, with DVC's stage output hidden unless it fails."""
    with open_repo(root) as repo, quiet():
        repo.reproduce(targets=[str(Path(root) / t) for t in targets] if targets else None,
                       force=force)


def repro_at(root: str | Path, targets: list[str]) -> None:
    """``dvc repro TARGETS`` as its own process in ``root``: for a repository other than
    the one this process works in (DVC reads some paths relative to the current folder)."""
    import os
    import subprocess
    import sys

    # the stages' commands (dvc-monitor stage ...) from this installation first
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "-q", *targets], cwd=root,
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines or ["no output"]
        raise ExternalCommandError(f"dvc repro failed: {errors[-1]}")


def status(root: str | Path, targets: list[str] | None = None) -> dict:
    """``dvc status TARGETS``: an empty dict means the pipeline is up to date."""
    with open_repo(root) as repo, quiet():
        return repo.status(targets=[str(Path(root) / t) for t in targets] if targets else None)


def md5_cache_dir(root: str | Path) -> str:
    """The local cache's object folder, where md5 ``ab12...`` is ``<dir>/ab/12...``.

    ``.dvc/cache/files/md5`` unless the cache is configured elsewhere.
    """
    with open_repo(root) as repo:
        return str(repo.cache.local.path)


def share_cache(root: str | Path, other: str | Path) -> None:
    """Make the DVC repository at ``root`` (e.g. a second git worktree of ``other``) use
    ``other``'s local cache: ``cache.dir`` in ``root``'s ``.dvc/config.local`` (never
    committed)."""
    cache_dir = Path(md5_cache_dir(other)).parent.parent
    local = Path(root) / ".dvc" / "config.local"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(f"[cache]\n    dir = {cache_dir}\n")


def checkout(root: str | Path, targets: list[str]) -> None:
    """``dvc checkout -R TARGETS`` (folders: every output below them); outputs whose
    objects are missing are left for ``repro``."""
    with open_repo(root) as repo, quiet():
        repo.checkout(targets=[str(Path(root) / t) for t in targets], recursive=True,
                      force=True, allow_missing=True)


# -- rollback: one in-process DVC session for a whole transaction ------------------------

import json  # noqa: E402
import os  # noqa: E402


class RemoteUnavailable(ExternalCommandError):
    """The DVC remote could not be used (network, credentials, missing folder)."""


# What storage clients raise (or say) when credentials are missing or refused.
_CREDENTIAL_SIGNS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
                     "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                     "InvalidClientTokenId", "AccessDenied", "Unable to locate credentials",
                     "DefaultCredentialsError", "ClientAuthenticationError")


def is_credentials_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the credentials are missing or refused."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, PermissionError) or any(
                sign in type(exc).__name__ or sign in str(exc) for sign in _CREDENTIAL_SIGNS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


_PROBE_SECONDS = 5.0
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def endpoint_refuses(url: str) -> str | None:
    """Why the HTTP(S) endpoint ``url`` (an S3 ``endpointurl``, an http remote) cannot
    be reached, found with one TCP connection, or None (reachable, not HTTP, or behind a
    proxy, which only the client can use). botocore and s3fs retry a refused connection
    for about ten seconds before giving up; this answers at once."""
    import os
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # a bad port: let the client report it
    where = f"{parts.hostname}:{port}"
    try:
        socket.create_connection((parts.hostname, port), timeout=_PROBE_SECONDS).close()
    except socket.gaierror:
        return f"host {parts.hostname} does not resolve"
    except ConnectionRefusedError:
        return f"{where} refused the connection"
    except (TimeoutError, socket.timeout):
        return f"{where} did not answer within {_PROBE_SECONDS:.0f} s"
    except OSError as exc:
        return f"{where}: {exc.strerror or exc}"
    return None


class DvcSession:
    """One ``dvc.repo.Repo`` kept open across the steps of a rollback.

    Spawning ``dvc`` three times (fetch, checkout, repro) costs about a second each in
    interpreter start-up and imports; one in-process Repo does the same work once.
    Call ``reset`` after changing ``dvc.yaml``/``dvc.lock``/``.dvc`` files on disk so
    that DVC reads them again. Every DVC error becomes a one-line ``ExternalCommandError``.
    """

    def __init__(self, root: str | Path, remote: str | None = None):
        from dvc.exceptions import DvcException
        from dvc.repo import Repo

        self.root = Path(root)
        try:
            self.repo = Repo(str(root))
        except DvcException as exc:
            raise ExternalCommandError(f"dvc: {_one_line(exc)}") from None
        self._remote = None
        self._probed = False
        self.remote_name = remote  # None: the default remote (core.remote)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.repo.close()

    def reset(self) -> None:
        """Forget what DVC read from dvc.yaml/dvc.lock/.dvc files (they changed on disk)."""
        self.repo._reset()

    @contextlib.contextmanager
    def _dvc(self, what: str) -> Iterator[None]:
        from dvc.exceptions import DvcException

        try:
            with quiet():
                yield
        except DvcException as exc:
            raise ExternalCommandError(f"dvc {what}: {_one_line(exc)}") from None

    # -- the local cache ------------------------------------------------------------

    @property
    def cache_dir(self) -> str:
        """The md5 object folder of the local cache (``.dvc/cache/files/md5``)."""
        return str(self.repo.cache.local.path)

    def cache_path(self, oid: str) -> str:
        return self.repo.cache.local.oid_to_path(oid)

    def in_cache(self, oid: str) -> bool:
        return os.path.isfile(self.cache_path(oid))

    def local_manifest(self, oid: str) -> bytes | None:
        """The bytes of a ``.dir`` manifest in the local cache, or None."""
        try:
            with open(self.cache_path(oid), "rb") as f:
                return f.read()
        except OSError:
            return None

    # -- the remote -----------------------------------------------------------------

    def remote(self) -> tuple[str, str] | None:
        """(name, url) of the remote in use (``remote_name`` or the default), or None."""
        name = self.remote_name or self.repo.config["core"].get("remote")
        if not name:
            return None
        if name not in self.repo.config["remote"]:
            from dvc_monitor.errors import UsageError

            known = ", ".join(sorted(self.repo.config["remote"])) or "none configured"
            raise UsageError(f"unknown DVC remote '{name[:60]}' (remotes: {known}); add it with "
                             "'dvc remote add NAME URL'")
        conf = self.repo.config["remote"].get(name) or {}
        return name, str(conf.get("url", ""))

    def _remote_odb(self):
        if self._remote is None:
            from dvc.exceptions import DvcException

            try:
                with quiet():
                    self._remote = self.repo.cloud.get_remote_odb(self.remote_name, "rollback")
            except DvcException as exc:
                raise RemoteUnavailable(f"dvc remote: {_one_line(exc)}") from None
        return self._remote

    def _remote_call(self, fn, *args):
        name, url = self.remote() or ("?", "?")
        if not self._probed:
            self._probed = True
            conf = self.repo.config["remote"].get(name) or {}
            refused = endpoint_refuses(conf.get("endpointurl") or url)
            if refused:
                raise RemoteUnavailable(f"cannot reach DVC remote '{name}' ({url}): {refused}")
        try:
            with quiet():
                return fn(*args)
        except FileNotFoundError:
            raise
        except Exception as exc:  # botocore, network and fsspec errors come in many types
            if is_credentials_error(exc):
                raise RemoteUnavailable(
                    f"DVC remote '{name}' ({url}) has no valid credentials: "
                    f"{_one_line(exc)[:200]}; set them (for S3: AWS_ACCESS_KEY_ID and "
                    f"AWS_SECRET_ACCESS_KEY, an AWS profile, or 'dvc remote modify --local "
                    f"{name} access_key_id ...')") from None
            raise RemoteUnavailable(
                f"cannot reach DVC remote '{name}' ({url}): {_one_line(exc)[:200]}") from None

    def remote_root_missing(self) -> bool:
        """True for a local-folder remote whose folder does not exist (moved or unmounted)."""
        remote = self.remote()
        if remote is None or "://" in remote[1]:
            return False
        odb = self._remote_odb()
        root = odb.path  # <remote>/files/md5 (DVC 3), or <remote> (DVC 2 layout)
        while os.path.basename(root) in ("md5", "files"):
            root = os.path.dirname(root)
        return not os.path.isdir(root)  # an empty remote folder exists: objects are missing

    def remote_has(self, oids: list[str]) -> set[str]:
        """The subset of ``oids`` that the default remote holds."""
        if not oids:
            return set()
        odb = self._remote_odb()
        return set(self._remote_call(lambda: odb.oids_exist(list(oids))))

    def remote_manifest(self, oid: str) -> bytes | None:
        """The bytes of a ``.dir`` manifest on the remote, or None (nothing is cached)."""
        odb = self._remote_odb()
        path = odb.oid_to_path(oid)
        try:
            return self._remote_call(lambda: odb.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def fetch(self, oids: list[str], jobs: int | None = None) -> tuple[int, list[str]]:
        """Download exactly ``oids`` into the local cache (a ``.dir`` oid brings all its files).

        Returns (objects transferred, oids that failed).
        """
        from dvc_data.hashfile.hash_info import HashInfo

        if not oids:
            return 0, []
        odb = self._remote_odb()
        his = [HashInfo("md5", oid) for oid in oids]
        result = self._remote_call(lambda: self.repo.cloud.pull(his, jobs=jobs, odb=odb))
        self.repo.drop_data_index()
        failed = sorted(hi.value for hi in result.failed)
        return len(result.transferred), failed

    def push(self, oids: list[str], jobs: int | None = None) -> tuple[int, list[str]]:
        """Upload exactly ``oids`` from the local cache to the remote.

        Returns (objects transferred, oids that failed).
        """
        from dvc_data.hashfile.hash_info import HashInfo

        if not oids:
            return 0, []
        odb = self._remote_odb()
        his = [HashInfo("md5", oid) for oid in oids]
        result = self._remote_call(lambda: self.repo.cloud.push(his, jobs=jobs, odb=odb))
        return len(result.transferred), sorted(hi.value for hi in result.failed)

    def remote_objects(self) -> dict[str, int]:
        """oid -> bytes of every object on the remote (one listing; for gc)."""
        odb = self._remote_odb()

        def listing() -> dict[str, int]:
            if not odb.fs.exists(odb.path):
                return {}
            oids = list(odb.all())
            infos = odb.fs.info([odb.oid_to_path(oid) for oid in oids]) if oids else []
            return {oid: int(info.get("size") or 0) for oid, info in zip(oids, infos)}

        return self._remote_call(listing)

    def remote_delete(self, oids: list[str]) -> None:
        """Delete exactly ``oids`` from the remote (for gc)."""
        if not oids:
            return
        odb = self._remote_odb()
        paths = [odb.oid_to_path(oid) for oid in oids]
        self._remote_call(lambda: odb.fs.remove(paths))

    def used_by_branches(self) -> set[str]:
        """Objects the workspace and every branch head refer to (``dvc gc -w -a``'s set).

        ``.dir`` manifests are listed, not expanded: the caller reads their entries.
        """
        with self._dvc("gc"):
            used = self.repo.used_objs(all_branches=True, force=True)
        return {hi.value for his in used.values() for hi in his if hi.value}

    # -- the workspace ---------------------------------------------------------------

    def workspace_hash(self, rel: str) -> str | None:
        """DVC's md5 of a workspace file or folder (``...dir`` for folders), None if absent.

        Uses DVC's state database, so unchanged files are not read again.
        """
        from dvc_data.hashfile.build import build

        path = os.path.join(self.repo.root_dir, rel)
        if not os.path.lexists(path):
            return None
        with self._dvc("status"):
            _, _, obj = build(self.repo.cache.local, path, self.repo.fs, "md5", dry_run=True,
                              ignore=self.repo.dvcignore, state=self.repo.state)
        return obj.hash_info.value

    def workspace_entries(self, rel: str) -> dict[str, str] | None:
        """relpath -> md5 of the files in a workspace folder (DVC's view), None if absent."""
        from dvc_data.hashfile.build import build

        path = os.path.join(self.repo.root_dir, rel)
        if not os.path.isdir(path):
            return None
        with self._dvc("status"):
            _, _, obj = build(self.repo.cache.local, path, self.repo.fs, "md5", dry_run=True,
                              ignore=self.repo.dvcignore, state=self.repo.state)
        return {"/".join(key): hi.value for key, _, hi in obj}

    def cache_workspace_files(self, files: dict[str, str]) -> int:
        """Copy workspace files (rel path -> md5, hashes already known) into the local cache.

        Done for outputs that are in the workspace but not cached, so that ``repro`` does not
        see them as "not in cache" and rebuild them.
        """
        odb = self.repo.cache.local
        n = 0
        with self._dvc("commit"):
            for rel, oid in files.items():
                if not self.in_cache(oid):
                    odb.add(os.path.join(self.repo.root_dir, rel), self.repo.fs, oid,
                            hardlink=False)
                    n += 1
        return n

    def cache_workspace_dir(self, rel: str, oid: str) -> None:
        """Save a workspace folder whose hash is ``oid`` to the cache (manifest and files)."""
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.transfer import transfer

        if self.in_cache(oid):
            return
        odb = self.repo.cache.local
        path = os.path.join(self.repo.root_dir, rel)
        with self._dvc("commit"):
            staging, _, obj = build(odb, path, self.repo.fs, "md5",
                                    ignore=self.repo.dvcignore, state=self.repo.state)
            if obj.hash_info.value != oid:
                raise ExternalCommandError(f"{rel} changed while it was being cached")
            transfer(staging, odb, {obj.hash_info}, shallow=False, hardlink=False)

    def add_manifest(self, oid: str, raw: bytes) -> None:
        """Put a ``.dir`` manifest (read from the remote, hash checked) into the local cache."""
        import hashlib

        if hashlib.md5(raw).hexdigest() != oid.split(".")[0]:
            raise ExternalCommandError(f"the remote's manifest {oid} is corrupted")
        odb = self.repo.cache.local
        if not self.in_cache(oid):
            odb.add_bytes(oid, raw)
            with contextlib.suppress(Exception):
                odb.protect(odb.oid_to_path(oid))

    def checkout(self, targets: list[str], force: bool = True) -> dict:
        """``dvc checkout TARGETS`` (``--force`` for exactly these targets' outputs).

        Outputs whose objects are not in the cache are removed and left for ``repro``
        (``allow_missing``); the result lists them under ``failed``.
        """
        from dvc.exceptions import CheckoutError

        paths = [os.path.join(self.repo.root_dir, t) for t in targets]
        try:
            with self._dvc("checkout"):
                return self.repo.checkout(targets=paths, force=force, allow_missing=True)
        except CheckoutError as exc:  # pragma: no cover - allow_missing makes this rare
            return exc.result

    def repro(self, targets: list[str], force: bool = False) -> list[str]:
        """``dvc repro TARGETS``; returns the stages that ran (or came from the run-cache).

        A signal meanwhile (SIGINT to our pid included, which DVC would ignore) stops the
        stage command and raises here (``signals.interruptible``).
        """
        from dvc_monitor.repo.processes import kill_children
        from dvc_monitor.repo.signals import interruptible

        paths = [os.path.join(self.repo.root_dir, t) for t in targets]
        with self._dvc("repro"):
            stages = interruptible(lambda: self.repo.reproduce(targets=paths, force=force),
                                   stop=kill_children)
        return [s.addressing for s in stages or []]

    def run_cache_has(self, lock_stage: dict) -> bool:
        """True when the run-cache holds an entry for this ``dvc.lock`` stage entry."""
        from dvc.stage.cache import _get_cache_hash

        try:
            key = _get_cache_hash(json.loads(json.dumps(lock_stage)), key=True)
        except Exception:  # an entry DVC could not hash: no run-cache either
            return False
        return os.path.isdir(self.repo.stage_cache._get_cache_dir(key))


def repair_rwlock(root: str | Path) -> bool:
    """Remove ``.dvc/tmp/rwlock`` when a killed DVC call left it empty or torn.

    DVC rewrites that file in place; a process killed in between leaves it unreadable and
    every later ``dvc`` command fails ("Unable to read RWLock-file"). Without the file DVC
    starts afresh. Done under DVC's own guard lock. Returns True when it was repaired.
    """
    from dvc.lock import make_lock

    tmp = Path(root) / ".dvc" / "tmp"
    path = tmp / "rwlock"
    if not path.is_file():
        return False
    with make_lock(str(tmp / "rwlock.lock"), tmp_dir=str(tmp)):
        try:
            json.loads(path.read_text(encoding="utf-8"))
            return False
        except (ValueError, UnicodeDecodeError):
            path.unlink()
            return True


@contextlib.contextmanager
def session(root: str | Path, remote: str | None = None) -> Iterator[DvcSession]:
    """A ``DvcSession`` (on remote ``remote``, default: core.remote), closed afterwards."""
    s = DvcSession(root, remote)
    try:
        yield s
    finally:
        s.close()
# (end of the rollback section)

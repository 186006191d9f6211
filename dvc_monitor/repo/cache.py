"""Where the local DVC cache keeps an object, found without importing DVC.

Read commands (diff, report) read ``.dir`` manifests and model files straight from the
cache; importing DVC just to locate it would cost them a second.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
from pathlib import Path


def objects_dir(root: str | Path) -> Path:
    """The md5 object folder of the local cache: ``<cache>/files/md5``.

    ``<cache>`` is ``cache.dir`` from ``.dvc/config.local`` or ``.dvc/config`` (relative
    to ``.dvc/``, as DVC reads it), else ``.dvc/cache``. Global and system DVC config
    are not consulted; callers that miss an object may ask DVC itself.
    """
    dvc_dir = Path(root) / ".dvc"
    found = None
    for name in ("config", "config.local"):  # later files override earlier ones
        path = dvc_dir / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(path.read_text())
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            found = parser.get("cache", "dir").strip().strip("'\"")
    base = dvc_dir / "cache"
    if found:
        base = Path(found) if Path(found).is_absolute() else (dvc_dir / found).resolve()
    return base / "files" / "md5"


def object_path(root: str | Path, md5: str) -> Path:
    """Where the object with hash ``md5`` (``ab12...``, or ``ab12....dir``) lives."""
    return objects_dir(root) / md5[:2] / md5[2:]


def md5_file(path: str | Path) -> str:
    """The md5 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def workspace_hash(path: Path) -> str | None:
    """md5 of a file, or DVC's ``.dir`` hash of a folder, computed from the bytes (no state db).

    A folder's hash is the md5 of its manifest, ``json.dumps(sorted [{"md5", "relpath"}])``,
    which is how DVC computes it. None when nothing is there.
    """
    if path.is_symlink() and not path.exists():
        return None
    if path.is_file():
        return md5_file(path)
    if not path.is_dir():
        return None
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for fn in filenames:
            full = Path(dirpath) / fn
            rel = full.relative_to(path).as_posix()
            entries.append({"md5": md5_file(full), "relpath": rel})
    entries.sort(key=lambda e: e["relpath"])
    manifest = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(manifest).hexdigest() + ".dir"

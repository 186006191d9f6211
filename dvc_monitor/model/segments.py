"""Sealed segments: the partitions of a model grouped so that manifests stop growing.

A model keeps its newest batches (fewer than K, ``segment_size`` in ``monitor.yaml``,
32 by default) in ``data/`` (``data.dvc``). When ``data/`` holds K batches, the next
ingest seals them: it moves them into ``segments/sNNNN/``, tracked by its own
``segments/sNNNN.dvc``. A sealed segment never changes, so its ``.dir`` manifest is
stored once and shared by every later version; a new version adds one manifest of at
most K entries. Partition files keep their global names, so the ``_row`` keys, the
holdout and the trained model do not change when a segment is sealed. See
docs/storage.md ("Manifests").

The stages read ``segments/`` through a ``segments`` dependency in ``dvc.yaml``. It is
added by the first seal (in the same ingest transaction), next to every ``data``
dependency: a model that never reaches K batches, and every repository made before
segments existed, keeps its ``dvc.yaml`` and layout exactly as they were.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from dvc_monitor.errors import DvcMonitorError
from dvc_monitor.model.layout import SEGMENT_RE, ModelLayout
from dvc_monitor.repo.git import GitRepo


def _is_segment_dvc(path: str) -> bool:
    base = posixpath.basename(path)
    return base.endswith(".dvc") and bool(SEGMENT_RE.match(base[:-4]))


def _segment_number(path: str) -> int:
    return int(SEGMENT_RE.match(posixpath.basename(path).removesuffix(".dvc")).group(1))


def sealed_at(git: GitRepo, commit: str | None, layout: ModelLayout) -> dict[str, str | None]:
    """Each sealed segment folder (repo-relative, in order) -> the ``.dir`` md5 its ``.dvc``
    file records at ``commit`` (None: the workspace). Empty for a model without segments."""
    from dvc_monitor.repo.dvcfiles import parse_yaml
    from dvc_monitor.repo.dvcfiles import dvc_file_md5

    if commit is None:
        folder = git.root / layout.segments
        files = [f"{layout.segments}/{p.name}" for p in folder.glob("s*.dvc")] \
            if folder.is_dir() else []
        raw = {rel: (git.root / rel).read_bytes() for rel in files if _is_segment_dvc(rel)}
    else:
        files = [p for p in git.ls_tree(commit, [layout.segments]) if _is_segment_dvc(p)
                 and posixpath.dirname(p) == layout.segments]
        blobs = git.read_blobs(f"{commit}:{p}" for p in files)
        raw = {p: blobs[f"{commit}:{p}"] for p in files}
    out: dict[str, str | None] = {}
    for rel in sorted(raw, key=_segment_number):
        try:
            md5 = dvc_file_md5(parse_yaml((raw[rel] or b"").decode("utf-8", "replace"), rel))
        except DvcMonitorError:
            md5 = None
        out[rel.removesuffix(".dvc")] = md5
    return out


def next_segment(root: Path, layout: ModelLayout) -> str:
    """The folder (repo-relative) the next seal creates."""
    folder = root / layout.segments
    numbers = [int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else [])
               if (m := SEGMENT_RE.match(p.name.removesuffix(".dvc")))]
    return layout.segment(max(numbers, default=0) + 1)


def with_segments_dep(text: str) -> str | None:
    """``dvc.yaml`` text with a ``segments`` dependency after each ``data`` one (comments and
    order kept), the same text when it has them already, or None when no stage reads
    ``data`` (a pipeline dvc-monitor does not know how to feed: nothing is sealed)."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # the templates' style
    yaml.width = 4096
    try:
        doc = yaml.load(text)
    except YAMLError:
        return None
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        return None
    found = changed = False
    data, segs = ModelLayout.DATA, ModelLayout.SEGMENTS
    for body in stages.values():
        deps = body.get("deps") if isinstance(body, dict) else None
        if not isinstance(deps, list) or body.get("wdir") not in (None, "."):
            continue
        names = [str(d).rstrip("/") for d in deps]
        if data not in names:
            continue
        found = True
        if segs not in names:
            deps.insert(names.index(data) + 1, segs)
            changed = True
    if not found:
        return None
    if not changed:
        return text
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()

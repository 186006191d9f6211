"""``init``: put a monitoring model into a git repository (``ingesting`` feeds it data).

``init`` is a transaction over the work tree: every file it creates is removed and every
file it changes is put back if any step fails, so a failed command leaves the
repository as it found it.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from dvc_monitor.kinds import KINDS, kind_for
from dvc_monitor.model.data import partition_files, sealed_segments, write_batch
from dvc_monitor.errors import TemplateError, UsageError, shown
from dvc_monitor.values import JsonValue
from dvc_monitor.repo.git import GitRepo
from dvc_monitor.model.layout import ROOT_DVC_YAML, ModelLayout

TEMPLATE_FILES = ("dvc.yaml", "params.yaml", "monitor.yaml")
SAMPLE_BATCHES = 3
CI_KINDS = ("github", "gitlab")


def templates_dir() -> Path:
    """Templates shipped in the wheel, or the checkout's top-level ``templates/``."""
    packaged = Path(__file__).resolve().parents[1] / "_templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


def default_remote_dir(root: Path) -> Path:
    """The embedded default DVC remote: a folder outside the work tree, per repository.

    ``$DVC_MONITOR_HOME/remotes/<repo-name>-<hash of its path>`` (``DVC_MONITOR_HOME``
    defaults to ``~/.local/share/dvc-monitor``). Clones on the same machine share it.
    The name is ASCII-folded (``modèles-ü`` -> ``modeles-u``), because DVC's config file
    can only store ASCII; the hash keeps folders whose names fold alike apart.
    """
    home = Path(os.environ.get("DVC_MONITOR_HOME") or Path.home() / ".local/share/dvc-monitor")
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return home / "remotes" / f"{ascii_slug(root.resolve().name)}-{digest}"


def ascii_slug(name: str) -> str:
    """``name`` with accents folded and every other non-ASCII run made one ``-``
    (``repo`` if nothing is left); ASCII names are returned unchanged."""
    if name.isascii():
        return name
    folded = "".join(c for c in unicodedata.normalize("NFKD", name)
                     if not unicodedata.combining(c))
    slug = re.sub(r"[^\x00-\x7f]+", "-", folded).strip("-")
    return slug or "repo"


def check_remote_url(url: str, default: bool) -> None:
    """Refuse a DVC remote URL that DVC's config writer cannot store (non-ASCII)."""
    if url.isascii():
        return
    fix = ("set DVC_MONITOR_HOME to an ASCII folder, or pass --remote with an ASCII path or URL"
           if default else "pass --remote with an ASCII path or URL")
    raise UsageError(f"DVC's config can only store ASCII, and the remote {shown(url)} "
                     f"is not: {fix}")


@dataclass
class WorkTreeTransaction:
    """Remembers what a command created or changed, and puts it all back on ``undo``."""

    root: Path
    created: list[Path] = field(default_factory=list)
    saved: dict[Path, bytes | None] = field(default_factory=dict)
    index_paths: list[str] = field(default_factory=list)

    def remember(self, rel: str) -> None:
        path = self.root / rel
        if path in self.saved:
            return
        self.saved[path] = path.read_bytes() if path.is_file() else None

    def write(self, rel: str, text: str) -> None:
        self.remember(rel)
        path = self.root / rel
        if not path.parent.exists():
            top = path.parent
            while not top.parent.exists():
                top = top.parent
            self.created.append(top)
            path.parent.mkdir(parents=True)
        path.write_text(text)

    def undo(self) -> None:
        import shutil

        for path, content in self.saved.items():
            if content is None:
                if path.is_file():
                    path.unlink()
            else:
                path.write_bytes(content)
        for path in reversed(self.created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        if self.index_paths:
            git = GitRepo(self.root)
            git.run("reset", "-q", "--", *self.index_paths, check=False)


@dataclass(frozen=True)
class InitResult(JsonValue):
    name: str
    kind: str
    files: list[str]
    remote: str | None
    batches: int
    next_steps: list[str]


def render(text: str, name: str) -> str:
    return text.replace("{{name}}", name)


def _artifact_entry(layout: ModelLayout, kind: str) -> dict:
    return {
        "path": layout.model,
        "type": "model",
        "desc": f"{kind_for(kind).description}, managed by dvc-monitor",
        "labels": ["monitoring", kind],
    }


def _root_dvc_yaml_with_artifact(root: Path, layout: ModelLayout, kind: str, force: bool) -> str:
    """The root dvc.yaml text with this model's ``artifacts:`` entry, comments preserved."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    path = root / ROOT_DVC_YAML
    doc = yaml.load(path.read_text()) if path.is_file() else None
    if doc is None:
        doc = {}
    artifacts = doc.setdefault("artifacts", {})
    if artifacts is None:
        artifacts = doc["artifacts"] = {}
    if layout.name in artifacts and not force:
        raise TemplateError(
            f"{ROOT_DVC_YAML} already declares artifact {layout.name!r}; "
            "choose another --name or pass --force to overwrite"
        )
    artifacts[layout.name] = _artifact_entry(layout, kind)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def init(path: str | Path, kind: str, name: str, sample_data: bool = False,
         force: bool = False, remote: str | None = None, ci: str | None = None,
         seed: int = 0) -> InitResult:
    """Scaffold model ``name`` of ``kind`` into the git repository at ``path``."""
    from dvc_monitor.repo import dvc as dvcops
    from dvc_monitor.model import trainer

    if kind not in KINDS:
        raise TemplateError(f"unknown template {kind!r}; choose one of: {', '.join(KINDS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UsageError(f"--seed must be a whole number from 0 to {2**32 - 1}, not {shown(seed)}")
    if ci is not None and ci not in CI_KINDS:
        raise TemplateError(f"unknown CI system {ci!r}; choose one of: {', '.join(CI_KINDS)}")
    layout = ModelLayout(name)  # validates the name
    git = GitRepo.discover(path)
    root = git.root
    source = templates_dir() / kind
    if not source.is_dir():
        raise TemplateError(f"template folder {source} is missing; reinstall dvc-monitor")

    planned = {f"{layout.dir}/{f}": render((source / f).read_text(), name) for f in TEMPLATE_FILES}
    planned[f"{layout.dir}/{trainer.FILE}"] = trainer.render(trainer.current())
    if ci:
        planned.update(ci_files(ci))
    clobber = [rel for rel in planned if (root / rel).exists()]
    if sample_data and sealed_segments(root / layout.segments):
        raise TemplateError(f"{layout.segments} holds sealed data batches; sample data would "
                            "repeat their numbers. Remove the model folder first, or init "
                            "without --sample-data")
    if sample_data and partition_files(root / layout.data):
        clobber.append(layout.data)
    if clobber and not force:
        raise TemplateError(f"refusing to overwrite {', '.join(clobber)}; pass --force to replace")
    root_yaml = _root_dvc_yaml_with_artifact(root, layout, kind, force)

    tx = WorkTreeTransaction(root)
    created_dvc = not dvcops.is_dvc_repo(root)
    try:
        if created_dvc:
            tx.created.append(root / ".dvc")
            tx.remember(".dvcignore")
            tx.index_paths += [".dvc", ".dvcignore"]
            dvcops.init(root)
        remote_url = None
        if not dvcops.remotes(root):
            remote_url = remote or str(default_remote_dir(root))
            check_remote_url(remote_url, default=remote is None)
            if "://" not in remote_url:
                Path(remote_url).mkdir(parents=True, exist_ok=True)
            tx.remember(".dvc/config")
            dvcops.add_default_remote(root, "local", remote_url)
        for rel, text in planned.items():
            tx.write(rel, text)
        tx.write(ROOT_DVC_YAML, root_yaml)
        files = [ROOT_DVC_YAML, *planned]
        batches = 0
        if sample_data:
            batches = _write_sample_data(root, layout, kind, tx, seed)
            tx.remember(layout.data_dvc)
            tx.remember(f"{layout.dir}/.gitignore")
            dvcops.add(root, layout.data)
            files += [layout.data_dvc, f"{layout.dir}/.gitignore"]
        tx.index_paths += files
        git.run("add", "--", *files, ".dvc/config")
    except BaseException:
        tx.undo()
        raise

    steps = []
    if not sample_data:
        steps.append(f"dvc-monitor ingest {name} BATCH.csv   # add training data")
    steps += [
        f"dvc repro {layout.dvc_yaml}",
        f'git add -A && git commit -m "Add {kind} model {name}"',
        f"dvc-monitor register {name} --bump minor",
        f"git push -u origin {git.branch() or 'main'} --follow-tags",
        "dvc push",
    ]
    return InitResult(name, kind, files, remote_url, batches, steps)


def _write_sample_data(root: Path, layout: ModelLayout, kind: str, tx: WorkTreeTransaction,
                       seed: int) -> int:
    spec = kind_for(kind)
    data_dir = root / layout.data
    if not data_dir.exists():
        tx.created.append(data_dir)
        data_dir.mkdir(parents=True)
    for index in range(1, SAMPLE_BATCHES + 1):
        write_batch(spec.sample_batch(index, seed=seed), data_dir / f"batch-{index:05d}.csv")
    return SAMPLE_BATCHES


def ci_files(ci: str) -> dict[str, str]:
    """The CI workflow files that ``init --ci`` writes (relative path -> text)."""
    folder = templates_dir() / "ci" / ci
    if not folder.is_dir():
        raise TemplateError(f"CI templates for {ci} are missing from {folder}")
    target_dir = {"github": ".github/workflows/", "gitlab": ""}[ci]
    out = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            out[target_dir + path.name] = path.read_text()
    return out

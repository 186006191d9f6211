"""The trainer fingerprint: what, besides the tracked inputs, decides a model's bytes.

The stage logic lives in the installed dvc-monitor package, and scikit-learn, skops,
numpy and scipy shape the bytes it writes. DVC sees none of them, so an upgrade would
change what ``dvc repro`` produces while the pipeline looks up to date. Each model folder
therefore holds ``trainer.json``, a git-tracked dep of the train stage::

    {"libraries": {"numpy": "2.1.3", "scikit-learn": "1.5.2", "scipy": "1.14.1",
                   "skops": "0.10.0"},
     "schema": 1, "stage_code": "3f2a9c0d41b7"}

``stage_code`` is a hash of the sources that turn data into model bytes (the stage
modules, the data reader and the model writer). As a dep, the file is in the version id
like any other input. The train stage refuses to run when the file disagrees with this
install; ``dvc-monitor trainer NAME --adopt`` rewrites it (a new input: a new version).
Without the file (models made before it existed) nothing is checked.

Reading the fingerprint imports nothing heavy: versions come from package metadata.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dvc_monitor.errors import TrainerMismatch

FILE = "trainer.json"
SCHEMA = 1
LIBRARIES = ("numpy", "scikit-learn", "scipy", "skops")
# the sources (relative to the dvc_monitor package) whose code decides the model bytes
STAGE_SOURCES = ("kinds/*.py", "stages/*.py", "model/data.py", "model/files.py")


def stage_code_hash() -> str:
    """12 hex digits of sha256 over the stage sources (path and bytes, in path order)."""
    package = Path(__file__).resolve().parents[1]
    files = sorted({p for pattern in STAGE_SOURCES for p in package.glob(pattern)})
    digest = hashlib.sha256()
    for path in files:
        rel = path.relative_to(package).as_posix()
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _library_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def current() -> dict:
    """This install's fingerprint (the content ``trainer.json`` should have)."""
    return {"schema": SCHEMA, "stage_code": stage_code_hash(),
            "libraries": {name: _library_version(name) for name in LIBRARIES}}


def render(fingerprint: dict) -> str:
    return json.dumps(fingerprint, indent=2, sort_keys=True) + "\n"


def parse(raw: bytes | str, where: str, name: str = "NAME") -> dict:
    """A recorded fingerprint; a broken file is an error naming it and the fix."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("libraries"), dict):
        raise TrainerMismatch(f"{where} is not a trainer fingerprint; rewrite it with "
                              f"'dvc-monitor trainer {name} --adopt'")
    return doc


def differences(recorded: dict, now: dict) -> list[str]:
    """What differs, e.g. ``scikit-learn 1.5.2 -> 1.6.0``, ``stage code 3f2a.. -> 9b1c..``."""
    out = []
    if recorded.get("stage_code") != now["stage_code"]:
        out.append(f"dvc-monitor stage code {recorded.get('stage_code')} -> {now['stage_code']}")
    libs = recorded.get("libraries") or {}
    for name in sorted(set(libs) | set(now["libraries"])):
        was, got = libs.get(name, "not recorded"), now["libraries"].get(name, "not recorded")
        if was != got:
            out.append(f"{name} {was} -> {got}")
    return out


@dataclass(frozen=True)
class TrainerStatus:
    """A model's recorded trainer against this install's (``dvc-monitor trainer NAME``)."""

    name: str
    path: str  # repo-relative trainer.json
    recorded: dict | None  # None: the model has no trainer.json
    current: dict
    differences: list[str]
    adopted: bool = False  # --adopt rewrote the file
    declared: bool = True  # trainer.json is a dep of the train stage in dvc.yaml

    @property
    def matches(self) -> bool:
        return self.recorded is not None and not self.differences

    def to_json(self) -> dict:
        return {"name": self.name, "path": self.path, "recorded": self.recorded,
                "current": self.current, "matches": self.matches,
                "differences": self.differences, "adopted": self.adopted,
                "declared": self.declared}


def _declared(model_dir: Path) -> bool:
    from dvc_monitor.repo.dvcfiles import parse_yaml

    path = model_dir / "dvc.yaml"
    if not path.is_file():
        return False
    stages = (parse_yaml(path.read_text(), str(path)) or {}).get("stages") or {}
    return any(FILE in ((s or {}).get("deps") or []) for s in stages.values()
               if isinstance(s, dict))


def status(root: str | Path, name: str, adopt: bool = False) -> TrainerStatus:
    """The recorded and current trainer of model ``name``; ``adopt`` rewrites the file."""
    from dvc_monitor.errors import UnknownModel
    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.repo.git import GitRepo

    layout = ModelLayout(name)
    git = GitRepo.discover(root)
    model_dir = git.root / layout.dir
    if not (model_dir / ModelLayout.MONITOR).is_file():
        from dvc_monitor.model.state import refuse_adopted

        refuse_adopted(git.root, name, "record a trainer for it", "its own pipeline's code "
                       "and dvc.lock are its lineage ('dvc-monitor diff' shows them)")
        raise UnknownModel(f"no model '{name}' here ({layout.monitor} not found); "
                           "create one with 'dvc-monitor init'")
    path = model_dir / FILE
    rel = f"{layout.dir}/{FILE}"
    now = current()
    recorded = None
    if path.is_file():
        try:
            recorded = parse(path.read_bytes(), rel, name)
        except TrainerMismatch:
            if not adopt:
                raise
            recorded = {"libraries": {}}  # broken: --adopt rewrites it
    diffs = differences(recorded, now) if recorded is not None else []
    adopted = False
    if adopt and (recorded is None or diffs):
        tmp = path.with_name(FILE + ".tmp")
        tmp.write_text(render(now))
        tmp.replace(path)
        adopted = True
    return TrainerStatus(name, rel, recorded, now, diffs, adopted, _declared(model_dir))


def check(workdir: str | Path, name: str) -> str | None:
    """Refuse to train on another trainer than the recorded one (the train stage calls it).

    Returns a note when the model records no trainer (nothing is checked then).
    """
    path = Path(workdir) / FILE
    if not path.is_file():
        return (f"no {FILE} here: the trainer (dvc-monitor's stage code, scikit-learn, skops, "
                "numpy, scipy) is not part of this model's version; record it with "
                f"'dvc-monitor trainer {name} --adopt'")
    diffs = differences(parse(path.read_bytes(), FILE, name), current())
    if diffs:
        raise TrainerMismatch(
            f"{FILE} records another trainer than this install ({'; '.join(diffs)}), so "
            "training here would not reproduce its model; install the recorded versions, or "
            f"adopt this trainer with 'dvc-monitor trainer {name} --adopt' (that makes a new "
            "version: dvc repro, commit, register)")
    return None


def describe(fingerprint: dict) -> str:
    """One line naming a trainer: ``dvc-monitor stage code 3f2a9c0d41b7, numpy 2.1.3, ...``."""
    libs = fingerprint.get("libraries") or {}
    return ", ".join([f"dvc-monitor stage code {fingerprint.get('stage_code')}"]
                     + [f"{name} {libs[name]}" for name in sorted(libs)])


def other_trainer_note(diffs: list[str]) -> str:
    return f"registered with another trainer than this install's ({'; '.join(diffs)})"


def compare_recorded(raw: bytes | None, where: str) -> tuple[bool, str | None]:
    """For a rollback plan: would a retrain here run on another trainer than the recorded one?

    (differs, note): (False, None) for the same trainer; (True, what differs); (False, a
    note) when ``raw`` is None (the version records no trainer, nothing is checked).
    """
    if raw is None:
        return False, (f"not recorded ({where} has no {FILE}): the retrain is not checked "
                       "against the trainer that made the registered model")
    try:
        diffs = differences(parse(raw, where), current())
    except TrainerMismatch as exc:
        return True, str(exc)
    if not diffs:
        return False, None
    return True, other_trainer_note(diffs)

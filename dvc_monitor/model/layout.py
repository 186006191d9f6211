"""Where a model's files live in a user repository. One place, so nothing else guesses paths.

Model ``NAME`` lives in ``models/NAME/``; see docs/architecture.md for the tree.
All paths here are POSIX, relative to the repository root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dvc_monitor.names import validate_artifact_name

MODELS_DIR = "models"
ROOT_DVC_YAML = "dvc.yaml"
SEGMENT_SIZE = 32  # batches per sealed segment, unless monitor.yaml sets segment_size
SEGMENT_RE = re.compile(r"^s(\d{4,})$")


@dataclass(frozen=True)
class ModelLayout:
    """The paths of one model's files, relative to the repository root."""

    name: str
    folder: str | None = None  # the pipeline folder when it is not models/NAME (model.revision)

    def __post_init__(self) -> None:
        validate_artifact_name(self.name)

    @property
    def dir(self) -> str:
        if self.folder is not None:
            return self.folder or "."
        return str(PurePosixPath(MODELS_DIR) / self.name)

    def _in_dir(self, rel: str) -> str:
        return str(PurePosixPath(self.dir) / rel)

    # Files relative to the model directory (what dvc.yaml and the stages use).
    DVC_YAML = "dvc.yaml"
    DVC_LOCK = "dvc.lock"
    PARAMS = "params.yaml"
    MONITOR = "monitor.yaml"
    DATA = "data"
    DATA_DVC = "data.dvc"
    SEGMENTS = "segments"  # sealed segments: segments/sNNNN/ + segments/sNNNN.dvc
    SPLIT = "prepared/split.json"
    MODEL = "model.skops"
    METRICS = "metrics.json"
    REFERENCE = "reference.json"  # the evaluate stage's reference profile (watch)
    PLOTS = "plots"

    @property
    def dvc_yaml(self) -> str:
        return self._in_dir(self.DVC_YAML)

    @property
    def dvc_lock(self) -> str:
        return self._in_dir(self.DVC_LOCK)

    @property
    def params(self) -> str:
        return self._in_dir(self.PARAMS)

    @property
    def monitor(self) -> str:
        return self._in_dir(self.MONITOR)

    @property
    def data(self) -> str:
        return self._in_dir(self.DATA)

    @property
    def data_dvc(self) -> str:
        return self._in_dir(self.DATA_DVC)

    @property
    def segments(self) -> str:
        return self._in_dir(self.SEGMENTS)

    @classmethod
    def segment_name(cls, number: int) -> str:
        """The folder of sealed segment ``number``, relative to the model directory."""
        return f"{cls.SEGMENTS}/s{number:04d}"

    def segment(self, number: int) -> str:
        return self._in_dir(self.segment_name(number))

    @property
    def split(self) -> str:
        return self._in_dir(self.SPLIT)

    @property
    def model(self) -> str:
        return self._in_dir(self.MODEL)

    @property
    def metrics(self) -> str:
        return self._in_dir(self.METRICS)

    @property
    def reference(self) -> str:
        return self._in_dir(self.REFERENCE)

    @property
    def plots(self) -> str:
        return self._in_dir(self.PLOTS)

    @property
    def pipeline_files(self) -> tuple[str, ...]:
        """Git-tracked files that define this model's pipeline state."""
        return (self.dvc_yaml, self.dvc_lock, self.params, self.monitor, self.data_dvc)

    def stage_target(self, stage: str | None = None) -> str:
        """A ``dvc repro`` target: this model's whole pipeline, or one stage of it."""
        return self.dvc_yaml if stage is None else f"{self.dvc_yaml}:{stage}"

    def abspath(self, root: str | Path, rel: str) -> Path:
        return Path(root) / rel

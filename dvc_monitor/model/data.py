"""Partitioned training data: one CSV per batch in a DVC-tracked directory.

DVC stores each partition file once, whatever the number of versions that use it; a new
batch adds one file and a small directory manifest. ``monitor.yaml`` declares the schema
that every batch is checked against.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_monitor.errors import DvcMonitorError, SchemaError, TemplateError
from dvc_monitor.repo.dvcfiles import parse_yaml

if TYPE_CHECKING:  # pandas is imported lazily: read commands never need it
    import pandas as pd

PARTITION_RE = re.compile(r"^batch-(\d{5})\.csv$")
KINDS = ("anomaly", "forecast", "risk")


@dataclass(frozen=True)
class ModelConfig:
    """The contents of a model's ``monitor.yaml``."""

    kind: str
    name: str
    features: tuple[str, ...]
    label: str | None
    label_required: bool

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        if not path.is_file():
            raise TemplateError(f"{path} not found; is this a model made by 'dvc-monitor init'?")
        return cls.from_text(path.read_text(), str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "monitor.yaml") -> "ModelConfig":
        try:
            raw = parse_yaml(text, source) or {}
            schema = raw.get("schema") or {}
            kind = raw["kind"]
            features = tuple(str(f) for f in schema["features"])
        except (DvcMonitorError, KeyError, TypeError, AttributeError) as exc:
            raise TemplateError(f"{source} is not a valid dvc-monitor model file ({exc})") from None
        if kind not in KINDS:
            raise TemplateError(f"{source}: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        label = schema.get("label")
        return cls(
            kind=kind,
            name=str(raw.get("name", "")),
            features=features,
            label=str(label) if label else None,
            label_required=bool(schema.get("label_required", False)),
        )

    @property
    def columns(self) -> tuple[str, ...]:
        return self.features + ((self.label,) if self.label else ())


def partition_files(data_dir: str | Path) -> list[Path]:
    """The partition files of a data directory, in batch order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    return sorted(p for p in data_dir.iterdir() if PARTITION_RE.match(p.name))


def next_partition_name(data_dir: str | Path) -> str:
    numbers = [int(PARTITION_RE.match(p.name).group(1)) for p in partition_files(data_dir)]
    return f"batch-{(max(numbers) + 1 if numbers else 1):05d}.csv"


def read_batch(path: str | Path) -> "pd.DataFrame":
    """Read one CSV batch; a missing or unreadable file is a ``SchemaError``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such file")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{path}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchemaError(f"{path}: not a readable CSV file ({first})") from None


def expected_columns(config: ModelConfig, data_dir: str | Path) -> tuple[str, ...]:
    """The columns a new batch must have: those of the existing partitions, or the schema's."""
    existing = partition_files(data_dir)
    if existing:
        import pandas as pd

        return tuple(pd.read_csv(existing[0], nrows=0).columns)
    return config.columns


def validate_batch(df: "pd.DataFrame", config: ModelConfig, expected: tuple[str, ...],
                   source: str) -> "pd.DataFrame":
    """Check a batch against the schema and return it with columns in canonical order."""
    import pandas as pd

    cols = list(df.columns)
    allowed = {tuple(sorted(expected))}
    if config.label and not config.label_required and expected == config.columns:
        allowed.add(tuple(sorted(config.features)))  # first batch may come without labels
    if tuple(sorted(cols)) not in allowed:
        missing = [c for c in expected if c not in cols]
        extra = [c for c in cols if c not in expected]
        detail = "; ".join(
            part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
            ) if part
        )
        raise SchemaError(f"{source}: columns do not match the model's data ({detail}); "
                          f"expected: {', '.join(expected)}")
    if len(df) == 0:
        raise SchemaError(f"{source}: the batch has no rows")
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | values.isin([math.inf, -math.inf])
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise SchemaError(
                f"{source}: column {col!r} has a non-numeric or missing value "
                f"{df[col].iloc[row]!r} on data row {row + 1}; every value must be a number"
            )
    order = [c for c in expected if c in cols]
    return df[order].apply(pd.to_numeric)


def write_batch(df: "pd.DataFrame", path: str | Path) -> None:
    """Write a batch in a canonical CSV form (stable bytes for the same values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")
    tmp.replace(path)


def read_partitions(data_dir: str | Path) -> "pd.DataFrame":
    """All partitions concatenated in batch order, with a stable ``_row`` key per row.

    ``_row`` is ``<partition file>:<row number>``: adding a batch never renames old rows,
    so hash-based holdout assignment stays put across versions.
    """
    import pandas as pd

    files = partition_files(data_dir)
    if not files:
        raise SchemaError(f"{data_dir} has no data batches; add one with 'dvc-monitor ingest'")
    frames = []
    for path in files:
        df = pd.read_csv(path)
        df.insert(0, "_row", [f"{path.name}:{i}" for i in range(len(df))])
        frames.append(df)
    return pd.concat(frames, ignore_index=True)

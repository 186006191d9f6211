"""Partitioned training data: one CSV per batch in a DVC-tracked directory.

DVC stores each partition file once, whatever the number of versions that use it; a new
batch adds one file and a small directory manifest. ``monitor.yaml`` declares the schema
that every batch is checked against.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dvc_monitor.errors import DvcMonitorError, SchemaError, TemplateError, shown
from dvc_monitor.kinds import KINDS, Kind, kind_for
from dvc_monitor.model.layout import SEGMENT_RE, SEGMENT_SIZE
from dvc_monitor.repo.cache import object_path
from dvc_monitor.repo.dvcfiles import parse_yaml

if TYPE_CHECKING:  # pandas is imported lazily: read commands never need it
    import pandas as pd

PARTITION_RE = re.compile(r"^batch-(\d{5})\.csv$")
MAX_FUTURE_SECONDS = 366 * 86400
MAX_STREAM_BYTES = 512 * 2**20  # what ingest reads from standard input at most


DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
DEFAULT_INTERVAL = 0.9  # an adopted forecast's interval: this share of reference residuals


@dataclass(frozen=True)
class ModelConfig:
    """The contents of a model's ``monitor.yaml``.

    A model dvc-monitor's own stages train (``init``) has ``adopted`` False. An *adopted*
    model (``dvc-monitor adopt``) is trained by its user's own pipeline: ``reference`` is
    the file or folder of rows (relative to the ``monitor.yaml`` folder) its metrics and
    reference profile come from, ``threshold`` its alert threshold when given,
    ``interval`` the share of reference residuals a forecast's interval covers, and
    ``trusted_types`` the types beyond dvc-monitor's allow-list its reviewers trust.
    """

    kind: str
    name: str
    features: tuple[str, ...]
    label: str | None
    label_required: bool
    segment_size: int = SEGMENT_SIZE  # batches per sealed segment (docs/storage.md)
    adopted: bool = False
    reference: str | None = None
    threshold: float | None = None
    interval: float = DEFAULT_INTERVAL
    trusted_types: tuple[str, ...] = ()

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
            raise TemplateError(f"{source}: unknown kind {shown(kind)}; expected one of "
                                f"{', '.join(KINDS)}")
        label = schema.get("label")
        size = raw.get("segment_size", SEGMENT_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= 100_000:
            raise TemplateError(f"{source}: segment_size must be a whole number from 2 to "
                                f"100000, not {shown(size)}")
        adopted = raw.get("adopted", False)
        if not isinstance(adopted, bool):
            raise TemplateError(f"{source}: adopted must be true or false, not {shown(adopted)}")
        return cls(
            kind=kind,
            name=str(raw.get("name", "")),
            features=features,
            label=str(label) if label else None,
            label_required=bool(schema.get("label_required", False)),
            segment_size=size,
            adopted=adopted,
            reference=_reference(raw.get("reference"), source),
            threshold=_number(raw.get("threshold"), "threshold", source),
            interval=_interval(raw.get("interval", DEFAULT_INTERVAL), source),
            trusted_types=trusted_types(raw.get("trusted_types"), source),
        )

    @property
    def columns(self) -> tuple[str, ...]:
        return self.features + ((self.label,) if self.label else ())

    @property
    def spec(self) -> Kind:
        """The ``Kind`` that scores this model: the built-in kind, or its adopted form."""
        return kind_for(self.kind, adopted=self.adopted)

    def to_yaml(self) -> dict:
        """The ``monitor.yaml`` document of an adopted model (what ``adopt`` writes)."""
        schema: dict = {"features": list(self.features)}
        if self.label:
            schema["label"] = self.label
        doc: dict = {"name": self.name, "kind": self.kind, "adopted": self.adopted,
                     "schema": schema}
        if self.reference is not None:
            doc["reference"] = self.reference
        if self.threshold is not None:
            doc["threshold"] = self.threshold
        if self.interval != DEFAULT_INTERVAL:
            doc["interval"] = self.interval
        doc["trusted_types"] = list(self.trusted_types)
        return doc


def config_at(git, rev: str, folder: str) -> ModelConfig | None:
    """The ``monitor.yaml`` in pipeline ``folder`` ("" for the root) at commit ``rev``,
    read from git (``git`` a ``GitRepo``); None when there is none. ``TemplateError`` for
    one that is not valid."""
    from dvc_monitor.model.layout import ModelLayout
    from dvc_monitor.repo.dvcfiles import norm

    path = norm(folder, ModelLayout.MONITOR)
    raw = git.read_blobs([f"{rev}:{path}"]).get(f"{rev}:{path}")
    if raw is None:
        return None
    return ModelConfig.from_text(raw.decode("utf-8", errors="replace"), f"{path} at {rev[:7]}")


def trusted_types(value, source: str) -> tuple[str, ...]:
    """The ``trusted_types:`` list of a ``monitor.yaml``: dotted type names, sorted."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TemplateError(f"{source}: trusted_types must be a list of dotted type names "
                            "(e.g. sklearn.neighbors._kd_tree.KDTree)")
    for item in value:
        if not isinstance(item, str) or not DOTTED_NAME.match(item):
            raise TemplateError(f"{source}: trusted_types entry {shown(item)} is not a dotted "
                                "type name (e.g. sklearn.neighbors._kd_tree.KDTree); fix it")
    return tuple(sorted(set(value)))


def _number(value, key: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TemplateError(f"{source}: {key} must be a number, not {shown(value)}")
    return float(value)


def _interval(value, source: str) -> float:
    number = _number(value, "interval", source)
    if number is None or not 0 < number < 1:
        raise TemplateError(f"{source}: interval must be a share between 0 and 1 (e.g. 0.9), "
                            f"not {shown(value)}")
    return number


def _reference(value, source: str) -> str | None:
    if value is None:
        return None
    from pathlib import PurePosixPath

    path = PurePosixPath(str(value))
    if not isinstance(value, str) or not value or path.is_absolute():
        raise TemplateError(f"{source}: reference must be a path inside the repository, "
                            f"relative to {source}'s folder, not {shown(value)}")
    return path.as_posix()


def _batches(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if PARTITION_RE.match(p.name))


def sealed_segments(segments_dir: str | Path | None) -> list[Path]:
    """The sealed segment folders (``sNNNN``) of a segments folder, in order."""
    folder = Path(segments_dir) if segments_dir is not None else None
    if folder is None or not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and (m := SEGMENT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def partition_files(data_dir: str | Path, segments_dir: str | Path | None = None) -> list[Path]:
    """The partition files in batch order: those of the sealed segments in ``segments_dir``
    (when given) and those of ``data_dir``, the open segment. Names are global
    (``batch-00042.csv`` keeps its number when it is sealed), so the order is by name."""
    files = [p for seg in sealed_segments(segments_dir) for p in _batches(seg)]
    return sorted(files + _batches(data_dir), key=lambda p: p.name)


def next_partition_name(data_dir: str | Path, segments_dir: str | Path | None = None) -> str:
    numbers = [int(PARTITION_RE.match(p.name).group(1))
               for p in partition_files(data_dir, segments_dir)]
    return f"batch-{(max(numbers) + 1 if numbers else 1):05d}.csv"


def read_batch(path: "str | Path | BinaryIO", source: str | None = None) -> "pd.DataFrame":
    """Read one batch from a CSV file (plain, or ``.gz``/``.bz2``/``.xz``/``.zst``, bounded
    as ``model.reading`` says), a Parquet file (``.parquet``, ``.pq``), or a CSV from a
    binary stream (``-``: standard input).

    A missing file, a folder, a device or an unreadable file is a ``SchemaError``.
    """
    import io

    import pandas as pd

    if hasattr(path, "read"):
        where = source or "standard input"
        data = path.read(MAX_STREAM_BYTES + 1)
        if len(data) > MAX_STREAM_BYTES:
            raise SchemaError(f"{where}: more than {MAX_STREAM_BYTES // 2**20} MiB; "
                              "write the batch to a file and ingest that")
        handle: object = io.BytesIO(data)
    else:
        path = Path(path)
        where = source or str(path)
        if path.is_dir():
            raise SchemaError(f"{shown(where)} is a folder; give a CSV file "
                              "(or '-' to read one from standard input)")
        if not path.exists():
            raise SchemaError(f"{shown(where)}: no such file")
        if not path.is_file():
            raise SchemaError(f"{shown(where)} is not a regular file (a device or pipe?); "
                              "give a CSV file, or pipe the CSV to '-'")
        from dvc_monitor.model.reading import read_rows

        return read_rows(path, where)  # CSV (plain or compressed, bounded) or Parquet
    try:
        _check_header(handle, where)
        return pd.read_csv(handle)
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{shown(where)}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchemaError(f"{shown(where)}: not a readable CSV file ({shown(first)})") from None


def _check_header(handle: object, where: str) -> None:
    """Refuse a header that names a column twice (pandas would rename the second
    ``amount`` to ``amount.1`` and carry on). ``handle`` is rewound for the real read."""
    import pandas as pd

    names = pd.read_csv(handle, header=None, nrows=1, dtype=str, keep_default_na=False)
    if hasattr(handle, "seek"):
        handle.seek(0)
    seen: set[str] = set()
    for name in names.iloc[0] if len(names) else ():
        if name in seen and name.strip():  # blank names are pandas' "Unnamed: N"
            raise SchemaError(f"{shown(where)}: the header names column {shown(name)} twice; "
                              "give each column once")
        seen.add(name)


def expected_columns(config: ModelConfig, data_dir: str | Path,
                     segments_dir: str | Path | None = None) -> tuple[str, ...]:
    """The columns a new batch must have: those of the existing partitions, or the schema's."""
    existing = partition_files(data_dir, segments_dir)
    if existing:
        import pandas as pd

        return tuple(pd.read_csv(existing[0], nrows=0).columns)
    return config.columns


def validate_batch(df: "pd.DataFrame", config: ModelConfig, expected: tuple[str, ...],
                   source: str, first: bool = True, allow_unlabelled: bool = False,
                   existing: "pd.DataFrame | None" = None) -> "pd.DataFrame":
    """Check a batch against the schema and return it with columns in canonical order.

    ``expected`` are the columns of the existing data (``first``: there is none yet).
    A batch that differs from it only by the label column would mix labelled and
    unlabelled rows, which drops the labelled metrics: refused unless ``allow_unlabelled``.
    ``existing`` (forecasts: the existing rows) is checked for repeated timestamps.
    """
    import pandas as pd

    cols = list(df.columns)
    label = config.label
    allowed = {tuple(sorted(expected))}
    label_only = None  # "missing" / "extra": the batch differs from the data by its label
    if label and not config.label_required:
        if label in expected and tuple(sorted(set(expected) - {label})) == tuple(sorted(cols)):
            label_only = "missing"
        elif label not in expected and tuple(sorted((*expected, label))) == tuple(sorted(cols)):
            label_only = "extra"
    if label_only == "missing" and (first or allow_unlabelled):
        allowed.add(tuple(sorted(cols)))  # a first batch may come without labels
    elif label_only is not None and not allow_unlabelled:
        has, lacks = ("has no", "is") if label_only == "missing" else ("has a", "is not")
        raise SchemaError(
            f"{shown(source)} {has} {label!r} column, but the model's data {lacks} labelled; "
            "mixing labelled and unlabelled batches drops the labelled metrics. Make it match, "
            "or pass --allow-unlabelled to add it anyway")
    elif label_only is not None:
        allowed.add(tuple(sorted(cols)))
    if tuple(sorted(cols)) not in allowed:
        missing = [c for c in expected if c not in cols]
        extra = [c for c in cols if c not in expected]
        detail = "; ".join(
            part for part in (
                f"missing {shown(', '.join(missing))}" if missing else "",
                f"unexpected {shown(', '.join(map(str, extra)))}" if extra else "",
            ) if part
        )
        raise SchemaError(f"{shown(source)}: columns do not match the model's data ({detail}); "
                          f"expected: {shown(', '.join(expected))}")
    if len(df) == 0:
        raise SchemaError(f"{shown(source)}: the batch has no rows")
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | values.isin([math.inf, -math.inf])
        if bad.any():
            _refuse_cell(source, col, df[col], bad, "has a non-numeric or missing value",
                         "every value must be a number")
    df = df.apply(pd.to_numeric)
    if label and label in cols:
        _refuse_cell(source, label, df[label], ~df[label].isin([0, 1]), "has the label",
                     "labels must be 0 or 1")
    time_column = kind_for(config.kind).time_column
    if time_column is not None and time_column in cols:
        _check_timestamps(df, time_column, source, existing)
    order = [c for c in expected if c in cols] + [c for c in config.columns
                                                   if c in cols and c not in expected]
    return df[order]


def _refuse_cell(source: str, col: str, values: "pd.Series", bad: "pd.Series", what: str,
                 rule: str) -> None:
    """A ``SchemaError`` naming the first row where ``bad`` holds (none: return)."""
    if not bad.any():
        return
    row = int(bad.to_numpy().nonzero()[0][0])
    raise SchemaError(f"{shown(source)}: column {shown(col)} {what} {shown(values.iloc[row])} "
                      f"on data row {row + 1}; {rule}")


def _check_timestamps(df: "pd.DataFrame", column: str, source: str,
                      existing: "pd.DataFrame | None") -> None:
    """The timestamps in ``column`` (a series kind's time column): whole unix seconds, not
    negative, not far in the future, and each one once (in the batch and in the data
    already ingested)."""
    import time

    ts = df[column]
    rule = "timestamps are whole unix seconds"
    _refuse_cell(source, column, ts, ts != ts.round(), "has the fractional timestamp", rule)
    _refuse_cell(source, column, ts, ts < 0, "has the negative timestamp", rule)
    horizon = time.time() + MAX_FUTURE_SECONDS
    _refuse_cell(source, column, ts, ts > horizon, "has the far-future timestamp",
                 "timestamps may be at most a year ahead")
    _refuse_cell(source, column, ts, ts.duplicated(), "repeats the timestamp",
                 "each hour may appear once")
    if existing is not None and column in existing.columns:
        _refuse_cell(source, column, ts, ts.isin(existing[column]),
                     "has the already ingested timestamp", "each hour may appear once")


# The canonical CSV form: stable bytes for the same values (partitions, score's output).
CSV_FORMAT = {"index": False, "float_format": "%.10g", "lineterminator": "\n"}


def write_batch(df: "pd.DataFrame", path: str | Path, fmt: dict | None = None) -> None:
    """Write a batch in the canonical CSV form (or ``fmt``, ``to_csv`` options), atomically
    (a temporary file beside it, renamed over it: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, **(fmt or CSV_FORMAT))
    tmp.replace(path)


def read_partitions(data_dir: str | Path, segments_dir: str | Path | None = None) -> "pd.DataFrame":
    """All partitions (sealed segments first, see ``partition_files``) concatenated in batch
    order, with a stable ``_row`` key per row.

    ``_row`` is ``<partition file>:<row number>``: adding a batch never renames old rows,
    and sealing keeps the file names, so hash-based holdout assignment stays put across
    versions and layouts.
    """
    import pandas as pd

    files = partition_files(data_dir, segments_dir)
    if not files:
        raise SchemaError(f"{data_dir} has no data batches; add one with 'dvc-monitor ingest'")
    frames = []
    for path in files:
        df = pd.read_csv(path)
        df.insert(0, "_row", [f"{path.name}:{i}" for i in range(len(df))])
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


NOT_IN_CACHE = "partition list not in local cache; run 'dvc fetch'"


def partitions_of(root: str | Path, md5: str) -> tuple[list | None, str | None]:
    """The files of a ``.dir`` object (``[{"relpath", "md5"}]``, sorted), or
    (None, note) when its manifest is not in the local cache."""
    if not md5 or not md5.endswith(".dir"):
        return [], None
    obj = object_path(root, md5)
    try:
        entries = json.loads(obj.read_text())
    except (OSError, ValueError):
        return None, NOT_IN_CACHE
    if not isinstance(entries, list):
        return None, NOT_IN_CACHE
    parts = [{"relpath": str(e.get("relpath")), "md5": str(e.get("md5"))}
             for e in entries if isinstance(e, dict) and "relpath" in e]
    return sorted(parts, key=lambda p: p["relpath"]), None

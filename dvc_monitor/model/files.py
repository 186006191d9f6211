"""Safe, byte-stable model files: skops archives in a canonical zip.

``save_model`` writes the same bytes for the same fitted model in any process, so
DVC's md5 of ``model.skops`` only changes when the model does. ``load_model`` never
unpickles: it reads skops archives and builds only types on our own allow-list,
``TRUSTED_TYPES`` (never a list read from the file).

skops/scikit-learn are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

from dvc_monitor.errors import ModelFileError

# Types the models dvc-monitor trains contain, beyond skops' own default trust list:
# what skops.io.get_untrusted_types reported for IsolationForest, ExtraTreeRegressor,
# GradientBoostingRegressor, HistGradientBoosting{Regressor,Classifier},
# CalibratedClassifierCV(Pipeline(StandardScaler, LogisticRegression)) with sigmoid and
# isotonic calibration, Ridge and QuantileRegressor, plus every type those archives
# name, so a skops release that trusts less by default does not break loading.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # the four types skops 0.16 does not trust by default
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        # estimators
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.dummy.DummyClassifier",
        "sklearn.dummy.DummyRegressor",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._iforest.IsolationForest",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._quantile.QuantileRegressor",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeRegressor",
        # losses and links of the gradient-boosting models
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.PinballLoss",
        "sklearn._loss._loss.CyAbsoluteError",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyPinballLoss",
        # numpy
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.int64",
        "numpy.uint64",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random.MT19937",
        "numpy.random.PCG64",
    }
)

_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644 << 16  # regular file, rw-r--r--
_SCHEMA = "schema.json"


def file_md5(path: str | os.PathLike) -> str:
    """md5 hex of a file's bytes (what DVC records for a file output)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: Any, path: str | os.PathLike) -> str:
    """Write ``model`` as a canonical skops archive at ``path``; return its md5 hex.

    The same fitted model gives the same bytes in any process. The file is replaced
    atomically. Refuses (``ModelFileError``) a model that ``load_model`` would refuse.
    """
    import skops.io

    path = Path(path)
    try:
        raw = skops.io.dumps(model)
    except Exception as err:  # skops raises TypeError & co. for types it cannot store
        raise ModelFileError(f"cannot save a {type(model).__name__} as a skops file: {err}") from err
    data = canonical_archive(raw)
    refused = _refused_types(data, str(path))
    if refused:
        raise ModelFileError(
            f"cannot save model file {path}: the model contains types dvc-monitor does not load: "
            f"{_first(refused)}; nothing was written"
        )
    try:
        _write_atomic(path, data)
    except OSError as err:
        raise ModelFileError(f"cannot write model file {path}: {err.strerror or err}") from err
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def load_model(path: str | os.PathLike, expected_md5: str | None = None) -> Any:
    """Load a model file written by ``save_model``, refusing anything unsafe.

    ``expected_md5`` is the md5 dvc.lock records; a different file is refused.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(
            f"model file {path} does not exist; run 'dvc checkout' or 'dvc pull' to restore it"
        ) from None
    except OSError as err:
        raise ModelFileError(f"cannot read model file {path}: {err.strerror or err}") from None
    return load_model_bytes(data, expected_md5, source=str(path))


def load_model_bytes(data: bytes, expected_md5: str | None = None, source: str = "<bytes>") -> Any:
    """Like ``load_model``, from the file's bytes (e.g. read from the DVC cache)."""
    import skops.io

    if expected_md5 is not None:
        actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if actual != expected_md5:
            raise ModelFileError(
                f"model file {source} has md5 {actual} but dvc.lock records {expected_md5}; "
                "run 'dvc checkout' or 'dvc pull' to restore the recorded model"
            )
    refused = _refused_types(data, source)
    if refused:
        raise ModelFileError(
            f"model file {source} contains types dvc-monitor does not trust: {_first(refused)}; "
            "it was not loaded"
        )
    try:
        return skops.io.loads(data, trusted=sorted(TRUSTED_TYPES))
    except Exception as err:  # a file that passed the audit but cannot be built
        raise ModelFileError(f"model file {source} is corrupt: {_one_line(err)}; it was not loaded") from err


def canonical_archive(raw: bytes) -> bytes:
    """Rewrite a ``skops.io.dumps`` archive so its bytes depend only on the model.

    skops names members and ``__id__`` fields after ``id()`` (or a uuid for bytes) and
    stamps entries with the current time. Here ids are renumbered in the order they
    appear in schema.json, members are renamed ``<n><ext>`` in the order schema.json
    references them, set contents are sorted, padding bytes inside structured arrays
    (sklearn's tree nodes) are zeroed, and the zip is rebuilt canonically.
    """
    members = _read_zip(raw)
    schema = json.loads(members.pop(_SCHEMA))
    renamed = _renumber(schema, members)
    unreferenced = set(members) - set(renamed)
    if unreferenced:
        raise ModelFileError(f"skops wrote members that schema.json does not use: {sorted(unreferenced)}")

    out = {new: _clean_member(old, members[old]) for old, new in renamed.items()}
    # key order is skops' own (deterministic); sort_keys would break DictNode, whose
    # ``key_types`` list is aligned with the order of its ``content`` keys
    out[_SCHEMA] = json.dumps(schema, separators=(",", ":"), ensure_ascii=True).encode()
    return _write_zip(out)


def _read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` that depends only on them: sorted, fixed times and
    attributes, no compression (deflate output differs between zlib builds)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = _FILE_MODE
            zf.writestr(info, members[name])
    return buffer.getvalue()


def _clean_member(name: str, data: bytes) -> bytes:
    """Zero struct padding in ``.npy`` members; rebuild ``.npz`` members (scipy sparse)
    canonically, since numpy stamps them with the current time."""
    if name.endswith(".npz"):
        return _write_zip({inner: _clean_member(inner, d) for inner, d in _read_zip(data).items()})
    if not name.endswith(".npy"):
        return data
    import numpy as np

    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.dtype.names is None:
        return data
    # the padding between fields holds whatever memory the C code left there; copy
    # the fields into zeroed bytes (np.zeros_like only zeroes the fields)
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    clean = np.ndarray(array.shape, array.dtype, buffer=bytearray(array.nbytes), order=order)
    _copy_fields(clean, array)
    buffer = io.BytesIO()
    np.save(buffer, clean, allow_pickle=False)
    return buffer.getvalue()


def _copy_fields(dst: Any, src: Any) -> None:
    for field in src.dtype.names:
        if src[field].dtype.names is None:
            dst[field] = src[field]
        else:
            _copy_fields(dst[field], src[field])


def _renumber(schema: Any, members: dict[str, bytes]) -> dict[str, str]:
    """Renumber ``__id__``s and member names in place; return {old name: new name}.

    Objects keep their sharing (same old id -> same new id), except JSON scalars,
    whose sharing is an accident of the interpreter: each gets an id of its own.
    """
    ids: dict[int, int] = {}
    names: dict[str, str] = {}
    next_id = 0

    def visit(node: Any) -> None:
        nonlocal next_id
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        loader = node.get("__loader__")
        if isinstance(loader, str):  # a skops node (user dict keys map to nodes, not str)
            if loader == "SetNode" and isinstance(node.get("content"), list):
                node["content"].sort(key=lambda item: _identity_free(item, members))
            old = node.get("__id__")
            if isinstance(old, int) and not isinstance(old, bool):
                if loader == "JsonNode" or old not in ids:
                    next_id += 1
                    if loader != "JsonNode":
                        ids[old] = next_id
                    node["__id__"] = next_id
                else:
                    node["__id__"] = ids[old]
            file = node.get("file")
            if isinstance(file, str):
                if file not in members:
                    raise ModelFileError(f"skops archive references a missing member {file!r}")
                names.setdefault(file, f"{len(names)}{os.path.splitext(file)[1]}")
                node["file"] = names[file]
        for value in node.values():
            visit(value)

    visit(schema)
    return names


def _identity_free(node: Any, members: dict[str, bytes]) -> str:
    """A sort key for a node that ignores ids and member names (uses member contents)."""

    def strip(value: Any) -> Any:
        if isinstance(value, list):
            return [strip(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {k: strip(v) for k, v in value.items() if k != "__id__"}
        if isinstance(value.get("file"), str) and value["file"] in members:
            out["file"] = hashlib.sha256(members[value["file"]]).hexdigest()
        return out

    return json.dumps(strip(node), sort_keys=True)


def _refused_types(data: bytes, source: str) -> list[str]:
    """The types in skops archive ``data`` outside ``TRUSTED_TYPES`` (nothing is imported)."""
    import skops.io

    if not zipfile.is_zipfile(io.BytesIO(data)):
        what = "a pickle, not a skops archive" if data[:1] == b"\x80" else "not a skops (zip) archive"
        raise ModelFileError(f"model file {source} is {what}; it was not loaded")
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as err:  # broken zip members, bad schema.json, unknown nodes
        raise ModelFileError(f"model file {source} is corrupt: {_one_line(err)}; it was not loaded") from err
    return [name for name in untrusted if name not in TRUSTED_TYPES]


def _first(names: list[str], shown: int = 3) -> str:
    more = f" (and {len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path`` and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode honours umask
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""Safe, byte-stable model files: skops archives in a canonical zip.

``save_model`` writes the same bytes for the same fitted model in any process, so
DVC's md5 of ``model.skops`` only changes when the model does. Members are deflated at
a fixed level; zlib builds may compress the same members differently, so
``content_digest`` (sha256 over member names and uncompressed bytes) identifies the
content whatever the compression. ``load_model`` never unpickles: it reads skops
archives and builds only types on our own allow-list, ``TRUSTED_TYPES`` (never a list
read from the file). ``inspect_model_file`` and ``verify_model_file`` check a file's
format, canonical form and types without building anything from it.

skops/scikit-learn are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from dvc_monitor.errors import ModelFileError, SameIdDifferentModel, UnsafeModelFile
from dvc_monitor.model.audits import TypeAudits

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
DEFLATE_LEVEL = 6  # fixed, so one zlib build always writes the same bytes
DIGEST_PREFIX = "sha256:"
_DIGEST_DOMAIN = b"dvc-monitor model content v1\n"
BYTE_IDENTICAL = "byte-identical"
CONTENT_IDENTICAL = "content-identical"
# how a registered model file is verified: written by dvc-monitor's trainer (canonical), or
# as its user's own code wrote it (an adopted model's plain skops.io.dump)
CANONICAL = "canonical"
AS_WRITTEN = "as-written"


def file_md5(path: str | os.PathLike) -> str:
    """md5 hex of a file's bytes (what DVC records for a file output)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: Any, path: str | os.PathLike, audits: TypeAudits | None = None) -> str:
    """Write ``model`` as a canonical skops archive at ``path``; return its md5 hex.

    The same fitted model gives the same bytes in any process. The file is replaced
    atomically. Refuses (``ModelFileError``) a model that ``load_model`` would refuse.
    ``audits`` stores skops' type audit of the written content, so that ``register``
    need not import skops to repeat it.
    """
    import skops.io

    path = Path(path)
    try:
        raw = skops.io.dumps(model)
    except Exception as err:  # skops raises TypeError & co. for types it cannot store
        raise ModelFileError(f"cannot save a {type(model).__name__} as a skops file: {err}") from err
    data = canonical_archive(raw)
    untrusted = _audit(data, str(path))
    refused = [name for name in untrusted if name not in TRUSTED_TYPES]
    if refused:
        raise ModelFileError(
            f"cannot save model file {path}: the model contains types dvc-monitor does not load: "
            f"{_first(refused)}; nothing was written"
        )
    try:
        _write_atomic(path, data)
    except OSError as err:
        raise ModelFileError(f"cannot write model file {path}: {err.strerror or err}") from err
    if audits is not None:
        audits.put(_digest_members(_read_zip_strict(data)), untrusted)
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def trusted_with(extra: Iterable[str] = ()) -> frozenset[str]:
    """``TRUSTED_TYPES`` plus the types a model's reviewed ``monitor.yaml`` trusts."""
    return TRUSTED_TYPES | frozenset(extra)


def load_model(path: str | os.PathLike, expected_md5: str | None = None,
               trusted: Iterable[str] = ()) -> Any:
    """Load a model file written by ``save_model``, refusing anything unsafe.

    ``expected_md5`` is the md5 dvc.lock records; a different file is refused.
    ``trusted`` adds the types the model's ``monitor.yaml`` lists under ``trusted_types``.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(
            f"model file {path} does not exist; run 'dvc checkout' or 'dvc pull' to restore it"
        ) from None
    except OSError as err:
        raise ModelFileError(f"cannot read model file {path}: {err.strerror or err}") from None
    return load_model_bytes(data, expected_md5, source=str(path), trusted=trusted)


def load_model_bytes(data: bytes, expected_md5: str | None = None, source: str = "<bytes>",
                     trusted: Iterable[str] = ()) -> Any:
    """Like ``load_model``, from the file's bytes (e.g. read from the DVC cache)."""
    import skops.io

    if expected_md5 is not None:
        actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if actual != expected_md5:
            raise ModelFileError(
                f"model file {source} has md5 {actual} but dvc.lock records {expected_md5}; "
                "run 'dvc checkout' or 'dvc pull' to restore the recorded model"
            )
    from skops.io.exceptions import UntrustedTypesFoundException

    allowed = trusted_with(trusted)
    _require_archive(data, source)
    try:  # skops audits every type against ``allowed`` before it builds anything
        return skops.io.loads(data, trusted=sorted(allowed))
    except UntrustedTypesFoundException:  # which types: the audit, for the message
        refused = [name for name in _audit(data, source) if name not in allowed]
        if refused:
            raise ModelFileError(
                f"model file {source} contains types dvc-monitor does not trust: "
                f"{_first(refused)}; it was not loaded (if you have reviewed and trust them, "
                "list them under trusted_types: in its monitor.yaml: "
                "'dvc-monitor adopt NAME ... --trust TYPE')"
            ) from None
        raise ModelFileError(f"model file {source} was refused by the safe loader; "
                             "it was not loaded") from None
    except Exception as err:  # a file that cannot be read or built
        raise ModelFileError(f"model file {source} is corrupt: {_one_line(err)}; it was not loaded") from err


def canonical_archive(raw: bytes) -> bytes:
    """Rewrite a ``skops.io.dumps`` archive so its bytes depend only on the model.

    skops names members and ``__id__`` fields after ``id()`` (or a uuid for bytes) and
    stamps entries with the current time. Here ids are renumbered in the order they
    appear in schema.json, members are renamed ``<n><ext>`` in the order schema.json
    references them, set contents are sorted, padding bytes inside structured arrays
    (sklearn's tree nodes) are zeroed, and the zip is rebuilt canonically.
    """
    return _write_zip(_canonical_members(raw))


def _canonical_members(raw: bytes) -> dict[str, bytes]:
    """The members ``canonical_archive`` writes (name -> uncompressed bytes)."""
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
    return out


def _read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(members: dict[str, bytes], deflate: bool = True) -> bytes:
    """A zip of ``members`` that depends only on them (and, deflated, on the zlib
    build): sorted, fixed times and attributes, a fixed compression level."""
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_DATE_TIME)
            info.compress_type = method
            info.create_system = 3
            info.external_attr = _FILE_MODE
            zf.writestr(info, members[name], compresslevel=DEFLATE_LEVEL if deflate else None)
    return buffer.getvalue()


def _clean_member(name: str, data: bytes) -> bytes:
    """Zero struct padding in ``.npy`` members; rebuild ``.npz`` members (scipy sparse)
    canonically, since numpy stamps them with the current time."""
    if name.endswith(".npz"):  # stored: its bytes are content the digest covers
        return _write_zip({inner: _clean_member(inner, d) for inner, d in _read_zip(data).items()},
                          deflate=False)
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


def _audit(data: bytes, source: str) -> list[str]:
    """Every type skops archive ``data`` names that skops does not trust by default."""
    import skops.io

    _require_archive(data, source)
    try:
        return list(skops.io.get_untrusted_types(data=data))
    except Exception as err:  # broken zip members, bad schema.json, unknown nodes
        raise ModelFileError(f"model file {source} is corrupt: {_one_line(err)}; it was not loaded") from err


def _require_archive(data: bytes, source: str) -> None:
    """``ModelFileError`` unless ``data`` is a zip archive (what skops writes)."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        what = "a pickle, not a skops archive" if data[:1] == b"\x80" else "not a skops (zip) archive"
        raise ModelFileError(f"model file {source} is {what}; it was not loaded")


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


# -- content digest, inspection and verification (never unpickles) ---------------------

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# what joblib.dump(compress=...) writes: a compressed pickle
_JOBLIB_MAGIC = (
    (b"ZF", "joblib (zlib, old format)"),
    (b"\x78\x01", "joblib (zlib)"), (b"\x78\x5e", "joblib (zlib)"),
    (b"\x78\x9c", "joblib (zlib)"), (b"\x78\xda", "joblib (zlib)"),
    (b"\x1f\x8b", "joblib (gzip)"), (b"BZh", "joblib (bz2)"),
    (b"\xfd7zXZ\x00", "joblib (xz)"), (b"\x5d\x00\x00", "joblib (lzma)"),
    (b"\x04\x22\x4d\x18", "joblib (lz4)"),
)
# first opcodes of protocol 0/1 pickles: MARK, EMPTY_LIST/DICT/TUPLE, GLOBAL, ints, none
_PICKLE_01_FIRST = b"(]})cKIJLNSVFGX"


@dataclass(frozen=True)
class ModelFileCheck:
    """What a model file is, found from its bytes alone (nothing is imported or built)."""

    source: str
    format: str  # "skops" | "pickle" | "joblib" | "zip" | "empty" | "missing" | "unknown"
    canonical: bool  # a dvc-monitor archive: re-canonicalising gives the same content
    untrusted: tuple[str, ...]  # types the file references that are not in TRUSTED_TYPES
    safe: bool  # a canonical skops archive whose types are all trusted
    reason: str  # one line: why it is (not) safe
    md5: str | None
    digest: str | None  # content_digest, for zip archives
    compression: str | None = None  # "deflated" | "stored" | "mixed" (zip archives)

    @property
    def dangerous(self) -> bool:
        """Loading it could run code: a pickle, or types outside the trusted list (a corrupt
        or non-canonical archive is unsafe to call verified, but not dangerous)."""
        return self.format in ("pickle", "joblib") or bool(self.untrusted)

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        return to_jsonable(self) | {"dangerous": self.dangerous}


@dataclass(frozen=True)
class ModelMatch:
    """A model file compared with a registered one: safe, and the same bytes or content."""

    ok: bool
    match: str | None  # BYTE_IDENTICAL | CONTENT_IDENTICAL | None (no match)
    expected_md5: str | None
    expected_digest: str | None
    check: ModelFileCheck
    reason: str  # one line

    def to_json(self) -> dict:
        from dvc_monitor.values import to_jsonable

        return to_jsonable(self) | {"check": self.check.to_json()}


def _digest_members(members: dict[str, bytes]) -> str:
    h = hashlib.sha256(_DIGEST_DOMAIN)
    for name in sorted(members):
        raw = name.encode("utf-8")
        h.update(len(raw).to_bytes(8, "big") + raw)
        h.update(len(members[name]).to_bytes(8, "big"))
        h.update(members[name])
    return DIGEST_PREFIX + h.hexdigest()


def _source_bytes(path_or_bytes: bytes | str | os.PathLike) -> tuple[bytes | None, str, str | None]:
    """(bytes or None, a name for messages, why it could not be read)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>", None
    path = Path(path_or_bytes)
    try:
        return path.read_bytes(), path.name, None
    except FileNotFoundError:
        return None, path.name, "does not exist"
    except IsADirectoryError:
        return None, path.name, "is a folder, not a model file"
    except OSError as err:
        return None, path.name, f"cannot be read ({err.strerror or err})"


def content_digest(path_or_bytes: bytes | str | os.PathLike) -> str:
    """``sha256:<hex>`` over a zip archive's member names and uncompressed bytes.

    The same for the stored and the deflated form of an archive, and for any zlib build
    that compressed it. Raises ``ModelFileError`` for a file that is not a zip archive.
    """
    data, source, problem = _source_bytes(path_or_bytes)
    if data is None:
        raise ModelFileError(f"model file {source} {problem}")
    try:
        return _digest_members(_read_zip_strict(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        raise ModelFileError(f"model file {source} is not a readable zip archive: "
                             f"{_one_line(err)}") from None


_MAX_UNCOMPRESSED = 4 << 30  # a zip bomb is refused before anything is inflated


def _read_zip_strict(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        if len(set(names)) != len(names):
            raise ValueError("duplicate member names")
        if sum(i.file_size for i in zf.infolist()) > _MAX_UNCOMPRESSED:
            raise ValueError(f"members larger than {_MAX_UNCOMPRESSED} bytes uncompressed")
        return {name: zf.read(name) for name in names}  # zipfile checks each CRC


SNIFF_HEAD = 16  # bytes ``sniff_format`` needs from the start of a file
SNIFF_TAIL = 1 << 16  # and from its end (a zip's central directory, a pickle's STOP)


def sniff_format(data: bytes, tail: bytes | None = None) -> str:
    """The format of a model file by its magic bytes (nothing is loaded): ``skops`` (a zip
    archive whose directory names schema.json), ``zip``, ``pickle``, ``joblib``, ``empty``
    or ``unknown``. The file's name plays no part.

    ``data`` is the whole file, or its first ``SNIFF_HEAD`` bytes with ``tail`` its last
    ``SNIFF_TAIL`` bytes (see ``sniff_file``).
    """
    end = data if tail is None else tail
    if not data:
        return "empty"
    if data.startswith(_ZIP_MAGIC):
        return "skops" if _SCHEMA in _zip_directory_names(end) else "zip"
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        return "pickle"
    for magic, _ in _JOBLIB_MAGIC:
        if data.startswith(magic):
            return "joblib"
    if data[:1] in [bytes([c]) for c in _PICKLE_01_FIRST] and end.rstrip(b"\n").endswith(b"."):
        return "pickle"
    return "unknown"


def sniff_file(path: str | os.PathLike) -> str:
    """``sniff_format`` of a file on disk, reading only its first and last bytes
    (OSError when it cannot be read)."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_HEAD)
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - SNIFF_TAIL))
        return sniff_format(head, f.read())


def _zip_directory_names(end: bytes) -> set[str]:
    """The member names a zip's central directory lists, from the archive's last bytes."""
    names = set()
    pos = end.find(b"PK\x01\x02")
    while pos >= 0 and pos + 46 <= len(end):
        length = int.from_bytes(end[pos + 28:pos + 30], "little")
        names.add(end[pos + 46:pos + 46 + length].decode("utf-8", errors="replace"))
        pos = end.find(b"PK\x01\x02", pos + 46 + length)
    return names


def inspect_model_file(path_or_bytes: bytes | str | os.PathLike,
                       audits: TypeAudits | None = None, trusted: Iterable[str] = (),
                       as_written: bool = False) -> ModelFileCheck:
    """Check a model file's format, canonical form and types without unpickling or
    importing anything it names (skops reads the types from schema.json).

    ``audits`` holds skops' type audits by content digest: a stored one is used instead
    of importing skops; a fresh one is stored. Everything else is checked every time.
    ``trusted`` adds the types a model's ``monitor.yaml`` trusts; ``as_written`` accepts
    a skops archive its user's own code wrote (not canonical: an adopted model), which is
    then identified by md5 and content digest rather than by its canonical form."""
    data, source, problem = _source_bytes(path_or_bytes)
    if data is None:
        return ModelFileCheck(source, "missing", False, (), False, f"{source} {problem}", None, None)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()

    def unsafe(fmt: str, reason: str, digest: str | None = None, canonical: bool = False,
               untrusted: tuple[str, ...] = (), compression: str | None = None) -> ModelFileCheck:
        return ModelFileCheck(source, fmt, canonical, untrusted, False, reason, md5, digest,
                              compression)

    fmt = sniff_format(data)
    if fmt == "pickle":
        return unsafe("pickle", f"{source} is a pickle: not loaded")
    if fmt == "joblib":
        return unsafe("joblib", f"{source} is a joblib (compressed pickle) file: not loaded")
    if fmt == "empty":
        return unsafe("empty", f"{source} is empty")
    if fmt == "unknown":
        return unsafe("unknown", f"{source} is not a skops archive (unknown format)")
    try:
        members = _read_zip_strict(data)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as err:
        return unsafe("zip", f"{source} is a broken zip archive ({_one_line(err)})")
    digest = _digest_members(members)
    methods = {i.compress_type for i in infos}
    compression = ("deflated" if methods == {zipfile.ZIP_DEFLATED} else
                   "stored" if methods <= {zipfile.ZIP_STORED} else "mixed")
    if _SCHEMA not in members:
        return unsafe("zip", f"{source} is a zip archive without {_SCHEMA}, not a skops file",
                      digest, compression=compression)
    audited = audits.get(digest) if audits is not None else None
    if audited is None:
        import skops.io

        try:
            audited = tuple(skops.io.get_untrusted_types(data=data))
        except Exception as err:  # bad schema.json, unknown nodes: skops raises many kinds
            return unsafe("skops", f"{source} is a corrupt skops archive ({_one_line(err)})",
                          digest, compression=compression)
        if audits is not None:
            audits.put(digest, audited)
    allowed = trusted_with(trusted)
    untrusted = tuple(t for t in audited if t not in allowed)
    canonical = _is_canonical(data, infos, digest)
    if as_written and not canonical:
        # skops.io.dump stamps times and object ids: the digest of the canonical form is
        # what stays the same when the user's deterministic training runs again
        try:
            digest = _digest_members(_canonical_members(data))
        except Exception:  # noqa: BLE001 - what canonical_archive cannot rewrite keeps its own
            pass
    if untrusted:
        return unsafe("skops", f"{source} references untrusted type {_first(list(untrusted))}",
                      digest, canonical, untrusted, compression)
    if not canonical and not as_written:
        return unsafe("skops", f"{source} is not canonical: not written by dvc-monitor's "
                      "trainer", digest, compression=compression)
    what = ("a canonical skops archive of trusted types" if canonical
            else "a skops archive of trusted types, as its code wrote it")
    return ModelFileCheck(source, "skops", canonical, (), True, f"{source} is {what}", md5,
                          digest, compression)


def _is_canonical(data: bytes, infos: list[zipfile.ZipInfo], digest: str) -> bool:
    """The layout save_model writes (sorted, fixed times, stored or deflated members)
    and content that canonical_archive leaves unchanged."""
    names = [i.filename for i in infos]
    if names != sorted(names) or any(
            i.date_time != _DATE_TIME or i.compress_type not in (zipfile.ZIP_STORED,
                                                                  zipfile.ZIP_DEFLATED)
            or i.extra or i.comment for i in infos):
        return False
    try:
        return _digest_members(_canonical_members(data)) == digest
    except Exception:  # noqa: BLE001 - anything canonical_archive cannot rewrite is not canonical
        return False


def verify_model_file(path_or_bytes: bytes | str | os.PathLike, md5: str | None,
                      digest: str | None = None, audits: TypeAudits | None = None,
                      trusted: Iterable[str] = (), as_written: bool = False) -> ModelMatch:
    """Is this the registered model file? Safe (format and types checked) and either
    ``byte-identical`` (md5) or ``content-identical`` (content digest: recompressed by
    another zlib build, or a stored archive of the same content). ``trusted`` and
    ``as_written`` as in ``inspect_model_file``."""
    check = inspect_model_file(path_or_bytes, audits, trusted, as_written)

    def result(match: str | None, reason: str) -> ModelMatch:
        return ModelMatch(match is not None, match, md5, digest, check, reason)

    if not check.safe:
        return result(None, check.reason)
    if md5 is not None and check.md5 == md5:
        return result(BYTE_IDENTICAL, f"{check.source} is byte-identical (md5 {md5})")
    if digest is not None and check.digest == digest:
        how = ("written again by its own code" if as_written and not check.canonical
               else "compressed differently")
        return result(CONTENT_IDENTICAL,
                      f"{check.source} is content-identical (digest {digest[:19]}...; md5 "
                      f"{check.md5} differs from {md5}: {how})")
    if digest is None and md5 is not None and _stored_md5(path_or_bytes) == md5:
        return result(CONTENT_IDENTICAL,
                      f"{check.source} is content-identical (its stored, uncompressed form has "
                      f"md5 {md5}: a version registered before compression)")
    if digest is None:
        return result(None, f"{check.source} has md5 {check.md5}, expected {md5} (no content "
                            "digest recorded to compare)")
    return result(None, f"{check.source} has md5 {check.md5} and digest {check.digest[:19]}..., "
                        f"expected md5 {md5} or digest {digest[:19]}...")


def verified_as(form: str | None) -> str:
    """How a model file of ``form`` (``CANONICAL``, ``AS_WRITTEN``) is verified, in words."""
    if form == AS_WRITTEN:
        return "as its code wrote it, by md5 and content digest"
    if form == CANONICAL:
        return "canonical skops archive, by md5 and content digest"
    return "by md5 and content digest"


def _stored_md5(path_or_bytes: bytes | str | os.PathLike) -> str | None:
    """md5 of the archive rewritten with stored members, as save_model wrote it before
    members were deflated (that layout is deterministic too)."""
    data, _, _ = _source_bytes(path_or_bytes)
    try:
        stored = _write_zip(_read_zip_strict(data or b""), deflate=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
        return None
    return hashlib.md5(stored, usedforsecurity=False).hexdigest()


def cached_digest(object_path: str | os.PathLike, md5: str) -> str | None:
    """The content digest of a DVC cache object whose bytes really have ``md5`` (for
    versions registered before digests were recorded), else None."""
    try:
        data = Path(object_path).read_bytes()
    except OSError:
        return None
    if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
        return None
    try:
        return content_digest(data)
    except ModelFileError:
        return None


def registered_digest(root: str | os.PathLike, md5: str | None, recorded: str | None) -> str | None:
    """A registered model's content digest: the one its tag block records, else the one
    of its object in the local DVC cache (versions registered before digests)."""
    if recorded or not md5:
        return recorded
    from dvc_monitor.repo.cache import object_path

    return cached_digest(object_path(root, md5), md5)


def accept_registration(root: str | os.PathLike, model_path: str, md5: str | None, name: str,
                        version: str, same_id: Sequence[tuple[str, str | None, str | None]],
                        force: bool = False,
                        warn: Callable[[str], None] | None = None,
                        trusted: Iterable[str] = (), as_written: bool = False) -> ModelFileCheck:
    """The model-file gate of ``register``: refuse an unsafe or non-canonical file, and a
    file whose id equals a registered version's but whose bytes differ, unless ``force``.

    ``same_id`` lists (version, model md5, content digest or None) of registered versions
    with the same id; a missing digest is computed from the local DVC cache if it can be.
    ``trusted`` and ``as_written`` (an adopted model: the file as its user's code wrote
    it) as in ``inspect_model_file``. Returns the check (its ``digest`` goes into the tag
    block).
    """
    check = inspect_model_file(Path(root) / model_path, TypeAudits.for_repo(root), trusted,
                               as_written)
    other = [(v, m, registered_digest(root, m, d)) for v, m, d in same_id if m and md5 and m != md5]
    if not check.safe:
        why = (f"; it has the id of {other[0][0]} but a different file: the model file was "
               "tampered with (training does not write this)") if other else ""
        raise UnsafeModelFile(
            f"cannot register {name} {version}: {check.reason}{why}; nothing was tagged; "
            f"restore the trained model with 'dvc repro -f' and commit it")
    if md5 is not None and check.md5 != md5:
        raise UnsafeModelFile(
            f"cannot register {name} {version}: {check.source} has md5 {check.md5} but dvc.lock "
            f"records {md5}; run 'dvc checkout' and try again; nothing was tagged")
    for v, m, d in other:
        if d is not None and d == check.digest:
            if warn:
                warn(f"{name} {version} has the same id and model content as {v}, compressed "
                     "differently (another zlib build): recompression, not a new model")
            continue
        what = (f"{name} {version} has the same id as {v} (same params, data and code) but a "
                f"different model file (md5 {check.md5}, {v} has {m})")
        if not force:
            raise SameIdDifferentModel(
                f"{what}: training is not deterministic, or the model file was replaced by "
                "hand; check that 'dvc repro -f' gives the same bytes, or pass --force to "
                "register it anyway; nothing was tagged")
        if warn:
            warn(f"{what}: registered anyway (--force)")
    return check

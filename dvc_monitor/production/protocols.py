"""The wire formats ``serve`` speaks besides its own ``POST /score``: request bodies in,
rows out; results in, response bodies out; each protocol's own error shape.

* **Open Inference Protocol (V2)**, as KServe, MLServer and Triton speak it: one FP64 (or
  any numeric) input tensor per feature (shape ``[N]`` or ``[N, 1]``), or one ``[N, F]``
  tensor whose columns are the features in the model's order; JSON ``data`` or the binary
  tensor extension Triton's clients use by default (``Inference-Header-Content-Length``).
  Outputs: one tensor per result field (``score``/``probability``/``prediction``...,
  ``alert``/``anomaly``), FP64 or BOOL. Errors: ``{"error": "..."}``.
* **MLflow's scoring protocol** (``POST /invocations``): JSON ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs``, or ``text/csv``; answers
  ``{"predictions": [...]}``; errors ``{"error_code": "BAD_REQUEST", "message": "..."}``.

Parsing never builds anything but numbers and column names, bounds what it reads (the
body size is bounded before this module sees it), and says in one line what is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from dvc_monitor.errors import shown

if TYPE_CHECKING:  # pandas/numpy are imported lazily
    import numpy as np
    import pandas as pd

V2_HEADER_LENGTH = "inference-header-content-length"
# V2 datatypes the server accepts for inputs -> numpy dtype of their binary form
V2_NUMERIC = {"FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4",
              "INT16": "<i2", "INT8": "i1", "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2",
              "UINT8": "u1", "BOOL": "?"}
MAX_ECHO = 300  # characters of an error message sent back


class ProtocolError(Exception):
    """A request the protocol refuses: its HTTP status and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def cap(text: Any) -> str:
    """``text`` on one line, at most ``MAX_ECHO`` characters (echoed input is bounded)."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO - 3] + "..."


def _json_int(text: str):
    """A JSON integer as ``json.loads`` parses it: an int up to 18 digits, else a float (a
    4,000-digit integer is read in one cheap step, never as a Python int)."""
    return int(text) if len(text) <= 18 else _json_float(text)


def _json_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when no float can hold it."""
    value = float(text)
    if math.isinf(value):
        raise ProtocolError(422, f"the number {shown(text, 20)} in the request does not fit "
                                 "a 64-bit float; send smaller numbers")
    return value


def _json_constant(text: str):
    raise ProtocolError(422, f"{text} is not a JSON number; send a number, or null for a "
                             "missing value")


def loads(body: bytes, what: str = "request body", hint: str = "") -> Any:
    """The JSON document of ``body``, strictly: numbers stay numbers (NaN/Infinity and
    numbers no float holds are refused), huge integers are never built, nesting is
    bounded. ``ProtocolError`` in one line (``hint``: what to send instead)."""
    hint = f"; {hint}" if hint else ""
    try:
        return json.loads(body, parse_int=_json_int, parse_float=_json_float,
                          parse_constant=_json_constant)
    except RecursionError:
        raise ProtocolError(400, f"the {what} is nested too deeply{hint}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(400, f"the {what} is not valid JSON ({cap(exc)}){hint}") from None


def input_columns(spec, config) -> tuple[str, ...]:
    """The columns a request sends (``spec``: the model's ``Kind``): a series kind's time
    and value (null where it is to be forecast), else the model's features."""
    if spec.value_column is not None:
        return (spec.time_column, spec.value_column)
    return tuple(config.features)


# -- V2 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class V2Request:
    """A parsed V2 inference request: the rows, the request id and the outputs asked for
    (empty: all), and whether they were asked for in binary."""

    rows: "pd.DataFrame"
    id: str | None
    outputs: tuple[str, ...]
    binary_outputs: frozenset[str]


def v2_request(body: bytes, header_length: str | None, features: Sequence[str],
               fields: Sequence[str]) -> V2Request:
    """The rows of a V2 ``infer`` body (JSON, or JSON + binary tensors) for a model of
    ``features`` whose outputs are ``fields``; an output it cannot give is refused here,
    before anything is scored."""
    import pandas as pd

    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise ProtocolError(400, f"{V2_HEADER_LENGTH} {shown(header_length, 20)} does not "
                                     f"fit a body of {len(body)} bytes")
        size = int(header_length)
        body, binary = body[:size], body[size:]
    doc = loads(body, "inference request")
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise ProtocolError(400, 'the inference request needs "inputs": a list of tensors '
                                 '{"name", "shape", "datatype", "data"}')
    offset = 0
    tensors: dict[str, np.ndarray] = {}
    for item in doc["inputs"]:
        name, values, size = _v2_tensor(item, binary, offset)
        offset += size
        tensors[name] = values
    if offset != len(binary):
        raise ProtocolError(400, f"the body has {len(binary) - offset} bytes of binary data "
                                 "that no input's binary_data_size accounts for")
    rows = _v2_frame(tensors, list(features))
    outputs = doc.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(
            o.get("name"), str) for o in outputs):
        raise ProtocolError(400, '"outputs" must be a list of objects {"name": ...}')
    asked = tuple(o["name"] for o in outputs)
    unknown = [o for o in asked if o not in fields]
    if unknown:
        raise ProtocolError(400, f"unknown output {shown(unknown[0], 40)}; the outputs are "
                                 f"{', '.join(fields)}")
    binary_out = frozenset(o["name"] for o in outputs if isinstance(o.get("parameters"), dict)
                           and o["parameters"].get("binary_data") is True)
    params = doc.get("parameters")
    if not outputs and isinstance(params, dict) and params.get("binary_data_output") is True:
        binary_out = frozenset({"*"})
    rid = doc.get("id")
    return V2Request(pd.DataFrame(rows), rid if isinstance(rid, str) else None, asked,
                     binary_out)


def _v2_tensor(item: Any, binary: bytes, offset: int) -> tuple[str, "np.ndarray", int]:
    """(name, values shaped as sent, binary bytes used) of one input tensor."""
    import numpy as np

    if not isinstance(item, dict):
        raise ProtocolError(400, "each input must be an object "
                                 '{"name", "shape", "datatype", "data"}')
    name, shape, dtype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str) or not isinstance(shape, list) or not shape or len(shape) > 2 \
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(400, "each input needs a name and a shape [N] or [N, F] of whole "
                                 "numbers")
    if dtype not in V2_NUMERIC:
        raise ProtocolError(400, f"input {shown(name, 40)} has datatype {shown(dtype, 20)}; "
                                 "send FP64 (or another numeric type)")
    count = math.prod(shape)
    params = item.get("parameters")
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        width = np.dtype(V2_NUMERIC[dtype]).itemsize
        if not isinstance(size, int) or size != count * width or offset + size > len(binary):
            given = size if isinstance(size, int) else shown(size, 20)
            raise ProtocolError(400, f"input {shown(name, 40)}: binary_data_size {given} does "
                                     f"not fit the body, or its shape {shape} of {dtype} "
                                     f"({count * width} bytes)")
        values = np.frombuffer(binary, V2_NUMERIC[dtype], count, offset).astype(float)
        return name, values.reshape(shape), size
    if "data" not in item:
        raise ProtocolError(400, f"input {shown(name, 40)} has neither data nor "
                                 "binary_data_size")
    flat = _flat_numbers(item["data"], name, count, dtype == "BOOL")
    if len(flat) != count:
        raise ProtocolError(400, f"input {shown(name, 40)}: {len(flat)} values for shape "
                                 f"{shape}")
    return name, np.asarray(flat, dtype=float).reshape(shape), 0


def _flat_numbers(data: Any, name: str, limit: int, flags: bool) -> list:
    """The values of a JSON tensor (nested or flat): numbers, or true/false when ``flags``
    (a BOOL tensor); null is a missing value. Stops past ``limit`` values."""
    out: list = []
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
        elif value is None:
            out.append(math.nan)
        elif isinstance(value, (int, float)) and (flags or not isinstance(value, bool)):
            out.append(float(value))
        else:
            text = (json.dumps(value) if isinstance(value, bool)
                    else "{...}" if isinstance(value, dict) else shown(value, 20))
            raise ProtocolError(400, f"input {shown(name, 40)}: {text} is not a number; "
                                     "send numbers")
        if len(out) > limit:
            break
    return out


def _v2_frame(tensors: dict, features: list[str]) -> dict:
    """Columns from one tensor per feature, or from one ``[N, F]`` tensor."""
    import numpy as np

    if len(tensors) == 1:
        (name, value), = tensors.items()
        if value.ndim == 2 and value.shape[1] == len(features) and \
                not (len(features) == 1 and name == features[0]):
            if not len(value):
                raise ProtocolError(422, "the request has no rows; send at least one")
            return {f: value[:, i] for i, f in enumerate(features)}
    missing = [f for f in features if f not in tensors]
    if missing:
        raise ProtocolError(400, f"the request lacks the input(s) {cap(', '.join(missing))}: "
                                 f"send one FP64 tensor per feature ({cap(', '.join(features))}) "
                                 f"or one [N, {len(features)}] tensor")
    columns = {}
    for f in features:
        value = tensors[f]
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]
        if value.ndim != 1:
            raise ProtocolError(400, f"input {shown(f, 40)} must have shape [N] or [N, 1]")
        columns[f] = value
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ProtocolError(400, "the inputs have different numbers of rows; send N values "
                                 "in each")
    if not lengths.pop():
        raise ProtocolError(422, "the request has no rows; send at least one")
    return {f: np.asarray(v, dtype=float) for f, v in columns.items()}


def v2_datatype(field: str) -> str:
    """The V2 datatype of a result field: BOOL for a flag, else FP64."""
    return "BOOL" if field in ("alert", "anomaly") else "FP64"


def v2_outputs(fields: Sequence[str], results: list[dict]) -> list[tuple[str, str, list]]:
    """(name, datatype, values) of each output tensor from ``score``'s results (a field no
    row has, e.g. a forecast's ``anomaly`` without actual values, is left out; a missing
    FP64 value is NaN, a missing flag false)."""
    out = []
    for f in fields:
        if not any(f in r for r in results):
            continue
        values = [r.get(f) for r in results]
        if v2_datatype(f) == "BOOL":
            out.append((f, "BOOL", [bool(v) for v in values]))
        else:
            out.append((f, "FP64", [math.nan if v is None else float(v) for v in values]))
    return out


def v2_response(model: str, version: str, request: V2Request, fields: Sequence[str],
                results: list[dict]) -> tuple[bytes, dict[str, str]]:
    """The body and extra headers of a V2 ``infer`` answer (binary tensors when asked)."""
    import numpy as np

    tensors = v2_outputs(fields, results)
    if request.outputs:  # checked by v2_request; one no row has is left out
        tensors = [t for t in tensors if t[0] in request.outputs]
    doc: dict = {"model_name": model, "model_version": version, "outputs": []}
    if request.id is not None:
        doc["id"] = request.id
    blobs = []
    for name, dtype, values in tensors:
        tensor: dict = {"name": name, "datatype": dtype, "shape": [len(values)]}
        if name in request.binary_outputs or "*" in request.binary_outputs:
            raw = np.asarray(values, dtype=V2_NUMERIC[dtype]).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = [None if isinstance(v, float) and math.isnan(v) else v
                              for v in values]
        doc["outputs"].append(tensor)
    head = json.dumps(doc, allow_nan=False).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {"content-type": "application/octet-stream",
                                    V2_HEADER_LENGTH: str(len(head))}


def v2_metadata(model: str, version: str, features: Sequence[str],
                fields: Sequence[str], kind: str) -> dict:
    """``GET /v2/models/{name}``: one FP64 input per feature (one ``[N, F]`` tensor of the
    features in this order is accepted too) and the result fields as outputs."""
    return {"name": model, "versions": [version], "platform": f"dvc-monitor/{kind}",
            "inputs": [{"name": f, "datatype": "FP64", "shape": [-1]} for f in features],
            "outputs": [{"name": f, "datatype": v2_datatype(f), "shape": [-1]}
                        for f in fields]}


def v2_server_metadata(version: str) -> dict:
    """``GET /v2``: the server's name, version and the protocol extensions it speaks."""
    return {"name": "dvc-monitor", "version": version, "extensions": ["binary_tensor_data"]}


def v2_error(message: str) -> dict:
    """A V2 error body: ``{"error": "..."}``, one line."""
    return {"error": cap(message)}


# -- MLflow -----------------------------------------------------------------------------

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def mlflow_rows(body: bytes, content_type: str | None,
                features: Sequence[str]) -> "pd.DataFrame":
    """The rows of an MLflow ``/invocations`` body: JSON (``dataframe_split``,
    ``dataframe_records``, or ``instances``/``inputs`` as records, columns or lists of
    values in the order of ``features``) or CSV with a header."""
    import io

    import pandas as pd

    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            return pd.read_csv(io.BytesIO(body))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(400, f"the CSV body cannot be read ({cap(exc)}); send a "
                                     "header line and one line per row") from None
    if kind != "application/json":
        raise ProtocolError(415, f"content type {shown(kind, 40)} is not supported; send "
                                 "application/json or text/csv")
    doc = loads(body, "request body", 'send {"dataframe_split": {"columns": [...], '
                                      '"data": [[...], ...]}}')
    given = [k for k in MLFLOW_KEYS if isinstance(doc, dict) and k in doc]
    if len(given) != 1:
        raise ProtocolError(400, "the body must be a JSON object with exactly one of "
                                 f"{', '.join(MLFLOW_KEYS)}")
    key, value = given[0], doc[given[0]]
    try:
        if key == "dataframe_split":
            if not isinstance(value, dict) or not isinstance(value.get("data"), list) or \
                    not isinstance(value.get("columns"), list):
                raise ValueError('dataframe_split needs "columns" and "data" (a list of rows)')
            return pd.DataFrame(value["data"], columns=value["columns"])
        if isinstance(value, dict) and key != "dataframe_records":  # {column: [values]}
            return pd.DataFrame(value)
        if not isinstance(value, list) or not value:
            raise ValueError(f"{key} must be a non-empty list of rows")
        if key != "dataframe_records" and all(isinstance(r, list) for r in value):
            return pd.DataFrame(value, columns=list(features))
        if not all(isinstance(r, dict) for r in value):
            raise ValueError(f"{key} must be a list of records (objects of column: value)")
        return pd.DataFrame.from_records(value)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(400, f"{key} cannot be read ({cap(exc)})") from None


def mlflow_error(message: str) -> dict:
    """An MLflow error body: ``{"error_code": "BAD_REQUEST", "message": "..."}``."""
    return {"error_code": "BAD_REQUEST", "message": cap(message)}

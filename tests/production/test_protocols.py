"""`dvc-monitor serve` speaks the Open Inference Protocol (V2: KServe, MLServer, Triton)
and MLflow's scoring protocol beside `/score`. One real server process per module over
loopback, on a copy of the rollback tests' base repository (fraud-detector v1.2.0 in
prod); `tritonclient.http` unchanged against /v2; MLflow's documented payloads against
/invocations; every answer equal to `dvc-monitor score` on the same rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from dvc_monitor.kinds import kind_for
from dvc_monitor.repo.cache import object_path
from tests.support.production import Server, score_json
from tests.support.repos import sample_csv
from tests.support.rollback import MODEL, copy_base

# prod's holder, and the version the promote test moves it to: not v1.1.0, the stage's
# previous holder, which serve keeps loaded as its standby (a damaged file would not show)
NEW, OLD = "v1.2.0", "v1.0.0"
FEATURES = ["amount", "hour", "merchant_category", "distance_from_home", "txn_last_24h"]
JSON = {"Content-Type": "application/json"}
MAX_BODY = 200_000  # serve --max-body: bytes


@pytest.fixture(scope="module")
def served(rollback_base, tmp_path_factory):
    """(server, repo, rows, CSV, expected results by version): one served copy per module."""
    base = tmp_path_factory.mktemp("protocols")
    repo = copy_base(rollback_base, base / "copy")
    csv = sample_csv(base, "anomaly", 9)
    csv.write_text("\n".join(csv.read_text().splitlines()[:21]) + "\n")
    rows = kind_for("anomaly").sample_batch(9).head(20).to_dict("records")
    expected = {v: score_json(repo, f"{MODEL}@{v}", csv)["results"] for v in (NEW, OLD)}
    assert expected[NEW] != expected[OLD]
    server = Server(repo, f"{MODEL}#prod", "--poll", "0.5", "--max-body", str(MAX_BODY))
    yield server, repo, rows, csv, expected
    code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err


def _client(server: Server):
    return triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")


def _matrix(rows: list[dict]) -> np.ndarray:
    return np.array([[float(r[f]) for f in FEATURES] for r in rows])


def _from_v2(result) -> list[dict]:
    scores, alerts = result.as_numpy("score"), result.as_numpy("alert")
    return [{"score": float(s), "alert": bool(a)} for s, a in zip(scores, alerts)]


def _one_line(doc: dict, key: str) -> str:
    text = doc[key]
    assert "\n" not in json.dumps(doc) and len(text) <= 300, doc
    return text


def test_tritonclient_reads_metadata_and_readiness(served):
    server, *_ = served
    version = server.get("/version")["version"]
    client = _client(server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, version)
    meta = client.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and meta["versions"] == [version]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == \
        [(f, "FP64", [-1]) for f in FEATURES]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == \
        [("score", "FP64"), ("alert", "BOOL")]
    assert client.get_model_metadata(MODEL, version) == meta
    assert not client.is_model_ready(MODEL, "v0.0.1")
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata(MODEL, "v0.0.1")
    assert info.value.status() == "404"
    assert f"version 'v0.0.1' of {MODEL} is not served" in info.value.message()
    status, headers, doc = server.request("GET", "/v2/models/no/such/model")
    assert status == 404 and list(doc) == ["error"]
    assert "no model 'no/such/model'" in _one_line(doc, "error")
    assert headers["x-model-version"] == version
    status, _, doc = server.request("GET", "/v2/health/ready")
    assert status == 200 and doc == {"ready": True}


def test_tritonclient_infer_binary_json_and_one_matrix_equal_score(served):
    server, _, rows, _, expected = served
    client = _client(server)
    for binary in (True, False):
        inputs = []
        for f in FEATURES:
            tensor = triton.InferInput(f, [len(rows)], "FP64")
            tensor.set_data_from_numpy(np.array([float(r[f]) for r in rows]), binary_data=binary)
            inputs.append(tensor)
        result = client.infer(MODEL, inputs)  # no outputs named: all, in binary
        version = result.get_response()["model_version"]
        assert _from_v2(result) == expected[version]
        outputs = [triton.InferRequestedOutput("score", binary_data=binary),
                   triton.InferRequestedOutput("alert", binary_data=not binary)]
        result = client.infer(MODEL, inputs, outputs=outputs, request_id="r-7")
        response = result.get_response()
        assert response["id"] == "r-7"
        assert _from_v2(result) == expected[response["model_version"]]
    matrix = triton.InferInput("input", [len(rows), len(FEATURES)], "FP64")
    matrix.set_data_from_numpy(_matrix(rows))
    result = client.infer(MODEL, [matrix], model_version=version)
    assert _from_v2(result) == expected[result.get_response()["model_version"]]
    only = client.infer(MODEL, [matrix], outputs=[triton.InferRequestedOutput("alert")])
    assert only.as_numpy("score") is None
    assert only.as_numpy("alert").tolist() == [r["alert"] for r in expected[
        only.get_response()["model_version"]]]
    body = {"inputs": [{"name": "x", "shape": [len(rows), len(FEATURES)], "datatype": "FP64",
                        "data": _matrix(rows).tolist()}]}
    status, headers, doc = server.request("POST", f"/v2/models/{MODEL}/infer",
                                          json.dumps(body).encode())
    assert status == 200 and headers["x-model-version"] == doc["model_version"]
    assert [o["name"] for o in doc["outputs"]] == ["score", "alert"]
    got = [{"score": s, "alert": a} for s, a in zip(doc["outputs"][0]["data"],
                                                   doc["outputs"][1]["data"])]
    assert got == expected[doc["model_version"]]
    assert 'path="/v2/models/*/infer",status="200"' in server.metrics()


def _mlflow_payloads(rows: list[dict], csv) -> list[tuple[str, bytes, dict]]:
    """The payloads MLflow's scoring-server documentation shows."""
    split = {"dataframe_split": {"columns": FEATURES,
                                 "data": [[r[f] for f in FEATURES] for r in rows]}}
    return [
        ("dataframe_split", json.dumps(split).encode(), JSON),
        ("dataframe_records", json.dumps({"dataframe_records": rows}).encode(), JSON),
        ("instances", json.dumps({"instances": rows}).encode(), JSON),
        ("inputs", json.dumps({"inputs": [[r[f] for f in FEATURES] for r in rows]}).encode(),
         JSON),
        ("text/csv", csv.read_bytes(), {"Content-Type": "text/csv"}),
    ]


def test_invocations_answers_mlflow_payloads_as_score_does(served):
    server, _, rows, csv, expected = served
    for name, body, headers in _mlflow_payloads(rows, csv):
        status, got_headers, raw = server.raw("POST", "/invocations", body, headers)
        doc = json.loads(raw)
        assert status == 200, (name, doc)
        assert list(doc) == ["predictions"]
        assert doc["predictions"] == expected[got_headers["x-model-version"]], name
    status, headers, raw = server.raw("GET", "/ping")
    assert status == 200 and raw == b"\n" and headers["x-model-version"] in (NEW, OLD)


def test_bad_bodies_get_each_protocols_error_shape_in_one_line(served):
    server, _, rows, _, _ = served
    infer = f"/v2/models/{MODEL}/infer"
    one = {"name": "amount", "shape": [1], "datatype": "FP64", "data": [1.0]}
    short = json.dumps({"inputs": [{"name": "amount", "shape": [2], "datatype": "FP64",
                                    "parameters": {"binary_data_size": 16}}]}).encode()
    v2_cases = [
        (b"{not json", JSON, 400, "not valid JSON"),
        (b'{"inputs": []}', JSON, 400, 'needs "inputs"'),
        (json.dumps({"inputs": [one]}).encode(), JSON, 400, "lacks the input(s) hour"),
        (json.dumps({"inputs": [dict(one, data=["1.5"])]}).encode(), JSON, 400,
         "'1.5' is not a number"),
        (json.dumps({"inputs": [dict(one, data=[True])]}).encode(), JSON, 400,
         "true is not a number"),
        (json.dumps({"inputs": [dict(one, datatype="BYTES")]}).encode(), JSON, 400,
         "datatype 'BYTES'"),
        (json.dumps({"inputs": [dict(one, data=[1.0, 2.0])]}).encode(), JSON, 400,
         "2 values for shape [1]"),
        (short + b"\0" * 8, {**JSON, "Inference-Header-Content-Length": str(len(short))},
         400, "binary_data_size 16"),
        (json.dumps({"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP64",
                                 "data": [1, 2, 3, 4, 1e308]}],
                     "outputs": [{"name": "nope"}]}).encode(), JSON, 400, "unknown output"),
    ]
    for body, headers, status, words in v2_cases:
        got, _, raw = server.raw("POST", infer, body, headers)
        doc = json.loads(raw)
        assert got == status and list(doc) == ["error"], (body[:80], doc)
        assert words in _one_line(doc, "error"), doc
    got, _, raw = server.raw("GET", infer)
    assert got == 405 and "GET is not allowed" in json.loads(raw)["error"]
    big = b" " * (MAX_BODY + 1)
    got, _, raw = server.raw("POST", infer, big, JSON)
    assert got == 413 and "the limit is" in json.loads(raw)["error"]
    split = {"dataframe_split": {"columns": ["amount"], "data": [[1.0]]}}
    mlflow_cases = [
        (b"{not json", JSON, 400, "not valid JSON"),
        (b'{"rows": []}', JSON, 400, "exactly one of dataframe_split"),
        (json.dumps(split).encode(), JSON, 400, "missing column(s)"),
        (json.dumps({"dataframe_records": [dict(rows[0], amount="lots")]}).encode(), JSON,
         400, "'lots'"),
        (b"amount\n1\n", {"Content-Type": "text/csv"}, 400, "missing column(s)"),
        (b"<xml/>", {"Content-Type": "application/xml"}, 415, "is not supported"),
        (big, JSON, 413, "the limit is"),
    ]
    for body, headers, status, words in mlflow_cases:
        got, _, raw = server.raw("POST", "/invocations", body, headers)
        doc = json.loads(raw)
        assert got == status and list(doc) == ["error_code", "message"], (body[:80], doc)
        assert doc["error_code"] == "BAD_REQUEST"
        assert words in _one_line(doc, "message"), doc
    status, _, doc = server.request("GET", "/nowhere")
    assert status == 404 and "/invocations" in doc["error"] and "/v2/models/{name}" in doc["error"]
    assert 'status="500"' not in server.metrics()


def test_v2_readiness_follows_the_holder_and_a_promote_reaches_v2_and_mlflow(served):
    server, repo, rows, csv, expected = served
    client = _client(server)
    # the new holder's model file is damaged: not swapped in, so not ready (as /ready)
    md5 = json.loads(repo.dm("show", f"{MODEL}@{OLD}", "--json").stdout)["model_md5"]
    obj = object_path(repo.path, md5)
    good = obj.read_bytes()
    obj.chmod(0o644)
    obj.write_bytes(good[:-40] + b"\0" * 40)
    repo.dm("promote", MODEL, OLD, "--stage", "prod")
    server.wait_for(lambda h: h["status"] == "degraded")
    assert not client.is_server_ready() and not client.is_model_ready(MODEL)
    assert client.is_server_live()
    status, headers, doc = server.request("GET", f"/v2/models/{MODEL}/ready")
    assert status == 503 and doc == {"name": MODEL, "ready": False}
    assert headers["x-model-version"] == NEW
    # repaired: a later poll swaps it in
    obj.write_bytes(good)
    health = server.wait_for(lambda h: h["version"] == OLD)
    assert health["version"] == OLD and health["ready"] is True
    assert client.is_server_ready() and client.is_model_ready(MODEL, OLD)
    assert client.get_model_metadata(MODEL)["versions"] == [OLD]
    matrix = triton.InferInput("input", [len(rows), len(FEATURES)], "FP64")
    matrix.set_data_from_numpy(_matrix(rows))
    result = client.infer(MODEL, [matrix], model_version=OLD)
    assert result.get_response()["model_version"] == OLD
    assert _from_v2(result) == expected[OLD]
    status, headers, doc = server.request("POST", f"/v2/models/{MODEL}/versions/{NEW}/infer",
                                          b"{}")
    assert status == 404 and f"this server serves {OLD}" in doc["error"]
    assert headers["x-model-version"] == OLD
    status, headers, raw = server.raw("POST", "/invocations", csv.read_bytes(),
                                      {"Content-Type": "text/csv"})
    assert status == 200 and headers["x-model-version"] == OLD
    assert json.loads(raw)["predictions"] == expected[OLD]

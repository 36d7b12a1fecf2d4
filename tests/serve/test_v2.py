"""The KServe v2 / Triton protocol, spoken by Triton's own client (tritonclient.http) to a real
server on 127.0.0.1: health, metadata, infer with JSON and binary tensors; the answers equal
/predict's. Plus the OpenAPI document and the package's client."""
from __future__ import annotations

import numpy as np
import pytest

from serve.conftest import sample

triton = pytest.importorskip("tritonclient.http")


@pytest.fixture
def tc(server):
    client = triton.InferenceServerClient(server.url.removeprefix("http://"),
                                          network_timeout=30)
    yield client
    client.close()


def predict_logits(client, x):
    r = client.post("/predict", json={"inputs": {"x": x.tolist()}})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["outputs"]["logits"], dtype=np.float32)


def test_health_and_metadata(tc, server):
    name = server.service.model_name
    assert tc.is_server_live() and tc.is_server_ready()
    assert tc.is_model_ready(name)
    assert tc.is_model_ready(name, "1")
    assert not tc.is_model_ready("nope")
    meta = tc.get_model_metadata(name)
    assert meta["name"] == name and meta["versions"] == ["1"]
    assert meta["platform"] == "paddle_inference"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["outputs"][0]["name"] == "logits"
    assert meta["outputs"][0]["datatype"] == "FP32"
    assert tc.get_server_metadata()["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize("binary_in, binary_out", [(False, False), (True, True),
                                                   (True, False), (False, True)])
def test_infer_equals_predict(tc, server, client, binary_in, binary_out):
    x = sample(3, seed=11)
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    out = triton.InferRequestedOutput("logits", binary_data=binary_out)
    result = tc.infer(server.service.model_name, [inp], outputs=[out], request_id="r1")
    logits = result.as_numpy("logits")
    assert logits.dtype == np.float32 and logits.shape == (3, 10)
    np.testing.assert_array_equal(logits, predict_logits(client, x))
    response = result.get_response()
    assert response["id"] == "r1" and response["model_version"] == "1"


def test_infer_with_version_and_default_outputs(tc, server, client):
    x = sample(2, seed=5)
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = tc.infer(server.service.model_name, [inp], model_version="1")  # all outputs, binary
    np.testing.assert_array_equal(result.as_numpy("logits"), predict_logits(client, x))


def test_v2_errors_are_triton_errors(tc, server):
    from tritonclient.utils import InferenceServerException

    name = server.service.model_name
    x = sample(1)
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="no model named"):
        tc.infer("nope", [inp])
    with pytest.raises(InferenceServerException, match="version '7' is not served"):
        tc.infer(name, [inp], model_version="7")
    wrong = triton.InferInput("y", [1, 1, 8, 8], "FP32")
    wrong.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="missing \\['x'\\], unknown \\['y'\\]"):
        tc.infer(name, [wrong])
    ints = triton.InferInput("x", [1, 1, 8, 8], "BOOL")
    ints.set_data_from_numpy(np.ones((1, 1, 8, 8), bool))
    with pytest.raises(InferenceServerException, match="dtype bool"):
        tc.infer(name, [ints])


SHORT_HEADER = (b'{"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32", '
                b'"parameters": {"binary_data_size": 256}}]}')


@pytest.mark.parametrize("body, headers, status, words", [
    (b'{"inputs": []}', {}, 400, "needs 'inputs'"),
    (b'{"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [1]}]}',
     {}, 400, "1 values for shape"),
    (b'{"inputs": [{"name": "x", "shape": [1, 1, 8, 8], "datatype": "STR", "data": []}]}',
     {}, 400, "not supported"),
    (b'{"inputs": [{"name": "x", "shape": [1, 1, 2, 2], "datatype": "FP32", '
     b'"data": [1, 2, 3, true]}]}', {}, 422, "true/false"),
    (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", '
     b'"parameters": {"binary_data_size": 4}}]}', {"Inference-Header-Content-Length": "9999"},
     400, "does not fit"),
    (SHORT_HEADER + bytes(255), {"Inference-Header-Content-Length": str(len(SHORT_HEADER))},
     400, "binary_data_size"),
    (SHORT_HEADER + bytes(260), {"Inference-Header-Content-Length": str(len(SHORT_HEADER))},
     400, "4 bytes of binary data follow"),
])
def test_malformed_infer_requests(client, server, body, headers, status, words):
    r = client.post(f"/v2/models/{server.service.model_name}/infer", content=body,
                    headers=headers)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_openapi_documents_the_json_routes(client):
    spec = client.get("/openapi.json").json()
    for path in ("/predict", "/reload", "/health", "/metrics", "/v2/health/ready",
                 "/v2/models/{name}", "/v2/models/{name}/infer"):
        assert path in spec["paths"], path
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "inputs" in body["application/json"]["schema"]["properties"]
    assert "application/x-npy" in body
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert "#/$defs" not in str(infer)  # nested models inlined: the document resolves
    assert client.get("/docs").status_code == 200


def test_package_client(server, tiny_inference):
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.serve.client import Client

    x = sample(4, seed=2)
    with Client(server.url) as c:
        assert c.ready()
        out = c.predict(x)
        np.testing.assert_allclose(out["logits"], load_predictor(tiny_inference).run([x])[0],
                                   atol=1e-5)
        np.testing.assert_array_equal(c.predict({"x": x}, binary=False)["logits"],
                                      out["logits"])
        top = c.top_k(x[:1], 3)
        assert len(top[0]) == 3 and top[0][0]["class_id"] == int(out["logits"][0].argmax())
        assert c.metadata()["inputs"][0]["name"] == "x"
        with pytest.raises(Exception, match="has shape"):
            c.predict(x[:, :, :4])

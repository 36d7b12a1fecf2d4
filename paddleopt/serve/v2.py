"""The open inference protocol (KServe v2 / Triton HTTP), next to /predict.

    GET  /v2/health/live | /v2/health/ready
    GET  /v2                                         server metadata
    GET  /v2/models/{name}[/versions/{v}]            model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer      JSON, or JSON + binary tensor extension

``name`` is ``--model-name`` (default: the artifact folder's name); ``v`` is the number of
the version being served (1, then 2 after a reload...; requests pin it like /predict's).
Binary tensor data extension: the request's JSON header is the first
``Inference-Header-Content-Length`` bytes, then each input with
``parameters.binary_data_size`` in order; outputs are binary when asked for
(``outputs[i].parameters.binary_data`` or ``parameters.binary_data_output``), and the
answer then carries the same header. Inputs are validated exactly as /predict's
(``inputs.check_arrays``) and run through the same batcher, so answers are the same.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from paddleopt.serve.inputs import RequestError, _holds_bool

EXTENSIONS = ["binary_tensor_data"]
_TO_NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
             "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
             "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
_FROM_NUMPY = {np.dtype(v).str: k for k, v in _TO_NUMPY.items()}
HEADER = "inference-header-content-length"


def datatype(dtype: Any) -> str:
    """The protocol's datatype name of a numpy dtype (or a manifest dtype string)."""
    try:
        return _FROM_NUMPY[np.dtype(dtype).str]
    except (KeyError, TypeError):
        return "BYTES"


def model_metadata(name: str, version: Any, platform: str) -> dict[str, Any]:
    manifest = version.manifest
    return {"name": name, "versions": [str(version.number)], "platform": platform,
            "inputs": [{"name": s.name, "datatype": datatype(s.dtype), "shape": list(s.shape)}
                       for s in manifest.io.inputs],
            "outputs": [{"name": s.name, "datatype": datatype(s.dtype),
                         "shape": list(s.shape)} for s in manifest.io.outputs]}


def parse_infer(body: bytes, header_length: str | None) -> tuple[dict[str, Any],
                                                                 dict[str, np.ndarray]]:
    """(the JSON request, its input arrays by name) from an /infer body."""
    from paddleopt.serve.inputs import decode_json

    if header_length is not None:
        try:
            size = int(header_length)
            if not 0 < size <= len(body):
                raise ValueError
        except ValueError:
            raise RequestError(400, f"Inference-Header-Content-Length {header_length!r} does "
                               f"not fit a body of {len(body)} bytes.",
                               "send the JSON header's length in bytes.") from None
        request, binary = decode_json(body[:size]), memoryview(body)[size:]
    else:
        request, binary = decode_json(body), memoryview(b"")
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) \
            or not request["inputs"]:
        raise RequestError(400, "the inference request needs 'inputs': a list of tensors.",
                           'send {"inputs": [{"name": "x", "shape": [1, 4], "datatype": '
                           '"FP32", "data": [...]}]}.')
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(request["inputs"]):
        arr, used = _input_array(i, tensor, binary[offset:])
        offset += used
        arrays[tensor["name"]] = arr
    if offset != len(binary):
        raise RequestError(400, f"{len(binary) - offset} bytes of binary data follow the "
                           "inputs that declare binary_data_size.",
                           "send exactly the bytes the inputs declare.")
    return request, arrays


def _input_array(index: int, tensor: Any, binary: memoryview) -> tuple[np.ndarray, int]:
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise RequestError(400, f"{where} needs a 'name'.", "name each input tensor.")
    where = f"input '{tensor['name']}'"
    shape, dtype_name = tensor.get("shape"), tensor.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                              and d >= 0 for d in shape):
        raise RequestError(400, f"{where}: 'shape' must be a list of non-negative integers.",
                           "send e.g. \"shape\": [1, 1, 28, 28].")
    if dtype_name not in _TO_NUMPY:
        raise RequestError(400, f"{where}: datatype {dtype_name!r} is not supported.",
                           f"use one of {', '.join(_TO_NUMPY)}.")
    dtype = np.dtype(_TO_NUMPY[dtype_name])
    count = int(np.prod(shape, dtype=np.int64))
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize or size > len(binary):
            raise RequestError(400, f"{where}: binary_data_size {size!r} does not match shape "
                               f"{shape} of {dtype_name} ({count * dtype.itemsize} bytes) or "
                               "the bytes sent.", "send the tensor's raw bytes, C order.")
        return np.frombuffer(binary[:size], dtype=dtype).reshape(shape), size
    data = tensor.get("data")
    if data is None:
        raise RequestError(400, f"{where} has neither 'data' nor binary_data_size.",
                           "send the values in 'data' (flat, row-major) or as binary data.")
    if dtype.kind != "b" and _holds_bool(data):
        raise RequestError(422, f"{where} holds true/false but is declared {dtype_name}.",
                           "send numbers, or declare the tensor BOOL.")
    try:
        arr = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise RequestError(400, f"{where}: 'data' is not a list of {dtype_name} values.",
                           "send numbers, flat in row-major order.") from None
    if arr.size != count:
        raise RequestError(400, f"{where}: {arr.size} values for shape {shape} ({count}).",
                           "send as many values as the shape holds.")
    return arr.reshape(shape), 0


def wants_binary(request: dict[str, Any]) -> dict[str, bool] | bool:
    """Which outputs go back as binary: a default for all (bool) or per name (dict)."""
    params = request.get("parameters") or {}
    default = bool(params.get("binary_data_output", False)) if isinstance(params, dict) \
        else False
    outputs = request.get("outputs")
    if not isinstance(outputs, list):
        return default
    chosen = {}
    for out in outputs:
        if isinstance(out, dict) and isinstance(out.get("name"), str):
            p = out.get("parameters") or {}
            chosen[out["name"]] = bool(p.get("binary_data", default)) if isinstance(p, dict) \
                else default
    return chosen


def infer_answer(request: dict[str, Any], model: str, version: str, names: list[str],
                 outputs: list[np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of an /infer answer."""
    binary = wants_binary(request)
    selected = list(zip(names, outputs))
    if isinstance(binary, dict):
        unknown = sorted(set(binary) - set(names))
        if unknown:
            raise RequestError(400, f"unknown output(s) {unknown}; the model has {names}.",
                               "ask for outputs by their names (or omit 'outputs').")
        selected = [(n, o) for n, o in selected if n in binary]
    entries, blobs = [], []
    for name, out in selected:
        out = np.ascontiguousarray(out)
        entry: dict[str, Any] = {"name": name, "datatype": datatype(out.dtype),
                                 "shape": list(out.shape)}
        if binary.get(name, False) if isinstance(binary, dict) else binary:
            blob = out.tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = out.ravel().tolist()
        entries.append(entry)
    answer = {"model_name": model, "model_version": version, "outputs": entries}
    if "id" in request:
        answer["id"] = request["id"]
    header = json.dumps(answer).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *blobs]), {"Content-Type": "application/octet-stream",
                                         "Inference-Header-Content-Length": str(len(header))}

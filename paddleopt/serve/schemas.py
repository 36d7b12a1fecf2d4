"""Pydantic models of the JSON bodies, for the OpenAPI document (/openapi.json, /docs) only.

The handlers read raw bytes and validate against the served model's manifest themselves
(``inputs.py``, ``v2.py``): the shapes and dtypes that matter are only known at run time,
and pydantic parsing of large float lists would cost more than the model run.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Error(BaseModel):
    error: str = Field(description="what is wrong")
    fix: str | None = Field(None, description="how to fix it")


class PredictRequest(BaseModel):
    """Exactly one of inputs / images / texts. Binary bodies (Content-Type
    application/x-npy, application/x-npz, application/octet-stream + X-Shape) work too."""

    inputs: dict[str, list[Any]] | list[Any] | None = Field(
        None, description="tensors by input name, first dimension = batch (a bare nested "
        "list for single-input models)", examples=[{"x": [[[[0.0, 0.5], [0.5, 1.0]]]]}])
    images: list[str] | None = Field(None, description="base64 PNG/JPEG, preprocessed with "
                                     "the artifact's manifest")
    texts: list[str] | None = Field(None, description="for text models")
    top_k: int | None = Field(None, ge=0, description="add class predictions with labels")


class BatchInfo(BaseModel):
    rows: int
    requests: int


class PredictResponse(BaseModel):
    model_version: str
    outputs: dict[str, list[Any]]
    batch: BatchInfo
    predictions: list[list[dict[str, Any]]] | None = None


class ReloadRequest(BaseModel):
    artifact: str = Field(description="the artifact folder to serve next")


class InferTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="BOOL, UINT8...UINT64, INT8...INT64, FP16, FP32, FP64")
    data: list[Any] | None = Field(None, description="values, flat in row-major order (or "
                                   "binary data after the JSON header)")
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size: bytes of "
                                              "this tensor after the JSON header")


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description="binary_data: true")


class InferRequest(BaseModel):
    """KServe v2 / Triton inference request. With the binary tensor data extension the body
    is this JSON (its length in the Inference-Header-Content-Length header) followed by the
    tensors' bytes."""

    id: str | None = None
    inputs: list[InferTensor]
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] | None = Field(None, description="binary_data_output: true")


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferTensor]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


def body(model: type[BaseModel], binary_types: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` describing a request body the handler reads itself."""
    content: dict[str, Any] = {"application/json": {"schema": _inline(model.model_json_schema())}}
    for kind in binary_types:
        content[kind] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local ``$defs`` references replaced by their definitions (a
    request body schema is embedded in the OpenAPI document, where ``#/$defs`` would not
    resolve)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.split("/")[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Error} for status in statuses}

"""The HTTP layer (FastAPI): /predict, /health, /metrics, /reload, and the KServe v2 / Triton
protocol under /v2 (``v2.py``). OpenAPI: /openapi.json, /docs.

Every error answer is JSON ``{"error": ..., "fix": ...}`` with a 4xx status for client
mistakes (400 unreadable body, 413 too large, 422 does not fit the model, 406 a one-array
answer format for a multi-output model, 403 reload disabled, 501 text support missing), 503
when overloaded or no model, 504 on timeout and 500 when the model itself fails on valid input.

/predict takes JSON, or binary tensors by Content-Type (``inputs.BINARY_TYPES``: .npy, .npz,
raw bytes + X-Shape), and answers JSON unless Accept names one of those binary types.
"""
# No `from __future__ import annotations` here: FastAPI reads the route functions'
# annotations at runtime (Request must be a real class, not the string "Request").
import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from paddleopt.serve.inputs import (BINARY_TYPES, RequestError, check_arrays, decode_json,
                                    parse_binary, parse_body, predictions)
from paddleopt.serve.metrics import STATUS_CLIENT_GONE

log = logging.getLogger("paddleopt.serve")

if TYPE_CHECKING:
    from paddleopt.serve.server import Service


async def read_body(request: Any, limit: int, timeout_s: float | None = None) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before reading them all, and a body
    still incomplete after ``timeout_s`` (408: a slow or stalled client would otherwise hold
    its connection, and the memory of what it sent, for as long as it likes)."""
    if timeout_s is not None:
        try:
            return await asyncio.wait_for(read_body(request, limit), timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(408, f"the request body was not received within {timeout_s:g} "
                               "s.", "send the whole body at once (or raise --body-timeout)."
                               ) from None
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise RequestError(400, f"bad Content-Length header {length!r}.") from None
        if declared > limit:
            raise RequestError(413, f"the body has {declared} bytes; this server accepts at most "
                               f"{limit}.", "send fewer samples per request, or raise "
                               "--max-body-mb.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body exceeds {limit} bytes.",
                               "send fewer samples per request, or raise --max-body-mb.")
        chunks.append(chunk)
    if size == 0:
        raise RequestError(400, "the request has an empty body.",
                           'send JSON, e.g. {"inputs": {"x": [[...]]}}.')
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json(request: Any, limit: int, timeout_s: float | None = None) -> Any:
    """The decoded JSON body, refusing more than ``limit`` bytes before reading them all."""
    return decode_json(await read_body(request, limit, timeout_s))


def has_booleans(data: bytes) -> bool:
    """Whether JSON bytes may hold true/false (a fast scan; parse_body then looks closer)."""
    return b"true" in data or b"false" in data


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def accepted_type(header: str | None) -> str:
    """The answer format: the first binary type named in Accept, else JSON."""
    for part in (header or "").split(","):
        kind = media_type(part)
        if kind in BINARY_TYPES:
            return kind
    return "application/json"


def query_top_k(value: str | None) -> int:
    if value is None:
        return 0
    try:
        top_k = int(value)
        if top_k < 0:
            raise ValueError
    except ValueError:
        raise RequestError(422, f"top_k must be a non-negative integer, got {value!r}.",
                           "use e.g. ?top_k=3") from None
    return top_k


def output_names(manifest: Any, outputs: list) -> list[str]:
    names = [s.name for s in manifest.io.outputs]
    return names if len(names) == len(outputs) else [f"output_{i}" for i in range(len(outputs))]


def binary_answer(kind: str, names: list[str], result: Any, version: str) -> Any:
    """Outputs as .npy (one output), .npz (all, by name) or raw bytes (one output; shape and
    dtype in X-Shape / X-Dtype)."""
    import io

    import numpy as np
    from starlette.responses import Response

    headers = {"X-Model-Version": version, "X-Batch-Rows": str(result.batch_rows),
               "X-Batch-Requests": str(result.batch_requests),
               "X-Outputs": ",".join(names)}
    outputs = [np.ascontiguousarray(o) for o in result.outputs]
    if kind != "application/x-npz" and len(outputs) != 1:
        raise RequestError(406, f"{kind} carries one array; this model has {len(outputs)} "
                           f"outputs ({', '.join(names)}).",
                           "ask for Accept: application/x-npz (all outputs by name).")
    if kind == "application/octet-stream":
        out = outputs[0]
        headers.update({"X-Shape": ",".join(str(d) for d in out.shape),
                        "X-Dtype": out.dtype.name})
        return Response(out.tobytes(), media_type=kind, headers=headers)
    buf = io.BytesIO()
    if kind == "application/x-npy":
        np.save(buf, outputs[0], allow_pickle=False)
    else:
        np.savez(buf, **dict(zip(names, outputs)))
    return Response(buf.getvalue(), media_type=kind, headers=headers)


def create_app(service: "Service") -> Any:
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response
    from starlette.requests import ClientDisconnect

    from paddleopt.serve.batching import Overloaded
    from paddleopt.serve.metrics import wants_prometheus
    from paddleopt.utils.errors import UserError

    cfg = service.config
    from paddleopt.serve import schemas, v2

    app = FastAPI(title="paddleopt serve", version="0.1.0", docs_url="/docs",
                  redoc_url=None, openapi_url="/openapi.json",
                  description="Dynamic-batching model server: /predict (JSON or binary "
                  "tensors) and the KServe v2 / Triton open inference protocol (/v2).")
    metrics = service.metrics

    @app.post("/predict", openapi_extra=schemas.body(schemas.PredictRequest, BINARY_TYPES),
              responses={200: {"model": schemas.PredictResponse},
                         **schemas.errors(400, 406, 408, 413, 422, 500, 503, 504)})
    async def predict(request: Request) -> Any:
        return await answered("/predict", lambda timing: _predict(request, timing))

    async def _predict(request: Request, timing: dict[str, Any]) -> Any:
        content_type = media_type(request.headers.get("content-type"))
        answer_type = accepted_type(request.headers.get("accept"))
        data = await read_body(request, cfg.max_body_bytes, cfg.body_timeout_s)
        timing["started"] = time.perf_counter()
        if content_type not in BINARY_TYPES:  # JSON whatever the header says (curl -d)
            body: Any = decode_json(data)
        with service.manager.use() as version:  # pinned until the answer is ready
            manifest = version.manifest
            if content_type in BINARY_TYPES:
                parsed = parse_binary(content_type, data, request.headers, manifest,
                                      cfg.max_request_rows,
                                      query_top_k(request.query_params.get("top_k")))
            elif isinstance(body, dict) and "images" in body:
                parsed = await run_in_threadpool(parse_body, body, manifest,
                                                 cfg.max_request_rows)
            else:
                parsed = parse_body(body, manifest, cfg.max_request_rows,
                                    has_booleans(data))
            if parsed.top_k and answer_type != "application/json":
                raise RequestError(422, "top_k predictions come in a JSON answer only.",
                                   "drop top_k, or ask for Accept: application/json.")
            result = await run_model(version, parsed)
        timing["queue_ms"] = result.queue_ms
        names = output_names(manifest, result.outputs)
        if answer_type != "application/json":
            response = binary_answer(answer_type, names, result, version.name)
        else:
            answer: dict[str, Any] = {
                "model_version": version.name,
                "outputs": {n: o.tolist() for n, o in zip(names, result.outputs)},
                "batch": {"rows": result.batch_rows, "requests": result.batch_requests},
            }
            if parsed.top_k and result.outputs:
                answer["predictions"] = predictions(result.outputs[0], manifest.labels,
                                                    parsed.top_k)
            response = JSONResponse(answer)
        return response

    async def answered(endpoint: str, work: Any) -> Any:
        """``await work(timing)``'s response, or the JSON error for what it raised; counted
        in the metrics with the status sent (499 when the client left first) and the time
        from the body's arrival (``timing["started"]``) to the answer."""
        timing: dict[str, Any] = {"started": None, "queue_ms": None}
        response, status = None, STATUS_CLIENT_GONE  # unless an answer is made below
        try:
            response = await work(timing)
        except Exception as exc:
            response = error_response(exc)
        finally:  # asyncio.CancelledError (the client left) passes through with 499
            if response is not None:
                status = response.status_code
            started = timing["started"]
            latency = None if started is None else (time.perf_counter() - started) * 1e3
            metrics.observe_request(endpoint, status, latency, timing["queue_ms"])
        return response

    async def run_model(version: Any, parsed: Any) -> Any:
        future = service.batcher.submit(version, parsed.feeds)
        return await asyncio.wait_for(asyncio.wrap_future(future), cfg.request_timeout_s)

    async def infer(request: Request, name: str, version: str | None = None) -> Any:
        """POST /v2/models/{name}[/versions/{version}]/infer (see ``v2``)."""
        return await answered("/v2/infer", lambda timing: _infer(request, name, version,
                                                                 timing))

    async def _infer(request: Request, name: str, version: str | None,
                     timing: dict[str, Any]) -> Any:
        data = await read_body(request, cfg.max_body_bytes, cfg.body_timeout_s)
        timing["started"] = time.perf_counter()
        check_model(name)
        req, arrays = v2.parse_infer(data, request.headers.get(v2.HEADER))
        with service.manager.use() as served:
            check_version(served, version)
            parsed = check_arrays(arrays, served.manifest, cfg.max_request_rows)
            result = await run_model(served, parsed)
        timing["queue_ms"] = result.queue_ms
        body, headers = v2.infer_answer(req, service.model_name, str(served.number),
                                        output_names(served.manifest, result.outputs),
                                        result.outputs)
        return Response(body, headers=headers)

    def check_model(name: str) -> None:
        if name != service.model_name:
            raise RequestError(404, f"no model named {name!r}; this server serves "
                               f"{service.model_name!r}.", "use GET /v2/models/"
                               f"{service.model_name} (or serve with --model-name).")

    def check_version(served: Any, version: str | None) -> None:
        if version is not None and version != str(served.number):
            raise RequestError(404, f"model {service.model_name!r} version {version!r} is not "
                               f"served; version {served.number} is.",
                               "omit the version, or ask for the served one.")

    def served_version(name: str, version: str | None) -> Any:
        check_model(name)
        current = service.manager.current
        if current is None:
            raise RequestError(503, "no model is loaded.", "load one with POST /reload.")
        check_version(current, version)
        return current

    @app.post("/v2/models/{name}/infer", tags=["v2"], openapi_extra=schemas.body(
        schemas.InferRequest), responses={200: {"model": schemas.InferResponse},
                                          **schemas.errors(400, 404, 408, 413, 422, 503)})
    async def v2_infer(request: Request, name: str) -> Any:
        return await infer(request, name)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=["v2"],
              openapi_extra=schemas.body(schemas.InferRequest),
              responses={200: {"model": schemas.InferResponse},
                         **schemas.errors(400, 404, 408, 413, 422, 503)})
    async def v2_infer_version(request: Request, name: str, version: str) -> Any:
        return await infer(request, name, version)

    def v2_json(endpoint: str, build: Any) -> Any:
        try:
            response = JSONResponse(build())
        except Exception as exc:
            response = error_response(exc)
        metrics.observe_request(endpoint, response.status_code)
        return response

    @app.get("/v2/health/live", tags=["v2"])
    async def v2_live() -> Any:
        return v2_json("/v2/health", lambda: {"live": True})

    @app.get("/v2/health/ready", tags=["v2"], responses=schemas.errors(503))
    async def v2_ready() -> Any:
        return v2_json("/v2/health", lambda: {"ready": served_version(
            service.model_name, None) is not None})

    @app.get("/v2", tags=["v2"])
    async def v2_server() -> Any:
        return v2_json("/v2", lambda: {"name": "paddleopt", "version": "0.1.0",
                                       "extensions": v2.EXTENSIONS})

    def metadata(name: str, version: str | None) -> dict[str, Any]:
        served = served_version(name, version)
        return v2.model_metadata(service.model_name, served, served.describe()["backend"])

    @app.get("/v2/models/{name}", tags=["v2"],
             responses={200: {"model": schemas.ModelMetadata}, **schemas.errors(404, 503)})
    async def v2_model(name: str) -> Any:
        return v2_json("/v2/models", lambda: metadata(name, None))

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"],
             responses={200: {"model": schemas.ModelMetadata}, **schemas.errors(404, 503)})
    async def v2_model_version(name: str, version: str) -> Any:
        return v2_json("/v2/models", lambda: metadata(name, version))

    @app.get("/v2/models/{name}/ready", tags=["v2"], responses=schemas.errors(404, 503))
    async def v2_model_ready(name: str) -> Any:
        return v2_json("/v2/models", lambda: {"name": name, "ready": served_version(
            name, None) is not None})

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"],
             responses=schemas.errors(404, 503))
    async def v2_model_version_ready(name: str, version: str) -> Any:
        return v2_json("/v2/models", lambda: {"name": name, "ready": served_version(
            name, version) is not None})

    def error_response(exc: Exception) -> Any:
        """The JSON answer for any failure of a request (never a traceback to the client)."""
        if isinstance(exc, RequestError):
            # 408: the rest of the body may still arrive; close instead of reading it.
            headers = {"Connection": "close"} if exc.status == 408 else None
            return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
        if isinstance(exc, Overloaded):
            return JSONResponse({"error": f"overloaded: {exc}", "fix": "retry shortly."},
                                status_code=503, headers={"Retry-After": "1"})
        if isinstance(exc, asyncio.TimeoutError):
            return JSONResponse({"error": f"no answer within {cfg.request_timeout_s} s.",
                                 "fix": "retry, or lower the load."}, status_code=504)
        if isinstance(exc, ClientDisconnect):  # nobody reads this answer; counted as 499
            return JSONResponse({"error": "the client disconnected."},
                                status_code=STATUS_CLIENT_GONE)
        if isinstance(exc, UserError):  # no model loaded, or the model failed on valid input
            return JSONResponse({"error": exc.message, "fix": exc.fix},
                                status_code=503 if service.manager.current is None else 500)
        log.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(exc).__name__}.",
                             "fix": "see the server log; report it if it repeats."},
                            status_code=500)

    @app.get("/health")
    async def health() -> Any:
        status = service.manager.status()
        ok = status["current"] is not None
        body = {"status": "ok" if ok else "no model", "model_name": service.model_name,
                "model": status["current"],
                "reloads_ok": status["reloads_ok"], "reloads_failed": status["reloads_failed"],
                "last_reload_error": status["last_error"], "retired": status["retired"],
                "queue": service.batcher.queued,
                "batching": {"max_batch_size": cfg.max_batch_size,
                             "max_wait_ms": cfg.max_wait_ms, "workers": cfg.workers},
                "watch": str(cfg.watch) if cfg.watch else None}
        metrics.observe_request("/health", 200 if ok else 503)
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def get_metrics(request: Request, format: str | None = None) -> Any:  # noqa: A002
        current = service.manager.current
        model = current.describe() if current else None
        metrics.observe_request("/metrics", 200)
        if wants_prometheus(request.headers.get("accept"), format):
            text, content_type = metrics.prometheus(
                model, service.batcher.queued, service.manager.reloads_ok,
                service.manager.reloads_failed)
            return Response(text, media_type=content_type.split(";")[0],
                            headers={"Content-Type": content_type})
        snap = metrics.snapshot()
        snap.update(model_version=model["version"] if model else None,
                    queue=service.batcher.queued, cache=service.cache.stats(),
                    reloads_ok=service.manager.reloads_ok,
                    reloads_failed=service.manager.reloads_failed)
        return JSONResponse(snap)

    @app.post("/reload", openapi_extra=schemas.body(schemas.ReloadRequest),
              responses=schemas.errors(403, 422))
    async def reload(request: Request) -> Any:
        status = 200
        try:
            if not cfg.allow_reload:
                raise RequestError(403, "reloading through the API is disabled on this server.",
                                   "restart it without --no-reload-api, or use --watch.")
            body = await read_json(request, 64 * 1024, cfg.body_timeout_s)
            path = body.get("artifact") if isinstance(body, dict) else None
            if not isinstance(path, str) or not path:
                raise RequestError(422, "the body needs 'artifact': the folder to serve.",
                                   'send {"artifact": "/path/to/artifact"}.')
            previous = service.manager.current
            try:
                version = await run_in_threadpool(service.manager.load, path)
            except UserError as exc:
                raise RequestError(422, f"rejected '{path}': {exc.message}",
                                   f"{exc.fix} The previous model keeps serving.".strip()) \
                    from None
            except Exception as exc:
                raise RequestError(422, f"rejected '{path}': {type(exc).__name__}: {exc}",
                                   "The previous model keeps serving.") from None
            return JSONResponse({"status": "reloaded", "model": version.describe(),
                                 "previous": previous.name if previous else None})
        except Exception as exc:
            response = error_response(exc)
            status = response.status_code
            body = json.loads(response.body)
            current = service.manager.current
            body["serving"] = current.name if current else None
            return JSONResponse(body, status_code=status)
        finally:
            metrics.observe_request("/reload", status)

    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        """POST /predict straight to its handler; everything else through FastAPI. FastAPI's
        routing and dependency solving cost ~0.13 ms of CPU per request (measured: 0.33 vs
        0.20 ms for an empty endpoint), paid for every answer in the event loop that also
        parses HTTP, a large share when batching makes the model's part small."""
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == "/predict":
                response = await predict(Request(scope, receive))
                await response(scope, receive, send)
                return
            parts = path.split("/")  # "", "v2", "models", name, ["versions", v], "infer"
            if len(parts) in (5, 7) and parts[1:3] == ["v2", "models"] \
                    and parts[-1] == "infer" and (len(parts) == 5 or parts[4] == "versions"):
                response = await infer(Request(scope, receive), parts[3],
                                       parts[5] if len(parts) == 7 else None)
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    asgi.app = app  # type: ignore[attr-defined]  # the FastAPI app, for introspection
    return asgi

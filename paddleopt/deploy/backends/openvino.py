"""OpenVINO backend: runs Paddle inference folders (its Paddle frontend reads .pdmodel) and
ONNX artifacts (fp32, and int8 quantize/dequantize graphs) on the CPU plugin.

Facts about openvino 2026.4.1 this module is written around (checked on this machine):

* ``Core().read_model("model.pdmodel")`` reads a paddle 2.6 inference model directly.
* On a CPU with avx512_bf16/AMX, the CPU plugin's default ``INFERENCE_PRECISION_HINT`` is
  bf16: an "fp32" model silently runs in bfloat16. ``precision`` here therefore defaults to
  fp32 (like every other backend) and "default" asks for OpenVINO's own choice;
  ``describe()`` reports what the compiled model actually uses.
* A quantize/dequantize (QDQ) ONNX file runs INT8 kernels (OpenVINO's low-precision
  transformations fold the QDQ pairs into int8 convolutions / matmuls).
* One infer request uses one stream. With ``streams > 1`` a batch is split over that many
  requests run concurrently (``AsyncInferQueue``), which is how OpenVINO's throughput mode
  uses cores; at batch 1 only one stream can work.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from paddleopt.deploy.predictor import Predictor, Variant
from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, TensorSpec

# our precision names -> INFERENCE_PRECISION_HINT values
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_HINT_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
_OV_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "i64": "int64",
              "i32": "int32", "i8": "int8", "u8": "uint8", "boolean": "bool"}


@dataclass
class Options:
    """OpenVINO CPU plugin knobs.

    Attributes:
        threads: INFERENCE_NUM_THREADS, shared by all streams; 0 = one per core available
            to this process (same meaning as paddle_inference's threads).
        streams: NUM_STREAMS: infer requests that run at once. 1 = latency (one request
            uses every thread); >1 splits each batch over that many requests (throughput
            at large batches); 0 = OpenVINO's choice for the performance hint.
        performance_hint: latency | throughput | none (PERFORMANCE_HINT; explicit threads
            and streams override what the hint would pick).
        precision: inference precision of the non-quantized ops: fp32 (exact, the default),
            bf16 (needs avx512_bf16 or AMX; OpenVINO's own default on such CPUs), fp16, or
            "default" = whatever OpenVINO picks for this CPU. INT8 models keep their int8
            ops in any case.
        cache_dir: CACHE_DIR: compiled models are cached there (faster second load).
        pin_threads: ENABLE_CPU_PINNING (None = OpenVINO's default).
    """

    threads: int = 0
    streams: int = 1
    performance_hint: Literal["latency", "throughput", "none"] = "latency"
    precision: Literal["fp32", "bf16", "fp16", "default"] = "fp32"
    cache_dir: str | None = None
    pin_threads: bool | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.threads < 0:
            return "threads must be >= 0", "use 0 for one per core, or a positive count."
        if self.streams < 0:
            return "streams must be >= 0", "use 1 (latency), 0 (OpenVINO's choice) or more."
        if self.threads and self.streams > self.threads:
            return (f"streams ({self.streams}) > threads ({self.threads}): every stream needs "
                    f"at least one thread", "lower streams or raise threads.")
        return None


def is_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def version() -> str | None:
    from paddleopt.utils.versions import package_version

    return package_version("openvino")


def matrix_variants(artifact: Artifact, threads: int | None, with_native: bool
                    ) -> tuple[list[Variant], str | None]:
    """``bench --matrix`` rows: the Paddle model in fp32 and with OpenVINO's default precision
    (bf16 on this kind of CPU: what a user gets without setting anything), and INT8 from the
    QDQ ONNX file. An fp32 ONNX file is the same model as the Paddle one: not measured twice.
    """
    if not is_available():
        return [], 'openvino is not installed (pip install -c constraints.txt ".[openvino]")'
    base: dict[str, Any] = {"threads": threads} if threads is not None else {}
    precision = artifact.manifest.precision
    if artifact.kind == "inference" and precision == "fp32":
        out = [Variant("ov", {**base, "precision": "fp32"})]
        if cpu_supports_bf16():
            out.append(Variant("ov-default", {**base, "precision": "default"},
                               "OpenVINO's default precision on this CPU: bf16"))
        return out, None
    if artifact.kind == "onnx" and precision == "int8":
        return [Variant("ov-int8", dict(base))], None
    if artifact.kind == "inference":
        return [], (f"OpenVINO cannot read a quantized Paddle program ({precision}); it runs "
                    f"the to_onnx of it (ov-{precision})")
    return [], f"OpenVINO runs the Paddle model of this {precision} ONNX file directly"


def load(artifact: Artifact, options: Options) -> OpenVINOPredictor:
    params = (artifact.file("params")
              if artifact.kind == "inference" and "params" in artifact.manifest.files else None)
    return OpenVINOPredictor(artifact.file("model"), artifact.manifest.io.inputs, options,
                             artifact.manifest.precision, params_file=params)


def compile_config(options: Options) -> dict[str, Any]:
    """The CPU plugin properties for ``options`` (pure configuration, testable alone)."""
    from paddleopt.utils.machine import available_cores

    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": options.threads or available_cores()}
    if options.performance_hint != "none":
        config["PERFORMANCE_HINT"] = options.performance_hint.upper()
    if options.streams:
        config["NUM_STREAMS"] = options.streams
    if options.precision != "default":
        config["INFERENCE_PRECISION_HINT"] = _PRECISION_HINTS[options.precision]
    if options.cache_dir:
        Path(options.cache_dir).mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = options.cache_dir
    if options.pin_threads is not None:
        config["ENABLE_CPU_PINNING"] = options.pin_threads
    return config


def cpu_supports_bf16() -> bool:
    """What the CPU plugin says it can do (OPTIMIZATION_CAPABILITIES lists BF16)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVINOPredictor(Predictor):
    """A compiled model on the CPU plugin and its infer request(s).

    Inputs are shared with OpenVINO (no copy); outputs are copied, because the request's
    output tensors are overwritten by the next run.
    """

    backend = "openvino"

    def __init__(self, model_file: str | Path, inputs: list[TensorSpec], options: Options,
                 precision: str = "fp32", *, params_file: str | Path | None = None,
                 _compiled: Any = None) -> None:
        import openvino as ov

        self.model_file = Path(model_file)
        self.params_file = Path(params_file) if params_file else None
        self.options = options
        self.precision = precision
        self._inputs = list(inputs)
        if _compiled is None:
            _compiled = self._compile(ov)
        self.compiled = _compiled
        self._ov_inputs = list(self.compiled.inputs)
        self._names = [_port_name(p) for p in self._ov_inputs]
        self._dtypes = [_OV_DTYPES.get(p.get_element_type().get_type_name())
                        for p in self._ov_inputs]
        self._order = self._feed_order()
        self._request = self.compiled.create_infer_request()
        self._streams = int(self.compiled.get_property("NUM_STREAMS"))
        self._queue = None  # AsyncInferQueue, created on the first split batch

    def _compile(self, ov: Any) -> Any:
        if not self.model_file.is_file():
            raise UserError(f"model file '{self.model_file}' does not exist.",
                            "re-run the stage that produced the artifact.")
        if self.options.precision == "bf16" and not cpu_supports_bf16():
            raise UserError("precision bf16 needs a CPU with avx512_bf16 or AMX; this one has "
                            "neither (OpenVINO would run fp32).",
                            "use precision: fp32 (or default).")
        core = ov.Core()
        try:
            if self.params_file is not None and self.model_file.suffix == ".pdmodel" and \
                    self.params_file.with_suffix(".pdmodel") != self.model_file:
                model = core.read_model(str(self.model_file), str(self.params_file))
            else:
                model = core.read_model(str(self.model_file))
        except Exception as exc:  # ov raises RuntimeError/GeneralFailure with C++ text
            why = _first_line(exc)
            if self.model_file.suffix == ".pdmodel" and "quantize_linear" in why:
                raise UserError(
                    f"OpenVINO cannot read the quantized Paddle program '{self.model_file}' "
                    f"({why}).",
                    "convert it to ONNX (stage to_onnx: quantize/dequantize pairs) and run "
                    "that artifact with --backend openvino; or run this one on "
                    "paddle_inference (oneDNN INT8).") from None
            raise UserError(f"OpenVINO cannot read '{self.model_file}': {why}",
                            "the file is corrupt or uses operators OpenVINO's frontend "
                            "lacks; run it on paddle_inference / onnxruntime instead.") from None
        try:
            return core.compile_model(model, "CPU", compile_config(self.options))
        except Exception as exc:
            raise UserError(f"OpenVINO cannot compile '{self.model_file}' for CPU: "
                            f"{_first_line(exc)}",
                            "check the backend options (threads/streams/precision).") from None

    def _feed_order(self) -> list[int]:
        """Position of each OpenVINO input in the caller's (manifest-order) feeds."""
        names = [s.name for s in self._inputs]
        if names and set(self._names) <= set(names) and len(names) == len(self._names):
            return [names.index(n) for n in self._names]
        return list(range(len(self._names)))

    @property
    def inputs(self) -> list[TensorSpec]:
        if self._inputs:
            return self._inputs
        from paddleopt.artifact import TensorSpec

        return [TensorSpec(n, [d.get_length() if d.is_static else -1
                               for d in p.get_partial_shape()], dt or "unknown")
                for n, p, dt in zip(self._names, self._ov_inputs, self._dtypes, strict=True)]

    def _arrays(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if len(feeds) != len(self._names):
            raise UserError(f"the model takes {len(self._names)} input(s) "
                            f"({', '.join(self._names)}), got {len(feeds)}.",
                            "pass one array per input, in that order.")
        return [np.ascontiguousarray(feeds[i], dtype=dt)
                for i, dt in zip(self._order, self._dtypes, strict=True)]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        arrays = self._arrays(feeds)
        batch = arrays[0].shape[0] if arrays and arrays[0].ndim else 1
        try:
            if self._streams > 1 and batch > 1 and self._batch_dynamic():
                return self._run_split(arrays, batch)
            result = self._request.infer(arrays, share_inputs=True, share_outputs=False)
        except UserError:
            raise
        except Exception as exc:
            shapes = ", ".join(f"{n}{list(a.shape)}" for n, a in zip(self._names, arrays,
                                                                     strict=True))
            raise UserError(f"OpenVINO failed running '{self.model_file}' on {shapes}: "
                            f"{_first_line(exc)}",
                            "check the input shapes/dtypes against the manifest's io.inputs."
                            ) from None
        return list(result.to_tuple())

    def _batch_dynamic(self) -> bool:
        return all(p.get_partial_shape().rank.get_length() > 0
                   and p.get_partial_shape()[0].is_dynamic for p in self._ov_inputs)

    def _run_split(self, arrays: list[np.ndarray], batch: int) -> list[np.ndarray]:
        """Split the batch over ``streams`` requests that run concurrently."""
        import openvino as ov

        parts = min(self._streams, batch)
        if self._queue is None or len(self._queue) < parts:
            self._queue = ov.AsyncInferQueue(self.compiled, parts)
        bounds = np.linspace(0, batch, parts + 1).astype(int)
        outputs: list[list[np.ndarray] | None] = [None] * parts

        def done(request: Any, index: int) -> None:
            outputs[index] = [request.get_output_tensor(i).data.copy()
                              for i in range(len(self.compiled.outputs))]

        self._queue.set_callback(done)
        for index in range(parts):
            lo, hi = bounds[index], bounds[index + 1]
            self._queue.start_async([a[lo:hi] for a in arrays], userdata=index,
                                    share_inputs=True)
        self._queue.wait_all()
        return [np.concatenate([part[k] for part in outputs])  # type: ignore[index]
                for k in range(len(self.compiled.outputs))]

    def clone(self) -> OpenVINOPredictor:
        """A predictor with its own infer request on the same compiled model (shared
        weights), for another thread."""
        return OpenVINOPredictor(self.model_file, self._inputs, self.options, self.precision,
                                 params_file=self.params_file, _compiled=self.compiled)

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        def prop(name: str) -> Any:
            try:
                return self.compiled.get_property(name)
            except Exception:  # noqa: BLE001 - property unknown to this plugin version
                return None

        hint = prop("INFERENCE_PRECISION_HINT")
        hint = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint or "")
        return {
            "backend": self.backend,
            "precision": self.precision,
            "inference_precision": _HINT_NAMES.get(hint, hint or None),
            "device": "cpu",
            "threads": prop("INFERENCE_NUM_THREADS"),
            "streams": self._streams,
            "performance_hint": str(prop("PERFORMANCE_HINT")).rsplit(".", 1)[-1].lower(),
            "onednn": None,
            "openvino_version": ov.get_version(),
            "model_file": str(self.model_file),
            "input_names": self._names,
            "output_names": [_port_name(p) for p in self.compiled.outputs],
        }


def runtime_precisions(predictor: OpenVINOPredictor) -> dict[str, set[str]]:
    """Layer type -> the precisions its kernels run in, from the compiled (runtime) model:
    e.g. {"Convolution": {"i8"}} for an INT8 model, {"bf16"} under the bf16 hint."""
    found: dict[str, set[str]] = {}
    for op in predictor.compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" in info and "runtimePrecision" in info:
            found.setdefault(info["layerType"].astype(str), set()).add(
                info["runtimePrecision"].astype(str))
    return found


def _port_name(port: Any) -> str:
    try:
        return port.get_any_name()
    except RuntimeError:  # an unnamed port
        return f"port{port.get_index()}"


def _first_line(exc: BaseException) -> str:
    """OpenVINO's C++ errors: "Check 'x' failed at file:line:" lines around the message."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith(("Check ", "Exception from"))]
    return " ".join(keep or lines or [type(exc).__name__])[:400]

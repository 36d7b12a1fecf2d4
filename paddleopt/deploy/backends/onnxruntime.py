"""ONNX Runtime backend for ONNX artifacts (written by to_onnx via paddle2onnx)."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from paddleopt.deploy.predictor import Predictor, Variant
from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, TensorSpec

# Providers we know how to ask for; the rest of ORT's list needs provider options we do not
# expose. Order in Options.providers is ORT's priority order.
KNOWN_PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider",
                   "OpenVINOExecutionProvider", "DnnlExecutionProvider")
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64",
               "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32",
               "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


@dataclass
class Options:
    """ONNX Runtime session knobs.

    Attributes:
        threads: intra-op threads (one operator split over cores); 0 = one per core
            available to this process (same meaning as paddle_inference's threads).
        inter_op_threads: threads running independent operators at once; only used with
            execution_mode: parallel. 0 = ORT's default.
        graph_optimization_level: ORT graph rewrites: disable | basic (constant folding,
            redundant nodes) | extended (fusions) | all (also layout optimizations).
        execution_mode: sequential runs one operator at a time; parallel runs branches
            concurrently (rarely helps CNNs).
        providers: execution providers in priority order. Providers missing from this
            onnxruntime build are an error, not a silent CPU fallback.
        verbose: ORT warnings and info on stderr (default: errors only).
    """

    threads: int = 0
    inter_op_threads: int = 0
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    verbose: bool = False

    def validate(self) -> tuple[str, str] | None:
        if self.threads < 0 or self.inter_op_threads < 0:
            return ("threads and inter_op_threads must be >= 0",
                    "use 0 for the default or a positive count.")
        if not self.providers:
            return "providers is empty", "list at least CPUExecutionProvider."
        unknown = [p for p in self.providers if p not in KNOWN_PROVIDERS]
        if unknown:
            return (f"unknown execution provider {unknown[0]!r}",
                    f"use one of: {', '.join(KNOWN_PROVIDERS)}.")
        return None


def is_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def version() -> str | None:
    from paddleopt.utils.versions import package_version

    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"):
        if found := package_version(dist):
            return found
    return None


def matrix_variants(artifact: Artifact, threads: int | None, with_native: bool
                    ) -> tuple[list[Variant], str | None]:
    """``bench --matrix`` row: the default session, at ``threads`` when given."""
    precision = artifact.manifest.precision
    tag = "" if precision == "fp32" else f"-{precision}"
    return [Variant(f"ort{tag}", {"threads": threads} if threads is not None else {})], None


def load(artifact: Artifact, options: Options) -> OnnxRuntimePredictor:
    return OnnxRuntimePredictor(artifact.file("model"), artifact.manifest.io.inputs, options,
                                artifact.manifest.precision)


def check_providers(providers: list[str]) -> None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        gpu = any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in missing)
        hint = ("pip uninstall -y onnxruntime && pip install onnxruntime-gpu (with CUDA and "
                "cuDNN libraries matching it)" if gpu
                else "install an onnxruntime build that ships it")
        raise UserError(f"execution provider(s) {', '.join(missing)} are not in this "
                        f"onnxruntime build (available: {', '.join(available)}).",
                        f"{hint}, or set providers: [CPUExecutionProvider].")


def session_options(options: Options, profile_prefix: str | None = None) -> Any:
    """Build ``onnxruntime.SessionOptions`` (pure configuration)."""
    import onnxruntime as ort

    from paddleopt.utils.machine import available_cores

    so = ort.SessionOptions()
    # 0 would mean ORT's own default (physical cores, ignoring affinity); resolve it the way
    # paddle_inference does so that "threads: 0" means the same on both backends.
    so.intra_op_num_threads = options.threads or available_cores()
    so.inter_op_num_threads = options.inter_op_threads
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[options.graph_optimization_level]
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if options.execution_mode == "parallel"
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    so.log_severity_level = 1 if options.verbose else 3
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


class OnnxRuntimePredictor(Predictor):
    """One ``onnxruntime.InferenceSession`` (its ``run`` is thread-safe; clone() anyway
    gives each worker its own session so that thread settings apply per worker)."""

    backend = "onnxruntime"

    def __init__(self, model_file: str | Path, inputs: list[TensorSpec], options: Options,
                 precision: str = "fp32", *, profile_prefix: str | None = None) -> None:
        import onnxruntime as ort

        self.model_file = Path(model_file)
        self.options = options
        self.precision = precision
        self._inputs = list(inputs)
        if not self.model_file.is_file():
            raise UserError(f"ONNX model '{self.model_file}' does not exist.",
                            "re-run the to_onnx stage.")
        check_providers(options.providers)
        self._session_options = session_options(options, profile_prefix)
        try:
            self.session = ort.InferenceSession(str(self.model_file), self._session_options,
                                                providers=list(options.providers))
        except Exception as exc:  # InvalidProtobuf, Fail, InvalidGraph ...
            raise UserError(f"onnxruntime cannot load '{self.model_file}': "
                            f"{str(exc).strip().splitlines()[0]}",
                            "the file is corrupt or uses operators this onnxruntime lacks; "
                            "re-run to_onnx (check its opset).") from None
        self._ort_inputs = self.session.get_inputs()
        self._output_names = [o.name for o in self.session.get_outputs()]

    @property
    def inputs(self) -> list[TensorSpec]:
        if self._inputs:
            return self._inputs
        from paddleopt.artifact import TensorSpec

        return [TensorSpec(i.name, [d if isinstance(d, int) else -1 for d in i.shape],
                           _ORT_DTYPES.get(i.type, "unknown")) for i in self._ort_inputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if len(feeds) != len(self._ort_inputs):
            names = ", ".join(i.name for i in self._ort_inputs)
            raise UserError(f"the model takes {len(self._ort_inputs)} input(s) ({names}), got "
                            f"{len(feeds)}.", "pass one array per input, in that order.")
        # ORT refuses a float64 array for a float input; convert to the graph's dtype.
        feed_dict = {i.name: np.ascontiguousarray(f, dtype=_ORT_DTYPES.get(i.type))
                     for i, f in zip(self._ort_inputs, feeds, strict=True)}
        try:
            return list(self.session.run(self._output_names, feed_dict))
        except Exception as exc:
            shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in feed_dict.items())
            raise UserError(f"onnxruntime failed running '{self.model_file}' on {shapes}: "
                            f"{str(exc).strip().splitlines()[0]}",
                            "check the input shapes/dtypes against the manifest's io.inputs."
                            ) from None

    def clone(self) -> OnnxRuntimePredictor:
        """A new session on the same file (ORT sessions do not share weights)."""
        return OnnxRuntimePredictor(self.model_file, self._inputs, self.options, self.precision)

    def profile(self, feeds: list[np.ndarray], out_json: str | Path, iters: int = 10) -> Path:
        """Run ``iters`` times in a profiling session and move ORT's chrome trace to
        ``out_json`` (ORT names the file itself, after a prefix)."""
        out_json = Path(out_json)
        with tempfile.TemporaryDirectory() as tmp:
            profiled = OnnxRuntimePredictor(self.model_file, self._inputs, self.options,
                                            self.precision,
                                            profile_prefix=os.path.join(tmp, "ort"))
            profiled.run(feeds)  # warm-up: in the trace, left out of bench.profile's op table
            for _ in range(iters):
                profiled.run(feeds)
            trace = profiled.session.end_profiling()
            out_json.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(trace, out_json)
        return out_json

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        so = self._session_options
        return {
            "backend": self.backend,
            "precision": self.precision,
            "device": "gpu" if any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
                                   for p in self.session.get_providers()) else "cpu",
            "providers": self.session.get_providers(),
            "threads": so.intra_op_num_threads,
            "inter_op_threads": so.inter_op_num_threads,
            "graph_optimization_level": str(so.graph_optimization_level).rsplit(".", 1)[-1],
            "execution_mode": str(so.execution_mode).rsplit(".", 1)[-1],
            "onnxruntime_version": ort.__version__,
            "model_file": str(self.model_file),
            "input_names": [i.name for i in self._ort_inputs],
            "output_names": self._output_names,
        }

"""Paddle Inference backend: every knob of ``paddle.inference.Config``, zero-copy runs.

Two layers, so that configuration is testable without running a model:

* ``build_config(model_file, params_file, options, precision)`` turns ``Options`` into a
  ``paddle.inference.Config`` (pure configuration; the only I/O is checking the files).
* ``PaddleInferencePredictor`` runs it with zero-copy handles and reports in ``describe()``
  what the Config itself says, not what we asked for.

Facts about Paddle 2.6.2 this module is written around (checked on the CPU wheel):

* A fresh Config already has oneDNN on; fp32 without oneDNN needs ``disable_mkldnn()``.
* An INT8 (fake-quant) model on CPU needs ``enable_mkldnn()`` AND ``enable_mkldnn_int8()``;
  without the second it runs the fake-quant ops in fp32, 5-30x slower than plain fp32.
* ``enable_mkldnn_int8(op_types)`` limits INT8 to those op types (the rest of the quantized
  graph runs fp32). ERNIE needs it: with every quantized op INT8, its fused attention
  matmuls (activation x activation) compute garbage (test accuracy 0.63 vs 0.81), with
  ``{"fc"}`` it matches fp32 within 0.3 points (docs/TEXT.md). The ptq stage records the list
  in the artifact (``quantization.onednn_int8_ops``) and ``load`` applies it.
* On the CPU wheel ``enable_use_gpu()`` only logs "Please use PaddlePaddle with GPU version"
  and changes nothing (``use_gpu()`` stays False, the memory pool and device id keep their
  defaults), while ``enable_tensorrt_engine()`` raises "compile with TENSORRT". Hence the
  explicit CUDA/TensorRT checks here, with a fix, instead of a silent CPU run.
* A truncated .pdiparams loads without any error and returns garbage (NaN or wrong numbers);
  ``check_params_file`` walks the file's tensor records to catch that before loading.
* The Python Config has no cuDNN switch (``EnableCUDNN`` is C++ only); GPU convolutions
  use cuDNN kernels anyway.
"""
from __future__ import annotations

import dataclasses
import os
import struct
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from paddleopt.deploy.predictor import Predictor, Variant
from paddleopt.utils.errors import UserError
from paddleopt.utils.native_output import fd_silenced, third_party_quiet

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact, TensorSpec

GPU_INSTALL_FIX = ("install the GPU build (pip uninstall -y paddlepaddle && pip install "
                   "paddlepaddle-gpu==2.6.2, CUDA 12.0) on a machine with an NVIDIA GPU, "
                   "or set device: cpu.")


# -- options ---------------------------------------------------------------------------------
@dataclass
class ShapeRange:
    """TensorRT dynamic shape range of one input: min <= opt <= max, same rank."""

    min: list[int]
    opt: list[int]
    max: list[int]

    def validate(self) -> tuple[str, str] | None:
        if not len(self.min) == len(self.opt) == len(self.max):
            return (f"min/opt/max must have the same rank, got {self.min}, {self.opt}, "
                    f"{self.max}", "give all three shapes the same number of dimensions.")
        triples = zip(self.min, self.opt, self.max, strict=True)
        if any(not (lo <= mid <= hi) for lo, mid, hi in triples):
            return (f"shape range needs min <= opt <= max in every dimension, got "
                    f"min={self.min} opt={self.opt} max={self.max}", "fix the ranges.")
        return None


@dataclass
class TensorRTOptions:
    """Paddle-TensorRT subgraph engine (GPU builds compiled with TensorRT only).

    Attributes:
        enabled: offload supported subgraphs to TensorRT.
        precision: engine precision. int8 either uses the scales of a quantized artifact
            (use_calib_mode: false) or calibrates an fp32 model at runtime (use_calib_mode: true).
        workspace_size: TensorRT builder workspace in bytes.
        max_batch_size: largest batch for static-shape engines.
        min_subgraph_size: smallest subgraph (in ops) worth an engine; smaller ones stay in Paddle.
        use_static: serialize built engines to engine_cache_dir and reuse them next start.
        use_calib_mode: run TensorRT's own INT8 calibration (only for fp32 models).
        dynamic_shapes: input name -> {min, opt, max} shapes for dynamic-shape engines.
        tuned_shape_file: shape ranges of every tensor collected by ``collect_shape_ranges``
            (Paddle's collect_shape_range_info); exclusive with dynamic_shapes.
        engine_cache_dir: where serialized engines / optimized models go (set_optim_cache_dir).
    """

    enabled: bool = False
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    workspace_size: int = 1 << 30
    max_batch_size: int = 1
    min_subgraph_size: int = 3
    use_static: bool = False
    use_calib_mode: bool = False
    dynamic_shapes: dict[str, ShapeRange] = field(default_factory=dict)
    tuned_shape_file: str | None = None
    engine_cache_dir: str | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.workspace_size <= 0 or self.max_batch_size < 1 or self.min_subgraph_size < 1:
            return ("tensorrt.workspace_size must be > 0, max_batch_size and "
                    "min_subgraph_size >= 1", "fix the value.")
        if self.dynamic_shapes and self.tuned_shape_file:
            return ("tensorrt.dynamic_shapes and tensorrt.tuned_shape_file both set",
                    "use one: explicit ranges for the inputs, or a collected shape file.")
        if self.use_calib_mode and self.precision != "int8":
            return ("tensorrt.use_calib_mode only applies to precision int8",
                    "set tensorrt.precision: int8 or use_calib_mode: false.")
        return None


@dataclass
class Options:
    """Paddle Inference knobs (``paddle.inference.Config``).

    Attributes:
        device: cpu, or gpu (needs paddlepaddle-gpu and an NVIDIA GPU).
        threads: CPU math library threads per predictor (set_cpu_math_library_num_threads);
            0 = one per core available to this process.
        onednn: use oneDNN (MKL-DNN) kernels on CPU; ~7x faster than native fp32 kernels on
            ResNet18. Ignored on GPU.
        onednn_cache_capacity: how many input shapes oneDNN caches primitives for
            (set_mkldnn_cache_capacity); bounds memory with dynamic shapes, 0 = unlimited.
        onednn_int8: run quantized ops in INT8 (enable_mkldnn_int8). "auto" = on when the
            artifact's precision is int8. false on an int8 artifact runs the fake-quant ops in
            fp32 (accuracy debugging only: 5-30x slower than fp32).
        onednn_int8_ops: which op types run INT8 under oneDNN INT8: "artifact" = the list the
            artifact records (``quantization.onednn_int8_ops``, written by ptq; every quantized
            op when it records none), "all" = every quantized op, or a list such as [fc].
        onednn_bf16: run the fp32 model's oneDNN ops in bfloat16 (enable_mkldnn_bfloat16);
            needs a CPU with avx512_bf16 or AMX. Quickstart CNN vs fp32 oneDNN (benchmarks/
            inference.py): 1.17x at batch 1, 1.8x at batch 32; bf16 keeps 8 mantissa bits,
            so check the accuracy (bench prints it). fp32 artifacts only.
        ir_optim: graph optimization passes (operator fusion etc.).
        omp_blocktime_ms: how long Paddle's idle Intel OpenMP threads spin before sleeping
            (kmp_set_blocktime, set in each thread that runs this predictor); None = the
            OpenMP default (200 ms). Only matters with threads > 1. 0 suits a machine with
            more runnable threads than cores: there a spinning worker holds a core the other
            worker needs, and 2-thread batch-1 calls of the quickstart CNN took 3.9 ms with
            the default and 0.65 ms with 0 (load average 18 on 2 cores). On a quiet machine
            spinning keeps multi-thread latency low; measure (paddleopt deploy tries both).
        new_executor: run the program with Paddle's newer InterpreterCore instead of the
            NaiveExecutor (enable_new_executor). Quickstart CNN, 1 thread
            (benchmarks/pi_call_cost.py, loaded machine): 5.3-5.4 ms vs 9-31 ms at batch 32
            in two runs, 0.86-0.94x at batch 1. Off by default until checked on more
            models; paddleopt deploy measures it as a candidate.
        memory_optim: reuse intermediate buffers (enable_memory_optim).
        ir_debug: dump the graph after every pass as .dot files into the working directory.
        verbose: keep Paddle's glog output (pass list, fusion counts); off = disable_glog_info.
        gpu_id: GPU device id.
        gpu_mem_mb: initial size of the GPU memory pool in MB (enable_use_gpu).
        cudnn: cuDNN kernels on GPU. Paddle 2.6.2 always uses them (its Python Config has no
            switch), so only true is accepted.
        tensorrt: the TensorRT engine, see ``TensorRTOptions``.
    """

    device: Literal["cpu", "gpu"] = "cpu"
    threads: int = 0
    onednn: bool = True
    onednn_cache_capacity: int = 10
    onednn_int8: bool | Literal["auto"] = "auto"
    onednn_int8_ops: Literal["artifact", "all"] | list[str] = "artifact"
    onednn_bf16: bool = False
    ir_optim: bool = True
    new_executor: bool = False
    omp_blocktime_ms: int | None = None
    memory_optim: bool = True
    ir_debug: bool = False
    verbose: bool = False
    gpu_id: int = 0
    gpu_mem_mb: int = 256
    cudnn: bool = True
    tensorrt: TensorRTOptions = field(default_factory=TensorRTOptions)

    def validate(self) -> tuple[str, str] | None:
        if self.threads < 0:
            return "threads must be >= 0", "set threads: 0 (all cores) or a positive count."
        if self.omp_blocktime_ms is not None and self.omp_blocktime_ms < 0:
            return ("omp_blocktime_ms must be >= 0", "use 0 (sleep at once), a number of ms, "
                    "or null for the OpenMP default.")
        if self.onednn_cache_capacity < 0:
            return ("onednn_cache_capacity must be >= 0",
                    "set it to the number of input shapes to cache (0 = unlimited).")
        if self.onednn_int8 is True and not self.onednn:
            return ("onednn_int8: true needs onednn: true (INT8 kernels are oneDNN kernels)",
                    "set onednn: true, or onednn_int8: auto/false.")
        if self.onednn_bf16 and not self.onednn:
            return ("onednn_bf16: true needs onednn: true (bfloat16 kernels are oneDNN "
                    "kernels)", "set onednn: true, or onednn_bf16: false.")
        if isinstance(self.onednn_int8_ops, list):
            problem = check_onednn_int8_ops(self.onednn_int8_ops)
            if problem:
                return problem
        if self.gpu_id < 0 or self.gpu_mem_mb <= 0:
            return "gpu_id must be >= 0 and gpu_mem_mb > 0", "fix the value."
        if not self.cudnn:
            return ("cudnn: false is not supported: Paddle Inference 2.6.2's Python Config has "
                    "no switch for cuDNN (GPU convolutions always use it)",
                    "remove 'cudnn' or set it to true.")
        if self.tensorrt.enabled and self.device != "gpu":
            return ("tensorrt.enabled needs device: gpu (TensorRT is an NVIDIA GPU engine)",
                    "set device: gpu, or tensorrt.enabled: false.")
        return None


# -- module contract -------------------------------------------------------------------------
def is_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("paddle") is not None


def version() -> str | None:
    from paddleopt.utils.versions import package_version

    return package_version("paddlepaddle") or package_version("paddlepaddle-gpu")


def matrix_variants(artifact: Artifact, threads: int | None, with_native: bool
                    ) -> tuple[list[Variant], str | None]:
    """``bench --matrix`` rows: oneDNN on, and (``with_native``) off as the baseline oneDNN is
    measured against; for int8 that shows the fake-quant-in-fp32 trap."""
    precision = artifact.manifest.precision
    base: dict[str, Any] = {"threads": threads} if threads is not None else {}
    tag = "" if precision == "fp32" else f"-{precision}"
    out = [Variant(f"pi-onednn{tag}", {**base, "onednn": True})]
    if with_native:
        note = ("oneDNN off: the fake-quant ops run in fp32 (what happens when INT8 is not "
                "enabled)" if precision == "int8" else "")
        options = {**base, "onednn": False}
        if precision == "int8":
            options["onednn_int8"] = False  # on purpose: the backend refuses it otherwise
        out.append(Variant(f"pi-native{tag}", options, note))
    return out, None


def load(artifact: Artifact, options: Options) -> PaddleInferencePredictor:
    model_file = artifact.file("model")
    params_file = artifact.file("params") if "params" in artifact.manifest.files else None
    precision = artifact.manifest.precision
    recorded = (artifact.manifest.quantization or {}).get("onednn_int8_ops")
    config = build_config(model_file, params_file, options, precision,
                          recorded_int8_ops=recorded)
    return PaddleInferencePredictor(
        config, artifact.manifest.io.inputs, options, precision, model_file=model_file,
        params_file=params_file, int8_ops=_int8_ops_in_use(options, precision, recorded))


# -- configuration ---------------------------------------------------------------------------
def resolve_threads(threads: int) -> int:
    """0 -> the cores this process may run on (respects taskset/cgroup affinity)."""
    from paddleopt.utils.machine import available_cores

    return threads if threads > 0 else available_cores()


def resolve_onednn_int8(options: Options, precision: str) -> bool:
    """Whether INT8 oneDNN kernels are enabled; refuses a silent fp32 run of an int8 model."""
    if options.onednn_int8 == "auto":
        if precision == "int8" and not options.onednn:
            raise UserError(
                "this artifact is INT8, but onednn is off: its fake-quant ops would run in "
                "fp32, 5-30x slower than the fp32 model.",
                "set onednn: true (INT8 needs oneDNN), or onednn_int8: false to run it in fp32 "
                "on purpose (accuracy debugging).")
        return precision == "int8" and options.onednn
    return bool(options.onednn_int8) and options.onednn


# Op types Paddle 2.6.2's oneDNN quantization passes (cpu_quantize_placement/cpu_quantize)
# can run in INT8; any other name makes the predictor fail to build ("not supported by OneDNN
# quantization": checked one by one on the 2.6.2 CPU wheel, which refuses conv2d_transpose,
# mul, fused_reshape2, scale, sigmoid, gelu, relu and softmax). The names are those AFTER
# oneDNN's fusions: a convolution fused with its batch norm or activation is a
# ``fused_conv2d`` and runs INT8 only if that name is listed ("conv2d" alone then leaves it
# fp32); matmul + bias is an ``fc``.
ONEDNN_INT8_OP_TYPES = (
    "conv2d", "depthwise_conv2d", "fused_conv2d", "fc", "matmul", "matmul_v2", "fused_matmul",
    "pool2d", "concat", "prior_box", "transpose2", "fused_transpose", "reshape2", "slice",
    "split", "elementwise_add", "elementwise_sub", "elementwise_mul", "fused_elementwise_add",
    "fused_elementwise_sub", "fused_elementwise_mul", "nearest_interp", "nearest_interp_v2",
    "fusion_gru", "fusion_lstm", "multi_gru")


def check_onednn_int8_ops(ops: list[str]) -> tuple[str, str] | None:
    """(problem, fix) for an op-type list given to ``enable_mkldnn_int8``, or None."""
    import difflib

    if not ops:
        return ("onednn_int8_ops is an empty list",
                "give the op types to run INT8, e.g. [fc], or null/\"all\" for every "
                "quantized op")
    for op in ops:
        if op not in ONEDNN_INT8_OP_TYPES:
            close = difflib.get_close_matches(str(op).lower(), ONEDNN_INT8_OP_TYPES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return (f"onednn_int8_ops: '{op}' is not an op type oneDNN can run in INT8{hint}",
                    f"use Paddle op types after fusion, e.g. [fc] for linear layers "
                    f"(known: {', '.join(ONEDNN_INT8_OP_TYPES)})")
    return None


def resolve_onednn_int8_ops(options: Options, recorded: list[str] | None = None
                            ) -> list[str] | None:
    """The op types to run INT8 (None = every quantized op).

    ``recorded`` is the artifact's ``quantization.onednn_int8_ops`` (None when it records
    none); ``options.onednn_int8_ops`` ("artifact" by default) may override it.
    """
    if options.onednn_int8_ops == "all":
        return None
    if options.onednn_int8_ops == "artifact":
        if recorded is None:
            return None
        problem = check_onednn_int8_ops(list(recorded))
        if problem:
            raise UserError(f"the artifact records {problem[0]}.",
                            "re-run its ptq stage, or override it with the backend option "
                            "onednn_int8_ops: all (or a list).")
        return sorted(recorded)
    return sorted(options.onednn_int8_ops)


def _int8_ops_in_use(options: Options, precision: str, recorded: list[str] | None
                     ) -> list[str] | None:
    """What ``describe()`` reports: ["all"] or the list when INT8 is on, else None."""
    if options.device != "cpu" or not resolve_onednn_int8(options, precision):
        return None
    return resolve_onednn_int8_ops(options, recorded) or ["all"]


def require_device(options: Options) -> None:
    """Refuse GPU / TensorRT options this Paddle build or machine cannot honour."""
    if options.device != "gpu":
        return
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    if not paddle.is_compiled_with_cuda():
        raise UserError(f"device: gpu needs the CUDA build of Paddle, but the installed "
                        f"paddlepaddle {paddle.__version__} is CPU-only.", GPU_INSTALL_FIX)
    if paddle.device.cuda.device_count() <= options.gpu_id:
        raise UserError(f"device: gpu with gpu_id {options.gpu_id}, but "
                        f"{paddle.device.cuda.device_count()} GPU(s) are visible.",
                        "check nvidia-smi and CUDA_VISIBLE_DEVICES, or set device: cpu.")
    if options.tensorrt.enabled:
        from paddle import inference

        if tuple(inference.get_trt_compile_version()) == (0, 0, 0):
            raise UserError("tensorrt.enabled, but this Paddle build was compiled without "
                            "TensorRT.",
                            "install a paddlepaddle-gpu 2.6.2 build with TensorRT (see the "
                            "paddlepaddle.org.cn install page) and put TensorRT's libraries on "
                            "LD_LIBRARY_PATH, or set tensorrt.enabled: false.")


def build_config(model_file: str | Path, params_file: str | Path | None, options: Options,
                 precision: str = "fp32", *, check_device: bool = True,
                 recorded_int8_ops: list[str] | None = None) -> Any:
    """Build a ``paddle.inference.Config`` from ``options``.

    Args:
        model_file: the .pdmodel (or ``__model__``).
        params_file: the combined .pdiparams, or None for a model without weights.
        options: the backend options.
        precision: the artifact's precision; "int8" turns on oneDNN INT8 on CPU (see
            ``Options.onednn_int8``) and requires a TensorRT INT8 engine on GPU.
        check_device: check that the GPU/TensorRT options can run here. Tests turn
            it off to build GPU configs on a CPU-only machine and assert what Paddle makes
            of them.
        recorded_int8_ops: the op types the artifact says to run INT8
            (``quantization.onednn_int8_ops``); see ``Options.onednn_int8_ops``.

    Raises:
        UserError: missing or corrupt files, options this build cannot honour.
    """
    from paddleopt.utils.imports import import_paddle

    import_paddle()
    from paddle import inference

    if check_device:
        require_device(options)
    model_file = Path(model_file)
    _require_file(model_file, "model")
    if params_file is not None:
        params_file = Path(params_file)
        _require_file(params_file, "params")
        problem = check_params_file(params_file)
        if problem:
            raise UserError(f"params file '{params_file}' is corrupt: {problem}.",
                            "re-export the model (or re-run the stage that produced it).")

    config = inference.Config()
    config.set_model(str(model_file), str(params_file) if params_file else "")
    if not options.verbose:
        config.disable_glog_info()
    config.switch_ir_optim(options.ir_optim)
    if options.new_executor:
        config.enable_new_executor(True)
    if options.memory_optim:
        config.enable_memory_optim()
    if options.ir_debug:
        config.switch_ir_debug(True)
    # Also used on GPU: ops without a GPU kernel fall back to CPU.
    config.set_cpu_math_library_num_threads(resolve_threads(options.threads))
    if options.device == "gpu":
        _configure_gpu(config, options, precision)
    else:
        _configure_cpu(config, options, precision, recorded_int8_ops)
    return config


def _require_file(path: Path, role: str) -> None:
    if not path.is_file():
        raise UserError(f"{role} file '{path}' does not exist.",
                        "pass the folder written by export (model.pdmodel + model.pdiparams).")


def _configure_cpu(config: Any, options: Options, precision: str,
                   recorded_int8_ops: list[str] | None = None) -> None:
    config.disable_gpu()
    int8 = resolve_onednn_int8(options, precision)
    if not options.onednn:
        config.disable_mkldnn()
        return
    config.enable_mkldnn()
    if hasattr(config, "set_mkldnn_cache_capacity"):  # bound only in oneDNN builds
        config.set_mkldnn_cache_capacity(options.onednn_cache_capacity)
    if options.onednn_bf16:
        _enable_bf16(config, precision)
    if int8:
        ops = resolve_onednn_int8_ops(options, recorded_int8_ops)
        if ops is None:
            config.enable_mkldnn_int8()
        else:
            config.enable_mkldnn_int8(set(ops))


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions oneDNN uses (avx512_bf16 or AMX)."""
    from paddleopt.utils.machine import machine_info

    isa = machine_info().get("isa", {})
    return bool(isa.get("avx512_bf16") or isa.get("amx_bf16"))


def _enable_bf16(config: Any, precision: str) -> None:
    if precision != "fp32":
        raise UserError(f"onednn_bf16 runs an fp32 model in bfloat16; this artifact is "
                        f"{precision}.", "use onednn_bf16 with the fp32 export, or drop it.")
    if not cpu_has_bf16():
        raise UserError("onednn_bf16: this CPU has no bfloat16 instructions (avx512_bf16 or "
                        "AMX); oneDNN would emulate them, slower than fp32.",
                        "drop onednn_bf16 here (`paddleopt doctor` lists the CPU's ISA).")
    config.enable_mkldnn_bfloat16()


def _configure_gpu(config: Any, options: Options, precision: str) -> None:
    # oneDNN is a CPU library; switching it off keeps describe() truthful on GPU.
    config.disable_mkldnn()
    config.enable_use_gpu(options.gpu_mem_mb, options.gpu_id)
    trt = options.tensorrt
    if precision == "int8" and not (trt.enabled and trt.precision == "int8"):
        raise UserError(
            "this artifact is INT8; on GPU Paddle Inference runs its fake-quant ops in fp32 "
            "unless a TensorRT INT8 engine takes them.",
            "set tensorrt: {enabled: true, precision: int8}, or run it on device: cpu "
            "(oneDNN INT8).")
    if trt.enabled:
        configure_tensorrt(config, trt, precision)


def configure_tensorrt(config: Any, trt: TensorRTOptions, precision: str = "fp32") -> None:
    """Apply the TensorRT options to ``config`` (call after ``enable_use_gpu``)."""
    from paddle import inference

    if trt.precision == "int8" and precision != "int8" and not trt.use_calib_mode:
        raise UserError("tensorrt.precision int8 on an fp32 artifact needs scales.",
                        "quantize the model first (ptq/qat), or set tensorrt.use_calib_mode: "
                        "true to let TensorRT calibrate.")
    modes = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half,
             "int8": inference.PrecisionType.Int8}
    configure_trt_shapes(config, trt)
    try:
        config.enable_tensorrt_engine(
            workspace_size=trt.workspace_size, max_batch_size=trt.max_batch_size,
            min_subgraph_size=trt.min_subgraph_size, precision_mode=modes[trt.precision],
            use_static=trt.use_static, use_calib_mode=trt.use_calib_mode)
    except (RuntimeError, ValueError) as exc:  # PreconditionNotMet on builds without TensorRT
        raise UserError(f"Paddle Inference refused TensorRT: {_first_line(exc)}",
                        "use a paddlepaddle-gpu build compiled with TensorRT, or set "
                        "tensorrt.enabled: false.") from None


def configure_trt_shapes(config: Any, trt: TensorRTOptions) -> None:
    """Dynamic shape ranges and the engine cache dir (accepted by CPU builds too)."""
    if trt.dynamic_shapes:
        names = list(trt.dynamic_shapes)
        config.set_trt_dynamic_shape_info(
            {n: trt.dynamic_shapes[n].min for n in names},
            {n: trt.dynamic_shapes[n].max for n in names},
            {n: trt.dynamic_shapes[n].opt for n in names})
    if trt.tuned_shape_file:
        if not Path(trt.tuned_shape_file).is_file():
            raise UserError(f"tensorrt.tuned_shape_file '{trt.tuned_shape_file}' does not "
                            f"exist.",
                            "collect it first with paddle_inference.collect_shape_ranges() on "
                            "representative inputs, or give tensorrt.dynamic_shapes.")
        # allow_build_at_runtime: a shape outside the collected range rebuilds the engine
        # instead of failing the request.
        config.enable_tuned_tensorrt_dynamic_shape(trt.tuned_shape_file, True)
    if trt.engine_cache_dir:
        Path(trt.engine_cache_dir).mkdir(parents=True, exist_ok=True)
        config.set_optim_cache_dir(trt.engine_cache_dir)


# -- params file check -----------------------------------------------------------------------
_ELEMENT_BYTES = {"BOOL": 1, "INT16": 2, "INT32": 4, "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8,
                  "UINT8": 1, "INT8": 1, "BF16": 2, "COMPLEX64": 8, "COMPLEX128": 16}


def check_params_file(params_file: str | Path) -> str | None:
    """Walk the tensor records of a combined params file; return the problem or None.

    Paddle loads a .pdiparams truncated inside a tensor without complaint and computes
    garbage, so we check the framing ourselves, reading only the headers: each record is
    uint32 version, uint64 LoD level count (+ levels), uint32 tensor version, int32 TensorDesc
    size, the TensorDesc protobuf, then the raw data. (A file cut exactly between records
    is caught by Paddle: "Cannot read tensor desc size".) Unknown element types end the
    check without a verdict, so that it never rejects a file Paddle would load.
    """
    from paddleopt.artifact.program import framework_pb2

    pb2 = framework_pb2()
    element_bytes = {pb2.VarType.Type.Value(name): size for name, size in _ELEMENT_BYTES.items()}
    file_size = Path(params_file).stat().st_size
    count = 0
    with open(params_file, "rb") as fh:
        try:
            while fh.tell() < file_size:
                start = fh.tell()
                version_, lod_levels = struct.unpack("<IQ", _read(fh, 12))
                if version_ != 0:
                    return (f"tensor #{count} at byte {start} has version {version_}, expected "
                            f"0 (not a Paddle params file?)")
                if lod_levels > 16:
                    return f"tensor #{count} claims {lod_levels} LoD levels"
                for _ in range(lod_levels):
                    (size,) = struct.unpack("<Q", _read(fh, 8))
                    fh.seek(size, os.SEEK_CUR)
                _tensor_version, desc_size = struct.unpack("<Ii", _read(fh, 8))
                if desc_size < 0 or fh.tell() + desc_size > file_size:
                    return f"tensor #{count}: the file ends inside its header"
                desc = pb2.VarType.TensorDesc()
                desc.ParseFromString(_read(fh, desc_size))
                if desc.data_type not in element_bytes:
                    return None
                numel = int(np.prod(list(desc.dims), dtype=np.int64)) if desc.dims else 1
                end = fh.tell() + numel * element_bytes[desc.data_type]
                if end > file_size:
                    return (f"the file is truncated: tensor #{count} (shape {list(desc.dims)}) "
                            f"ends at byte {end}, the file has {file_size}")
                fh.seek(end)
                count += 1
        except EOFError:
            return f"the file ends inside the header of tensor #{count}"
        except Exception as exc:  # protobuf DecodeError: garbage where a TensorDesc should be
            return f"tensor #{count} has an unreadable header ({type(exc).__name__})"
    if count == 0:
        return "it holds no tensors"
    return None


def _read(fh: Any, size: int) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return data


# -- predictor ------------------------------------------------------------------------------
class PaddleInferencePredictor(Predictor):
    """A ``paddle.inference`` predictor fed through zero-copy handles."""

    backend = "paddle_inference"

    def __init__(self, config: Any, inputs: list[TensorSpec], options: Options,
                 precision: str = "fp32", *, model_file: Path | None = None,
                 params_file: Path | None = None, int8_ops: list[str] | None = None,
                 _predictor: Any = None) -> None:
        from paddle import inference

        self.config = config
        self.options = options
        self.precision = precision
        self.int8_ops = int8_ops  # the Config has no getter for enable_mkldnn_int8's op set
        self.model_file = model_file or Path(config.prog_file())
        self.params_file = params_file or (Path(config.params_file())
                                           if config.params_file() else None)
        self._inputs = list(inputs)
        if _predictor is None:
            try:
                # the oneDNN INT8 passes print summaries with std::cout, which would corrupt
                # the stdout of commands that print JSON, and ~30 ANSI-coloured "quantized 0
                # nearest_interp ops" lines to stderr (glog alone is disabled elsewhere)
                quiet = not options.verbose
                with fd_silenced(1, enabled=quiet), \
                        fd_silenced(2, enabled=quiet and third_party_quiet()):
                    _predictor = inference.create_predictor(config)
            except Exception as exc:  # C++ errors arrive as ValueError/RuntimeError/...
                raise UserError(
                    f"Paddle Inference cannot load the model '{model_file}' (params "
                    f"'{params_file}'): {_first_line(exc)}",
                    "the files are corrupt or not a Paddle inference model; re-export the "
                    "model (or re-run the stage that produced it).") from None
        self._predictor = _predictor
        self._input_names = list(_predictor.get_input_names())
        self._output_names = list(_predictor.get_output_names())
        self._input_handles = {n: _predictor.get_input_handle(n) for n in self._input_names}
        self._output_handles = [_predictor.get_output_handle(n) for n in self._output_names]
        # Resolved once: run() is on every request's path, and on a small model the Python
        # around Paddle's run() was ~20 us of a ~150 us call (benchmarks/pi_call_cost.py).
        self._blocktime = options.omp_blocktime_ms
        if self._blocktime is not None:
            _omp_library()  # fail at load time, not at the first request
        specs = {s.name: s for s in self._inputs}
        self._feed_plan = [(name, self._input_handles[name], _declared_dtype(specs.get(name)))
                           for name in self._feed_names()]

    @property
    def inputs(self) -> list[TensorSpec]:
        if self._inputs:
            return self._inputs
        from paddleopt.artifact import TensorSpec

        return [TensorSpec(n, []) for n in self._input_names]

    def _feed_names(self) -> list[str]:
        """Manifest names when they match the program's feeds, else the program order."""
        names = [s.name for s in self._inputs]
        if names and set(names) <= set(self._input_names):
            return names
        return self._input_names

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        plan = self._feed_plan
        if len(feeds) != len(plan):
            names = ", ".join(name for name, _, _ in plan)
            raise UserError(f"the model takes {len(plan)} input(s) ({names}), "
                            f"got {len(feeds)}.", "pass one array per input, in that order.")
        for (_, handle, dtype), feed in zip(plan, feeds):
            # copy_from_cpu keeps the array's dtype; a float64 array fed to a float32 input
            # fails inside the kernels, so convert to the declared dtype (only when needed).
            if not (type(feed) is np.ndarray and feed.flags.c_contiguous
                    and (dtype is None or feed.dtype == dtype)):
                feed = np.ascontiguousarray(feed, dtype=dtype)
            handle.copy_from_cpu(feed)
        if self._blocktime is not None and getattr(_THREAD, "blocktime", None) != \
                self._blocktime:
            _omp_library().kmp_set_blocktime(self._blocktime)  # per calling thread
            _THREAD.blocktime = self._blocktime
        try:
            self._predictor.run()
        except Exception as exc:
            shapes = ", ".join(f"{n}{list(np.shape(f))}" for (n, _, _), f in zip(plan, feeds))
            raise UserError(f"Paddle Inference failed running '{self.model_file}' on {shapes}: "
                            f"{_first_line(exc)}",
                            "check the input shapes/dtypes against the manifest's io.inputs; "
                            "if they match, the model files are corrupt: re-export.") from None
        return [h.copy_to_cpu() for h in self._output_handles]

    def clone(self) -> PaddleInferencePredictor:
        """A predictor sharing the weights (Paddle's ``Predictor.clone``), for another thread."""
        return PaddleInferencePredictor(
            self.config, self._inputs, self.options, self.precision, model_file=self.model_file,
            params_file=self.params_file, int8_ops=self.int8_ops,
            _predictor=self._predictor.clone())

    def describe(self) -> dict[str, Any]:
        info = describe_config(self.config)
        info["onednn_bf16"] = bool(self.options.onednn_bf16 and info["onednn"])
        info["new_executor"] = self.options.new_executor  # the Config has no getter for it
        info["omp_blocktime_ms"] = self._blocktime
        info.update(backend=self.backend, precision=self.precision,
                    onednn_int8_ops=self.int8_ops if info["onednn_int8"] else None,
                    input_names=self._input_names, output_names=self._output_names)
        return info


_THREAD = threading.local()


def _omp_library() -> Any:
    """Paddle's Intel OpenMP runtime (paddle/libs/libiomp5.so, already loaded by paddle)."""
    import ctypes

    paddle = sys.modules.get("paddle")
    folder = Path(paddle.__file__).parent / "libs" if paddle is not None else None
    lib = folder / "libiomp5.so" if folder is not None else None
    if lib is None or not lib.is_file():
        raise UserError("omp_blocktime_ms needs Paddle's Intel OpenMP runtime (libiomp5.so), "
                        "which this paddle build does not ship.",
                        "remove omp_blocktime_ms (or set KMP_BLOCKTIME / OMP_WAIT_POLICY for "
                        "your OpenMP runtime).")
    return ctypes.CDLL(str(lib))


def _declared_dtype(spec: TensorSpec | None) -> np.dtype | None:
    if spec is None or spec.dtype in ("unknown", ""):
        return None
    return np.dtype(spec.dtype)


_PRECISION_NAMES = {"Float32": "fp32", "Half": "fp16", "Int8": "int8", "Bfloat16": "bf16"}


def describe_config(config: Any) -> dict[str, Any]:
    """What a Config reports through its getters, plus its summary() table."""
    info: dict[str, Any] = {
        "device": "gpu" if config.use_gpu() else "cpu",
        "onednn": config.mkldnn_enabled(),
        "onednn_int8": config.mkldnn_int8_enabled() if hasattr(config, "mkldnn_int8_enabled")
        else False,
        "threads": config.cpu_math_library_num_threads(),
        "ir_optim": config.ir_optim(),
        "use_gpu": config.use_gpu(),
        "tensorrt": config.tensorrt_engine_enabled(),
        "tensorrt_precision": _PRECISION_NAMES.get(str(config.tensorrt_precision_mode())
                                                   .rsplit(".", 1)[-1], "unknown"),
        "tensorrt_dynamic_shape": config.tensorrt_dynamic_shape_enabled(),
        "tensorrt_tuned_shape": config.tuned_tensorrt_dynamic_shape(),
        "model_file": config.prog_file(),
        "params_file": config.params_file(),
    }
    if config.use_gpu():
        info.update(gpu_id=config.gpu_device_id(),
                    gpu_mem_mb=config.memory_pool_init_size_mb())
    summary = parse_summary(config.summary())
    info["memory_optim"] = summary.get("memory_optim") == "true"
    if "mkldnn_cache_capacity" in summary:
        info["onednn_cache_capacity"] = int(summary["mkldnn_cache_capacity"])
    info["summary"] = summary
    return info


def parse_summary(text: str) -> dict[str, str]:
    """Config.summary() is an ASCII table of '| option | value |' rows; return it as a dict."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) == 2 and cells[0] != "Option":
            rows[cells[0]] = cells[1]
    return rows


def collect_shape_ranges(model_file: str | Path, params_file: str | Path | None,
                         batches: Iterable[list[np.ndarray]], out_file: str | Path,
                         options: Options | None = None) -> Path:
    """Run representative inputs in Paddle's shape-collection mode and write the ranges of
    every tensor to ``out_file`` (for ``tensorrt.tuned_shape_file``).

    Shapes do not depend on the device, so this also works on a CPU-only machine.
    """
    options = options or Options()
    plain = dataclasses.replace(options, tensorrt=TensorRTOptions())
    config = build_config(model_file, params_file, plain)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    config.collect_shape_range_info(str(out_file))
    predictor = PaddleInferencePredictor(config, [], plain, model_file=Path(model_file),
                                         params_file=Path(params_file) if params_file else None)
    count = 0
    for feeds in batches:
        predictor.run(list(feeds))
        count += 1
    if count == 0:
        raise UserError("collect_shape_ranges got no batches.", "pass at least one batch.")
    # Paddle writes the file when the predictor is destroyed.
    del predictor
    import gc

    gc.collect()
    if not out_file.is_file():
        raise UserError(f"Paddle did not write the shape range file '{out_file}'.",
                        "check that the folder is writable.")
    return out_file


def _first_line(exc: BaseException) -> str:
    """Paddle's C++ errors carry a long hint/stack; keep the informative first lines."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith(("C++ Traceback", "----", "0 ", "1 "))]
    return " ".join(keep[:3]) if keep else type(exc).__name__

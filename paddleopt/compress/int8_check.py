"""Evidence that an INT8 model really runs INT8 kernels on CPU (Paddle Inference + oneDNN).

A quantized ``.pdmodel`` only holds fake-quant / ``quantize_linear`` ops; whether INT8
kernels run depends on the predictor. Without ``config.enable_mkldnn_int8()`` those ops run
in fp32 and the "quantized" model is several times SLOWER than fp32 (see STACK.md). Two
independent pieces of evidence are collected, in a subprocess:

1. static: the optimized program Paddle Inference writes (``enable_save_optim_model``): ops
   whose ``mkldnn_data_type`` is ``int8`` and the ``quantize``/``dequantize`` ops oneDNN
   inserted; compute ops (conv/fc/matmul) still in fp32 are counted too;
2. runtime: ``ONEDNN_VERBOSE=1`` lines of one inference: every executed convolution /
   inner_product / matmul primitive with its source data type (``s8``/``u8`` = INT8) and the
   ISA the kernel was built for (e.g. ``avx512_core_vnni``).

Why a subprocess: oneDNN reads ``ONEDNN_VERBOSE`` once, when it first runs, and prints from
C to the process's stdout; only a fresh process gives a clean, complete, capturable log.

``python -m paddleopt.compress.int8_check MODEL_DIR [--ops fc]`` prints the report as JSON
(``--ops``: the op types given to ``enable_mkldnn_int8``, as ptq's ``onednn_int8_ops``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError

# Ops a quantization pass inserts into a saved program (old and ONNX-style formats).
QUANT_OP_TYPES = frozenset({
    "quantize_linear", "dequantize_linear",
    "fake_quantize_abs_max", "fake_quantize_range_abs_max",
    "fake_quantize_moving_average_abs_max", "fake_channel_wise_quantize_abs_max",
    "fake_quantize_dequantize_abs_max", "fake_quantize_dequantize_moving_average_abs_max",
    "fake_channel_wise_quantize_dequantize_abs_max", "fake_dequantize_max_abs",
    "fake_channel_wise_dequantize_max_abs", "moving_average_abs_max_scale",
})
# Compute ops whose INT8 kernels are what makes a quantized model fast.
COMPUTE_OP_TYPES = frozenset({"conv2d", "depthwise_conv2d", "fused_conv2d", "conv2d_transpose",
                              "mul", "matmul", "matmul_v2", "fc", "fused_matmul"})
ONEDNN_COMPUTE_PRIMITIVES = ("convolution", "inner_product", "matmul", "deconvolution")


def _attr(op: Any, name: str) -> Any:
    for a in op.attrs:
        if a.name == name:
            # Protobuf oneof-like: return whichever field is set for this attr type.
            for field in ("s", "b", "i", "f", "l"):
                if a.HasField(field):
                    return getattr(a, field)
    return None


def program_quant_summary(model_file: str | Path) -> dict[str, Any]:
    """Count quant/dequant ops and quantized vs fp32 compute ops in a saved program.

    A compute op counts as quantized when one of its inputs comes from a quant/dequant op:
    ``dequantize_linear`` in the ONNX-style format, ``fake_quantize_*`` on the activation in
    the older format (there the dequantize op follows the compute op); an op PTQ was told to
    skip (``op_namescope`` "skip_quant") counts as fp32.
    """
    from paddleopt.artifact.program import read_program

    program = read_program(model_file)
    types: Counter[str] = Counter()
    producer: dict[str, str] = {}
    quantized = fp32 = 0
    for block in program.blocks:
        for op in block.ops:
            types[op.type] += 1
            ins = [n for v in op.inputs for n in v.arguments]
            if op.type in COMPUTE_OP_TYPES:
                # PTQ's skip_tensors marks the op (op_namescope "skip_quant") but its input
                # may still come through a quant-dequant pair of the previous op's output.
                if _attr(op, "op_namescope") == "skip_quant":
                    fp32 += 1
                elif any(producer.get(n) in QUANT_OP_TYPES for n in ins):
                    quantized += 1
                else:
                    fp32 += 1
            for v in op.outputs:
                for n in v.arguments:
                    producer[n] = op.type
    quant = {t: n for t, n in types.items() if t in QUANT_OP_TYPES}
    return {"quant_ops": sum(quant.values()), "quant_op_types": dict(sorted(quant.items())),
            "quantized_compute_ops": quantized, "unquantized_compute_ops": fp32}


def optimized_program_summary(model_file: str | Path) -> dict[str, Any]:
    """INT8 evidence in a program optimized by Paddle Inference with oneDNN INT8."""
    from paddleopt.artifact.program import read_program

    program = read_program(model_file)
    int8_ops: Counter[str] = Counter()
    fp32_compute: Counter[str] = Counter()
    onednn_q = Counter()
    for block in program.blocks:
        for op in block.ops:
            if op.type in ("quantize", "dequantize", "requantize"):
                onednn_q[op.type] += 1
            elif _attr(op, "mkldnn_data_type") == "int8":
                int8_ops[op.type] += 1
            elif op.type in COMPUTE_OP_TYPES:
                fp32_compute[op.type] += 1
    return {"int8_ops": sum(int8_ops.values()), "int8_op_types": dict(sorted(int8_ops.items())),
            "onednn_quantize_ops": dict(sorted(onednn_q.items())),
            "fp32_compute_ops": sum(fp32_compute.values()),
            "fp32_compute_op_types": dict(sorted(fp32_compute.items()))}


def parse_onednn_verbose(text: str) -> dict[str, Any]:
    """Summarise ``onednn_verbose,exec`` lines: compute primitives by source data type."""
    kernels: Counter[str] = Counter()
    impls: set[str] = set()
    isa = ""
    int8 = fp32 = fp32_convs = int8_convs = 0
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 2 or parts[0] not in ("onednn_verbose", "dnnl_verbose"):
            continue
        if parts[1] == "info" and len(parts) > 3 and parts[3].startswith("isa:"):
            isa = parts[3][4:]
        # exec lines: prefix,exec,engine,primitive,impl,prop,memory_descriptors,...
        if parts[1] != "exec" or len(parts) < 7:
            continue
        prim, impl, mds = parts[3], parts[4], parts[6]
        src = next((m.split(":")[0][4:] for m in mds.split() if m.startswith("src_")), "")
        kernels[f"{prim}:{src}"] += 1
        if prim in ONEDNN_COMPUTE_PRIMITIVES:
            impls.add(impl)  # e.g. jit_int8:avx512_core_vnni, brgconv:avx512_core_vnni
            if src in ("s8", "u8"):
                int8 += 1
                int8_convs += prim == "convolution"
            elif src == "f32":  # bf16 kernels (enable_mkldnn_bfloat16) are neither
                fp32 += 1
                fp32_convs += prim == "convolution"
    return {"int8_kernels": int8, "fp32_kernels": fp32, "int8_convs": int8_convs,
            "fp32_convs": fp32_convs, "kernels": dict(sorted(kernels.items())),
            "compute_impls": sorted(impls),
            "isa": isa}


def int8_kernel_report(model_dir: str | Path, *, inputs: dict[str, Any] | None = None,
                       int8: bool = True, int8_ops: list[str] | None = None, threads: int = 1,
                       timeout: float = 300) -> dict[str, Any]:
    """Run one inference with oneDNN (INT8 when ``int8``) in a subprocess and report.

    Args:
        model_dir: inference model folder (one ``.pdmodel`` + ``.pdiparams``).
        inputs: ``{input_name: array}`` to feed; default: random data with -1 dims set to 1
            (batch) or 8 (other dynamic dims); int inputs get zeros.
        int8: call ``enable_mkldnn_int8()`` (False shows what plain oneDNN does).
        int8_ops: op types given to ``enable_mkldnn_int8`` (None: every quantized op), as
            the artifact's ``quantization.onednn_int8_ops`` says to deploy it.

    Returns a dict with
        saved program: ``quant_ops``, ``quant_op_types``, ``quantized_compute_ops``,
            ``unquantized_compute_ops``;
        optimized program: ``int8_ops`` (ops with mkldnn_data_type=int8), ``int8_op_types``,
            ``onednn_quantize_ops``, ``fp32_compute_ops``, ``fp32_compute_op_types``;
        oneDNN verbose: ``int8_kernels`` / ``fp32_kernels`` (conv, inner_product, matmul
            primitives executed with s8/u8 vs f32 source), ``int8_convs``, ``fp32_convs``,
            ``kernels`` (primitive:src_dtype -> count), ``compute_impls``, ``isa``;
        and ``int8_enabled``, ``int8_op_list`` (None = every quantized op).
    """
    from paddleopt.artifact.program import find_model_files

    model_dir = Path(model_dir).resolve()  # the probe runs in a temporary working directory
    model_file, params_file = find_model_files(model_dir)
    report: dict[str, Any] = {"int8_enabled": int8,
                              "int8_op_list": sorted(int8_ops) if int8 and int8_ops else None}
    report.update(program_quant_summary(model_file))
    with tempfile.TemporaryDirectory(prefix="paddleopt-int8-") as tmp:
        args = [sys.executable, "-m", "paddleopt.compress.int8_check", "--probe",
                str(model_file), str(params_file or ""), tmp, str(threads), str(int(int8)),
                ",".join(int8_ops or [])]
        if inputs is not None:
            import numpy as np

            np.savez(Path(tmp) / "inputs.npz", **inputs)
        env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1", GLOG_minloglevel="2")
        root = str(Path(__file__).resolve().parents[2])  # so `-m paddleopt...` imports here
        env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        try:
            proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise UserError(f"the INT8 probe of '{model_dir}' did not finish in {timeout} s.",
                            "raise timeout, or check the model runs in Paddle Inference.") from exc
        if proc.returncode != 0:
            raise UserError(f"Paddle Inference could not run '{model_dir}' with oneDNN "
                            f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}",
                            "check the model runs in Paddle Inference; pass inputs= for "
                            "models with dynamic non-batch dimensions.")
        optimized = Path(tmp) / "optim" / "_optimized.pdmodel"
        if optimized.is_file():
            report.update(optimized_program_summary(optimized))
        report.update(parse_onednn_verbose(proc.stdout))
    return report


def _probe(model_file: str, params_file: str, tmp: str, threads: int, int8: bool,
           int8_ops: list[str]) -> None:
    """Subprocess side: build a oneDNN predictor, save its optimized program, run once."""
    import gzip  # noqa: F401  (before paddle: see paddleopt.utils.imports)
    import zlib  # noqa: F401

    import numpy as np
    import paddle.inference as pi

    from paddleopt.artifact.program import feed_fetch_specs, read_program

    config = pi.Config(model_file, params_file) if params_file else pi.Config(
        str(Path(model_file).parent))
    config.enable_mkldnn()
    if int8 and int8_ops:
        config.enable_mkldnn_int8(set(int8_ops))
    elif int8:
        config.enable_mkldnn_int8()
    config.switch_ir_optim(True)
    config.set_cpu_math_library_num_threads(threads)
    config.set_optim_cache_dir(str(Path(tmp) / "optim"))
    config.enable_save_optim_model(True)
    config.disable_glog_info()
    predictor = pi.create_predictor(config)

    given = {}
    if (Path(tmp) / "inputs.npz").is_file():
        given = dict(np.load(Path(tmp) / "inputs.npz"))
    feeds, _ = feed_fetch_specs(read_program(model_file))
    specs = {f["name"]: f for f in feeds}
    rng = np.random.default_rng(0)
    for name in predictor.get_input_names():
        if name in given:
            x = given[name]
        else:
            spec = specs.get(name, {"shape": [1], "dtype": "float32"})
            shape = [d if d > 0 else (1 if i == 0 else 8) for i, d in enumerate(spec["shape"])]
            dtype = spec["dtype"] if spec["dtype"] != "unknown" else "float32"
            x = (rng.random(shape).astype(dtype) if dtype.startswith("float")
                 else np.zeros(shape, dtype))
        handle = predictor.get_input_handle(name)
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(np.ascontiguousarray(x))
    sys.stdout.flush()
    predictor.run()
    for name in predictor.get_output_names():
        predictor.get_output_handle(name).copy_to_cpu()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--probe":
        model_file, params_file, tmp, threads, int8, ops = argv[1:7]
        _probe(model_file, params_file, tmp, int(threads), bool(int(int8)),
               [o for o in ops.split(",") if o])
        return 0
    ops = None
    if len(argv) == 3 and argv[1] == "--ops":
        ops, argv = [o for o in argv[2].split(",") if o], argv[:1]
    if len(argv) != 1:
        print("usage: python -m paddleopt.compress.int8_check MODEL_DIR [--ops fc,matmul_v2]",
              file=sys.stderr)
        return 2
    print(json.dumps(int8_kernel_report(argv[0], int8_ops=ops), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

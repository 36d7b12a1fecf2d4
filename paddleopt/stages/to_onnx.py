"""`to_onnx`: Paddle inference model -> ONNX (paddle2onnx), checked against Paddle Inference.

Steps: pre-check the ops against paddle2onnx's converter table (a clear error instead of an
abort), convert in a child process (paddle2onnx 1.3.1 aborts the interpreter on unsupported
ops or a bad opset), name the batch dimension, then run ONNX Runtime and Paddle Inference on
the same inputs and fail when they differ by more than the tolerance.

Quantized models: PaddleSlim with ``onnx_format: true`` writes quantize_linear/
dequantize_linear, which paddle2onnx exports as ONNX QDQ (QuantizeLinear/DequantizeLinear,
opset >= 13; ORT then picks int8 kernels). Without onnx_format the model holds fake_quantize_*
ops that paddle2onnx cannot convert: the stage fails and says so. The int8 reference is Paddle
Inference running the fake-quant graph in fp32 (oneDNN off), i.e. the same arithmetic the QDQ
graph describes; the two differ by rounding, so int8 parity is checked relative to the output
range (``int8_tolerance``), not with the fp32 ``tolerance``.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paddleopt.artifact import Artifact, Manifest, TensorSpec
from paddleopt.stages.base import Stage, StageContext
from paddleopt.stages.catalog import role_of
from paddleopt.utils.errors import ConfigError, UserError

ONNX_FILE = "model.onnx"
MIN_OPSET, MAX_OPSET = 7, 19  # what paddle2onnx 1.3.1 accepts


@dataclass
class ToOnnxConfig:
    """Attributes:
        opset_version: ONNX opset to target (7-19). 13 is the lowest with per-channel
            QuantizeLinear/DequantizeLinear, so int8 and fp32 models share one default;
            paddle2onnx raises it when an op needs more (the manifest records the result).
        enable_onnx_checker: run onnx.checker on the converted model.
        dynamic_batch: keep the batch dimension symbolic (named "batch"); false fixes the
            inputs' batch dimension to batch_size.
        batch_size: the fixed batch when dynamic_batch is false.
        tolerance: max abs difference allowed between ONNX Runtime and Paddle Inference
            (fp32), multiplied by the largest |output| when that exceeds 1.
        int8_tolerance: for quantized models, max abs difference divided by the reference's
            largest absolute output value (a difference within ``tolerance`` always passes).
        parity_samples: inputs compared (a batch; eval data when the artifact records its
            dataset, else seeded random inputs).
        deploy_backend: paddle2onnx's flavour for quantized models: onnxruntime (QDQ),
            tensorrt (QDQ with TensorRT's conventions) or others (a calibration table).
        timeout: seconds allowed for the conversion.
    """

    opset_version: int = 13
    enable_onnx_checker: bool = True
    dynamic_batch: bool = True
    batch_size: int = 1
    tolerance: float = 1e-4
    int8_tolerance: float = 0.1
    parity_samples: int = 8
    deploy_backend: Literal["onnxruntime", "tensorrt", "others"] = "onnxruntime"
    timeout: float = 600.0

    def validate(self) -> tuple[str, str] | None:
        if not MIN_OPSET <= self.opset_version <= MAX_OPSET:
            return (f"opset_version must be in [{MIN_OPSET}, {MAX_OPSET}] (paddle2onnx 1.3.1), "
                    f"got {self.opset_version}", "use e.g. opset_version: 13")
        if self.tolerance <= 0 or self.int8_tolerance <= 0:
            return "tolerance and int8_tolerance must be > 0", "use e.g. tolerance: 1.0e-4"
        if self.parity_samples < 1 or self.batch_size < 1:
            return "parity_samples and batch_size must be >= 1", "use e.g. parity_samples: 8"
        if self.timeout <= 0:
            return "timeout must be > 0", "use e.g. timeout: 600"
        return None


class ToOnnxStage(Stage):
    name = "to_onnx"
    Config = ToOnnxConfig
    consumes = ("inference",)
    produces = "onnx"
    extras = ("onnx",)

    def deploy_target(self) -> str:
        return "onnx"

    def check_upstream(self, upstream: list[Any], stage_id: str) -> None:
        quant = next((s for s in upstream if role_of(s.type) == "quantize"), None)
        if quant is not None and getattr(quant.stage.config, "onnx_format", True) is False:
            raise ConfigError(
                f"stages.{stage_id}: to_onnx would convert the model of stage "
                f"'{quant.stage_id}', quantized with onnx_format: false (fake_quantize ops), "
                f"which paddle2onnx cannot export.",
                f"set stages.{quant.stage_id}.onnx_format: true (quantize_linear/"
                f"dequantize_linear, exported as ONNX QDQ), or read the fp32 model "
                f"(input: <export stage id>).")

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.deploy.check import check_artifact

        cfg: ToOnnxConfig = self.config
        if src is None:
            raise UserError("to_onnx needs an inference artifact as input.",
                            "put an export (or ptq) stage before it.")
        check = check_artifact(src, "onnx")
        if not check.supported:
            raise UserError(f"paddle2onnx cannot convert '{src.path}': {check.reason()}",
                            f"{check.fix} (details: paddleopt check {src.path} --target onnx)")
        out_dir.mkdir(parents=True, exist_ok=True)
        onnx_file = out_dir / ONNX_FILE
        convert_log = convert(src.file("model"), src.file("params"), onnx_file, cfg)
        info = finalize_onnx(onnx_file, cfg)
        ctx.log.info("[%s] paddle2onnx: opset %s, %d nodes", ctx.stage_id, info["opset"],
                     sum(info["node_counts"].values()))

        manifest = src.manifest.derive(kind="onnx", files={"model": ONNX_FILE})
        manifest.io.inputs = _fix_batch(manifest.io.inputs, cfg)
        if len(info["outputs"]) == len(manifest.io.outputs):
            for spec, name in zip(manifest.io.outputs, info["outputs"]):
                spec.name = name
        int8 = src.manifest.precision == "int8"
        if int8:
            manifest.quantization = {
                **src.manifest.quantization, "format": "onnx_qdq",
                "quantize_linear_nodes": info["node_counts"].get("QuantizeLinear", 0),
                "dequantize_linear_nodes": info["node_counts"].get("DequantizeLinear", 0),
                "deploy_backend": cfg.deploy_backend}
        manifest.checks.update({"onnx_opset": info["opset"],
                                "onnx_opset_requested": cfg.opset_version,
                                "onnx_ir_version": info["ir_version"],
                                "onnx_size_bytes": onnx_file.stat().st_size})
        ctx.log.debug("paddle2onnx output:\n%s", convert_log)

        feeds, source = sample_feeds(src, cfg.parity_samples if cfg.dynamic_batch
                                     else cfg.batch_size)
        expected = paddle_reference(src, feeds)
        actual = onnxruntime_outputs(Artifact(out_dir, manifest), feeds)
        diff = max_abs_diff(expected, actual)
        record_parity(manifest, "onnxruntime", diff, expected, feeds, source, cfg.tolerance,
                      cfg.int8_tolerance, int8)
        return manifest


# -- conversion --------------------------------------------------------------------------------

_P2O_CHILD = r"""
import gzip, zlib  # before paddle (paddle2onnx imports it): libpaddle shadows zlib symbols
import json, sys
args = json.loads(sys.argv[1])
import paddle2onnx
paddle2onnx.export(args["model"], args["params"], save_file=args["out"],
                   opset_version=args["opset"], auto_upgrade_opset=True, verbose=True,
                   enable_onnx_checker=args["checker"], deploy_backend=args["deploy_backend"])
"""


def convert(model_file: Path, params_file: Path, onnx_file: Path, cfg: ToOnnxConfig) -> str:
    """Run paddle2onnx in a child process; return its log, raise UserError with it on failure."""
    from paddleopt.export.lite_opt import run_tool

    args = {"model": str(model_file), "params": str(params_file), "out": str(onnx_file),
            "opset": cfg.opset_version, "checker": cfg.enable_onnx_checker,
            "deploy_backend": cfg.deploy_backend}
    onnx_file.unlink(missing_ok=True)
    run = run_tool([json.dumps(args)], timeout=cfg.timeout,
                   command=[sys.executable, "-c", _P2O_CHILD])
    if run.returncode == 0 and onnx_file.is_file() and onnx_file.stat().st_size > 0:
        return run.output
    ops = _p2o_unsupported(run.output)
    raise UserError(
        f"paddle2onnx failed ({run.how}); its output (last lines):\n{run.tail()}"
        + (f"\nunsupported ops: {', '.join(ops)}" if ops else ""),
        "see `paddleopt check ARTIFACT --target onnx`; try another opset_version, or deploy "
        "with paddle_inference / lite.")


def _p2o_unsupported(output: str) -> list[str]:
    marker = "not supported yet, including"
    for line in output.splitlines():
        if marker in line:
            return [op.strip() for op in line.split(marker, 1)[1].split(",") if op.strip()]
    return []


def finalize_onnx(onnx_file: Path, cfg: ToOnnxConfig) -> dict[str, Any]:
    """Name (or fix) the batch dimension and describe the model: opset, node counts, names.

    paddle2onnx gives each dynamic dimension its own symbol (DynamicDimension.0, .1, ...), so
    nothing tells a runtime that input and output batch are the same; one name ("batch") does.
    """
    import onnx

    model = onnx.load(str(onnx_file))
    for is_input, values in ((True, model.graph.input), (False, model.graph.output)):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            if not dims or (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
                continue  # no shape, or a batch fixed at export time
            if cfg.dynamic_batch:
                dims[0].dim_param = "batch"
            elif is_input:
                dims[0].dim_value = cfg.batch_size
    onnx.save(model, str(onnx_file))
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "ir_version": model.ir_version, "node_counts": dict(sorted(
        counts.items())), "inputs": [i.name for i in model.graph.input],
        "outputs": [o.name for o in model.graph.output]}


def _fix_batch(specs: list[TensorSpec], cfg: ToOnnxConfig) -> list[TensorSpec]:
    if cfg.dynamic_batch:
        return specs
    for spec in specs:
        if spec.shape and spec.shape[0] == -1:
            spec.shape[0] = cfg.batch_size
    return specs


# -- parity helpers (shared with to_lite) -------------------------------------------------

def sample_feeds(src: Artifact, count: int) -> tuple[list[np.ndarray], str]:
    """``count`` inputs for a parity check and where they came from ("eval data"/"random").

    Real samples when the artifact records its dataset (int8 models are only meaningful on
    activations like the calibration data), seeded random inputs otherwise. Random inputs are
    enough for fp32 parity: the check compares two runtimes, not accuracy.
    """
    from paddleopt.deploy.bench import make_feeds

    manifest = src.manifest
    fixed = [s.shape[0] for s in manifest.io.inputs if s.shape and s.shape[0] > 0]
    if fixed:  # exported with a fixed batch: the model takes exactly that many
        count = fixed[0]
    if manifest.dataset:
        try:
            from paddleopt.data.loaders import data_from_manifest

            bundle = data_from_manifest(manifest.dataset, manifest.preprocess, count)
            feeds = bundle.eval_feeds(count)[0] if bundle is not None else []
        except (UserError, OSError, ImportError, KeyError, ValueError):
            feeds = []  # no data on this machine: random inputs still compare two runtimes
        if len(feeds) == len(manifest.io.inputs) and all(len(f) for f in feeds):
            return [np.ascontiguousarray(f[:count], dtype=spec.dtype)
                    for f, spec in zip(feeds, manifest.io.inputs)], "eval data"
    from paddleopt.artifact.shapes import dynamic_dim

    return make_feeds(manifest.io.inputs, count, dynamic_dim=dynamic_dim(manifest)), "random"


def paddle_reference(src: Artifact, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """Paddle Inference outputs with native fp32 kernels (oneDNN off).

    For int8 models this runs the fake-quant ops in fp32: the arithmetic the model describes,
    which is what a converted model must reproduce (oneDNN int8 would add its own rounding).
    """
    from paddleopt.deploy.predictor import load_predictor

    predictor = load_predictor(src, "paddle_inference",
                               {"onednn": False, "onednn_int8": False, "threads": 1})
    return [np.asarray(o) for o in predictor.run(feeds)]


def onnxruntime_outputs(artifact: Artifact, feeds: list[np.ndarray]) -> list[np.ndarray]:
    from paddleopt.deploy.predictor import load_predictor

    predictor = load_predictor(artifact, "onnxruntime", {"threads": 1})
    return [np.asarray(o) for o in predictor.run(feeds)]


def max_abs_diff(expected: list[np.ndarray], actual: list[np.ndarray]) -> float:
    if len(expected) != len(actual):
        raise UserError(f"the converted model has {len(actual)} outputs, the source "
                        f"{len(expected)}.", "report this model; the conversion lost outputs.")
    diffs = []
    for e, a in zip(expected, actual):
        if e.shape != a.shape:
            raise UserError(f"output shape {list(a.shape)} differs from the source's "
                            f"{list(e.shape)}.", "report this model; the conversion is wrong.")
        diffs.append(float(np.abs(e.astype(np.float64) - a.astype(np.float64)).max())
                     if e.size else 0.0)
    return max(diffs) if diffs else 0.0


def record_parity(manifest: Manifest, runtime: str, diff: float,
                  expected: list[np.ndarray], feeds: list[np.ndarray], source: str,
                  tolerance: float, int8_tolerance: float, int8: bool) -> None:
    """Write the parity numbers into manifest.checks; raise UserError when out of tolerance."""
    scale = max((float(np.abs(e).max()) for e in expected if e.size), default=0.0)
    relative = diff / scale if scale > 0 else diff
    key = f"parity_{runtime}_vs_paddle_inference"
    manifest.checks.update({
        f"{key}_max_abs_diff": diff,
        f"{key}_relative_diff": relative,
        f"{key}_tolerance": int8_tolerance if int8 else tolerance,
        f"{key}_output_scale": scale,
        f"{key}_metric": "relative" if int8 else "max_abs",
        "parity_samples": int(feeds[0].shape[0]) if feeds and feeds[0].ndim else 1,
        "parity_inputs": source,
    })
    if not np.isfinite(diff):
        raise UserError(f"{runtime} returned NaN/Inf where Paddle Inference did not.",
                        "the converted model is broken; report it with the model.")
    # Near-zero outputs (e.g. an untrained net) make the relative number meaningless; a
    # difference within the fp32 tolerance passes either way.
    if int8 and relative > int8_tolerance and diff > tolerance:
        raise UserError(f"the int8 model on {runtime} differs from Paddle Inference (fake-quant "
                        f"in fp32) by {diff:.3g}, {relative:.1%} of the output range "
                        f"(int8_tolerance {int8_tolerance:g}).",
                        "check the quantization (calibration data, onnx_format), or raise "
                        "int8_tolerance.")
    # fp32 rounding grows with the magnitude of the outputs: above 1 the tolerance scales.
    allowed = tolerance * max(1.0, scale)
    if not int8 and diff > allowed:
        raise UserError(f"{runtime} output differs from Paddle Inference by {diff:.3g} "
                        f"(allowed {allowed:.3g}: tolerance {tolerance:g} x max(1, largest "
                        f"|output| {scale:.3g})).",
                        "raise tolerance if the difference is fp32 rounding in a deep model; "
                        "otherwise the conversion is wrong (report the model).")

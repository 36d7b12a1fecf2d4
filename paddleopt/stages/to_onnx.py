"""`to_onnx`: Paddle inference model -> ONNX (paddle2onnx), checked against Paddle Inference.

Steps: pre-check the ops against paddle2onnx's converter table (a clear error instead of an
abort), convert in a child process and name the batch dimension (paddleopt.export.onnx_convert),
then run ONNX Runtime and Paddle Inference on the same inputs and fail when they differ by more
than the tolerance (paddleopt.export.parity).

Quantized models: PaddleSlim with ``onnx_format: true`` writes quantize_linear/
dequantize_linear, which paddle2onnx exports as ONNX QDQ (QuantizeLinear/DequantizeLinear,
opset >= 13; ORT then picks int8 kernels). Without onnx_format the model holds fake_quantize_*
ops that paddle2onnx cannot convert: the stage fails and says so. The int8 reference is Paddle
Inference running the fake-quant graph in fp32 (oneDNN off), i.e. the same arithmetic the QDQ
graph describes. The two round differently, and on deep models (the PP-OCRv4 detector and
recogniser) the outputs then move by most of their range while the decisions stay: int8
parity is judged by agreement (top-1 / mask IoU) on real inputs (``int8_min_agreement``), and
only recorded on random inputs, where an int8 model's decisions mean nothing
(``paddleopt.export.parity``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from paddleopt.artifact import Artifact, Manifest, TensorSpec
from paddleopt.export import parity
from paddleopt.export.onnx_convert import MAX_OPSET, MIN_OPSET, convert, finalize_onnx
from paddleopt.stages.base import Stage, StageContext
from paddleopt.stages.catalog import role_of
from paddleopt.utils.errors import ConfigError, UserError

ONNX_FILE = "model.onnx"
INT8_PARITY_SAMPLES = 32  # int8 is judged by agreement: a few inputs say little


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
        int8_min_agreement: for quantized models, the share of the reference's decisions
            (top-1 per output position, mask IoU for probability maps) ONNX Runtime must keep
            on real inputs (the dataset, or the source's recorded inputs; at least
            ``INT8_PARITY_SAMPLES`` of them). A check that the conversion is right, not an
            accuracy budget: int8 runtimes differ on borderline inputs (1 of 8 text lines of
            the PP-OCR direction classifier), a wrong conversion loses most decisions.
        int8_tolerance: for quantized models whose outputs have no such measure (no class
            axis): max abs difference divided by the reference's largest absolute output
            value (a difference within ``tolerance`` always passes).
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
    int8_min_agreement: float = 0.9
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
        if not 0 < self.int8_min_agreement <= 1:
            return "int8_min_agreement must be in (0, 1]", "use e.g. int8_min_agreement: 0.95"
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
        convert_log = convert(src.file("model"), src.file("params"), onnx_file,
                              cfg.opset_version, cfg.enable_onnx_checker, cfg.deploy_backend,
                              cfg.timeout)
        info = finalize_onnx(onnx_file, cfg.dynamic_batch, cfg.batch_size)
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

        samples = max(cfg.parity_samples, INT8_PARITY_SAMPLES if int8 else 0)
        feeds, source = parity.sample_feeds(src, samples if cfg.dynamic_batch
                                            else cfg.batch_size)
        expected = parity.paddle_reference(src, feeds)
        actual = parity.backend_outputs(Artifact(out_dir, manifest), "onnxruntime", feeds,
                                        {"threads": 1})
        parity.measure("onnxruntime", "paddle_inference", expected, actual, feeds, source,
                       cfg.tolerance, cfg.int8_tolerance if int8 else None,
                       min_agreement=cfg.int8_min_agreement).enforce(manifest)
        return manifest


def _fix_batch(specs: list[TensorSpec], cfg: ToOnnxConfig) -> list[TensorSpec]:
    if cfg.dynamic_batch:
        return specs
    for spec in specs:
        if spec.shape and spec.shape[0] == -1:
            spec.shape[0] = cfg.batch_size
    return specs

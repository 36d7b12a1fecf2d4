"""`qat`: quantization-aware training of a checkpoint -> INT8 Paddle inference model.

Conv2D/Linear layers get fake-quant ops (channel-wise abs-max weights, moving-average abs-max
activations; ``paddleslim.dygraph.quant.QAT``), the model fine-tunes through
``engine.loop.fit``, and the result is saved as an INT8 inference model
(quantize_linear/dequantize_linear ops) that Paddle Inference runs with oneDNN INT8 kernels.
The stage checks that: it runs the model once under oneDNN INT8 and fails when no INT8
kernel executes; it records the INT8 accuracy (Paddle Inference, eval split) and how close
the INT8 outputs are to the fake-quant dygraph model's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from paddleopt.artifact import Artifact, Manifest
from paddleopt.stages._compress import FinetuneConfig, FinetuneStage
from paddleopt.stages._int8 import LatencyConfig
from paddleopt.stages.base import StageContext

LayerType = Literal["Conv2D", "Linear", "Conv2DTranspose"]


@dataclass
class QATStageConfig:
    """Attributes:
        weight_quantize_type: channel_wise_abs_max (per output channel) or abs_max.
        activation_quantize_type: moving_average_abs_max (the one dygraph QAT supports).
        quantizable_layer_types: layer classes that get fake-quant ops.
        moving_rate: decay of the activations' moving-average ranges.
        onnx_format: false (default): fake-quant ops plus the activation ranges of every
            layer (``out_threshold``), which oneDNN needs to keep residual blocks in INT8;
            true: quantize_linear/dequantize_linear ops (what ONNX converters expect), but
            then the convs that sum a residual branch run fp32 under oneDNN (measured on the
            ResNet-style CNN: 7 of 9 convs INT8 instead of 9 of 9).
        finetune: the QAT fine-tuning recipe (train's keys).
        eval_samples: eval samples scored with Paddle Inference INT8 (null: the whole split).
        verify_int8: run the saved model under oneDNN INT8 and fail if no INT8 kernel runs.
        latency: time the INT8 model at this batch size (``{batch_size, threads, ...}``);
            null: no timing. (Side by side with fp32: ptq's candidates or the benchmark.)
        file_prefix: the result's file stem (inference: PaddleClas deploy / FastDeploy).
        preprocess_file: also write the image preprocess as an inference.yml beside it.
    """

    weight_quantize_type: Literal["channel_wise_abs_max", "abs_max"] = "channel_wise_abs_max"
    activation_quantize_type: Literal["moving_average_abs_max"] = "moving_average_abs_max"
    quantizable_layer_types: list[LayerType] = field(
        default_factory=lambda: ["Conv2D", "Linear"])
    moving_rate: float = 0.9
    onnx_format: bool = False
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval_samples: int | None = None
    verify_int8: bool = True
    latency: LatencyConfig | None = None
    file_prefix: str = "model"
    preprocess_file: bool = False

    def validate(self) -> tuple[str, str] | None:
        from paddleopt.artifact.naming import check_file_prefix

        if check_file_prefix("qat", self.file_prefix):
            return check_file_prefix("qat", self.file_prefix)
        if not 0 < self.moving_rate < 1:
            return f"moving_rate must be in (0, 1), got {self.moving_rate}", \
                "use e.g. moving_rate: 0.9"
        if not self.quantizable_layer_types:
            return "quantizable_layer_types is empty", "use e.g. [Conv2D, Linear]"
        if self.eval_samples is not None and self.eval_samples < 1:
            return "eval_samples must be >= 1 or null", "use null for the whole eval split"
        return None


class QATStage(FinetuneStage):
    name = "qat"
    Config = QATStageConfig
    consumes = ("checkpoint",)
    produces = "inference"
    extras = ("slim",)

    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.engine.loop import is_rank0
        from paddleopt.stages._compress import rank_manifest

        assert src is not None
        launched = self.launch_if_distributed(src, out_dir, ctx)
        if launched is not None:
            return launched
        cfg: QATStageConfig = self.config
        data, _ = self.prepare(None, ctx)  # run_qat loads the checkpoint (ptq calls it too)
        info = run_qat(src, out_dir, data, cfg, ctx, save=is_rank0())
        if not is_rank0():
            return rank_manifest(info["fit"])  # rank 0 saves, verifies and describes the model
        manifest = finish_int8_manifest(src, out_dir, data, cfg.eval_samples, cfg.verify_int8,
                                        cfg.latency, ctx, info)
        from paddleopt.artifact.naming import deploy_names

        deploy_names(out_dir, manifest, cfg.file_prefix, cfg.preprocess_file)
        return manifest


def run_qat(src: Artifact, out_dir: Path, data: object, cfg: QATStageConfig,
            ctx: StageContext, save: bool = True) -> dict:
    """QAT-fine-tune the checkpoint ``src`` and save the INT8 model into ``out_dir`` (not with
    ``save=False``: the ranks other than 0 of a distributed run only train)."""
    from paddleopt.compress.qat import QATConfig, quantize_for_training, save_int8_model
    from paddleopt.models.loading import load_checkpoint_model
    from paddleopt.stages._compress import finetune, fit_metrics
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    model = load_checkpoint_model(src)
    qat = quantize_for_training(model, QATConfig(
        weight_quantize_type=cfg.weight_quantize_type,
        activation_quantize_type=cfg.activation_quantize_type,
        quantizable_layer_types=tuple(cfg.quantizable_layer_types),
        moving_rate=cfg.moving_rate, onnx_format=cfg.onnx_format))
    result = finetune(model, data, cfg.finetune, ctx)
    metrics = fit_metrics(result)
    if not save:
        return {"method": "qat", "fit": metrics}
    feeds, _ = data.eval_feeds(64)
    model.eval()
    with paddle.no_grad():
        fake_quant = model(*[paddle.to_tensor(f) for f in feeds]).numpy()
    specs = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype}
             for s in src.manifest.io.inputs]
    summary = save_int8_model(qat, model, out_dir, specs)
    return {"method": "qat", "fit": metrics, "program": summary,
            "reference": (feeds, fake_quant),
            "config": {"weight_quantize_type": cfg.weight_quantize_type,
                       "activation_quantize_type": cfg.activation_quantize_type,
                       "quantizable_layer_types": list(cfg.quantizable_layer_types),
                       "moving_rate": cfg.moving_rate, "onnx_format": cfg.onnx_format,
                       "finetune_epochs": cfg.finetune.epochs}}


def finish_int8_manifest(src: Artifact, out_dir: Path, data: object, eval_samples: int | None,
                         verify: bool, latency: LatencyConfig | None, ctx: StageContext,
                         info: dict) -> Manifest:
    """Describe the INT8 model in ``out_dir``: accuracy with Paddle Inference INT8, closeness
    to the fake-quant model, INT8 kernel evidence."""
    from paddleopt.stages import _int8

    manifest = src.manifest.derive(kind="inference", precision="int8",
                                   files={"model": "model.pdmodel",
                                          "params": "model.pdiparams"})
    program = info["program"]
    manifest.quantization = {
        "method": "qat", **info["config"],
        "quant_ops": program.get("quant_ops"),
        "quantized_compute_ops": program.get("quantized_compute_ops"),
        "unquantized_compute_ops": program.get("unquantized_compute_ops"),
        "onednn_fixes": program.get("onednn_fixes", [])}
    art = Artifact(out_dir, manifest)
    pred = _int8.predictor(art, 0)
    x, y = data.eval_feeds(eval_samples)
    acc = _int8.accuracy(pred, x, y)
    feeds, reference = info["reference"]
    manifest.checks["int8_vs_fake_quant"] = _int8.compare_outputs(
        reference, _int8.logits(pred, feeds))
    manifest.metrics.update({
        "accuracy": acc, "eval_samples": int(len(y)),
        "qat_dygraph_accuracy": info["fit"]["accuracy"],
        "fp32_accuracy": src.manifest.metrics.get("accuracy"),
        "train_seconds": info["fit"]["train_seconds"], "history": info["fit"]["history"]})
    if src.manifest.metrics.get("accuracy") is not None:
        manifest.metrics["accuracy_drop"] = round(src.manifest.metrics["accuracy"] - acc, 6)
    for key in ("params", "flops"):
        if key in src.manifest.metrics:
            manifest.metrics[key] = src.manifest.metrics[key]
    if latency is not None:
        manifest.metrics["latency"] = _int8.timing(pred, x, latency)
    if verify:
        manifest.checks["int8"] = _int8.verify_int8(out_dir, ctx)
    ctx.log.info("[%s] INT8 accuracy %.4f (Paddle Inference oneDNN INT8, %d samples)",
                 ctx.stage_id, acc, len(y))
    return manifest

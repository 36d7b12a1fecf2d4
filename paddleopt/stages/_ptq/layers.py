"""Quantizing the ptq stage's input, and which of its layers can stay fp32 (sensitivity)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from paddleopt.artifact import Artifact
from paddleopt.stages._ptq.config import SKIPPABLE

if TYPE_CHECKING:
    from paddleopt.stages._ptq.config import PTQConfig
    from paddleopt.stages._ptq.data import PTQData
    from paddleopt.stages.base import StageContext

MATMULS = ("mul", "matmul", "matmul_v2")


class Quantizer:
    """PTQ runs of one ptq stage's input, and which of its layers can stay fp32 (sensitivity).

    ``fp32_predictor`` gives the (shared, cached) fp32 predictor the sensitivity is measured
    against.
    """

    def __init__(self, cfg: PTQConfig, src: Artifact, out_dir: Path, ctx: StageContext | None,
                 data: PTQData, fp32_predictor: Callable[[], Any]) -> None:
        self.cfg, self.src, self.out_dir, self.ctx = cfg, src, out_dir, ctx
        self.data = data
        self.fp32_predictor = fp32_predictor
        self.sensitivity: dict[str, list[dict]] = {}  # algo -> ranked layers

    def quantize(self, folder: Path, algo: str, skip: list[str], batch_nums: int | None = None,
                 op_types: list[str] | None = None) -> Any:
        from paddleopt.compress.ptq import quantize_post_static

        cfg, cal = self.cfg, self.cfg.calibration
        source, kwargs = self.data.calibration()
        nums = -(-cal.count // cal.batch_size)
        return quantize_post_static(
            self.src.path, folder, source, algo=algo, batch_size=cal.batch_size,
            batch_nums=min(nums, batch_nums or nums), skip_tensors=skip,
            quantizable_op_types=op_types or cfg.quantizable_op_types,
            weight_quantize_type=cfg.weight_quantize_type, onnx_format=cfg.onnx_format,
            hist_percent=cfg.hist_percent, bias_correction=cfg.bias_correction, **kwargs)

    def int8_artifact(self, folder: Path, quantization: dict[str, Any]) -> Artifact:
        manifest = self.src.manifest.derive(
            kind="inference", precision="int8", quantization=quantization,
            files={"model": "model.pdmodel", "params": "model.pdiparams"},
            preprocess=self.data.preprocess)
        return Artifact(folder, manifest)

    def layers(self) -> list[dict[str, str]]:
        """Layers that skipping can keep in fp32: conv ops and their weights, in order.

        Only convolutions: PTQ marks a skipped matmul/mul op, but Paddle Inference 2.6.2's
        oneDNN passes fuse matmul + add into a new ``fc`` op that drops the mark and runs
        INT8 anyway (checked with ``int8_check``), so skipping them would change nothing.
        """
        from paddleopt.artifact.program import read_program

        program = read_program(self.src.file("model"))
        block = program.blocks[0]
        params = {v.name for v in block.vars if v.persistable}
        out = []
        for op in block.ops:
            if op.type not in self.cfg.quantizable_op_types or op.type not in SKIPPABLE:
                continue
            weight = next((n for v in op.inputs if v.parameter == "Filter"
                           for n in v.arguments if n in params), None)
            if weight is not None:
                out.append({"op": op.type, "weight": weight})
        return out

    def matmul_skips(self, skip: list[str]) -> list[str]:
        """The skip entries that only feed matmul/mul ops (see ``layers``)."""
        from paddleopt.artifact.program import read_program

        if not skip:
            return []
        consumers: dict[str, set[str]] = {}
        for op in read_program(self.src.file("model")).blocks[0].ops:
            for v in op.inputs:
                for name in v.arguments:
                    consumers.setdefault(name, set()).add(op.type)
        return [t for t in skip if consumers.get(t) and consumers[t] <= set(MATMULS)]

    def sensitive_layers(self, algo: str, count: int) -> list[str]:
        """Weights of the ``count`` layers whose quantization alone hurts the output most."""
        if algo not in self.sensitivity:
            self.sensitivity[algo] = self._measure_sensitivity(algo)
        return [r["weight"] for r in self.sensitivity[algo][:count]]

    def _measure_sensitivity(self, algo: str) -> list[dict]:
        from paddleopt.stages import _int8

        layers = self.layers()
        self.ctx.log.info("[%s] measuring the quantization sensitivity of %d layers (%s)",
                          self.ctx.stage_id, len(layers), algo)
        data = self.data.eval_set()
        assert data is not None
        x, y = data
        x = [f[:self.cfg.sensitivity_samples] for f in x]
        ref = _int8.logits(self.fp32_predictor(), x)
        # Without class labels (fp32 agreement, or labels only a user metric reads) a
        # layer's "accuracy" is its top-1 agreement with fp32.
        y = ref.argmax(-1) if hasattr(y, "score") else y[:self.cfg.sensitivity_samples]
        scale = float(np.abs(ref).mean()) or 1.0
        weights = [layer["weight"] for layer in layers]
        ranked = []
        root = self.out_dir / "_sensitivity"
        for i, layer in enumerate(layers):
            folder = root / f"{i:02d}"
            others = [w for w in weights if w != layer["weight"]]
            # convolutions only: matmul layers cannot be kept fp32 (see layers()), so
            # quantizing them in every run would only add the same error to each
            self.quantize(folder, algo, others, batch_nums=4,
                          op_types=[t for t in self.cfg.quantizable_op_types if t in SKIPPABLE])
            art = self.int8_artifact(folder, {"onednn_int8_ops": self.cfg.onednn_int8_ops})
            pred = _int8.predictor(art, self.cfg.latency.threads)
            got = _int8.logits(pred, x)
            ranked.append({**layer, "mean_rel_error": float(np.abs(got - ref).mean() / scale),
                           "accuracy": float((got.argmax(-1) == y).mean())})
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        ranked.sort(key=lambda r: r["mean_rel_error"], reverse=True)
        return ranked

    def has_activation_matmuls(self) -> bool:
        """Whether the model multiplies two activations (attention scores and context).

        Such matmuls get INT8 kernels under oneDNN INT8 like the weight matmuls, and in
        Paddle 2.6.2 those fused INT8 attention kernels can compute garbage (ERNIE: test
        accuracy 0.63 vs 0.81); restricting INT8 to fc ops avoids them.
        """
        return has_activation_matmuls(self.src.file("model"))


def has_activation_matmuls(model_file: Any) -> bool:
    """A matmul whose inputs are both activations (see Quantizer.has_activation_matmuls)."""
    from paddleopt.artifact.program import read_program

    block = read_program(model_file).blocks[0]
    params = {v.name for v in block.vars if v.persistable}
    for op in block.ops:
        if op.type in MATMULS:
            ins = [n for v in op.inputs if v.parameter in ("X", "Y") for n in v.arguments]
            if ins and not any(n in params for n in ins):
                return True
    return False

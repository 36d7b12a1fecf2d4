"""`qat_distill`: quantize a Paddle inference model by quant-aware training distilled from
its own fp32 outputs: no training code, no checkpoint, no labels (PaddleSlim ACT).

It is the ``ptq`` stage with a different default search: candidates PTQ (``algo``) and
``qat_distill`` (the inference model fine-tuned with fake-quant ops against the fp32 model
on the calibration inputs, see paddleopt.compress.act), every candidate measured on
held-out data (fp32 agreement or labels, ``evaluation``), the fastest within
``max_accuracy_drop`` kept (``search: all``), candidates.json/.png written, INT8 kernels
verified under oneDNN. The recipe is ``distill: {steps, learning_rate, loss, nodes}``;
any ptq setting (calibration, evaluation, candidates, latency) works the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from paddleopt.stages._ptq.config import CandidateConfig, EvaluationConfig, PTQConfig
from paddleopt.stages.ptq import PTQStage


@dataclass
class QATDistillConfig(PTQConfig):
    """ptq's config (see stages.ptq) with defaults for quant-aware distillation: fp32
    agreement as the measure, a budget of one point, every candidate measured."""

    evaluation: EvaluationConfig = field(
        default_factory=lambda: EvaluationConfig(source="agreement"))
    max_accuracy_drop: float | None = 0.01
    search: Literal["first_fit", "all"] = "all"

    def candidate_list(self, attention: bool = False) -> list[CandidateConfig]:
        if self.candidates:
            return list(self.candidates)
        return [CandidateConfig(algo=self.algo), CandidateConfig(qat_distill=True)]


class QATDistillStage(PTQStage):
    name = "qat_distill"
    Config = QATDistillConfig

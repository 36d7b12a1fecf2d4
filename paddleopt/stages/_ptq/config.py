"""The ptq stage's typed config: calibration, evaluation, candidates, QAT fallback."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from paddleopt.compress.recipe import DistillSettings
from paddleopt.stages._compress import FinetuneConfig
from paddleopt.stages._int8 import LatencyConfig

Algo = Literal["kl", "hist", "mse", "avg", "abs_max"]
# What Paddle Inference runs INT8 under oneDNN (the deployment ptq measures and verifies).
# conv2d_transpose is left out: quantized, it fails at run time in Paddle 2.6.2 ("The type
# of data we are trying to retrieve (float32) does not match the type of data (int8)
# [operator < conv2d_transpose > error]", seen on PP-OCRv4 det); it stays fp32 and the log
# says so (see ONEDNN_INT8_FAILS).
DEFAULT_OP_TYPES = ["conv2d", "depthwise_conv2d", "mul", "matmul", "matmul_v2"]
ONEDNN_INT8_FAILS = {"conv2d_transpose": "oneDNN INT8 in Paddle 2.6.2 fails on it at run "
                                         "time (int8 data where float32 is expected)"}
SKIPPABLE = ("conv2d", "depthwise_conv2d", "conv2d_transpose")  # see layers.skippable_layers


@dataclass
class CalibrationConfig:
    """Attributes:
        source: pipeline (the first ``count`` training samples of ``data:``), image_folder
            (images under ``path``, any depth, turned into tensors by ``preprocess``) or npz
            (``path``: one array per model input, named like the input, samples on axis 0).
        path: the folder or .npz file.
        count: calibration samples.
        batch_size: samples per calibration batch.
        preprocess: image_folder only: size, channels, mean, std, resize, invert (see
            docs/PIPELINE.md data.preprocess); default: the model's recorded preprocess.
    """

    source: Literal["pipeline", "image_folder", "npz"] = "pipeline"
    path: str | None = None
    count: int = 256
    batch_size: int = 32
    preprocess: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> tuple[str, str] | None:
        if self.count < 1 or self.batch_size < 1:
            return ("calibration.count and calibration.batch_size must be >= 1",
                    "use e.g. count: 256, batch_size: 32")
        if self.source != "pipeline" and not self.path:
            return (f"calibration.source {self.source} needs calibration.path",
                    "set path to the image folder or the .npz file")
        if self.source == "npz" and self.path and not self.path.endswith(".npz"):
            return (f"calibration.path '{self.path}' is not an .npz file",
                    "write the tensors with numpy.savez(path, input_name=array, ...)")
        return None


@dataclass
class EvaluationConfig:
    """Data for accuracies (and the accuracy budget).

    Attributes:
        source: pipeline (the pipeline's data: decisions on the validation split, the final
            accuracy on the eval split), npz (``path`` with one array per input plus
            ``labels``), agreement (no labels: outputs compared with the fp32 model's on
            real held-out inputs: ``path`` (.npz of inputs or an image folder), default the
            calibration data after its first ``calibration.count`` samples; "accuracy" is
            then the agreement score, see paddleopt.metrics.reference) or none (accuracy not
            measured; needs max_accuracy_drop: null).
        metric: a user metric ``package.module:function`` (higher is better) instead of
            the built-in one: with agreement ``function(outputs, reference_outputs)``
            (1.0 = same as fp32); with labels (npz, pipeline) ``function(outputs, labels)``
            (the npz's ``labels`` array as saved: strings, boxes, ...), fp32 scored alike.
        path: the .npz file.
        count: samples scored per candidate (null: all).
    """

    source: Literal["pipeline", "npz", "none", "agreement"] = "pipeline"
    path: str | None = None
    count: int | None = 2000
    metric: str | None = None  # package.module:function(outputs, reference or labels)

    def validate(self) -> tuple[str, str] | None:
        if self.source == "npz" and not self.path:
            return "evaluation.source npz needs evaluation.path", "set path to the .npz file"
        if self.metric is not None and self.source == "none":
            return ("evaluation.metric needs evaluation data",
                    "set evaluation.source: agreement (no labels), npz or pipeline")
        if self.metric is not None and ":" not in self.metric:
            return (f"evaluation.metric '{self.metric}' is not package.module:function",
                    "e.g. metric: paddleopt.metrics.ocr:ctc_agreement")
        if self.count is not None and self.count < 1:
            return "evaluation.count must be >= 1 or null", "use null for all samples"
        return None


@dataclass
class CandidateConfig:
    """One setting the accuracy-aware search may try.

    Attributes:
        algo: activation scale algorithm (default: the stage's ``algo``).
        skip_tensors: tensors whose consuming ops stay fp32 (weight or activation names).
        skip_sensitive: also keep the N layers most sensitive to quantization in fp32
            (measured: each quantizable layer quantized alone, output error vs fp32).
        qat: quantization-aware training of the checkpoint this model was exported from.
        onednn_int8_ops: op types oneDNN runs INT8 for this candidate (default: the
            stage's ``onednn_int8_ops``), e.g. [fc] to keep attention matmuls fp32.
        qat_distill: quant-aware training of the inference model itself, distilled from its
            fp32 outputs on the calibration inputs (PaddleSlim ACT; no checkpoint, no
            labels; recipe in the stage's ``distill``).
        name: label in the report (default: derived from the settings).
    """

    algo: Algo | None = None
    skip_tensors: list[str] = field(default_factory=list)
    skip_sensitive: int = 0
    qat: bool = False
    onednn_int8_ops: list[str] | None = None
    qat_distill: bool | None = None  # None (= false): older fingerprints stay valid
    name: str | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.skip_sensitive < 0:
            return "skip_sensitive must be >= 0", "use e.g. skip_sensitive: 1"
        if self.onednn_int8_ops is not None:
            problem = _check_ops(self.onednn_int8_ops)
            if problem:
                return problem
        if (self.qat or self.qat_distill) and (self.algo or self.skip_tensors or
                                               self.skip_sensitive):
            return ("a qat/qat_distill candidate takes no algo/skip settings",
                    "write it as {qat: true} or {qat_distill: true}")
        if self.qat and self.qat_distill:
            return "a candidate is qat or qat_distill, not both", "split it in two candidates"
        return None

    def label(self, default_algo: str) -> str:
        if self.name:
            return self.name
        if self.qat:
            return "qat"
        if self.qat_distill:
            return "qat_distill"
        parts = [self.algo or default_algo]
        if self.skip_sensitive:
            parts.append(f"skip{self.skip_sensitive}")
        if self.skip_tensors:
            parts.append(f"skip[{len(self.skip_tensors)}]")
        if self.onednn_int8_ops:
            parts.append(f"int8[{'+'.join(self.onednn_int8_ops)}]")
        return "-".join(parts)


@dataclass
class QATFallbackConfig:
    """The QAT candidate: which checkpoint and how it fine-tunes.

    Attributes:
        checkpoint: an earlier stage id or checkpoint folder; default: the checkpoint the
            input model was exported from (found through the lineage), if it is in this run.
        finetune: the QAT fine-tuning recipe.
        onnx_format: the saved model's quant op format (see the qat stage).
    """

    checkpoint: str | None = None
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    onnx_format: bool = False  # see qat's onnx_format: false keeps residual blocks INT8


@dataclass
class PTQConfig:
    """Attributes:
        model_dir: quantize this Paddle inference model folder instead of the input artifact
            (ptq as the first stage).
        algo: activation scale search: kl, hist, mse, avg, abs_max.
        calibration: where calibration tensors come from (see ``CalibrationConfig``).
        skip_tensors: tensors whose consuming ops stay fp32 (names from the program; an
            unknown name lists the quantizable ops and their inputs).
        quantizable_op_types: op types to quantize.
        onednn_int8_ops: op types Paddle Inference runs in INT8 under oneDNN (the set given
            to ``enable_mkldnn_int8``); null = every quantized op. Recorded in the artifact
            (``quantization.onednn_int8_ops``) so that every deployment applies it, and used
            for the stage's own measurements. [fc] runs the linear layers INT8 and keeps the
            rest fp32: ERNIE needs it (its INT8 attention matmuls compute garbage in Paddle
            2.6.2, see docs/TEXT.md).
        weight_quantize_type: channel_wise_abs_max (per output channel) or abs_max.
        onnx_format: quantize_linear/dequantize_linear ops (true) or the older fake-quant ops.
        hist_percent: percentile of the hist algorithm.
        bias_correction: PaddleSlim's weight bias correction.
        evaluation: labelled data for accuracies (see ``EvaluationConfig``).
        max_accuracy_drop: accuracy budget (absolute, e.g. 0.005 = 0.5 points); null: no
            search, quantize once with the settings above.
        candidates: ordered settings to try under the budget; default: algo, mse, avg, algo
            skipping the 1 and 2 most sensitive layers, then QAT; for models with
            activation x activation matmuls (attention) and no onednn_int8_ops, algo with
            INT8 on fc ops only comes right after the algorithms.
        search: first_fit (stop at the first candidate within budget) or all (measure every
            candidate, keep the fastest within budget).
        qat: the QAT candidate's checkpoint and recipe.
        distill: the qat_distill candidate's recipe (steps, learning_rate, loss, nodes,
            engine; null: the defaults of ``compress.recipe.DistillSettings``).
        latency: how candidates and the fp32 model are timed.
        sensitivity_samples: held-out samples scored per layer by skip_sensitive.
        verify_int8: fail unless oneDNN runs INT8 kernels for the result.
        min_speedup: fail when the result's speedup over fp32 (latency at
            latency.batch_size) is below this; null: record it only.
        keep_candidates: keep every candidate's model under candidates/ (default: only the
            chosen one is kept, as the artifact).
        file_prefix: the result's file stem: model.pdmodel, or inference.pdmodel as PaddleClas
            deploy / FastDeploy expect (as export's).
        preprocess_file: also write the image preprocess as an inference.yml beside it.
    """

    model_dir: str | None = None
    algo: Algo = "hist"
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    skip_tensors: list[str] = field(default_factory=list)
    quantizable_op_types: list[str] = field(default_factory=lambda: list(DEFAULT_OP_TYPES))
    onednn_int8_ops: list[str] | None = None
    weight_quantize_type: Literal["channel_wise_abs_max", "abs_max"] = "channel_wise_abs_max"
    onnx_format: bool = True
    hist_percent: float = 0.9999
    bias_correction: bool = False
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    max_accuracy_drop: float | None = None
    candidates: list[CandidateConfig] = field(default_factory=list)
    search: Literal["first_fit", "all"] = "first_fit"
    qat: QATFallbackConfig = field(default_factory=QATFallbackConfig)
    distill: DistillSettings | None = None  # None: DistillSettings()'s defaults
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    sensitivity_samples: int = 500
    verify_int8: bool = True
    min_speedup: float | None = None
    keep_candidates: bool = False
    file_prefix: str = "model"
    preprocess_file: bool = False

    def validate(self) -> tuple[str, str] | None:
        from paddleopt.artifact.naming import check_file_prefix

        if check_file_prefix("ptq", self.file_prefix):
            return check_file_prefix("ptq", self.file_prefix)
        if self.max_accuracy_drop is not None and not 0 <= self.max_accuracy_drop < 1:
            return (f"max_accuracy_drop must be in [0, 1), got {self.max_accuracy_drop}",
                    "give the allowed absolute drop, e.g. 0.005 for half a point")
        if self.max_accuracy_drop is not None and self.evaluation.source == "none":
            return ("max_accuracy_drop needs evaluation data",
                    "set evaluation.source: agreement (no labels: fp32 agreement), pipeline "
                    "or npz, or max_accuracy_drop: null")
        if self.candidates and self.max_accuracy_drop is None:
            return ("candidates are only tried under a max_accuracy_drop budget",
                    "set max_accuracy_drop (e.g. 0.005), or remove candidates")
        if not 0 < self.hist_percent <= 1:
            return "hist_percent must be in (0, 1]", "use e.g. hist_percent: 0.9999"
        if self.sensitivity_samples < 1:
            return "sensitivity_samples must be >= 1", "use e.g. 500"
        if self.min_speedup is not None and self.min_speedup <= 0:
            return "min_speedup must be > 0 or null", "use e.g. min_speedup: 1.0"
        if not self.quantizable_op_types:
            return "quantizable_op_types is empty", "use e.g. [conv2d, matmul_v2]"
        if self.onednn_int8_ops is not None:
            problem = _check_ops(self.onednn_int8_ops)
            if problem:
                return problem
        return None

    def candidate_list(self, attention: bool = False) -> list[CandidateConfig]:
        """The candidates in the order tried.

        Args:
            attention: the model multiplies two activations (attention scores); default
                candidates then include INT8 on fc ops only, which such models need under
                oneDNN when every-op INT8 fails the budget.
        """
        if self.max_accuracy_drop is None:
            return [CandidateConfig(algo=self.algo)]
        if self.candidates:
            return list(self.candidates)
        out, seen = [], set()
        for algo in (self.algo, "mse", "avg"):
            if algo not in seen:
                seen.add(algo)
                out.append(CandidateConfig(algo=algo))
        if attention and self.onednn_int8_ops is None:
            out.append(CandidateConfig(algo=self.algo, onednn_int8_ops=["fc"]))
        out += [CandidateConfig(algo=self.algo, skip_sensitive=1),
                CandidateConfig(algo=self.algo, skip_sensitive=2), CandidateConfig(qat=True)]
        return out


def _check_ops(ops: list[str]) -> tuple[str, str] | None:
    from paddleopt.deploy.backends.paddle_inference import check_onednn_int8_ops

    return check_onednn_int8_ops(ops)

"""`ptq`: post-training static quantization of a Paddle inference model to INT8.

Input: the previous stage's inference artifact, or any Paddle inference model folder given as
``model_dir`` (ptq as the first stage; models we did not train: several inputs, dynamic
shapes). Calibration data: the pipeline's training data, an image folder with a declared
preprocess, or an .npz of ready input tensors (``calibration.source``).

Accuracy-aware mode (``max_accuracy_drop``): candidates (algorithms, skipping the most
sensitive layers, QAT) are tried in order; each is measured on held-out data (accuracy with
Paddle Inference oneDNN INT8, latency at ``latency.batch_size``) against the fp32 model, kept
when its drop fits the budget and rejected otherwise, with the reason. The first that fits
(``search: first_fit``) or the fastest that fits (``search: all``) becomes the artifact;
``candidates.json`` and ``candidates.png`` (accuracy vs latency, Pareto front marked) record
what was tried. Every result is checked to run INT8 kernels under oneDNN.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paddleopt.artifact import Artifact, Manifest
from paddleopt.stages._compress import FinetuneConfig
from paddleopt.stages._int8 import LatencyConfig
from paddleopt.stages.base import Stage, StageContext
from paddleopt.utils.errors import ConfigError, StageError, UserError

Algo = Literal["kl", "hist", "mse", "avg", "abs_max"]
DEFAULT_OP_TYPES = ["conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul",
                    "matmul_v2"]
SKIPPABLE = ("conv2d", "depthwise_conv2d", "conv2d_transpose")  # see _Run.layers


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
    """Labelled data for accuracies (and the accuracy budget).

    Attributes:
        source: pipeline (the pipeline's data: decisions on the validation split, the final
            accuracy on the eval split), npz (``path`` with one array per input plus
            ``labels``) or none (accuracy not measured; needs max_accuracy_drop: null).
        path: the .npz file.
        count: samples scored per candidate (null: all).
    """

    source: Literal["pipeline", "npz", "none"] = "pipeline"
    path: str | None = None
    count: int | None = 2000

    def validate(self) -> tuple[str, str] | None:
        if self.source == "npz" and not self.path:
            return "evaluation.source npz needs evaluation.path", "set path to the .npz file"
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
        name: label in the report (default: derived from the settings).
    """

    algo: Algo | None = None
    skip_tensors: list[str] = field(default_factory=list)
    skip_sensitive: int = 0
    qat: bool = False
    name: str | None = None

    def validate(self) -> tuple[str, str] | None:
        if self.skip_sensitive < 0:
            return "skip_sensitive must be >= 0", "use e.g. skip_sensitive: 1"
        if self.qat and (self.algo or self.skip_tensors or self.skip_sensitive):
            return ("a qat candidate takes no algo/skip settings",
                    "write it as {qat: true}")
        return None

    def label(self, default_algo: str) -> str:
        if self.name:
            return self.name
        if self.qat:
            return "qat"
        parts = [self.algo or default_algo]
        if self.skip_sensitive:
            parts.append(f"skip{self.skip_sensitive}")
        if self.skip_tensors:
            parts.append(f"skip[{len(self.skip_tensors)}]")
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
        weight_quantize_type: channel_wise_abs_max (per output channel) or abs_max.
        onnx_format: quantize_linear/dequantize_linear ops (true) or the older fake-quant ops.
        hist_percent: percentile of the hist algorithm.
        bias_correction: PaddleSlim's weight bias correction.
        evaluation: labelled data for accuracies (see ``EvaluationConfig``).
        max_accuracy_drop: accuracy budget (absolute, e.g. 0.005 = 0.5 points); null: no
            search, quantize once with the settings above.
        candidates: ordered settings to try under the budget; default: algo, mse, avg, algo
            skipping the 1 and 2 most sensitive layers, then QAT.
        search: first_fit (stop at the first candidate within budget) or all (measure every
            candidate, keep the fastest within budget).
        qat: the QAT candidate's checkpoint and recipe.
        latency: how candidates and the fp32 model are timed.
        sensitivity_samples: held-out samples scored per layer by skip_sensitive.
        verify_int8: fail unless oneDNN runs INT8 kernels for the result.
        min_speedup: fail when the result's speedup over fp32 (latency at
            latency.batch_size) is below this; null: record it only.
        keep_candidates: keep every candidate's model under candidates/ (default: only the
            chosen one is kept, as the artifact).
    """

    model_dir: str | None = None
    algo: Algo = "hist"
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    skip_tensors: list[str] = field(default_factory=list)
    quantizable_op_types: list[str] = field(default_factory=lambda: list(DEFAULT_OP_TYPES))
    weight_quantize_type: Literal["channel_wise_abs_max", "abs_max"] = "channel_wise_abs_max"
    onnx_format: bool = True
    hist_percent: float = 0.9999
    bias_correction: bool = False
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    max_accuracy_drop: float | None = None
    candidates: list[CandidateConfig] = field(default_factory=list)
    search: Literal["first_fit", "all"] = "first_fit"
    qat: QATFallbackConfig = field(default_factory=QATFallbackConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    sensitivity_samples: int = 500
    verify_int8: bool = True
    min_speedup: float | None = None
    keep_candidates: bool = False

    def validate(self) -> tuple[str, str] | None:
        if self.max_accuracy_drop is not None and not 0 <= self.max_accuracy_drop < 1:
            return (f"max_accuracy_drop must be in [0, 1), got {self.max_accuracy_drop}",
                    "give the allowed absolute drop, e.g. 0.005 for half a point")
        if self.max_accuracy_drop is not None and self.evaluation.source == "none":
            return ("max_accuracy_drop needs labelled evaluation data",
                    "set evaluation.source: pipeline or npz, or max_accuracy_drop: null")
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
        return None

    def candidate_list(self) -> list[CandidateConfig]:
        if self.max_accuracy_drop is None:
            return [CandidateConfig(algo=self.algo)]
        if self.candidates:
            return list(self.candidates)
        out, seen = [], set()
        for algo in (self.algo, "mse", "avg"):
            if algo not in seen:
                seen.add(algo)
                out.append(CandidateConfig(algo=algo))
        out += [CandidateConfig(algo=self.algo, skip_sensitive=1),
                CandidateConfig(algo=self.algo, skip_sensitive=2), CandidateConfig(qat=True)]
        return out


class PTQStage(Stage):
    name = "ptq"
    Config = PTQConfig
    consumes = ("inference",)
    optional_input = True  # with model_dir it quantizes a model from outside the pipeline
    produces = "inference"
    extras = ("slim",)

    def check(self, pipeline: Any, stage_id: str) -> None:
        from paddleopt.stages._compress import (check_artifact_ref, check_single_process,
                                                earlier_stages)

        cfg: PTQConfig = self.config
        where = f"stages.{stage_id}"
        check_single_process(cfg.qat.finetune, f"{where}.qat")
        if cfg.model_dir is None and not earlier_stages(pipeline, stage_id):
            raise ConfigError(f"{where}: ptq is the first stage but has no model_dir.",
                              "set model_dir: <Paddle inference model folder>, or put an "
                              "export stage before it.")
        if cfg.model_dir is not None and not Path(cfg.model_dir).is_dir():
            raise ConfigError(f"{where}.model_dir: '{cfg.model_dir}' is not a folder.",
                              "point it at the folder holding the .pdmodel and .pdiparams.")
        cal = cfg.calibration
        if cal.source == "image_folder" and not Path(str(cal.path)).is_dir():
            raise ConfigError(f"{where}.calibration.path: '{cal.path}' is not a folder.",
                              "point it at a folder of images (searched recursively).")
        if cal.source == "npz" and not Path(str(cal.path)).is_file():
            raise ConfigError(f"{where}.calibration.path: '{cal.path}' does not exist.",
                              "write it with numpy.savez(path, input_name=array, ...).")
        if cal.source == "image_folder" and cfg.model_dir is not None and not cal.preprocess:
            raise ConfigError(f"{where}.calibration.preprocess: a model from model_dir records "
                              f"no preprocessing, so images cannot be turned into tensors.",
                              "declare it, e.g. preprocess: {size: [224, 224], channels: 3, "
                              "mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}.")
        if cal.preprocess:
            from paddleopt.config.schema import parse
            from paddleopt.data.preprocess import ImagePreprocess

            parse(ImagePreprocess, cal.preprocess, path=f"{where}.calibration.preprocess")
        if cfg.evaluation.source == "npz" and not Path(str(cfg.evaluation.path)).is_file():
            raise ConfigError(f"{where}.evaluation.path: '{cfg.evaluation.path}' does not "
                              f"exist.", "write inputs and labels with numpy.savez.")
        if cfg.qat.checkpoint is not None:
            check_artifact_ref(cfg.qat.checkpoint, pipeline, stage_id, "qat.checkpoint")
        if cfg.model_dir is not None and cal.source == "npz":
            # A wrong npz (names, shapes, dtypes) fails now, before any stage runs.
            from paddleopt.compress.ptq import calibration_batches, model_feeds

            _, _, feeds = model_feeds(cfg.model_dir)
            calibration_batches(cal.path, feeds, batch_size=cal.batch_size, batch_nums=1)

    # -- run ----------------------------------------------------------------------------------
    def run(self, src: Artifact | None, out_dir: Path, ctx: StageContext) -> Manifest:
        from paddleopt.utils.seed import seed_everything

        cfg: PTQConfig = self.config
        seed_everything(ctx.seed)
        if cfg.model_dir is not None:
            src = Artifact.open(cfg.model_dir)
            if src.kind != "inference":
                raise UserError(f"model_dir '{cfg.model_dir}' holds a {src.kind} artifact.",
                                "point it at a Paddle inference model folder.")
        assert src is not None
        return _Run(cfg, src, out_dir, ctx).execute()


class _Run:
    """One execution of the ptq stage (state shared by the candidate measurements)."""

    def __init__(self, cfg: PTQConfig, src: Artifact, out_dir: Path, ctx: StageContext) -> None:
        self.cfg, self.src, self.out_dir, self.ctx = cfg, src, out_dir, ctx
        self.data: Any = None
        self.preprocess: dict[str, Any] = dict(src.manifest.preprocess)
        self.sensitivity: dict[str, list[dict]] = {}  # algo -> ranked layers
        self.made: dict[int, Artifact] = {}  # candidate index -> its (unsaved) artifact
        self._fp32_pred: Any = None

    # -- data -------------------------------------------------------------------------------
    def pipeline_data(self) -> Any:
        if self.data is None:
            from paddleopt.data.loaders import build_data

            self.data = build_data(self.ctx.pipeline.data, self.ctx.seed)
        return self.data

    def input_names(self) -> list[str]:
        return [s.name for s in self.src.manifest.io.inputs]

    def calibration(self) -> Any:
        cal = self.cfg.calibration
        batch_nums = -(-cal.count // cal.batch_size)
        if cal.source == "npz":
            return Path(str(cal.path)), {}
        if cal.source == "image_folder":
            from paddleopt.config.schema import parse, to_dict
            from paddleopt.data.preprocess import (ImagePreprocess, load_image, normalize)

            declared = cal.preprocess or self.preprocess
            if not declared or declared.get("type", "image") != "image":
                raise UserError("calibration from an image folder needs an image preprocess; "
                                "the model records none.",
                                "declare calibration.preprocess (size, channels, mean, std).")
            spec = parse(ImagePreprocess, declared, path="calibration.preprocess")
            self.preprocess = to_dict(spec)

            def preprocess(path: Path) -> np.ndarray:
                return normalize(load_image(path, spec)[None], spec)[0]

            return Path(str(cal.path)), {"preprocess": preprocess}
        feeds = self.pipeline_data().calibration_feeds(cal.count)
        n = len(feeds[0])
        batches = [tuple(f[i:i + cal.batch_size] for f in feeds)
                   for i in range(0, n, cal.batch_size)]
        return batches[:batch_nums], {}

    def eval_set(self, final: bool = False) -> tuple[list[np.ndarray], np.ndarray] | None:
        """Held-out samples for decisions; the eval split for the final number."""
        ev = self.cfg.evaluation
        if ev.source == "none":
            return None
        if ev.source == "npz":
            return _npz_eval(Path(str(ev.path)), self.input_names(), ev.count)
        data = self.pipeline_data()
        if final:
            return data.eval_feeds(ev.count)
        from paddleopt.stages._compress import held_out

        return held_out(data, ev.count or 10 ** 9)

    # -- quantizing ---------------------------------------------------------------------------
    def quantize(self, folder: Path, algo: str, skip: list[str], batch_nums: int | None = None,
                 op_types: list[str] | None = None) -> Any:
        from paddleopt.compress.ptq import quantize_post_static

        cfg, cal = self.cfg, self.cfg.calibration
        source, kwargs = self.calibration()
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
            preprocess=self.preprocess)
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
        matmuls = {"mul", "matmul", "matmul_v2"}
        return [t for t in skip if consumers.get(t) and consumers[t] <= matmuls]

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
        data = self.eval_set()
        assert data is not None
        x, y = data
        x = [f[:self.cfg.sensitivity_samples] for f in x]
        y = y[:self.cfg.sensitivity_samples]
        ref = _int8.logits(self.fp32_predictor(), x)
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
            pred = _int8.predictor(self.int8_artifact(folder, {}), self.cfg.latency.threads)
            got = _int8.logits(pred, x)
            ranked.append({**layer, "mean_rel_error": float(np.abs(got - ref).mean() / scale),
                           "accuracy": float((got.argmax(-1) == y).mean())})
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        ranked.sort(key=lambda r: r["mean_rel_error"], reverse=True)
        return ranked

    # -- measuring ----------------------------------------------------------------------------
    def fp32_predictor(self) -> Any:
        from paddleopt.stages import _int8

        if self._fp32_pred is None:
            self._fp32_pred = _int8.predictor(self.src, self.cfg.latency.threads)
        return self._fp32_pred

    def measure(self, art: Artifact, data: Any, paired: bool = True) -> dict[str, Any]:
        """Accuracy (when labelled data exists) and latency; with ``paired`` the fp32 model
        is timed alternately with ``art`` and the speedup comes from that pair."""
        from paddleopt.stages import _int8

        pred = _int8.predictor(art, self.cfg.latency.threads)
        out: dict[str, Any] = {}
        if data is not None:
            feeds, labels = data
            out["accuracy"] = _int8.accuracy(pred, feeds, labels)
        else:
            from paddleopt.deploy.bench import make_feeds

            feeds = make_feeds(pred.inputs, self.cfg.latency.batch_size)
        if not paired:
            out.update(_int8.timing(pred, feeds, self.cfg.latency))
            return out
        mine, fp32 = _int8.paired_timing(pred, self.fp32_predictor(), feeds, self.cfg.latency)
        out.update(mine)
        out["fp32_latency_ms"] = fp32["latency_ms"]
        out["speedup_vs_fp32"] = round(fp32["latency_ms"]["p50"] / mine["latency_ms"]["p50"], 3)
        return out

    # -- the search ---------------------------------------------------------------------------
    def execute(self) -> Manifest:
        from paddleopt.compress.ptq import _check_skip

        cfg, ctx = self.cfg, self.ctx
        budget = cfg.max_accuracy_drop
        # A wrong tensor name is a config mistake shared by every candidate: fail at once,
        # with the list of quantizable ops and their inputs.
        _check_skip(self.src.file("model"), [*cfg.skip_tensors, *(
            t for c in cfg.candidate_list() for t in c.skip_tensors)], cfg.quantizable_op_types)
        data = self.eval_set()
        if budget is not None and data is None:
            raise StageError("max_accuracy_drop needs labelled evaluation data.",
                             "set evaluation.source: pipeline or npz.")
        baseline = self.measure(self.src, data, paired=False)
        ctx.log.info("[%s] fp32 baseline: accuracy %s, p50 %.3f ms at batch %d", ctx.stage_id,
                     _pct(baseline.get("accuracy")), baseline["latency_ms"]["p50"],
                     cfg.latency.batch_size)
        results: list[dict[str, Any]] = []
        chosen: dict[str, Any] | None = None
        root = self.out_dir / "candidates"
        for index, cand in enumerate(cfg.candidate_list()):
            label = cand.label(cfg.algo)
            row: dict[str, Any] = {"index": index, "name": label, "algo": None if cand.qat
                                   else (cand.algo or cfg.algo), "qat": cand.qat,
                                   "skip_tensors": [], "skip_sensitive": cand.skip_sensitive}
            results.append(row)
            if chosen is not None and cfg.search == "first_fit":
                row.update(status="not_tried", reason=f"'{chosen['name']}' already fits")
                continue
            folder = root / f"{index:02d}_{label}"
            started = time.perf_counter()
            try:
                art = self.make_candidate(cand, folder, row)
            except UserError as exc:
                row.update(status="failed", reason=exc.message)
                ctx.log.warning("[%s] candidate %s failed: %s", ctx.stage_id, label, exc)
                continue
            if art is None:
                continue  # skipped, reason recorded
            self.made[index] = art
            row.update(self.measure(art, data))
            row["seconds"] = round(time.perf_counter() - started, 1)
            row["folder"] = str(folder.relative_to(self.out_dir))
            if data is not None:
                row["accuracy_drop"] = round(baseline["accuracy"] - row["accuracy"], 6)
            fits = budget is None or row["accuracy_drop"] <= budget + 1e-12
            row["fits_budget"] = fits
            if budget is None:
                row.update(status="fits", reason="single setting (no max_accuracy_drop)")
            elif fits:
                row.update(status="fits", reason=f"drop {_pct(row['accuracy_drop'])} <= "
                                                 f"budget {_pct(budget)}")
            else:
                row.update(status="rejected", reason=f"drop {_pct(row['accuracy_drop'])} > "
                                                     f"budget {_pct(budget)}")
            ctx.log.info("[%s] candidate %-14s accuracy %s drop %s p50 %.3f ms (%.2fx): %s",
                         ctx.stage_id, label, _pct(row.get("accuracy")),
                         _pct(row.get("accuracy_drop")), row["latency_ms"]["p50"],
                         row["speedup_vs_fp32"], row["status"])
            if fits and chosen is None:
                chosen = row
        paired = [r["fp32_latency_ms"] for r in results if "fp32_latency_ms" in r]
        if paired:  # the fp32 point of the plot/record: its best paired measurement
            baseline["latency_ms"] = min(paired, key=lambda lat: lat["p50"])
        fitting = [r for r in results if r.get("status") == "fits"]
        if cfg.search == "all" and fitting:
            # Speedups, not raw latencies: each is paired with an fp32 timing taken in the
            # same minutes, so they compare across candidates on a shared machine.
            fastest = max(r["speedup_vs_fp32"] for r in fitting)
            near = [r for r in fitting if r["speedup_vs_fp32"] >= 0.97 * fastest]
            chosen = max(near, key=lambda r: (r.get("accuracy") or 0.0, r["speedup_vs_fp32"]))
            for r in fitting:
                if r is not chosen:
                    r.update(reason=r["reason"] + "; not chosen: "
                             f"'{chosen['name']}' is faster or as fast and more accurate")
        if chosen is not None:
            chosen.update(chosen=True, status="kept")
            if budget is not None:
                chosen["reason"] += " -> chosen" + (" (first that fits)" if cfg.search ==
                                                   "first_fit" else " (fastest that fits)")
        self.write_record(results, baseline)
        if chosen is None:
            tried = "; ".join(f"{r['name']}: {r.get('reason')}" for r in results)
            raise StageError(
                f"no PTQ candidate fits max_accuracy_drop {_pct(budget)} ({tried}).",
                f"raise max_accuracy_drop, add candidates (skip_sensitive, qat), or calibrate "
                f"with more data; what was tried: {self.out_dir / 'candidates.json'}")
        return self.finish(chosen, results, baseline)

    def make_candidate(self, cand: CandidateConfig, folder: Path, row: dict[str, Any]
                       ) -> Artifact | None:
        cfg = self.cfg
        if cand.qat:
            return self.make_qat(folder, row)
        algo = cand.algo or cfg.algo
        skip = list(dict.fromkeys([*cfg.skip_tensors, *cand.skip_tensors]))
        if cand.skip_sensitive:
            sensitive = self.sensitive_layers(algo, cand.skip_sensitive)
            row["skipped_layers"] = sensitive
            skip = list(dict.fromkeys([*skip, *sensitive]))
        row["skip_tensors"] = skip
        ineffective = self.matmul_skips(skip)
        if ineffective:
            row["note"] = (f"skipping {', '.join(ineffective)} has no effect under oneDNN "
                           f"INT8 (matmul/mul ops are fused into INT8 fc ops anyway)")
            self.ctx.log.warning("[%s] %s", self.ctx.stage_id, row["note"])
        report = self.quantize(folder, algo, skip)
        quant = {"method": "ptq", "algo": algo, "skip_tensors": skip,
                 "weight_quantize_type": report.weight_quantize_type,
                 "onnx_format": report.onnx_format, "calibration": {
                     "source": cfg.calibration.source, "batches": report.batches,
                     "samples": report.samples},
                 "quantizable_op_types": report.quantizable_op_types,
                 "quant_ops": report.quant.get("quant_ops"),
                 "quantized_compute_ops": report.quant.get("quantized_compute_ops"),
                 "unquantized_compute_ops": report.quant.get("unquantized_compute_ops"),
                 "onednn_fixes": report.onednn_fixes}
        row["quantized_compute_ops"] = report.quant.get("quantized_compute_ops")
        row["unquantized_compute_ops"] = report.quant.get("unquantized_compute_ops")
        return self.int8_artifact(folder, quant)

    def make_qat(self, folder: Path, row: dict[str, Any]) -> Artifact | None:
        from paddleopt.stages import _int8
        from paddleopt.stages._compress import resolve_artifact
        from paddleopt.stages.qat import QATStageConfig, run_qat

        cfg = self.cfg
        if cfg.qat.checkpoint is not None:
            ckpt = resolve_artifact(cfg.qat.checkpoint, self.ctx, "checkpoint")
        else:
            ckpt = _int8.newest_checkpoint_for(self.src, self.ctx)
        if ckpt is None:
            row.update(status="skipped", reason="QAT needs the checkpoint this model was "
                       "exported from; none in this run (set qat.checkpoint)")
            return None
        row["checkpoint"] = str(ckpt.path)
        qat_cfg = QATStageConfig(weight_quantize_type=cfg.weight_quantize_type,
                                 onnx_format=cfg.qat.onnx_format, finetune=cfg.qat.finetune)
        info = run_qat(ckpt, folder, self.pipeline_data(), qat_cfg, self.ctx)
        program = info["program"]
        quant = {"method": "qat", **info["config"], "checkpoint": str(ckpt.path),
                 "quant_ops": program.get("quant_ops"),
                 "quantized_compute_ops": program.get("quantized_compute_ops"),
                 "unquantized_compute_ops": program.get("unquantized_compute_ops"),
                 "onednn_fixes": program.get("onednn_fixes", [])}
        row["quantized_compute_ops"] = program.get("quantized_compute_ops")
        return self.int8_artifact(folder, quant)

    # -- output -------------------------------------------------------------------------------
    def write_record(self, results: list[dict], baseline: dict) -> None:
        import json

        from paddleopt.report.plots import candidates_plot

        record = {"fp32": baseline, "max_accuracy_drop": self.cfg.max_accuracy_drop,
                  "search": self.cfg.search, "latency": {
                      "batch_size": self.cfg.latency.batch_size,
                      "threads": self.cfg.latency.threads},
                  "candidates": results,
                  "sensitivity": self.sensitivity}
        (self.out_dir / "candidates.json").write_text(json.dumps(record, indent=1,
                                                                 default=str))
        if any("latency_ms" in r for r in results):
            candidates_plot(results, baseline, self.cfg.max_accuracy_drop,
                            self.out_dir / "candidates.png",
                            title=f"PTQ candidates (batch {self.cfg.latency.batch_size})")

    def finish(self, chosen: dict, results: list[dict], baseline: dict) -> Manifest:
        from paddleopt.stages import _int8

        cfg, ctx = self.cfg, self.ctx
        folder = self.out_dir / chosen["folder"]
        for name in ("model.pdmodel", "model.pdiparams"):
            shutil.copy2(folder / name, self.out_dir / name)
        manifest = self.made[chosen["index"]].manifest
        manifest.files = {"model": "model.pdmodel", "params": "model.pdiparams",
                          "candidates": "candidates.json"}
        if (self.out_dir / "candidates.png").is_file():
            manifest.files["plot"] = "candidates.png"
        if not cfg.keep_candidates:
            shutil.rmtree(self.out_dir / "candidates", ignore_errors=True)
        art = Artifact(self.out_dir, manifest)
        final = self.eval_set(final=True)
        metrics: dict[str, Any] = {
            "candidates": [{k: v for k, v in r.items() if k != "folder"} for r in results],
            "chosen": chosen["name"], "max_accuracy_drop": cfg.max_accuracy_drop,
            "heldout_accuracy": chosen.get("accuracy"),
            "heldout_fp32_accuracy": baseline.get("accuracy"),
            "latency": {"int8": chosen["latency_ms"], "fp32": chosen["fp32_latency_ms"],
                        "int8_throughput_per_s": chosen["throughput_per_s"],
                        "batch_size": cfg.latency.batch_size,
                        "threads": cfg.latency.threads},
            "speedup_vs_fp32": chosen["speedup_vs_fp32"]}
        if final is not None:
            x, y = final
            int8_pred = _int8.predictor(art, cfg.latency.threads)
            acc = _int8.accuracy(int8_pred, x, y)
            fp32_logits = _int8.logits(self.fp32_predictor(), x)
            fp32_acc = float((fp32_logits.argmax(-1) == y).mean())
            metrics.update(accuracy=acc, fp32_accuracy=fp32_acc, eval_samples=int(len(y)),
                           accuracy_drop=round(fp32_acc - acc, 6))
            manifest.checks["int8_vs_fp32"] = _int8.compare_outputs(
                fp32_logits, _int8.logits(int8_pred, x))
        for key in ("params", "flops"):
            if key in self.src.manifest.metrics:
                metrics[key] = self.src.manifest.metrics[key]
        manifest.metrics.update(metrics)
        if cfg.verify_int8:
            names = self.input_names()
            sample = final[0] if final is not None else None
            manifest.checks["int8"] = _int8.verify_int8(self.out_dir, ctx, sample, names)
        manifest.checks["int8_faster_than_fp32"] = chosen["speedup_vs_fp32"] > 1.0
        if chosen["speedup_vs_fp32"] <= 1.0:
            ctx.log.warning("[%s] the INT8 model is not faster than fp32 at batch %d "
                            "(%.2fx); small models spend their time outside the convolutions",
                            ctx.stage_id, cfg.latency.batch_size, chosen["speedup_vs_fp32"])
        if cfg.min_speedup is not None and chosen["speedup_vs_fp32"] < cfg.min_speedup:
            raise StageError(f"the INT8 model is {chosen['speedup_vs_fp32']:.2f}x the fp32 "
                             f"speed at batch {cfg.latency.batch_size}, below min_speedup "
                             f"{cfg.min_speedup}.",
                             "check the int8 evidence in candidates.json; a larger model or "
                             "batch benefits more; or lower min_speedup.")
        ctx.log.info("[%s] chosen %s: accuracy %s (fp32 %s), %.2fx faster at batch %d",
                     ctx.stage_id, chosen["name"], _pct(metrics.get("accuracy")),
                     _pct(metrics.get("fp32_accuracy")), chosen["speedup_vs_fp32"],
                     cfg.latency.batch_size)
        return manifest


def _npz_eval(path: Path, names: list[str], count: int | None
              ) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"cannot read evaluation file '{path}': {exc}",
                        "write it with numpy.savez(path, labels=..., <input>=...).") from exc
    with data:
        missing = [n for n in [*names, "labels"] if n not in data.files]
        if missing:
            raise UserError(f"evaluation file '{path}' lacks {missing} (has {data.files}).",
                            "save one array per model input, named like the input, plus "
                            "'labels'.")
        feeds = [data[n][:count] for n in names]
        labels = data["labels"][:count].astype(np.int64).reshape(-1)
    return feeds, labels


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"

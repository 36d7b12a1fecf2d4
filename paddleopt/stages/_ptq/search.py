"""The ptq stage's run: measure candidates against fp32 and choose one (see stages.ptq)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from paddleopt.artifact import Artifact, Manifest
from paddleopt.stages._ptq.config import CandidateConfig, PTQConfig
from paddleopt.stages._ptq.data import PTQData
from paddleopt.stages._ptq.layers import Quantizer
from paddleopt.stages._ptq.record import Recorder, pct, points
from paddleopt.stages.base import StageContext
from paddleopt.utils.errors import StageError, UserError


class PTQRun:
    """One execution of the ptq stage: measures candidates against fp32 and chooses one.

    Its parts are explicit objects: ``data`` (calibration and held-out data), ``quantizer``
    (PTQ runs, layer sensitivity) and ``recorder`` (what the stage writes).
    """

    def __init__(self, cfg: PTQConfig, src: Artifact, out_dir: Path, ctx: StageContext) -> None:
        self.cfg, self.src, self.out_dir, self.ctx = cfg, src, out_dir, ctx
        self.data = PTQData(cfg, src, ctx)
        self.data.fp32_predictor = self.fp32_predictor  # label-free accuracy's reference
        self.quantizer = Quantizer(cfg, src, out_dir, ctx, self.data, self.fp32_predictor)
        self.recorder = Recorder(cfg, src, out_dir, ctx, self.data, self.quantizer)
        self.made: dict[int, Artifact] = {}  # candidate index -> its (unsaved) artifact
        self._fp32_pred: Any = None

    def has_activation_matmuls(self) -> bool:
        return self.quantizer.has_activation_matmuls()

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
            if hasattr(labels, "score"):  # Reference (fp32 agreement) / Labelled (metric)
                from paddleopt.metrics.reference import run_all

                scored = labels.score(run_all(pred, feeds))
                out["accuracy"] = scored["score"]
                out["agreement"] = scored
            else:
                out["accuracy"] = _int8.accuracy(pred, feeds, labels)
        else:
            from paddleopt.artifact.shapes import dynamic_dim
            from paddleopt.deploy.bench import make_feeds

            feeds = make_feeds(pred.inputs, self.cfg.latency.batch_size,
                               dynamic_dim=dynamic_dim(self.src.manifest))
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
        from paddleopt.compress.ptq import check_skip_tensors

        cfg, ctx = self.cfg, self.ctx
        budget = cfg.max_accuracy_drop
        # A wrong tensor name is a config mistake shared by every candidate: fail at once,
        # with the list of quantizable ops and their inputs.
        candidates = cfg.candidate_list(attention=self.quantizer.has_activation_matmuls())
        check_skip_tensors(self.src.file("model"), [*cfg.skip_tensors, *(
            t for c in candidates for t in c.skip_tensors)], cfg.quantizable_op_types)
        self.log_fp32_ops()
        data = self.data.eval_set()
        if budget is not None and data is None:
            raise StageError("max_accuracy_drop needs evaluation data.",
                             "set evaluation.source: agreement (fp32 agreement, no labels), "
                             "pipeline or npz.")
        baseline = self.measure(self.src, data, paired=False)
        label_free = data is not None and getattr(data[1], "label_free", False)
        score_name = "fp32 agreement" if label_free else (
            data[1].metric if data is not None and hasattr(data[1], "score") else "accuracy")
        if label_free:  # fp32 is the reference
            measured = f"the reference for agreement on {_count(data)} held-out samples"
        else:
            measured = (f"accuracy {pct(baseline.get('accuracy'))} on {_count(data)} held-out "
                        f"samples (the search's)")
        ctx.log.info("[%s] fp32 baseline: %s, p50 %.3f ms at batch %d", ctx.stage_id, measured,
                     baseline["latency_ms"]["p50"], cfg.latency.batch_size)
        results: list[dict[str, Any]] = []
        chosen: dict[str, Any] | None = None
        root = self.out_dir / "candidates"
        for index, cand in enumerate(candidates):
            label = cand.label(cfg.algo)
            trained = cand.qat or cand.qat_distill
            row: dict[str, Any] = {"index": index, "name": label, "algo": None if trained
                                   else (cand.algo or cfg.algo), "qat": cand.qat,
                                   "qat_distill": bool(cand.qat_distill),
                                   "skip_tensors": [], "skip_sensitive": cand.skip_sensitive,
                                   "onednn_int8_ops": cand.onednn_int8_ops or
                                   cfg.onednn_int8_ops}
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
            self.describe_candidate(art, folder, row)
            fits = budget is None or row["accuracy_drop"] <= budget + 1e-12
            row["fits_budget"] = fits
            if budget is None:
                row.update(status="fits", reason="single setting (no max_accuracy_drop)")
            elif fits:
                row.update(status="fits", reason=f"drop {points(row['accuracy_drop'])} <= "
                                                 f"budget {points(budget)}")
            else:
                row.update(status="rejected", reason=f"drop {points(row['accuracy_drop'])} > "
                                                     f"budget {points(budget)}")
            ctx.log.info("[%s] candidate %-14s %s %s drop %s p50 %.3f ms (%.2fx): %s",
                         ctx.stage_id, label, score_name, pct(row.get("accuracy")),
                         points(row.get("accuracy_drop")), row["latency_ms"]["p50"],
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
        self.recorder.write_record(results, baseline)
        if chosen is None:
            tried = "; ".join(f"{r['name']}: {r.get('reason')}" for r in results)
            raise StageError(
                f"no PTQ candidate fits max_accuracy_drop {points(budget)} ({tried}).",
                f"raise max_accuracy_drop, add candidates (skip_sensitive, qat), or calibrate "
                f"with more data; what was tried: {self.out_dir / 'candidates.json'}")
        return self.recorder.finish(chosen, self.made[chosen["index"]], results, baseline)

    def describe_candidate(self, art: Artifact, folder: Path, row: dict[str, Any]) -> None:
        """Write the candidate folder's own manifest.json (a copy: the chosen one's manifest
        is completed later), so a kept candidate is a self-describing artifact too."""
        from paddleopt.artifact import Manifest

        manifest = Manifest.from_dict(art.manifest.to_dict())
        manifest.metrics = {"candidate": row["name"], "candidate_of": self.ctx.stage_id,
                            **{k: row[k] for k in ("accuracy", "accuracy_drop", "latency_ms",
                                                   "fp32_latency_ms", "speedup_vs_fp32",
                                                   "train_seconds") if k in row}}
        manifest.save(folder)

    def log_fp32_ops(self) -> None:
        """Say which compute ops of the model stay fp32 and why (never silently)."""
        from collections import Counter

        from paddleopt.artifact.program import read_program
        from paddleopt.compress.int8_check import COMPUTE_OP_TYPES
        from paddleopt.stages._ptq.config import ONEDNN_INT8_FAILS

        program = read_program(self.src.file("model"))
        counts = Counter(op.type for block in program.blocks for op in block.ops)
        chosen = set(self.cfg.quantizable_op_types)
        for op, n in sorted(counts.items()):
            if op in ONEDNN_INT8_FAILS and op in chosen:
                self.ctx.log.warning("[%s] quantizable_op_types includes %s (x%d), but %s; "
                                     "expect the INT8 model to fail under oneDNN",
                                     self.ctx.stage_id, op, n, ONEDNN_INT8_FAILS[op])
            elif op in COMPUTE_OP_TYPES and op not in chosen:
                why = ONEDNN_INT8_FAILS.get(op, "not in quantizable_op_types")
                self.ctx.log.info("[%s] %s x%d left fp32: %s", self.ctx.stage_id, op, n, why)
        self.fp32_ops = {op: counts[op] for op in counts
                         if op in COMPUTE_OP_TYPES and op not in chosen}

    def make_candidate(self, cand: CandidateConfig, folder: Path, row: dict[str, Any]
                       ) -> Artifact | None:
        cfg = self.cfg
        if cand.qat:
            return self.make_qat(folder, row)
        if cand.qat_distill:
            return self.make_qat_distill(folder, row)
        algo = cand.algo or cfg.algo
        ops = cand.onednn_int8_ops or cfg.onednn_int8_ops
        skip = list(dict.fromkeys([*cfg.skip_tensors, *cand.skip_tensors]))
        if cand.skip_sensitive:
            if not self.quantizer.layers():
                row.update(status="skipped", reason="no layer can stay fp32 (only "
                           "convolutions can be skipped; see ptq layers)")
                return None
            sensitive = self.quantizer.sensitive_layers(algo, cand.skip_sensitive)
            row["skipped_layers"] = sensitive
            skip = list(dict.fromkeys([*skip, *sensitive]))
        row["skip_tensors"] = skip
        ineffective = self.quantizer.matmul_skips(skip)
        if ineffective:
            row["note"] = (f"skipping {', '.join(ineffective)} has no effect under oneDNN "
                           f"INT8 (matmul/mul ops are fused into INT8 fc ops anyway)")
            self.ctx.log.warning("[%s] %s", self.ctx.stage_id, row["note"])
        report = self.quantizer.quantize(folder, algo, skip)
        quant = {"method": "ptq", "algo": algo, "skip_tensors": skip,
                 "weight_quantize_type": report.weight_quantize_type,
                 "onnx_format": report.onnx_format, "calibration": {
                     "source": cfg.calibration.source, "batches": report.batches,
                     "samples": report.samples},
                 "quantizable_op_types": report.quantizable_op_types,
                 "quant_ops": report.quant.get("quant_ops"),
                 "quantized_compute_ops": report.quant.get("quantized_compute_ops"),
                 "unquantized_compute_ops": report.quant.get("unquantized_compute_ops"),
                 "onednn_fixes": report.onednn_fixes, "onednn_int8_ops": ops,
                 "left_fp32_op_types": getattr(self, "fp32_ops", {})}
        row["quantized_compute_ops"] = report.quant.get("quantized_compute_ops")
        row["unquantized_compute_ops"] = report.quant.get("unquantized_compute_ops")
        return self.quantizer.int8_artifact(folder, quant)

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
        info = run_qat(ckpt, folder, self.data.pipeline_data(), qat_cfg, self.ctx)
        program = info["program"]
        quant = {"method": "qat", **info["config"], "checkpoint": str(ckpt.path),
                 "quant_ops": program.get("quant_ops"),
                 "quantized_compute_ops": program.get("quantized_compute_ops"),
                 "unquantized_compute_ops": program.get("unquantized_compute_ops"),
                 "onednn_fixes": program.get("onednn_fixes", []),
                 "onednn_int8_ops": row["onednn_int8_ops"]}
        row["quantized_compute_ops"] = program.get("quantized_compute_ops")
        return self.quantizer.int8_artifact(folder, quant)

    def make_qat_distill(self, folder: Path, row: dict[str, Any]) -> Artifact:
        """Quant-aware training of the input inference model, distilled from its own fp32
        outputs on the calibration inputs (compress.static_distill, or PaddleSlim ACT with
        ``distill.engine: act``)."""
        from paddleopt.compress.act import act_compress, training_batches
        from paddleopt.compress.ptq import model_feeds
        from paddleopt.compress.recipe import DistillSettings
        from paddleopt.compress.static_distill import static_distill

        cfg, recipe = self.cfg, self.cfg.distill or DistillSettings()
        source, kwargs = self.data.calibration()
        batch_nums = -(-cfg.calibration.count // cfg.calibration.batch_size)
        self.ctx.log.info("[%s] qat_distill (%s engine): %d steps at lr %g against the fp32 "
                          "model", self.ctx.stage_id, recipe.engine, recipe.steps,
                          recipe.learning_rate)
        if recipe.engine == "act":
            report = act_compress(
                self.src.path, folder, source, strategy="qat", train=recipe,
                batch_size=cfg.calibration.batch_size, batch_nums=batch_nums,
                quantizable_op_types=cfg.quantizable_op_types,
                weight_quantize_type=cfg.weight_quantize_type, onnx_format=cfg.onnx_format,
                **kwargs)
            extra: dict[str, Any] = {"engine": "paddleslim.auto_compression (qat_dis)"}
        else:
            feeds = model_feeds(self.src.path)[2]
            batches = training_batches(feeds, source, cfg.calibration.batch_size, batch_nums,
                                       kwargs.get("preprocess"))
            report = static_distill(
                self.src.path, folder, batches, **recipe_kwargs(recipe),
                quant={"weight_quantize_type": cfg.weight_quantize_type,
                       "activation_quantize_type": "moving_average_abs_max",
                       "quantize_op_types": list(cfg.quantizable_op_types),
                       "onnx_format": cfg.onnx_format}, log=self.ctx.log)
            extra = {"engine": "paddleopt static distillation (compress.static_distill)",
                     "targets": report.targets, "first_loss": report.first_loss,
                     "last_loss": report.last_loss}
        quant = {"method": "qat_distill", **extra,
                 "steps": report.steps, "batch_size": report.samples_per_step,
                 "learning_rate": recipe.learning_rate, "loss": recipe.loss,
                 "nodes": list(recipe.nodes), "train_seconds": report.seconds,
                 "weight_quantize_type": cfg.weight_quantize_type,
                 "onnx_format": cfg.onnx_format,
                 "quantizable_op_types": list(cfg.quantizable_op_types),
                 "quant_ops": report.quant.get("quant_ops"),
                 "quantized_compute_ops": report.quant.get("quantized_compute_ops"),
                 "unquantized_compute_ops": report.quant.get("unquantized_compute_ops"),
                 "onednn_fixes": report.onednn_fixes, "onednn_int8_ops": row["onednn_int8_ops"],
                 "left_fp32_op_types": getattr(self, "fp32_ops", {})}
        row["quantized_compute_ops"] = report.quant.get("quantized_compute_ops")
        row["train_seconds"] = report.seconds
        return self.quantizer.int8_artifact(folder, quant)


def recipe_kwargs(recipe: Any) -> dict[str, Any]:
    """static_distill's training arguments from a DistillSettings."""
    return {"steps": recipe.steps, "learning_rate": recipe.learning_rate, "loss": recipe.loss,
            "nodes": list(recipe.nodes), "alpha": recipe.alpha,
            "calib_batches": recipe.calib_batches, "lr_schedule": recipe.lr_schedule}


def _count(data: Any) -> str:
    """How many samples an evaluation set holds ('?' when it cannot tell)."""
    try:
        return f"{len(data[1]):,}"
    except (TypeError, IndexError):
        return "?"

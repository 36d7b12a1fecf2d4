"""The ptq stage's outputs: candidates.json/.png and the chosen artifact's manifest."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddleopt.artifact import Artifact, Manifest
from paddleopt.utils.errors import StageError

if TYPE_CHECKING:
    from paddleopt.stages._ptq.config import PTQConfig
    from paddleopt.stages._ptq.data import PTQData
    from paddleopt.stages._ptq.layers import Quantizer
    from paddleopt.stages.base import StageContext


class Recorder:
    """What one ptq run writes: candidates.json/.png, the chosen model and its manifest."""

    def __init__(self, cfg: PTQConfig, src: Artifact, out_dir: Path, ctx: StageContext,
                 data: PTQData, quantizer: Quantizer) -> None:
        self.cfg, self.src, self.out_dir, self.ctx = cfg, src, out_dir, ctx
        self.data, self.quantizer = data, quantizer

    def write_record(self, results: list[dict], baseline: dict) -> None:
        import json

        from paddleopt.report.plots import candidates_plot

        record = {"fp32": baseline, "max_accuracy_drop": self.cfg.max_accuracy_drop,
                  "search": self.cfg.search, "latency": {
                      "batch_size": self.cfg.latency.batch_size,
                      "threads": self.cfg.latency.threads},
                  "candidates": results,
                  "sensitivity": self.quantizer.sensitivity}
        (self.out_dir / "candidates.json").write_text(json.dumps(record, indent=1,
                                                                 default=str))
        if any("latency_ms" in r for r in results):
            candidates_plot(results, baseline, self.cfg.max_accuracy_drop,
                            self.out_dir / "candidates.png",
                            title=f"PTQ candidates (batch {self.cfg.latency.batch_size})")

    def finish(self, chosen: dict, made: Artifact, results: list[dict], baseline: dict
               ) -> Manifest:
        """Copy the ``chosen`` candidate's model (``made``) into the stage folder and
        complete its manifest: final accuracy, latency, int8 evidence."""
        from paddleopt.stages import _int8

        cfg, ctx = self.cfg, self.ctx
        folder = self.out_dir / chosen["folder"]
        for name in ("model.pdmodel", "model.pdiparams"):
            shutil.copy2(folder / name, self.out_dir / name)
        manifest = made.manifest
        manifest.files = {"model": "model.pdmodel", "params": "model.pdiparams",
                          "candidates": "candidates.json"}
        if (self.out_dir / "candidates.png").is_file():
            manifest.files["plot"] = "candidates.png"
        if not cfg.keep_candidates:
            shutil.rmtree(self.out_dir / "candidates", ignore_errors=True)
        art = Artifact(self.out_dir, manifest)
        final = self.data.eval_set(final=True)
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
        if final is not None and hasattr(final[1], "score"):  # fp32 agreement / user metric
            from paddleopt.metrics.reference import run_all

            x, ref = final
            int8_pred = _int8.predictor(art, cfg.latency.threads)
            scored = ref.score(run_all(int8_pred, x))
            # agreement: fp32 is the reference (1.0); a metric over labels scores fp32 too
            fp32 = 1.0 if ref.label_free else ref.score(
                run_all(self.quantizer.fp32_predictor(), x))["score"]
            metrics.update(accuracy=scored["score"], fp32_accuracy=fp32,
                           accuracy_metric=scored["metric"], eval_samples=len(ref),
                           accuracy_drop=round(fp32 - scored["score"], 6))
            manifest.checks["int8_vs_fp32"] = scored
        elif final is not None:
            x, y = final
            int8_pred = _int8.predictor(art, cfg.latency.threads)
            acc = _int8.accuracy(int8_pred, x, y)
            fp32_logits = _int8.logits(self.quantizer.fp32_predictor(), x)
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
            names = self.data.input_names()
            sample = final[0] if final is not None else None
            manifest.checks["int8"] = _int8.verify_int8(
                self.out_dir, ctx, sample, names,
                int8_ops=manifest.quantization.get("onednn_int8_ops"))
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
        # The search compared candidates on held-out samples; the chosen model is then scored
        # with fp32 on the final evaluation samples: say which numbers belong together.
        final_n = metrics.get("eval_samples")
        where = f" on {final_n:,} evaluation samples" if final_n else ""
        ctx.log.info("[%s] chosen %s: accuracy %s vs fp32 %s%s (held-out search: %s vs %s); "
                     "%.2fx the fp32 speed at batch %d", ctx.stage_id, chosen["name"],
                     pct(metrics.get("accuracy")), pct(metrics.get("fp32_accuracy")), where,
                     pct(chosen.get("accuracy")), pct(baseline.get("accuracy")),
                     chosen["speedup_vs_fp32"], cfg.latency.batch_size)
        return manifest


def pct(value: float | None) -> str:
    """An accuracy as a percentage: 0.9553 -> '95.53%'."""
    return "-" if value is None else f"{100 * value:.2f}%"


def points(value: float | None) -> str:
    """A difference of two accuracies in percentage points (a drop from 98.40% to 98.35% is
    0.05 points, not '0.05%', which would be a relative change)."""
    return "-" if value is None else f"{100 * value:.2f} points"

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

``onednn_int8_ops`` limits which op types oneDNN runs in INT8 (e.g. [fc] for ERNIE, whose
INT8 attention matmuls break in Paddle 2.6.2); the artifact records it and the Paddle
Inference backend applies it wherever the model is deployed.

The parts live in ``paddleopt.stages._ptq``: ``config`` (the typed config), ``data``
(calibration and held-out data), ``layers`` (PTQ runs, sensitivity), ``search`` (measuring
and choosing candidates) and ``record`` (candidates.json/.png and the final manifest).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paddleopt.artifact import Artifact, Manifest
from paddleopt.stages._ptq.config import (DEFAULT_OP_TYPES, SKIPPABLE, Algo, CalibrationConfig,
                                          CandidateConfig, EvaluationConfig, PTQConfig,
                                          QATFallbackConfig)
from paddleopt.stages._ptq.search import PTQRun
from paddleopt.stages.base import Stage, StageContext
from paddleopt.utils.errors import ConfigError, UserError
from paddleopt.utils.grammar import a_an

_Run = PTQRun  # the name tests and older code patch


class PTQStage(Stage):
    name = "ptq"
    Config = PTQConfig
    consumes = ("inference",)
    optional_input = True  # with model_dir it quantizes a model from outside the pipeline
    produces = "inference"
    extras = ("slim",)

    def check(self, pipeline: Any, stage_id: str) -> None:
        from paddleopt.stages._compress import (check_artifact_ref,
                                                check_model_dir_and_calibration,
                                                check_single_process, earlier_stages)

        cfg: PTQConfig = self.config
        where = f"stages.{stage_id}"
        check_single_process(cfg.qat.finetune, f"{where}.qat")
        sourced = getattr(pipeline, "source", None) is not None
        if cfg.model_dir is None and not sourced and not earlier_stages(pipeline, stage_id):
            raise ConfigError(f"{where}: ptq is the first stage but has no model_dir.",
                              "set source: {model_dir: <Paddle inference model folder>} (or "
                              "model_dir here), or put an export stage before it.")
        if sourced:
            # A source model has no training data in `data:` to calibrate or score on.
            if cfg.calibration.source == "pipeline":
                raise ConfigError(f"{where}.calibration.source: 'pipeline' means the training "
                                  f"data in data:, but this model comes from a folder.",
                                  "calibrate on its own inputs: calibration: {source: "
                                  "image_folder, path: DIR} or {source: npz, path: FILE.npz}.")
            if cfg.evaluation.source == "pipeline":
                raise ConfigError(f"{where}.evaluation.source: 'pipeline' means the training "
                                  f"data's labels, but this model comes from a folder.",
                                  "set evaluation: {source: none} (or npz with labels).")
        check_model_dir_and_calibration(cfg.model_dir, cfg.calibration, where)
        cal = cfg.calibration
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
                raise UserError(f"model_dir '{cfg.model_dir}' holds {a_an(src.kind)} artifact.",
                                "point it at a Paddle inference model folder.")
        assert src is not None
        _shapes_from_calibration(cfg, src)
        manifest = _Run(cfg, src, out_dir, ctx).execute()
        from paddleopt.artifact.naming import deploy_names

        deploy_names(out_dir, manifest, cfg.file_prefix, cfg.preprocess_file)
        return manifest


def _shapes_from_calibration(cfg: PTQConfig, src: Artifact) -> None:
    """Inputs with dynamic dimensions and no recorded shape take the calibration data's
    (one sample, batch 1): latency, INT8 probes and later conversions then run at the
    shapes the model really sees. A foreign model left without shapes is an error."""
    import numpy as np

    from paddleopt.artifact.shapes import (apply_shapes, needs_shape, require_shapes,
                                           shapes_from_arrays)

    inputs = src.manifest.io.inputs
    if not any(needs_shape(s) for s in inputs):
        return
    cal = cfg.calibration
    arrays: list[Any] = []
    if cal.source == "npz":
        with np.load(str(cal.path), allow_pickle=False) as data:
            arrays = [data[s.name][:1] for s in inputs if s.name in data.files]
    elif cal.source == "image_folder":
        pre = cal.preprocess or src.manifest.preprocess
        if pre.get("size") and len(inputs) == 1:
            arrays = [np.zeros((1, int(pre.get("channels", 3)), *pre["size"]), np.float32)]
    if len(arrays) == len(inputs):
        missing = [s for s in inputs if needs_shape(s)]
        apply_shapes(src.manifest, {k: v for k, v in shapes_from_arrays(inputs, arrays).items()
                                    if k in {s.name for s in missing}}, "calibration data")
    require_shapes(src.manifest, f"the model in '{src.path}'")


__all__ = ["DEFAULT_OP_TYPES", "SKIPPABLE", "Algo", "CalibrationConfig", "CandidateConfig",
           "EvaluationConfig", "PTQConfig", "PTQRun", "PTQStage", "QATFallbackConfig"]

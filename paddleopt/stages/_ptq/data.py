"""Where the ptq stage's tensors come from: calibration batches and labelled held-out data."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.artifact import Artifact
    from paddleopt.stages._ptq.config import PTQConfig
    from paddleopt.stages.base import StageContext


class PTQData:
    """Calibration and evaluation data of one ptq run.

    ``preprocess`` is the image preprocessing the result records: the input model's, or the
    one declared for calibration from an image folder (set by ``calibration``).
    """

    def __init__(self, cfg: PTQConfig, src: Artifact, ctx: StageContext | None) -> None:
        self.cfg, self.src, self.ctx = cfg, src, ctx
        self.data: Any = None  # the pipeline's data bundle, built on first use
        self.preprocess: dict[str, Any] = dict(src.manifest.preprocess)
        # The fp32 model's predictor (set by PTQRun): the reference of label-free accuracy.
        self.fp32_predictor: Any = None
        self._reference: Any = None

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
        if ev.source == "agreement":
            return self.agreement_set()
        if ev.source == "npz":
            feeds, labels = npz_eval(Path(str(ev.path)), self.input_names(), ev.count,
                                     raw_labels=ev.metric is not None)
            return self.labelled(feeds, labels, f"{ev.path} labels")
        data = self.pipeline_data()
        if final:
            return self.labelled(*data.eval_feeds(ev.count), "pipeline eval split")
        if hasattr(data, "val_feeds"):  # text data: padded ids of the validation texts
            return self.labelled(*data.val_feeds(ev.count), "pipeline validation split")
        from paddleopt.stages._compress import held_out

        return self.labelled(*held_out(data, ev.count or 10 ** 9), "pipeline validation split")

    def labelled(self, feeds: list[np.ndarray], labels: Any, where: str
                 ) -> tuple[list[np.ndarray], Any]:
        """With ``evaluation.metric`` the labels go to the user's function(outputs, labels)
        (``metrics.reference.Labelled``); without one they stay class ids for top-1."""
        if self.cfg.evaluation.metric is None:
            return feeds, labels
        from paddleopt.metrics.reference import Labelled

        return feeds, Labelled(labels, self.cfg.evaluation.metric, where)


    # -- label-free accuracy (evaluation.source: agreement) ----------------------------------
    def agreement_set(self) -> tuple[list[np.ndarray], Any]:
        """Held-out real inputs and a ``metrics.reference.Reference`` of the fp32 outputs on
        them, which stands where labels would."""
        if self._reference is None:
            from paddleopt.metrics.reference import Reference, run_all

            feeds, where = self.heldout_inputs()
            outputs = run_all(self.fp32_predictor(), feeds)
            self._reference = (feeds, Reference(outputs, self.cfg.evaluation.metric, where))
        return self._reference

    def heldout_inputs(self) -> tuple[list[np.ndarray], str]:
        ev, cal = self.cfg.evaluation, self.cfg.calibration
        names = self.input_names()
        count = ev.count or 10 ** 9
        if ev.path:
            path, start = Path(ev.path), 0
        elif cal.source in ("npz", "image_folder"):
            # after every sample calibration reads (whole batches: count rounded up)
            path = Path(str(cal.path))
            start = -(-cal.count // cal.batch_size) * cal.batch_size
        else:
            from paddleopt.stages._compress import held_out

            return held_out(self.pipeline_data(), count)[0], "pipeline validation split"
        if path.is_dir():
            from paddleopt.compress.ptq import IMAGE_SUFFIXES

            _, extra = self.calibration()  # sets up the image preprocess
            if "preprocess" not in extra:
                raise UserError("agreement on an image folder needs an image preprocess.",
                                "declare calibration.preprocess (size, channels, mean, std).")
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            files = files[start:start + count]
            feeds = [np.stack([extra["preprocess"](f) for f in files])] if files else []
        else:
            with np.load(path, allow_pickle=False) as data:
                missing = [n for n in names if n not in data.files]
                if missing:
                    raise UserError(f"'{path}' lacks inputs {missing} (has {data.files}).",
                                    "save one array per model input, named like the input.")
                feeds = [data[n][start:start + count] for n in names]
        if not feeds or not len(feeds[0]):
            raise UserError(
                f"no held-out inputs for the fp32 agreement: '{path}' has no samples after "
                f"the {start} used for calibration.",
                "add more samples than calibration.count, lower calibration.count, or give "
                "evaluation.path (an .npz of inputs or an image folder).")
        what = f"{path} [{start}:{start + len(feeds[0])}]"
        return [np.ascontiguousarray(f, dtype=np.float32) if f.dtype.kind == "f" else f
                for f in feeds], what


def npz_eval(path: Path, names: list[str], count: int | None, raw_labels: bool = False
             ) -> tuple[list[np.ndarray], np.ndarray]:
    """Inputs and ``labels`` of an evaluation .npz: class ids (int64, flat), or with
    ``raw_labels`` the array as saved (a user metric's labels: strings, boxes, ...)."""
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
        labels = data["labels"][:count]
        if not raw_labels:
            labels = labels.astype(np.int64).reshape(-1)
    return feeds, labels

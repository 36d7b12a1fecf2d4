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
            return npz_eval(Path(str(ev.path)), self.input_names(), ev.count)
        data = self.pipeline_data()
        if final:
            return data.eval_feeds(ev.count)
        if hasattr(data, "val_feeds"):  # text data: padded ids of the validation texts
            return data.val_feeds(ev.count)
        from paddleopt.stages._compress import held_out

        return held_out(data, ev.count or 10 ** 9)


def npz_eval(path: Path, names: list[str], count: int | None
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

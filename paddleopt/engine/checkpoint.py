"""Per-epoch training checkpoints inside a stage's (temporary) folder, for mid-stage resume."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paddleopt.utils.imports import import_paddle


class EpochCheckpoints:
    """``checkpoints/epoch_NNN.pdparams`` each epoch plus ``last.*`` and ``state.json``.

    Files are written to a temp name then renamed, so a kill mid-save leaves the previous
    ``last`` intact; ``state.json`` is written last and names the epoch that is complete.
    """

    def __init__(self, folder: Path, keep: int = 2) -> None:
        self.folder = Path(folder) / "checkpoints"
        self.keep = keep

    def save(self, epoch: int, model: Any, optimizer: Any, metrics: dict) -> None:
        paddle = import_paddle()
        if paddle.distributed.get_rank() != 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, obj in ((f"epoch_{epoch + 1:03d}.pdparams", model.state_dict()),
                          ("last.pdparams", model.state_dict()),
                          ("last.pdopt", optimizer.state_dict())):
            tmp = self.folder / f"{name}.tmp"
            paddle.save(obj, str(tmp))
            tmp.replace(self.folder / name)
        state = {"epoch": epoch + 1, "metrics": metrics}
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps(state, default=float))
        tmp.replace(self.folder / "state.json")
        for old in sorted(self.folder.glob("epoch_*.pdparams"))[:-self.keep]:
            old.unlink()

    def load_last(self) -> tuple[int, dict, dict] | None:
        """(epochs done, model state, optimizer state) or None when nothing usable."""
        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return None
        paddle = import_paddle()
        try:
            state = json.loads(state_file.read_text())
            return (int(state["epoch"]), paddle.load(str(self.folder / "last.pdparams")),
                    paddle.load(str(self.folder / "last.pdopt")))
        except Exception:  # a partial checkpoint is not worth resuming from: start over
            return None

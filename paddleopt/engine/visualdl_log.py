"""Per-epoch training scalars for VisualDL (`visualdl --logdir DIR`), when a train stage sets
``visualdl: true``. visualdl 2.5.3 is in constraints.txt (it comes with paddlenlp), so it
installs with the pinned stack; it is imported only when asked for."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError


class EpochScalars:
    """Writes every numeric metric of an epoch (train_loss, eval_accuracy, ...) as a scalar
    tagged ``<stage>/<metric>`` at step = epoch."""

    def __init__(self, logdir: Path, stage_id: str) -> None:
        try:
            from visualdl import LogWriter
        except ImportError:
            raise UserError("visualdl: true needs the visualdl package.",
                            "pip install -c constraints.txt visualdl, or set visualdl: "
                            "false.") from None
        self.stage_id = stage_id
        self.writer = LogWriter(logdir=str(logdir))

    def log(self, epoch: int, metrics: dict[str, Any], lr: float | None = None) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                self.writer.add_scalar(f"{self.stage_id}/{key}", float(value), epoch)
        if lr is not None:
            self.writer.add_scalar(f"{self.stage_id}/lr", float(lr), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

"""A finished stage whose fingerprint changed is never replaced silently: `plan` says which
stages `--resume` reuses and what changed for the others; the run warns before replacing."""
from __future__ import annotations

import logging

from conftest import tiny_config
from paddleopt import api


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_plan_and_resume_say_what_changed(tmp_path):
    config = tiny_config(tmp_path / "work", evaluate={"targets": []})
    config["stages"]["train"]["epochs"] = 1
    api.run(config, evaluate=False)

    status = api.reuse_status(api.plan(config))
    assert status == {"train": "reuse", "export": "reuse"}
    text = api.plan(config).describe(reuse=status)
    assert "01_train" in text and "reuse" in text

    changed = api.plan(config, ["train.epochs=2", "data.batch_size=16"])
    status = api.reuse_status(changed)
    assert status["train"].startswith("run: ")
    assert "stages.train.epochs: 1 -> 2" in status["train"]
    assert "data.batch_size: 32 -> 16" in status["train"]
    assert status["export"] == "run: its input (train) runs first"

    handler = _Lines()
    logger = logging.getLogger("paddleopt")
    logger.addHandler(handler)
    try:
        api.run(config, ["train.epochs=2"], resume=True, evaluate=False)
    finally:
        logger.removeHandler(handler)
    warned = [line for line in handler.lines if "made with different settings" in line]
    assert len(warned) == 2
    assert warned[0].startswith("[train]") and "stages.train.epochs: 1 -> 2" in warned[0]
    assert warned[1].startswith("[export]") and "input artifact differs" in warned[1]

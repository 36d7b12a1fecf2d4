"""Resume is exact: an interrupted and resumed run ends with bit-identical weights to an
uninterrupted one (CPU), its manifest covers every epoch, and corrupted files it would reuse
are detected instead of silently retraining or silently reused.

The interruption is simulated in-process (KeyboardInterrupt from the checkpoint hook, which
the pipeline lets through like a kill); tests/e2e/test_resume.py kills a real process.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_config
from paddleopt.utils.errors import UserError

EPOCHS = 3


def config(work_dir):
    cfg = tiny_config(work_dir)
    cfg["stages"]["train"]["epochs"] = EPOCHS
    cfg["stages"]["train"]["optimizer"] = {"name": "momentum", "lr": 0.05}
    cfg["stages"]["train"]["schedule"] = {"name": "cosine", "warmup_epochs": 0.5}
    cfg["evaluate"]["targets"] = []
    return cfg


def weights(folder) -> dict[str, np.ndarray]:
    from paddleopt.utils.imports import import_paddle

    state = import_paddle().load(str(folder / "model.pdparams"))
    return {k: np.asarray(v) for k, v in state.items()}


def interrupt_at(monkeypatch, epoch_index: int, before_save: bool) -> None:
    """Raise KeyboardInterrupt at the end of epoch ``epoch_index`` (0-based), before or
    after its checkpoint is written."""
    from paddleopt.engine import checkpoint

    original = checkpoint.EpochCheckpoints.save

    def save(self, epoch, *args, **kwargs):
        if epoch == epoch_index and before_save:
            raise KeyboardInterrupt
        original(self, epoch, *args, **kwargs)
        if epoch == epoch_index:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.EpochCheckpoints, "save", save)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from paddleopt import api

    work = tmp_path_factory.mktemp("straight")
    api.run(config(work), until="train", evaluate=False)
    return work / "01_train"


@pytest.mark.parametrize("epoch_index, before_save, label", [
    (0, False, "killed right after epoch 1"),
    (1, True, "killed late in epoch 2, before its checkpoint"),
])
def test_resumed_weights_are_bit_identical(uninterrupted, tmp_path, monkeypatch,
                                           epoch_index, before_save, label):
    from paddleopt import api

    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch_index, before_save)
        with pytest.raises(KeyboardInterrupt):
            api.run(config(tmp_path), until="train", evaluate=False)
    assert not (tmp_path / "01_train").exists()
    api.run(config(tmp_path), until="train", evaluate=False, resume=True)

    expected, got = weights(uninterrupted), weights(tmp_path / "01_train")
    assert expected.keys() == got.keys()
    different = [k for k in expected if not np.array_equal(expected[k], got[k])]
    assert not different, f"{label}: weights differ in {different}"

    metrics = json.loads((tmp_path / "01_train" / "manifest.json").read_text())["metrics"]
    straight = json.loads((uninterrupted / "manifest.json").read_text())["metrics"]
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, EPOCHS + 1))
    assert [h["train_loss"] for h in metrics["history"]] == \
        [h["train_loss"] for h in straight["history"]]
    assert metrics["accuracy"] == straight["accuracy"]
    # train_seconds counts the epochs before the interruption too
    first_part = sum(h["train_seconds"] for h in metrics["history"][:epoch_index + 1])
    assert metrics["train_seconds"] >= round(first_part, 1) > 0


def test_truncated_checkpoint_is_reported_not_retrained(tmp_path, monkeypatch):
    from paddleopt import api

    with monkeypatch.context() as patch:
        interrupt_at(patch, 0, before_save=False)
        with pytest.raises(KeyboardInterrupt):
            api.run(config(tmp_path), until="train", evaluate=False)
    ckpt = tmp_path / ".01_train.tmp" / "checkpoints" / "epoch_001.pdparams"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated") as err:
        api.run(config(tmp_path), until="train", evaluate=False, resume=True)
    assert "epoch_001.pdparams" in err.value.message and "without --resume" in err.value.fix


def test_truncated_finished_output_makes_the_stage_run_again(tmp_path):
    import logging

    from paddleopt import api

    cfg = tiny_config(tmp_path)
    cfg["evaluate"]["targets"] = []
    api.run(cfg, evaluate=False)
    params = tmp_path / "01_train" / "model.pdparams"
    good = weights(tmp_path / "01_train")
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("paddleopt").addHandler(handler)
    try:
        result = api.run(cfg, evaluate=False, resume=True)
    finally:
        logging.getLogger("paddleopt").removeHandler(handler)
    assert "train" not in result.skipped
    assert any("model.pdparams" in m and "Running the stage again" in m for m in seen)
    again = weights(tmp_path / "01_train")  # retrained: deterministic, the same weights
    assert all(np.array_equal(good[k], again[k]) for k in good)
    assert "export" not in result.skipped  # its parent changed


def test_checkpoint_of_an_older_format_is_explained(tmp_path):
    from paddleopt.engine.checkpoint import EpochCheckpoints

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "state.json").write_text('{"epoch": 1, "metrics": {}}')
    with pytest.raises(UserError, match="older paddleopt"):
        EpochCheckpoints(tmp_path).load_last(model=None)

"""train: visualdl: true writes per-epoch scalars VisualDL reads back; null keeps the resume
fingerprint of work dirs made before the key existed."""
from __future__ import annotations

from conftest import tiny_config
from paddleopt import api


def test_train_writes_visualdl_scalars(tmp_path):
    config = tiny_config(tmp_path / "work", evaluate={"targets": []})
    config["stages"] = {"train": {**config["stages"]["train"], "visualdl": True}}
    result = api.run(config, evaluate=False)
    logdir = result.artifacts["train"].path / "visualdl"
    records = list(logdir.glob("vdlrecords.*.log"))
    assert len(records) == 1 and records[0].stat().st_size > 0

    from visualdl import LogReader

    reader = LogReader(file_path=str(records[0]))
    losses = reader.get_data("scalar", "train/train_loss")
    assert [r.id for r in losses] == [1, 2]  # one point per epoch (tiny: 2 epochs)
    history = result.artifacts["train"].manifest.metrics["history"]
    assert [round(r.value, 4) for r in losses] == [round(h["train_loss"], 4) for h in history]
    assert reader.get_data("scalar", "train/eval_accuracy")


def test_visualdl_null_is_not_in_the_fingerprint(tmp_path):
    from paddleopt.stages.pipeline import fingerprint

    config = tiny_config(tmp_path / "work")
    unset, null = api.plan(config), api.plan(config, ["train.visualdl=null"])
    on = api.plan(config, ["train.visualdl=true"])
    fps = [fingerprint(p.steps[0], None, p.config) for p in (unset, null, on)]
    assert fps[0] == fps[1] != fps[2]

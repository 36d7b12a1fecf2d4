"""plan(): kind chain, `input:` branching, unknown stages, targets."""
from __future__ import annotations

import pytest

from conftest import tiny_config
from paddleopt.stages.pipeline import plan
from paddleopt.utils.errors import ConfigError


def test_chain_mismatch_is_reported_before_any_work(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"export": {}, "train": {}}
    with pytest.raises(ConfigError, match="export.*needs a checkpoint"):
        plan(cfg)
    cfg["stages"] = {"train": {}, "export": {}, "again": {"type": "export"}}
    with pytest.raises(ConfigError, match="consumes checkpoint, but the stage before it "
                                          "produces inference"):
        plan(cfg)
    assert not tmp_path.joinpath("01_train").exists()


def test_input_branches_from_an_earlier_stage(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["stages"] = {"train": {}, "export": {}, "to_onnx": {},
                     "lite": {"type": "to_lite", "input": "export"}}
    cfg["evaluate"]["targets"] = []
    p = plan(cfg)
    assert [s.input_id for s in p.steps] == [None, None, None, "export"]
    cfg["stages"]["lite"]["input"] = "nope"
    with pytest.raises(ConfigError, match="'nope' is not an earlier stage"):
        plan(cfg)


def test_target_must_fit_an_artifact(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["evaluate"]["targets"] = [{"name": "ort", "backend": "onnxruntime"}]
    with pytest.raises(ConfigError, match="no stage produces an onnx artifact"):
        plan(cfg)


def test_second_run_on_the_same_work_dir_is_refused(tmp_path):
    from paddleopt.stages.pipeline import _lock_work_dir, run
    from paddleopt.utils.errors import UserError

    tmp_path.mkdir(exist_ok=True)
    held = _lock_work_dir(tmp_path)  # as if another run were in progress
    try:
        with pytest.raises(UserError, match="another paddleopt run is using"):
            run(plan(tiny_config(tmp_path)))
    finally:
        held.close()
    assert not (tmp_path / "01_train").exists()

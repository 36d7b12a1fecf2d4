"""Optimizers, schedules, seeds, AMP honesty and the training loop on tiny data."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.config.schema import parse
from paddleopt.engine.config import ScheduleConfig, TrainConfig
from paddleopt.utils.imports import import_paddle


def tiny_loader(n=64, batch=16, seed=0):
    paddle = import_paddle()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 8, 8)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int64")

    class DS(paddle.io.Dataset):
        def __getitem__(self, i):
            return x[i], y[i]

        def __len__(self):
            return n

    return paddle.io.DataLoader(DS(), batch_size=batch, shuffle=False)


def tiny_model(seed=0):
    from paddleopt.models.vision import lenet
    from paddleopt.utils.seed import seed_everything

    seed_everything(seed)
    return lenet(num_classes=2)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "adadelta", "adam", "adamw"])
def test_every_optimizer_lowers_the_loss(name):
    from paddleopt.engine.loop import fit

    lr = {"adadelta": 1.0, "sgd": 0.1, "momentum": 0.05, "adagrad": 0.05}.get(name, 0.01)
    cfg = parse(TrainConfig, {"epochs": 4, "optimizer": {"name": name, "lr": lr,
                                                         "weight_decay": 1e-4},
                              "schedule": {"name": "constant"}, "progress_bar": False})
    result = fit(tiny_model(), tiny_loader(), None, cfg)
    losses = [h["train_loss"] for h in result["history"]]
    assert losses[-1] < losses[0], (name, losses)


@pytest.mark.parametrize("sched, expect_first, expect_last", [
    ({"name": "cosine"}, 0.1, 0.0),
    ({"name": "step", "step_size": 1, "gamma": 0.5}, 0.1, 0.1 * 0.5 ** 3),
    ({"name": "multistep", "milestones": [2], "gamma": 0.1}, 0.1, 0.01),
    ({"name": "constant", "warmup_epochs": 1.0, "warmup_start_lr": 0.0}, 0.0, 0.1),
])
def test_schedules_step_per_batch(sched, expect_first, expect_last):
    from paddleopt.engine.optim import build_schedule

    s = build_schedule(parse(ScheduleConfig, sched), 0.1, epochs=4, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(s() if callable(s) else s)
        s.step()
    assert lrs[0] == pytest.approx(expect_first, abs=1e-6)
    assert lrs[-1] == pytest.approx(expect_last, abs=2e-3)


def test_same_seed_same_weights():
    from paddleopt.engine.loop import fit

    cfg = parse(TrainConfig, {"epochs": 1, "progress_bar": False})
    a, b = tiny_model(3), tiny_model(3)
    fit(a, tiny_loader(), None, cfg)
    fit(b, tiny_loader(), None, cfg)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va.numpy(), vb.numpy())


def test_amp_on_cpu_is_reported_as_not_effective():
    import logging

    from paddleopt.engine.loop import fit

    class Collect(logging.Handler):
        records: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record.getMessage())

    log = logging.getLogger("paddleopt.test_amp")
    handler = Collect()
    log.addHandler(handler)
    cfg = parse(TrainConfig, {"epochs": 1, "amp": {"enabled": True}, "progress_bar": False})
    result = fit(tiny_model(), tiny_loader(), None, cfg, log=log)
    log.removeHandler(handler)
    assert result["amp_effective"] is False
    assert any("no effect on CPU" in m for m in handler.records)


def test_epoch_checkpoints_and_resume_state(tmp_path):
    from paddleopt.engine.checkpoint import EpochCheckpoints
    from paddleopt.engine.loop import fit

    ckpt = EpochCheckpoints(tmp_path, keep=2)
    model = tiny_model()
    cfg = parse(TrainConfig, {"epochs": 3, "progress_bar": False})
    fit(model, tiny_loader(), tiny_loader(), cfg,
        on_epoch_end=lambda e, m, opt, s: ckpt.save(e, model, opt, m))
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == [f"epoch_{e:03d}.{part}" for e in (2, 3)
                     for part in ("json", "pdopt", "pdparams", "rng")] + ["state.json"]
    last = ckpt.load_last(model)
    assert last["epoch"] == 3 and set(last["model"]) == set(model.state_dict())
    assert last["optimizer"] and set(last["rng"]) == {"python", "numpy", "paddle"}


def test_train_stage_config_rejects_bad_values():
    from paddleopt.stages.train import TrainStageConfig
    from paddleopt.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        parse(TrainStageConfig, {"epochs": 0})
    with pytest.raises(ConfigError, match="not allowed"):
        parse(TrainStageConfig, {"optimizer": {"name": "lamb"}})

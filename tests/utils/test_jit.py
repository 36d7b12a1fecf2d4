"""save_layer: a failed dy2static trace must not poison later saves in the same process."""
from __future__ import annotations

import pytest

from paddleopt.utils.imports import import_paddle
from paddleopt.utils.jit import clear_trace_leftovers, save_layer

paddle = import_paddle()
nn = paddle.nn


class Untraceable(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(1, 4, 3)

    def forward(self, x):
        self.conv(x)  # records the conv parameters, then the trace fails
        raise ValueError("this model cannot be traced")


class Small(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(1, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean(axis=[2, 3]))


def _recorded() -> int:
    from paddle.jit.dy2static.program_translator import ProgramTranslator

    return len(ProgramTranslator.get_instance()._params_recorder.params_dict)


SPEC = [paddle.static.InputSpec([None, 1, 8, 8], "float32", "x")]


def test_failed_trace_leaves_nothing_behind(tmp_path):
    # Plain paddle.jit.save leaves the failed trace's parameters in the global recorder:
    # a later program at the same address would pick them up (KeyError in jit.save).
    with pytest.raises(ValueError, match="cannot be traced"):
        paddle.jit.save(Untraceable(), str(tmp_path / "bad"), input_spec=SPEC)
    assert _recorded() == 1
    clear_trace_leftovers()
    assert _recorded() == 0
    with pytest.raises(ValueError, match="cannot be traced"):
        save_layer(Untraceable(), str(tmp_path / "bad2"), input_spec=SPEC)
    assert _recorded() == 0


def test_save_layer_round_trip(tmp_path):
    paddle.seed(0)
    model = Small()
    model.eval()
    save_layer(model, str(tmp_path / "model"), input_spec=SPEC)
    x = paddle.rand([2, 1, 8, 8])
    loaded = paddle.jit.load(str(tmp_path / "model"))
    assert float((loaded(x) - model(x)).abs().max()) < 1e-5

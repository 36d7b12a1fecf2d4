"""Unstructured magnitude sparsity reaches its target and leaves a plain Layer behind."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.compress.sparsity import GMPPhases, Sparsifier, measure_sparsity
from paddleopt.utils.errors import UserError

from .conftest import IMAGE_SPEC, TinyCNN, input_spec, nn, paddle
from paddleopt.utils.jit import save_layer


def _finetune(model, sparsifier: Sparsifier, steps: int, x, y, record=None) -> None:
    opt = paddle.optimizer.Adam(1e-3, parameters=model.parameters())
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        if record is not None:
            record.append(sparsifier.current_ratio)


@pytest.fixture
def batch(digits):
    return paddle.to_tensor(digits["x_train"][:32]), paddle.to_tensor(digits["y_train"][:32])


def test_dense_model_has_no_sparsity(trained_cnn):
    s = measure_sparsity(trained_cnn)
    assert s["sparsity"] == 0.0 and set(s["per_param"]) == {
        "conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"}


def test_constant_ratio_reached_and_hooks_removed(trained_cnn, batch, tmp_path):
    sp = Sparsifier(trained_cnn, 0.6).attach()  # steps on every training forward
    _finetune(trained_cnn, sp, 8, *batch)
    result = sp.finalize()
    assert abs(result["sparsity"] - 0.6) < 0.01, result
    # biases and BatchNorm stay dense, so the overall figure is a bit lower
    assert 0.5 < result["overall_sparsity"] < result["sparsity"]
    assert not list(trained_cnn.named_buffers())
    assert all(not layer._forward_pre_hooks
               for layer in trained_cnn.sublayers(include_self=True))
    # export traces no mask multiplications; zeros survive in the saved weights
    # Save a fresh copy: dy2static caches programs per Layer instance with parameter names
    # from earlier traces, which made this round trip order-dependent (KeyError on a name).
    fresh = TinyCNN()
    fresh.set_state_dict(trained_cnn.state_dict())
    fresh.eval()
    save_layer(fresh, str(tmp_path / "model"), input_spec=input_spec(IMAGE_SPEC))
    loaded = paddle.jit.load(str(tmp_path / "model"))
    w = [p.numpy() for p in loaded.parameters() if p.numpy().ndim == 4]
    assert sum((a == 0).sum() for a in w) / sum(a.size for a in w) > 0.5


def test_gmp_ramps_up_to_target(batch):
    paddle.seed(0)
    model = TinyCNN()
    sp = Sparsifier(model, 0.8, schedule="gmp", total_steps=40,
                    gmp=GMPPhases(stable=0.3, pruning=0.6, initial_ratio=0.2)).attach()
    ratios: list[float] = []
    _finetune(model, sp, 40, *batch, record=ratios)
    assert ratios[0] == 0.0  # stable phase: dense
    assert any(0.2 <= r < 0.8 for r in ratios)  # ramping
    assert ratios[-1] == pytest.approx(0.8)
    assert ratios == sorted(ratios)
    result = sp.finalize()
    assert abs(result["sparsity"] - 0.8) < 0.01


def test_local_sparsity_applies_per_layer(batch):
    paddle.seed(0)
    model = TinyCNN()
    sp = Sparsifier(model, 0.5, local=True)
    _finetune(model, sp, 1, *batch)
    sp.step()
    per = sp.finalize()["per_param"]
    assert all(abs(v - 0.5) < 0.06 for v in per.values()), per


@pytest.mark.parametrize("kwargs, match", [
    ({"ratio": 1.0}, r"ratio must be in \[0, 1\)"),
    ({"ratio": -0.1}, r"ratio must be in \[0, 1\)"),
    ({"ratio": 0.5, "schedule": "gmp"}, "needs total_steps"),
    ({"ratio": 0.5, "schedule": "gmp", "total_steps": 10}, "at least 11"),
    ({"ratio": 0.5, "schedule": "cubic"}, "constant or gmp"),
])
def test_bad_arguments_raise_user_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        Sparsifier(TinyCNN(), **kwargs)


def test_measure_counts_exact_zeros():
    model = TinyCNN(bn=False)
    w = model.conv2.weight
    arr = np.ones(w.shape, "float32")
    arr.reshape(-1)[: arr.size // 4] = 0
    w.set_value(arr)
    assert measure_sparsity(model)["per_param"]["conv2.weight"] == pytest.approx(0.25)


def test_gmp_through_engine_fit(digits):
    """The real training loop drives the schedule through after_step."""
    from paddleopt.engine.config import TrainConfig
    from paddleopt.engine.loop import fit

    paddle.seed(0)
    model = TinyCNN()
    data = paddle.io.TensorDataset([paddle.to_tensor(digits["x_train"][:384]),
                                    paddle.to_tensor(digits["y_train"][:384])])
    loader = paddle.io.DataLoader(data, batch_size=16)  # 24 updates
    sp = Sparsifier(model, 0.7, schedule="gmp", total_steps=24, gmp=GMPPhases(pruning=0.5))
    fit(model, loader, None, TrainConfig(epochs=1, progress_bar=False),
        after_step=sp.after_step)
    assert sp.current_ratio == pytest.approx(0.7)
    assert abs(sp.finalize()["sparsity"] - 0.7) < 0.01

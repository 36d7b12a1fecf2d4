"""Distillation losses: zero when student == teacher, positive otherwise, and trainable."""
from __future__ import annotations

import numpy as np
import pytest

from paddleopt.compress.distill import Distiller, distill_loss, soft_kl_loss
from paddleopt.utils.errors import UserError

from .conftest import TinyCNN, nn, paddle


def _np_kl(s: np.ndarray, t: np.ndarray, temp: float) -> float:
    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    ps, pt = softmax(s / temp), softmax(t / temp)
    return float((pt * (np.log(pt) - np.log(ps))).sum(-1).mean() * temp * temp)


def test_soft_kl_zero_for_identical_and_matches_numpy():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 10)).astype("float32"), rng.normal(size=(6, 10)).astype("float32")
    assert float(soft_kl_loss(paddle.to_tensor(t), paddle.to_tensor(t), 4.0)) == \
        pytest.approx(0.0, abs=1e-6)
    for temp in (1.0, 4.0):
        got = float(soft_kl_loss(paddle.to_tensor(s), paddle.to_tensor(t), temp))
        assert got > 0
        assert got == pytest.approx(_np_kl(s, t, temp), rel=1e-4)  # includes the T^2 factor


def test_alpha_mixes_hard_label_cross_entropy():
    rng = np.random.default_rng(1)
    s = paddle.to_tensor(rng.normal(size=(4, 5)).astype("float32"))
    t = paddle.to_tensor(rng.normal(size=(4, 5)).astype("float32"))
    y = paddle.to_tensor(np.array([0, 1, 2, 3], "int64"))
    soft = float(soft_kl_loss(s, t, 2.0))
    ce = float(nn.functional.cross_entropy(s, y))
    assert float(distill_loss(s, t, y, temperature=2.0, alpha=0.3)) == \
        pytest.approx(0.3 * soft + 0.7 * ce, rel=1e-5)
    assert float(distill_loss(s, t, temperature=2.0, alpha=1.0)) == pytest.approx(soft, rel=1e-5)


def test_distiller_zero_when_student_is_teacher():
    paddle.seed(0)
    teacher = TinyCNN(bn=False)  # no BatchNorm: train/eval forwards are identical
    student = TinyCNN(bn=False)
    student.set_state_dict(teacher.state_dict())
    x = paddle.rand([4, 1, 8, 8])
    d = Distiller(student, teacher, alpha=1.0, feature_pairs={"conv2": "conv2"},
                  sample_inputs=[x])
    assert len(d.adapters) == 0  # same widths: no adapter
    student.train()
    logits = student(x)
    assert float(d.feature_loss()) == pytest.approx(0.0, abs=1e-8)
    assert float(d.loss(logits)) == pytest.approx(0.0, abs=1e-6)  # logits + features
    d.remove()


def test_distiller_trains_student_with_feature_adapters(digits):
    paddle.seed(0)
    teacher, student = TinyCNN(), TinyCNN(channels=(8, 16, 16))
    x = paddle.to_tensor(digits["x_train"][:64])
    y = paddle.to_tensor(digits["y_train"][:64])
    d = Distiller(student, teacher, temperature=4.0, alpha=0.7,
                  feature_pairs={"conv2": "conv2", "bn3": "bn3"}, sample_inputs=[x[:2]])
    assert set(d.adapters.keys()) == {"conv2", "bn3"}  # 16 -> 32 channels: 1x1 conv adapters
    params = d.parameters()
    assert len(params) == len(student.parameters()) + 4  # 2 adapters x (weight, bias)
    opt = paddle.optimizer.Adam(1e-2, parameters=params)
    student.train()
    losses = []
    for _ in range(15):
        logits = student(x)
        loss = d.loss_fn(logits, y, [x])
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[0] > 0 and losses[-1] < 0.7 * losses[0]
    d.remove()
    assert not student._forward_post_hooks
    assert not any("adapter" in k for k in student.state_dict())


def test_eval_forward_runs_teacher_from_inputs():
    paddle.seed(0)
    teacher, student = TinyCNN(), TinyCNN()
    d = Distiller(student, teacher, alpha=1.0)
    x = paddle.rand([3, 1, 8, 8])
    student.train()
    student(paddle.rand([5, 1, 8, 8]))  # a training forward caches teacher logits for 5
    student.eval()
    logits = student(x)  # eval forward: the cache is dropped, never reused
    with pytest.raises(RuntimeError, match="pass inputs"):
        d.loss(logits)
    expected = float(soft_kl_loss(logits, teacher(x), 4.0))
    assert float(d.loss_fn(logits, None, [x])) == pytest.approx(expected, rel=1e-5)
    d.remove()


def test_distiller_through_engine_fit(digits):
    """The real training loop: loss_fn(logits, labels, inputs) and parameters=."""
    from paddleopt.engine.config import TrainConfig
    from paddleopt.engine.loop import fit

    paddle.seed(0)
    teacher, student = TinyCNN(), TinyCNN(channels=(8, 16, 16))
    data = paddle.io.TensorDataset([paddle.to_tensor(digits["x_train"][:128]),
                                    paddle.to_tensor(digits["y_train"][:128])])
    loader = paddle.io.DataLoader(data, batch_size=32)
    d = Distiller(student, teacher, alpha=0.5, feature_pairs={"conv3": "conv3"},
                  sample_inputs=[paddle.to_tensor(digits["x_train"][:2])])
    before = d.adapters["conv3"].weight.numpy().copy()
    cfg = TrainConfig(epochs=1, progress_bar=False)
    result = fit(student, loader, loader, cfg, loss_fn=d.loss_fn, parameters=d.parameters())
    assert np.isfinite(result["final"]["train_loss"])
    assert not np.allclose(d.adapters["conv3"].weight.numpy(), before)  # adapters trained
    d.remove()


@pytest.mark.parametrize("kwargs, match", [
    ({"feature_pairs": {"nope": "conv1"}}, "student has no sublayer 'nope'"),
    ({"feature_pairs": {"conv1": "nope"}}, "teacher has no sublayer 'nope'"),
    ({"feature_pairs": {"conv1": "conv1"}, "sample_inputs": None}, "needs sample_inputs"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
])
def test_bad_arguments_raise_user_error(kwargs, match):
    args = {"sample_inputs": [paddle.rand([1, 1, 8, 8])], **kwargs}
    with pytest.raises(UserError, match=match):
        Distiller(TinyCNN(), TinyCNN(), **args)


def test_hard_labels_required_when_alpha_below_one():
    t = paddle.rand([2, 3])
    with pytest.raises(UserError, match="needs labels"):
        distill_loss(t, t, None, alpha=0.5)

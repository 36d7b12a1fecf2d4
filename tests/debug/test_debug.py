"""The accuracy debugger on tiny models: a deliberately broken layer is named first, and the
verified fp32 fallback recovers the agreement INT8 lost."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paddleopt.artifact import Artifact, IOSpec, Manifest, TensorSpec
from paddleopt.debug import debug
from paddleopt.utils.imports import import_paddle
from paddleopt.utils.jit import save_layer

paddle = import_paddle()
IO = IOSpec(inputs=[TensorSpec("x", [-1, 3, 16, 16])], outputs=[TensorSpec("out", [-1, 10])])


class ThreeConv(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.c2 = paddle.nn.Conv2D(8, 8, 3, padding=1)
        self.c3 = paddle.nn.Conv2D(8, 8, 3, padding=1)
        self.pool = paddle.nn.AvgPool2D(4)
        self.fc = paddle.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = paddle.nn.functional.relu(self.c1(x))
        x = paddle.nn.functional.relu(self.c2(x))
        x = self.c3(x)  # signed features: the class varies with the input
        return self.fc(paddle.flatten(self.pool(x), 1))


def three_conv() -> ThreeConv:
    """A ThreeConv whose parameters are named conv2d_0/1/2.w_0 whatever ran before: Paddle
    numbers parameter names per process, and the assertions name layers."""
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        net = ThreeConv()
    net.eval()
    return net


def _save(net: ThreeConv, folder: Path) -> Artifact:
    save_layer(net, str(folder / "model"),
               input_spec=[paddle.static.InputSpec([-1, 3, 16, 16], "float32", "x")])
    manifest = Manifest(kind="inference", files={"model": "model.pdmodel",
                                                 "params": "model.pdiparams"}, io=IO)
    manifest.save(folder)
    return Artifact.open(folder)


def _int8(fp32: Artifact, folder: Path, feeds: np.ndarray) -> Artifact:
    from paddleopt.compress.ptq import quantize_post_static

    quantize_post_static(fp32.path, folder, [[feeds[i:i + 16]] for i in range(0, 64, 16)],
                         algo="abs_max", batch_nums=4)
    manifest = fp32.manifest.derive(kind="inference", precision="int8",
                                    quantization={"method": "ptq", "algo": "abs_max"},
                                    files={"model": "model.pdmodel",
                                           "params": "model.pdiparams"})
    manifest.save(folder)
    return Artifact.open(folder)


@pytest.fixture(scope="module")
def feeds() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((64, 3, 16, 16)).astype("float32")


def test_a_perturbed_layer_is_named_first(tmp_path: Path, feeds: np.ndarray) -> None:
    net = three_conv()
    a = _save(net, tmp_path / "a")
    w = net.c2.weight.numpy()
    net.c2.weight.set_value(w + np.random.default_rng(1).standard_normal(w.shape)
                            .astype("float32") * float(np.abs(w).mean()))
    b = _save(net, tmp_path / "b")
    report = debug(a, b, [feeds], out_dir=tmp_path / "out")
    assert report.jump is not None and report.jump.weight == "conv2d_1.w_0"
    assert report.jump.input_error == 0.0 and report.jump.relative_error > 0.3
    assert report.layers[0].relative_error == 0.0  # conv2d_0 untouched
    assert report.fallback is None  # fp32 vs fp32: nothing to quantize
    assert (tmp_path / "out" / "debug.png").stat().st_size > 1000


def test_int8_outlier_layer_fallback_recovers(tmp_path: Path, feeds: np.ndarray, cli) -> None:
    net = three_conv()
    # conv2d_0's channel 0 is 300x larger than the others and conv2d_1 ignores it: one
    # per-tensor INT8 scale for conv2d_1's input wipes out the channels that carry the signal.
    w1 = net.c1.weight.numpy()
    w1[0] *= 300
    net.c1.weight.set_value(w1)
    w2 = net.c2.weight.numpy()
    w2[:, 0] = 0
    net.c2.weight.set_value(w2)
    net.fc.bias.set_value(np.zeros([10], "float32"))  # the class follows the features
    a = _save(net, tmp_path / "a")
    b = _int8(a, tmp_path / "b", feeds)
    np.savez(tmp_path / "x.npz", x=feeds[:32])
    np.savez(tmp_path / "held.npz", x=feeds[32:])  # verified on inputs it never searched on
    res = cli("debug", str(a.path), str(b.path), "--inputs", str(tmp_path / "x.npz"),
              "--holdout", str(tmp_path / "held.npz"), "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "first jump: op #5 conv2d -> conv2d_1.tmp_0 (weight conv2d_1.w_0)" in res.stdout
    assert "-o ptq.skip_tensors=[conv2d_1.w_0]" in res.stdout, res.stdout
    report = json.loads((tmp_path / "out" / "debug.json").read_text())
    fb = report["fallback"]
    assert fb["given_agreement"] < 0.8 and fb["baseline_agreement"] < 0.8, fb
    assert fb["skip_tensors"] == ["conv2d_1.w_0"] and fb["recovered"] >= 0.8, fb
    assert fb["verified"] and fb["holdout_samples"] == 32 and fb["agreement"] > 0.95, fb
    # fp32 alone, conv2d_1 wins everything back; the other convolutions nothing
    alone = {s["skip_tensors"][0]: s["agreement"] for s in fb["steps"] if s["what"] == "layer"}
    assert alone["conv2d_1.w_0"] > 0.95 > 0.5 > max(alone["conv2d_0.w_0"], alone["conv2d_2.w_0"])
    # conv2d_1's own INT8 error (its input's small channels wiped out) stands out
    qerr = {r["weight"]: r["quant_error"] for r in report["layers"] if r["op"] == "conv2d"}
    assert qerr["conv2d_1.w_0"] > 0.5 > 0.1 > max(qerr["conv2d_0.w_0"], qerr["conv2d_2.w_0"])


def test_bad_input_is_a_user_error(tmp_path: Path, cli) -> None:
    res = cli("debug", str(tmp_path), str(tmp_path), "--inputs", "x.npz", "--count", "0")
    assert res.returncode == 2 and "count is 0" in res.stderr and "Traceback" not in res.stderr


def test_onnx_conversion_with_a_perturbed_op(tmp_path: Path, feeds: np.ndarray) -> None:
    """PI vs ONNX Runtime: the ONNX graph's node outputs carry the Paddle names, so a
    conversion that got one conv wrong is pinned to that conv."""
    import onnx
    from onnx import numpy_helper

    from paddleopt.export.onnx_convert import convert

    net = three_conv()
    a = _save(net, tmp_path / "a")
    out = tmp_path / "onnx"
    out.mkdir()
    convert(a.file("model"), a.file("params"), out / "model.onnx")
    a.manifest.derive(kind="onnx", files={"model": "model.onnx"}).save(out)
    good = debug(a, Artifact.open(out), [feeds[:16]])
    assert good.jump is None and good.layers[-1].relative_error < 1e-5, good.describe()

    model = onnx.load(str(out / "model.onnx"))
    node = next(n for n in model.graph.node if list(n.output) == ["conv2d_2.w_0"])
    w = numpy_helper.to_array(node.attribute[0].t)
    node.attribute[0].t.CopyFrom(numpy_helper.from_array(w * 1.5, "conv2d_2.w_0"))
    onnx.save(model, str(out / "model.onnx"))
    bad = debug(a, Artifact.open(out), [feeds[:16]])
    assert bad.jump is not None and bad.jump.tensor == "conv2d_2.tmp_0", bad.describe()
    assert bad.fallback is None


def test_matmul_outlier_keeps_the_linear_layers_fp32(tmp_path: Path, feeds: np.ndarray) -> None:
    """When the damage is in a matmul (which oneDNN fuses into an INT8 fc whatever the skip
    list says), skipping convs cannot help: the search keeps the fc type fp32 instead
    (onednn_int8_ops without fc), verified on held-out inputs."""
    net = three_conv()
    w3 = net.c3.weight.numpy()
    w3[0] *= 300  # fc's input gets an outlier channel that fc ignores
    net.c3.weight.set_value(w3)
    wf = net.fc.weight.numpy()
    wf[:16] = 0  # the 16 pooled features of channel 0
    net.fc.weight.set_value(wf)
    net.fc.bias.set_value(np.zeros([10], "float32"))
    a = _save(net, tmp_path / "a")
    b = _int8(a, tmp_path / "b", feeds)
    report = debug(a, b, [feeds[:32]], holdout=[feeds[32:]])
    fb = report.fallback
    assert fb is not None and fb.baseline_agreement < 0.8, report.describe()
    assert fb.fp32_types == ["linear layers (fc)"] and not fb.skip_tensors, report.describe()
    assert "fc" not in fb.onednn_int8_ops and "conv2d" in fb.onednn_int8_ops
    assert fb.verified and fb.recovered >= 0.8, report.describe()
    assert "-o ptq.onednn_int8_ops=[conv2d," in report.describe()

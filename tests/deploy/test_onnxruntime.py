"""ONNX Runtime backend: parity with Paddle Inference, reported session options, errors."""
from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

from paddleopt.artifact import Artifact, Manifest
from paddleopt.config.schema import ConfigError
from paddleopt.deploy.backends import onnxruntime as ortb
from paddleopt.deploy.predictor import load_predictor, parse_options
from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle
from tiny_models import IO, make_cnn, save_inference

paddle = import_paddle()
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same CNN as a Paddle inference artifact and as an ONNX artifact (paddle2onnx)."""
    import paddle2onnx

    net = make_cnn(seed=1)
    inference_dir = save_inference(net, tmp_path_factory.mktemp("ort_inference"))
    onnx_dir = tmp_path_factory.mktemp("ort_onnx")
    paddle2onnx.export(str(inference_dir / "model.pdmodel"),
                       str(inference_dir / "model.pdiparams"), str(onnx_dir / "model.onnx"),
                       opset_version=11, verbose=False)
    Manifest(kind="onnx", files={"model": "model.onnx"}, io=IO).save(onnx_dir)
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype("float32")
    with paddle.no_grad():
        expected = net(paddle.to_tensor(x)).numpy()
    return {"inference": inference_dir, "onnx": onnx_dir, "x": x, "expected": expected}


def load(path: Path, **options) -> ortb.OnnxRuntimePredictor:
    return load_predictor(Artifact.open(path), "onnxruntime", options)


def test_parity_with_paddle_inference_and_dygraph(models):
    ort_out = load(models["onnx"], threads=1).run([models["x"]])[0]
    pi_out = load_predictor(Artifact.open(models["inference"]), "paddle_inference",
                            {"threads": 1}).run([models["x"]])[0]
    assert ort_out.shape == (3, 10)
    assert np.abs(ort_out - pi_out).max() < 1e-4
    assert np.abs(ort_out - models["expected"]).max() < 1e-4


def test_onnx_kind_defaults_to_onnxruntime_and_other_backends_refuse_it(models):
    predictor = load_predictor(Artifact.open(models["onnx"]))
    assert predictor.backend == "onnxruntime"
    with pytest.raises(UserError, match="cannot run an onnx artifact"):
        load_predictor(Artifact.open(models["onnx"]), "paddle_inference")


@pytest.mark.parametrize("level,mode", [("disable", "sequential"), ("all", "parallel")])
def test_session_options_are_reflected(models, level, mode):
    predictor = load(models["onnx"], threads=2, inter_op_threads=1,
                     graph_optimization_level=level, execution_mode=mode)
    info = predictor.describe()
    assert info["threads"] == 2 and info["inter_op_threads"] == 1
    assert info["graph_optimization_level"] == {"disable": "ORT_DISABLE_ALL",
                                                "all": "ORT_ENABLE_ALL"}[level]
    assert info["execution_mode"] == f"ORT_{mode.upper()}"
    assert info["providers"] == ["CPUExecutionProvider"] and info["device"] == "cpu"
    assert np.abs(predictor.run([models["x"]])[0] - models["expected"]).max() < 1e-4


def test_threads_zero_means_available_cores(models):
    from paddleopt.utils.machine import available_cores

    assert load(models["onnx"]).describe()["threads"] == available_cores()


def test_clone_gives_identical_outputs(models):
    predictor = load(models["onnx"], threads=1)
    (reference,) = predictor.run([models["x"]])
    clone = predictor.clone()
    assert clone.session is not predictor.session
    outs: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: outs.append(clone.run([models["x"]])[0]))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(outs[0], reference)
    assert clone.describe()["threads"] == 1


def test_float64_feed_is_converted(models):
    out = load(models["onnx"], threads=1).run([models["x"].astype("float64")])[0]
    assert np.abs(out - models["expected"]).max() < 1e-4


def test_wrong_number_of_inputs_is_a_user_error(models):
    with pytest.raises(UserError, match="takes 1 input"):
        load(models["onnx"], threads=1).run([])


def test_unknown_provider_is_a_config_error():
    with pytest.raises(ConfigError, match=re.escape("unknown execution provider")):
        parse_options("onnxruntime", {"providers": ["CUDAProvider"]})
    with pytest.raises(ConfigError, match="graph_optimization_level"):
        parse_options("onnxruntime", {"graph_optimization_level": "max"})


def test_missing_cuda_provider_is_a_user_error(models):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(UserError) as err:
        load(models["onnx"], providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert "CUDAExecutionProvider" in err.value.message
    assert "onnxruntime-gpu" in err.value.fix


def test_corrupt_onnx_is_a_user_error_naming_the_file(models, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    data = (models["onnx"] / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 3])
    Manifest(kind="onnx", files={"model": "model.onnx"}, io=IO).save(folder)
    with pytest.raises(UserError) as err:
        load(folder)
    assert str(folder / "model.onnx") in str(err.value)


def test_is_available_and_version():
    assert ortb.is_available() and ortb.version()

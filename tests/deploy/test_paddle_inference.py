"""Paddle Inference backend: numbers against dygraph, what the Config reports, error paths."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from paddleopt.artifact import Artifact
from paddleopt.config.schema import ConfigError
from paddleopt.deploy.backends import paddle_inference as pib
from paddleopt.deploy.predictor import load_predictor, parse_options
from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle
from tiny_models import make_cnn, save_inference

paddle = import_paddle()
CUDA_BUILD = bool(paddle.is_compiled_with_cuda())
cpu_build_only = pytest.mark.skipif(CUDA_BUILD, reason="asserts what the CPU-only wheel does")


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> dict:
    net = make_cnn()
    folder = save_inference(net, tmp_path_factory.mktemp("pi_cnn"))
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype("float32")
    with paddle.no_grad():
        expected = net(paddle.to_tensor(x)).numpy()
    return {"path": folder, "x": x, "expected": expected}


def load(path: Path, **options) -> pib.PaddleInferencePredictor:
    return load_predictor(Artifact.open(path), "paddle_inference", options)


def copy_artifact(src: Path, dst: Path, precision: str = "fp32") -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.pdmodel", "model.pdiparams"):
        (dst / name).write_bytes((src / name).read_bytes())
    manifest = Artifact.open(src).manifest
    manifest.precision = precision
    manifest.save(dst)
    return dst


# -- module hygiene ------------------------------------------------------------------------
def test_importing_backends_and_bench_imports_no_heavy_module():
    code = ("import sys, paddleopt.deploy.backends.paddle_inference, "
            "paddleopt.deploy.backends.onnxruntime, paddleopt.deploy.bench; "
            "heavy = [m for m in ('paddle', 'onnxruntime', 'paddle2onnx') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- numbers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("onednn", [True, False])
def test_matches_dygraph_and_reports_onednn(cnn, onednn):
    predictor = load(cnn["path"], onednn=onednn, threads=1)
    (out,) = predictor.run([cnn["x"]])
    assert out.shape == (4, 10)
    assert np.abs(out - cnn["expected"]).max() < 1e-4
    info = predictor.describe()
    assert info["onednn"] is onednn
    assert info["summary"]["enable_mkldnn"] == ("true" if onednn else "false")
    assert info["device"] == "cpu" and info["use_gpu"] is False
    assert info["onednn_int8"] is False  # fp32 artifact


def test_batch_sizes_and_float64_feed(cnn):
    predictor = load(cnn["path"], threads=1)
    (one,) = predictor.run([cnn["x"][:1].astype("float64")])  # converted to the input dtype
    assert np.abs(one - cnn["expected"][:1]).max() < 1e-4
    (four,) = predictor.run([cnn["x"]])
    assert np.abs(four - cnn["expected"]).max() < 1e-4


def test_threads_and_other_knobs_are_reflected(cnn):
    predictor = load(cnn["path"], threads=2, ir_optim=False, memory_optim=False,
                     onednn_cache_capacity=3)
    info = predictor.describe()
    assert info["threads"] == 2 and info["summary"]["cpu_math_thread"] == "2"
    assert info["ir_optim"] is False and info["memory_optim"] is False
    assert info["onednn_cache_capacity"] == 3
    assert np.abs(predictor.run([cnn["x"]])[0] - cnn["expected"]).max() < 1e-4
    from paddleopt.utils.machine import available_cores

    assert load(cnn["path"]).describe()["threads"] == available_cores()  # threads: 0


def test_clone_gives_identical_outputs_across_threads(cnn):
    predictor = load(cnn["path"], threads=1)
    (reference,) = predictor.run([cnn["x"]])
    clones = [predictor.clone() for _ in range(2)]
    assert clones[0].describe()["onednn"] == predictor.describe()["onednn"]
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        results[i] = [clones[i].run([cnn["x"]])[0] for _ in range(3)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for outs in results.values():
        for out in outs:
            np.testing.assert_array_equal(out, reference)


def test_new_executor_matches_and_fast_path_keeps_conversions(cnn):
    predictor = load(cnn["path"], threads=1, new_executor=True)
    assert predictor.describe()["new_executor"] is True
    assert np.abs(predictor.run([cnn["x"]])[0] - cnn["expected"]).max() < 1e-4
    # run()'s fast path takes a float32 C-contiguous array as is; anything else is converted
    strided = np.asfortranarray(cnn["x"])
    assert np.abs(predictor.run([strided])[0] - cnn["expected"]).max() < 1e-4
    assert np.abs(predictor.run([cnn["x"].tolist()])[0] - cnn["expected"]).max() < 1e-4


def test_omp_blocktime_is_set_in_the_running_thread(cnn):
    predictor = load(cnn["path"], threads=2, omp_blocktime_ms=0)
    assert predictor.describe()["omp_blocktime_ms"] == 0
    results = []
    worker = threading.Thread(target=lambda: results.append(
        (predictor.run([cnn["x"]])[0], pib._omp_library().kmp_get_blocktime())))
    worker.start()
    worker.join()
    out, blocktime = results[0]
    assert blocktime == 0 and np.abs(out - cnn["expected"]).max() < 1e-4
    with pytest.raises(ConfigError, match="omp_blocktime_ms"):
        parse_options("paddle_inference", {"omp_blocktime_ms": -1})


def test_wrong_number_of_inputs_is_a_user_error(cnn):
    predictor = load(cnn["path"], threads=1)
    with pytest.raises(UserError, match="takes 1 input"):
        predictor.run([cnn["x"], cnn["x"]])


# -- options ---------------------------------------------------------------------------------
def test_options_parse_and_reject_mistakes():
    opts = parse_options("paddle_inference", {
        "onednn_int8": True, "tensorrt": {"dynamic_shapes": {
            "x": {"min": [1, 1, 28, 28], "opt": [4, 1, 28, 28], "max": [8, 1, 28, 28]}}}})
    assert opts.onednn_int8 is True and opts.tensorrt.dynamic_shapes["x"].opt == [4, 1, 28, 28]
    assert parse_options("paddle_inference", {"onednn_int8": "auto"}).onednn_int8 == "auto"
    bad = [
        ({"onednn_int8": "yes"}, "onednn_int8"),
        ({"thread": 2}, "did you mean 'options.threads'"),
        ({"tensorrt": {"enabled": True}}, "device: gpu"),
        ({"onednn": False, "onednn_int8": True}, "needs onednn"),
        ({"cudnn": False}, "cuDNN"),
        ({"threads": -1}, "threads"),
        ({"device": "gpu", "tensorrt": {"enabled": True, "dynamic_shapes": {
            "x": {"min": [8, 1], "opt": [4, 1], "max": [1, 1]}}}}, "min <= opt <= max"),
        ({"device": "gpu", "tensorrt": {"enabled": True, "tuned_shape_file": "s.pbtxt",
                                        "dynamic_shapes": {"x": {"min": [1], "opt": [1],
                                                                 "max": [1]}}}}, "use one"),
    ]
    for options, needle in bad:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            parse_options("paddle_inference", options)


# -- int8 ------------------------------------------------------------------------------------
def test_int8_artifact_gets_onednn_int8(cnn):
    model, params = cnn["path"] / "model.pdmodel", cnn["path"] / "model.pdiparams"
    config = pib.build_config(model, params, pib.Options(), precision="int8")
    assert config.mkldnn_enabled() and config.mkldnn_int8_enabled()
    fp32 = pib.build_config(model, params, pib.Options(), precision="fp32")
    assert fp32.mkldnn_enabled() and not fp32.mkldnn_int8_enabled()
    # An int8 artifact with oneDNN off would silently run its fake-quant ops in fp32.
    with pytest.raises(UserError, match="INT8"):
        pib.build_config(model, params, pib.Options(onednn=False), precision="int8")
    # ... unless asked for explicitly (accuracy debugging).
    off = pib.build_config(model, params, pib.Options(onednn=False, onednn_int8=False),
                           precision="int8")
    assert not off.mkldnn_enabled() and not off.mkldnn_int8_enabled()


def test_int8_manifest_precision_reaches_the_predictor(cnn, tmp_path):
    folder = copy_artifact(cnn["path"], tmp_path / "int8", precision="int8")
    predictor = load(folder, threads=1)
    info = predictor.describe()
    assert info["precision"] == "int8" and info["onednn"] and info["onednn_int8"]
    # INT8 passes find no quantized ops in this fp32 graph: the numbers stay fp32's.
    assert np.abs(predictor.run([cnn["x"]])[0] - cnn["expected"]).max() < 1e-4


@pytest.mark.skipif(not pib.cpu_has_bf16(), reason="needs avx512_bf16 or AMX")
def test_onednn_bf16_runs_bfloat16_kernels(cnn):
    predictor = load(cnn["path"], threads=1, onednn_bf16=True)
    (out,) = predictor.run([cnn["x"]])
    diff = np.abs(out - cnn["expected"]).max()
    scale = np.abs(cnn["expected"]).max()
    # bfloat16 keeps 8 mantissa bits: close to fp32, but not fp32 (which matches to 1e-6)
    assert 1e-6 < diff < 0.05 * scale, (diff, scale)
    assert (out.argmax(1) == cnn["expected"].argmax(1)).all()
    assert predictor.describe()["onednn_bf16"] is True
    assert load(cnn["path"], threads=1).describe()["onednn_bf16"] is False


def test_onednn_bf16_refusals(cnn, tmp_path):
    with pytest.raises(ConfigError, match="onednn_bf16: true needs onednn"):
        parse_options("paddle_inference", {"onednn": False, "onednn_bf16": True})
    model, params = cnn["path"] / "model.pdmodel", cnn["path"] / "model.pdiparams"
    with pytest.raises(UserError, match="this artifact is int8"):
        pib.build_config(model, params, pib.Options(onednn_bf16=True), precision="int8")


def test_onednn_int8_ops_options_and_resolution():
    opts = parse_options("paddle_inference", {"onednn_int8_ops": ["fc", "matmul_v2"]})
    assert opts.onednn_int8_ops == ["fc", "matmul_v2"]
    assert parse_options("paddle_inference", {}).onednn_int8_ops == "artifact"
    for options, needle in [({"onednn_int8_ops": ["FC"]}, "did you mean 'fc'"),
                            ({"onednn_int8_ops": []}, "empty list"),
                            ({"onednn_int8_ops": "some"}, "onednn_int8_ops")]:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            parse_options("paddle_inference", options)
    resolve = pib.resolve_onednn_int8_ops
    assert resolve(pib.Options(), ["fc"]) == ["fc"]  # default: what the artifact records
    assert resolve(pib.Options(), None) is None  # nothing recorded: every quantized op
    assert resolve(pib.Options(onednn_int8_ops="all"), ["fc"]) is None  # override: all
    assert resolve(pib.Options(onednn_int8_ops=["matmul_v2", "fc"]), ["fc"]) == [
        "fc", "matmul_v2"]
    with pytest.raises(UserError, match="not an op type"):
        resolve(pib.Options(), ["no_such_op"])


def test_recorded_int8_ops_reach_the_predictor(cnn, tmp_path):
    folder = copy_artifact(cnn["path"], tmp_path / "int8", precision="int8")
    art = Artifact.open(folder)
    art.manifest.quantization = {"method": "ptq", "onednn_int8_ops": ["fc"]}
    art.manifest.save(folder)
    assert load(folder, threads=1).describe()["onednn_int8_ops"] == ["fc"]
    assert load(folder, threads=1, onednn_int8_ops="all").describe()["onednn_int8_ops"] == [
        "all"]
    assert load(cnn["path"], threads=1).describe()["onednn_int8_ops"] is None  # fp32
    config = pib.build_config(folder / "model.pdmodel", folder / "model.pdiparams",
                              pib.Options(), precision="int8", recorded_int8_ops=["fc"])
    assert config.mkldnn_int8_enabled()


# -- broken files ----------------------------------------------------------------------------
def test_truncated_params_is_a_user_error_naming_the_file(cnn, tmp_path):
    folder = copy_artifact(cnn["path"], tmp_path / "truncated")
    params = folder / "model.pdiparams"
    params.write_bytes(params.read_bytes()[:1000])  # Paddle itself would load this and
    with pytest.raises(UserError) as err:           # return NaN/garbage
        load(folder)
    assert str(params) in str(err.value) and "truncated" in str(err.value)


def test_garbage_params_is_a_user_error(cnn, tmp_path):
    folder = copy_artifact(cnn["path"], tmp_path / "garbage")
    (folder / "model.pdiparams").write_bytes(b"not a paddle params file at all" * 10)
    with pytest.raises(UserError, match="model.pdiparams"):
        load(folder)


def test_corrupt_model_is_a_user_error_naming_the_file(cnn, tmp_path):
    folder = copy_artifact(cnn["path"], tmp_path / "bad_model")
    model = folder / "model.pdmodel"
    model.write_bytes(model.read_bytes()[:300])
    with pytest.raises(UserError) as err:
        load(folder)
    assert str(model) in str(err.value) and "re-export" in str(err.value)


def test_missing_params_is_a_user_error(cnn, tmp_path):
    folder = copy_artifact(cnn["path"], tmp_path / "missing")
    (folder / "model.pdiparams").unlink()
    with pytest.raises(UserError, match="model.pdiparams"):
        load(folder)
    with pytest.raises(UserError, match="does not exist"):
        pib.build_config(folder / "model.pdmodel", folder / "model.pdiparams", pib.Options())


def test_params_check_accepts_a_good_file(cnn):
    assert pib.check_params_file(cnn["path"] / "model.pdiparams") is None


# -- GPU / TensorRT configuration on this CPU-only wheel --------------------------------------
@cpu_build_only
def test_gpu_on_cpu_wheel_is_a_user_error_with_the_fix(cnn):
    with pytest.raises(UserError) as err:
        load(cnn["path"], device="gpu")
    assert "CPU-only" in err.value.message
    assert "paddlepaddle-gpu==2.6.2" in err.value.fix and "device: cpu" in err.value.fix
    with pytest.raises(UserError, match="CPU-only"):
        load(cnn["path"], device="gpu", tensorrt={"enabled": True})


@cpu_build_only
def test_cpu_wheel_ignores_enable_use_gpu(cnn):
    """Without the device check, the CPU wheel only logs an error for enable_use_gpu():
    use_gpu() stays False and neither the pool size nor the device id is recorded."""
    options = pib.Options(device="gpu", gpu_id=1, gpu_mem_mb=512)
    config = pib.build_config(cnn["path"] / "model.pdmodel", cnn["path"] / "model.pdiparams",
                              options, check_device=False)
    assert config.use_gpu() is False
    assert config.memory_pool_init_size_mb() == 100 and config.gpu_device_id() == 0  # defaults
    assert config.mkldnn_enabled() is False  # we switch oneDNN off for device: gpu
    assert pib.describe_config(config)["device"] == "cpu"


@cpu_build_only
def test_cpu_wheel_refuses_tensorrt(cnn):
    options = pib.Options(device="gpu", tensorrt=pib.TensorRTOptions(enabled=True))
    with pytest.raises(UserError, match="TENSORRT") as err:
        pib.build_config(cnn["path"] / "model.pdmodel", cnn["path"] / "model.pdiparams",
                         options, check_device=False)
    assert "tensorrt.enabled: false" in err.value.fix


def test_int8_on_gpu_needs_a_tensorrt_int8_engine(cnn):
    model, params = cnn["path"] / "model.pdmodel", cnn["path"] / "model.pdiparams"
    with pytest.raises(UserError, match="fake-quant"):
        pib.build_config(model, params, pib.Options(device="gpu"), precision="int8",
                         check_device=False)
    int8_trt = pib.Options(device="gpu", tensorrt=pib.TensorRTOptions(enabled=True,
                                                                      precision="int8"))
    with pytest.raises(UserError, match="needs scales"):
        pib.build_config(model, params, int8_trt, precision="fp32", check_device=False)


def test_trt_shape_settings_are_recorded(tmp_path):
    from paddle import inference

    config = inference.Config()
    trt = pib.TensorRTOptions(enabled=True, engine_cache_dir=str(tmp_path / "engines"),
                              dynamic_shapes={"x": pib.ShapeRange([1, 1, 28, 28],
                                                                  [4, 1, 28, 28],
                                                                  [8, 1, 28, 28])})
    pib.configure_trt_shapes(config, trt)
    assert config.tensorrt_dynamic_shape_enabled()
    assert (tmp_path / "engines").is_dir()
    with pytest.raises(UserError, match="collect_shape_ranges"):
        pib.configure_trt_shapes(inference.Config(), pib.TensorRTOptions(
            enabled=True, tuned_shape_file=str(tmp_path / "missing.pbtxt")))


def test_collect_shape_ranges_then_tuned_trt_config(cnn, tmp_path):
    batches = [[cnn["x"][:n]] for n in (1, 4, 2)]
    out = pib.collect_shape_ranges(cnn["path"] / "model.pdmodel",
                                   cnn["path"] / "model.pdiparams", batches,
                                   tmp_path / "shapes.pbtxt", pib.Options(threads=1))
    text = out.read_text()
    entry = text[text.index('name: "x"'):].split("}", 1)[0]
    assert "min_shape: 1\n" in entry and "max_shape: 4\n" in entry
    from paddle import inference

    config = inference.Config()
    pib.configure_trt_shapes(config, pib.TensorRTOptions(enabled=True,
                                                         tuned_shape_file=str(out)))
    assert config.tuned_tensorrt_dynamic_shape() and config.trt_allow_build_at_runtime()


# -- real GPU (skipped here by tests/conftest.py) ------------------------------------------
@pytest.mark.gpu
def test_gpu_run_matches_dygraph(cnn):
    predictor = load(cnn["path"], device="gpu", gpu_mem_mb=200)
    info = predictor.describe()
    assert info["device"] == "gpu" and info["gpu_mem_mb"] == 200 and info["gpu_id"] == 0
    assert np.abs(predictor.run([cnn["x"]])[0] - cnn["expected"]).max() < 1e-3


@pytest.mark.gpu
def test_gpu_tensorrt_fp16_dynamic_shapes(cnn, tmp_path):
    from paddle import inference

    if tuple(inference.get_trt_compile_version()) == (0, 0, 0):
        pytest.skip("this paddlepaddle-gpu build has no TensorRT")
    predictor = load(cnn["path"], device="gpu", tensorrt={
        "enabled": True, "precision": "fp16", "min_subgraph_size": 1,
        "engine_cache_dir": str(tmp_path / "trt"),
        "dynamic_shapes": {"x": {"min": [1, 1, 28, 28], "opt": [4, 1, 28, 28],
                                 "max": [8, 1, 28, 28]}}})
    info = predictor.describe()
    assert info["tensorrt"] and info["tensorrt_precision"] == "fp16"
    assert info["tensorrt_dynamic_shape"]
    assert np.abs(predictor.run([cnn["x"]])[0] - cnn["expected"]).max() < 1e-2

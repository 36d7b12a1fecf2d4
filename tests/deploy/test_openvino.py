"""OpenVINO backend: real runs of a Paddle inference folder and ONNX files (fp32 and INT8 QDQ)
on the CPU plugin, parity with Paddle Inference, reported properties, errors."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from paddleopt.artifact import Artifact, Manifest
from paddleopt.config.schema import ConfigError
from paddleopt.deploy.predictor import load_predictor, parse_options
from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle
from tiny_models import IO, make_cnn, save_inference

paddle = import_paddle()
ovb = pytest.importorskip("paddleopt.deploy.backends.openvino")
pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny CNN as a Paddle inference folder, as ONNX, and PTQ-int8 as a QDQ ONNX file."""
    import paddle2onnx

    from paddleopt.compress.ptq import quantize_post_static

    root = tmp_path_factory.mktemp("ov")
    inference = save_inference(make_cnn(seed=1), root / "inference")
    onnx_dir, int8_dir, onnx8_dir = root / "onnx", root / "int8", root / "onnx8"
    onnx_dir.mkdir()
    paddle2onnx.export(str(inference / "model.pdmodel"), str(inference / "model.pdiparams"),
                       str(onnx_dir / "model.onnx"), opset_version=13, verbose=False)
    Manifest(kind="onnx", files={"model": "model.onnx"}, io=IO).save(onnx_dir)
    rng = np.random.default_rng(0)
    calib = [(rng.standard_normal((8, 1, 28, 28)).astype("float32"),) for _ in range(4)]
    quantize_post_static(inference, int8_dir, calib, algo="abs_max", batch_nums=4)
    Manifest(kind="inference", files={"model": "model.pdmodel", "params": "model.pdiparams"},
             io=IO, precision="int8").save(int8_dir)
    onnx8_dir.mkdir()
    paddle2onnx.export(str(int8_dir / "model.pdmodel"), str(int8_dir / "model.pdiparams"),
                       str(onnx8_dir / "model.onnx"), opset_version=13, verbose=False,
                       deploy_backend="onnxruntime")
    Manifest(kind="onnx", files={"model": "model.onnx"}, io=IO, precision="int8").save(onnx8_dir)
    x = rng.standard_normal((6, 1, 28, 28)).astype("float32")
    expected = load_predictor(Artifact.open(inference), "paddle_inference",
                              {"threads": 1}).run([x])[0]
    return {"inference": inference, "onnx": onnx_dir, "int8": int8_dir, "onnx8": onnx8_dir,
            "x": x, "expected": expected}


def load(path: Path, **options) -> ovb.OpenVINOPredictor:
    return load_predictor(Artifact.open(path), "openvino", options)


@pytest.mark.parametrize("kind", ["inference", "onnx"])
def test_fp32_matches_paddle_inference(models, kind):
    predictor = load(models[kind], threads=1)
    out = predictor.run([models["x"]])[0]
    assert out.shape == (6, 10)
    assert np.abs(out - models["expected"]).max() < 1e-4
    info = predictor.describe()
    assert info["backend"] == "openvino" and info["inference_precision"] == "fp32"
    assert info["threads"] == 1 and info["streams"] == 1


def test_default_precision_is_openvinos_choice(models):
    """'default' = what OpenVINO picks: bf16 on a CPU with avx512_bf16/AMX (this one), which
    is close to fp32 but not exact; fp32 stays exact."""
    predictor = load(models["inference"], threads=1, precision="default")
    chosen = predictor.describe()["inference_precision"]
    diff = np.abs(predictor.run([models["x"]])[0] - models["expected"]).max()
    if ovb.cpu_supports_bf16():
        assert chosen == "bf16"
        assert 1e-5 < diff < 0.1 * np.abs(models["expected"]).max()
    else:
        assert chosen == "fp32" and diff < 1e-4


def test_streams_split_a_batch_and_keep_the_numbers(models):
    predictor = load(models["inference"], threads=2, streams=2, performance_hint="throughput")
    assert predictor.describe()["streams"] == 2
    out = predictor.run([models["x"]])[0]  # 6 rows -> 2 requests of 3
    assert np.abs(out - models["expected"]).max() < 1e-4
    assert np.abs(predictor.run([models["x"][:1]])[0] - models["expected"][:1]).max() < 1e-4


def test_int8_qdq_onnx_runs_int8_kernels_close_to_fp32(models):
    """The PTQ model's quantize/dequantize ONNX: OpenVINO folds it into int8 convolutions."""
    predictor = load(models["onnx8"], threads=1)
    out = predictor.run([models["x"]])[0]
    precisions = ovb.runtime_precisions(predictor)
    assert "i8" in precisions.get("Convolution", set()) or \
        "u8" in precisions.get("Convolution", set()), precisions
    scale = np.abs(models["expected"]).max()
    assert np.abs(out - models["expected"]).max() < 0.1 * scale
    assert (out.argmax(1) == models["expected"].argmax(1)).mean() >= 5 / 6


def test_int8_paddle_program_points_to_onnx(models):
    """OpenVINO's Paddle frontend cannot read PaddleSlim's dequantize_linear (per-channel
    scales): a clear error that names the ONNX route."""
    with pytest.raises(UserError, match="to_onnx") as err:
        load(models["int8"], threads=1)
    assert "dequantize_linear" in err.value.message


def test_clone_runs_in_another_thread(models):
    predictor = load(models["onnx"], threads=1)
    clone = predictor.clone()
    assert clone.compiled is predictor.compiled  # weights shared
    results: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: results.append(clone.run([models["x"]])[0]))
    thread.start()
    own = predictor.run([models["x"]])[0]
    thread.join()
    assert np.abs(results[0] - own).max() == 0


def test_compile_config_and_option_errors():
    config = ovb.compile_config(ovb.Options(threads=2, streams=2, precision="bf16",
                                            performance_hint="throughput"))
    assert config == {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "THROUGHPUT",
                      "NUM_STREAMS": 2, "INFERENCE_PRECISION_HINT": "bf16"}
    assert "INFERENCE_PRECISION_HINT" not in ovb.compile_config(ovb.Options(precision="default"))
    with pytest.raises(ConfigError, match="streams"):
        parse_options("openvino", {"threads": 1, "streams": 2})
    with pytest.raises(ConfigError, match="precision"):
        parse_options("openvino", {"precision": "int4"})


def test_wrong_inputs_and_corrupt_file(models, tmp_path):
    predictor = load(models["inference"], threads=1)
    with pytest.raises(UserError, match="takes 1 input"):
        predictor.run([models["x"], models["x"]])
    with pytest.raises(UserError, match="OpenVINO failed running"):
        predictor.run([models["x"][:, :, :5]])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"not an onnx file")
    Manifest(kind="onnx", files={"model": "model.onnx"}, io=IO).save(bad)
    with pytest.raises(UserError, match="OpenVINO cannot read"):
        load(bad)


def test_serve_runs_openvino_through_the_predictor_interface(models):
    """Real HTTP on loopback: the server's workers are clones of an OpenVINO predictor."""
    import httpx

    from paddleopt.serve.server import BackgroundServer, ServeConfig, Service

    service = Service(ServeConfig(port=0, max_batch_size=4, max_wait_ms=2.0, workers=2,
                                  backend="openvino", options={"threads": 1}),
                      models["inference"])
    with BackgroundServer(service) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/predict", json={"inputs": {"x": models["x"][:3].tolist()}})
        assert r.status_code == 200, r.text
        out = np.asarray(next(iter(r.json()["outputs"].values())), dtype="float32")
    assert np.abs(out - models["expected"][:3]).max() < 1e-4


def test_cli_bench_and_infer_on_openvino(cli, models, tmp_path):
    proc = cli("bench", str(models["inference"]), "--backend", "openvino", "--threads", "1",
               "--option", "precision=fp32", "--iters", "5", "--max-seconds", "0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "openvino" in proc.stdout and "fp32" in proc.stdout
    np.save(tmp_path / "x.npy", models["x"][:2])
    proc = cli("infer", str(models["onnx8"]), str(tmp_path / "x.npy"), "--backend", "openvino")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = cli("bench", str(models["int8"]), "--backend", "openvino")
    assert proc.returncode == 2 and "to_onnx" in proc.stderr and "Traceback" not in proc.stderr


def test_nncf_ptq_writes_an_int8_qdq_onnx_that_openvino_runs_in_int8(models, tmp_path):
    """NNCF post-training quantization of the fp32 ONNX artifact, calibrated on inputs apart
    from the held-out ones: OpenVINO runs its convolutions in int8 (the compiled model's
    runtime precisions) and the recorded fp32 agreement is what the two really compute."""
    pytest.importorskip("nncf")
    from paddleopt.compress.nncf_ptq import quantize_onnx
    from paddleopt.metrics.agreement import top1_agreement

    rng = np.random.default_rng(7)
    calib = [(rng.standard_normal((8, 1, 28, 28)).astype("float32"),) for _ in range(4)]
    art = quantize_onnx(Artifact.open(models["onnx"]), tmp_path / "nncf", calib,
                        heldout=[models["x"]])
    assert art.kind == "onnx" and art.manifest.precision == "int8"
    quant, checks = art.manifest.quantization, art.manifest.checks
    assert quant["engine"] == "nncf" and quant["samples"] == 32
    assert quant["quantize_linear_nodes"] >= 3  # the tiny CNN's convolutions and fc
    assert "Convolution" in checks["openvino_int8_layers"]
    predictor = load(tmp_path / "nncf", threads=1)
    assert ovb.runtime_precisions(predictor)["Convolution"] & {"i8", "u8"}
    out = predictor.run([models["x"]])[0]
    fp32 = load(models["onnx"], threads=1).run([models["x"]])[0]
    assert checks["int8_agreement_vs_fp32"] == pytest.approx(top1_agreement(out, fp32))
    assert checks["int8_agreement_vs_fp32"] >= 5 / 6
    assert np.abs(out - fp32).max() < 0.1 * np.abs(fp32).max()
    with pytest.raises(UserError, match="fp32 ONNX"):
        quantize_onnx(art, tmp_path / "again", calib)

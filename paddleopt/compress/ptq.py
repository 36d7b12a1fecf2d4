"""Post-training static quantization (PTQ) of any Paddle inference model folder.

Works from the saved program alone (no Python model class): any number of inputs, dynamic
dimensions, any dtype. Calibration data can be

- an iterable of batches: each a tuple/list of arrays in input order, a ``{name: array}``
  dict, or a bare array for single-input models (batches may differ in dynamic dims);
- an ``.npz`` file whose keys are the input names and whose arrays hold samples on axis 0;
- an image folder plus ``preprocess(path) -> array`` (one sample, no batch axis).

Every batch is checked against the model's feed variables (rank, fixed dims, dtype kind)
before calibration starts, so a wrong file fails in a second with expected vs got.

How PaddleSlim is driven on paddle 2.6.2 (see STACK.md): ``quant_post_static`` only accepts
a ``paddle.io.DataLoader`` built with ``feed_list`` in static mode. We build one over the
validated batches (``batch_size=None``: items already are batches) and run the whole PTQ
inside ``static_mode()``, which restores dygraph mode and uses a private scope even on error.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paddleopt.compress._common import quiet_paddleslim, static_mode
from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle

# user-facing name -> PaddleSlim's spelling
ALGOS: dict[str, str] = {"kl": "KL", "hist": "hist", "mse": "mse", "avg": "avg",
                         "abs_max": "abs_max"}
WEIGHT_QUANTIZE_TYPES = ("channel_wise_abs_max", "abs_max")
# conv2d_transpose is left fp32 by default: oneDNN INT8 fails on it in Paddle 2.6.2 (see
# paddleopt.stages._ptq.config.ONEDNN_INT8_FAILS).
DEFAULT_OP_TYPES = ("conv2d", "depthwise_conv2d", "mul", "matmul", "matmul_v2")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

Batch = Sequence[Any] | Mapping[str, Any] | Any
CalibrationSource = str | Path | Iterable[Batch]


@dataclass
class PTQReport:
    algo: str
    batches: int
    samples: int
    weight_quantize_type: str
    onnx_format: bool
    quantizable_op_types: list[str]
    skip_tensors: list[str]
    model_file: str
    params_file: str
    quant: dict[str, Any] = field(default_factory=dict)  # int8_check.program_quant_summary
    onednn_fixes: list[str] = field(default_factory=list)  # onednn_fix.apply_onednn_int8_fixes

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# --------------------------------------------------------------------------- model side
def model_feeds(model_dir: str | Path) -> tuple[Path, Path | None, list[dict[str, Any]]]:
    """(model_file, params_file, feed specs) of an inference model folder."""
    from paddleopt.artifact.program import feed_fetch_specs, find_model_files, read_program

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"model folder '{model_dir}' does not exist.",
                        "pass the folder holding model.pdmodel and model.pdiparams.")
    model_file, params_file = find_model_files(model_dir)
    feeds, _ = feed_fetch_specs(read_program(model_file))
    if not feeds:
        raise UserError(f"'{model_file}' has no feed (input) variables.",
                        "re-export it with paddle.jit.save and an input_spec.")
    return model_file, params_file, feeds


def _fmt(spec: dict[str, Any]) -> str:
    return f"shape {spec['shape']} {spec['dtype']}"


# --------------------------------------------------------------------------- data side
_KINDS = {"f": "float", "i": "int", "u": "int", "b": "bool"}


def _check_array(arr: Any, spec: dict[str, Any], where: str) -> Any:
    import numpy as np

    arr = np.asarray(arr)
    shape, dtype = list(spec["shape"]), spec["dtype"]
    got = f"shape {list(arr.shape)} {arr.dtype}"
    fix = (f"provide '{spec['name']}' as {_fmt(spec)} (-1 = any size; the first axis is the "
           "batch).")
    if shape and (arr.ndim != len(shape) or any(
            d >= 0 and d != g for d, g in zip(shape, arr.shape, strict=True))):
        raise UserError(f"calibration input '{spec['name']}' {where}: expected {_fmt(spec)}, "
                        f"got {got}.", fix)
    if dtype != "unknown" and arr.dtype != np.dtype(dtype):
        # Same kind only: float64 -> float32 is a numpy default, but ints for a float input
        # (raw uint8 pixels) or floats for token ids mean the preprocessing is missing.
        if _KINDS.get(arr.dtype.kind) != _KINDS.get(np.dtype(dtype).kind):
            raise UserError(f"calibration input '{spec['name']}' {where}: expected dtype "
                            f"{dtype}, got {arr.dtype} ({got}).", fix)
        arr = arr.astype(dtype)  # e.g. float64 from numpy defaults -> float32
    return np.ascontiguousarray(arr)


def _normalize_batch(batch: Batch, feeds: list[dict[str, Any]], index: int) -> tuple:
    import numpy as np

    names = [f["name"] for f in feeds]
    if isinstance(batch, Mapping):
        missing = [n for n in names if n not in batch]
        extra = [k for k in batch if k not in names]
        if missing or extra:
            raise UserError(f"calibration batch {index} has keys {sorted(batch)}, the model "
                            f"expects {names}.", f"use exactly these keys: {', '.join(names)}")
        items = [batch[n] for n in names]
    elif isinstance(batch, (tuple, list)):
        items = list(batch)
    elif isinstance(batch, np.ndarray) or hasattr(batch, "shape"):
        items = [batch]
    else:
        raise UserError(f"calibration batch {index} is a {type(batch).__name__}.",
                        "yield tuples of numpy arrays (one per model input) or "
                        "{input_name: array} dicts.")
    if len(items) != len(feeds):
        raise UserError(f"calibration batch {index} has {len(items)} arrays, the model has "
                        f"{len(feeds)} inputs ({', '.join(names)}).",
                        "yield one array per input, in this order.")
    return tuple(_check_array(a, s, f"(batch {index})") for a, s in zip(items, feeds, strict=True))


def _npz_batches(path: Path, feeds: list[dict[str, Any]], batch_size: int,
                 batch_nums: int) -> list[tuple]:
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"cannot read calibration file '{path}': {exc}",
                        "write it with numpy.savez(path, **{input_name: array}).") from exc
    with data:
        names = [f["name"] for f in feeds]
        keys = list(data.keys())
        if sorted(keys) != sorted(names):
            raise UserError(f"calibration file '{path}' has arrays {sorted(keys)}, the model "
                            f"expects inputs {names}.",
                            "name the npz arrays after the model inputs: "
                            f"numpy.savez(path, {', '.join(f'{n}=...' for n in names)}).")
        arrays = [_check_array(data[f["name"]], f, f"(in {path.name})") for f in feeds]
    counts = {len(a) for a in arrays}
    if len(counts) != 1:
        raise UserError(f"calibration file '{path}' arrays have different sample counts "
                        f"(axis 0): {[len(a) for a in arrays]}.",
                        "store the same number of samples for every input.")
    n = counts.pop()
    return [tuple(a[i:i + batch_size] for a in arrays)
            for i in range(0, min(n, batch_size * batch_nums), batch_size)]


def _image_batches(folder: Path, feeds: list[dict[str, Any]], preprocess: Callable | None,
                   batch_size: int, batch_nums: int) -> list[tuple]:
    import numpy as np

    if preprocess is None:
        raise UserError(f"calibrating from the image folder '{folder}' needs a preprocess.",
                        "declare the model's preprocess (resize, normalise, CHW).")
    if len(feeds) != 1:
        raise UserError(f"an image folder can only calibrate single-input models; this one "
                        f"has {len(feeds)} inputs.", "pass an .npz with every input instead.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    files = files[:batch_size * batch_nums]
    batches = []
    for i in range(0, len(files), batch_size):
        samples = [np.asarray(preprocess(p)) for p in files[i:i + batch_size]]
        try:
            batches.append((np.stack(samples),))
        except ValueError as exc:
            raise UserError(f"preprocess returned arrays of different shapes in '{folder}': "
                            f"{sorted({s.shape for s in samples})}.",
                            "make preprocess resize every image to one size.") from exc
    return batches


def calibration_batches(source: CalibrationSource, feeds: list[dict[str, Any]], *,
                        batch_size: int = 8, batch_nums: int = 10,
                        preprocess: Callable[[Path], Any] | None = None) -> list[tuple]:
    """Validated calibration batches (tuples of arrays in feed order), at most ``batch_nums``.

    ``batch_size`` applies to .npz and image folders; iterables supply their own batches.
    """
    if batch_size < 1 or batch_nums < 1:
        raise UserError(f"batch_size and batch_nums must be >= 1 (got {batch_size}, "
                        f"{batch_nums}).", "use e.g. batch_size: 8, batch_nums: 10")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            batches = _image_batches(path, feeds, preprocess, batch_size, batch_nums)
        elif path.suffix == ".npz" and path.is_file():
            batches = _npz_batches(path, feeds, batch_size, batch_nums)
        else:
            raise UserError(f"calibration data '{path}' is neither an .npz file nor an image "
                            "folder.", "pass an existing .npz (keys = input names) or folder.")
        batches = [_normalize_batch(b, feeds, i) for i, b in enumerate(batches)]
    else:
        import numpy as np

        if isinstance(source, (np.ndarray, Mapping)):
            source = [source]  # one batch, not an iterable of rows / keys
        batches = []
        for i, batch in enumerate(source):
            if i >= batch_nums:
                break
            batches.append(_normalize_batch(batch, feeds, i))
    if not batches:
        raise UserError("the calibration data is empty.",
                        "provide at least one batch (images, npz samples or arrays).")
    return batches


# --------------------------------------------------------------------------- PTQ
def _check_options(algo: str, weight_quantize_type: str,
                   op_types: Sequence[str]) -> str:
    key = algo.lower()
    if key not in ALGOS:
        raise UserError(f"unknown PTQ algo '{algo}'.", f"use one of: {', '.join(ALGOS)}.")
    if weight_quantize_type not in WEIGHT_QUANTIZE_TYPES:
        raise UserError(f"unknown weight_quantize_type '{weight_quantize_type}'.",
                        f"use one of: {', '.join(WEIGHT_QUANTIZE_TYPES)}.")
    import_paddle()
    from paddle.static.quantization.quant_config import SUPPORT_QUANTIZATION_OP_DICT

    bad = [t for t in op_types if t not in SUPPORT_QUANTIZATION_OP_DICT]
    if bad:
        raise UserError(f"op types {bad} cannot be quantized.",
                        f"use some of: {', '.join(sorted(SUPPORT_QUANTIZATION_OP_DICT))}.")
    return ALGOS[key]


def check_skip_tensors(model_file: Path, skip: Sequence[str], op_types: Sequence[str]) -> None:
    """Every skip entry must be a tensor of the program; list useful names otherwise."""
    from paddleopt.artifact.program import read_program

    if not skip:
        return
    program = read_program(model_file)
    names = {v.name for b in program.blocks for v in b.vars}
    unknown = [s for s in skip if s not in names]
    if unknown:
        hints = []
        for b in program.blocks:
            for op in b.ops:
                if op.type in op_types:
                    ins = [n for v in op.inputs for n in v.arguments]
                    hints.append(f"{op.type}({', '.join(ins)})")
        raise UserError(f"skip_tensors {unknown} are not tensors of '{model_file.name}'.",
                        "name an input tensor (activation or weight) of the op to keep in "
                        "fp32; quantizable ops: " + "; ".join(hints[:40]))


def quantize_post_static(
    model_dir: str | Path,
    out_dir: str | Path,
    calibration: CalibrationSource,
    *,
    algo: str = "hist",
    batch_size: int = 8,
    batch_nums: int = 10,
    preprocess: Callable[[Path], Any] | None = None,
    skip_tensors: Sequence[str] = (),
    quantizable_op_types: Sequence[str] = DEFAULT_OP_TYPES,
    weight_quantize_type: str = "channel_wise_abs_max",
    onnx_format: bool = True,
    hist_percent: float = 0.9999,
    bias_correction: bool = False,
    optimize_model: bool = False,
) -> PTQReport:
    """Quantize the inference model in ``model_dir`` to INT8; write ``out_dir/model.pdmodel``
    and ``out_dir/model.pdiparams``.

    Args:
        calibration: see the module docstring.
        algo: activation scale search: kl | hist | mse | avg | abs_max. ``kl`` is slow
            (seconds per tensor); ``hist`` (percentile ``hist_percent``) is a good default.
        batch_size: samples per batch for .npz / image calibration.
        batch_nums: at most this many calibration batches.
        skip_tensors: input tensors (activations or weight names) whose consuming ops stay
            fp32, e.g. the first conv's weight for accuracy-sensitive stems.
        quantizable_op_types: op types to quantize.
        weight_quantize_type: channel_wise_abs_max (per output channel) or abs_max.
        onnx_format: write quantize_linear/dequantize_linear (True) or the older
            fake_quantize ops; Paddle Inference oneDNN runs both as the same INT8 graph.
        optimize_model: fold BatchNorm into convs before quantizing. Only bias-free convs
            fold (``Conv2D(bias_attr=False)`` + BN, the usual PaddleClas pattern): a conv bias
            is exported as reshape2 + elementwise_add, which breaks Paddle's fuse pattern
            (verified on 2.6.2: BN stays, and also stays fp32 between INT8 convs at runtime).
    """
    import numpy as np

    paddle_algo = _check_options(algo, weight_quantize_type, quantizable_op_types)
    if not 0 < hist_percent <= 1:
        raise UserError(f"hist_percent must be in (0, 1], got {hist_percent}.",
                        "use e.g. hist_percent: 0.9999")
    model_file, params_file, feeds = model_feeds(model_dir)
    if any(f.get("lod_level") for f in feeds):
        raise UserError(f"'{model_file}' has LoD (variable-length sequence) inputs, which "
                        "static PTQ cannot feed.", "export the model with padded dense inputs.")
    check_skip_tensors(model_file, skip_tensors, quantizable_op_types)
    batches = calibration_batches(calibration, feeds, batch_size=batch_size,
                                  batch_nums=batch_nums, preprocess=preprocess)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    paddle = import_paddle()
    from paddleslim.quant import quant_post_static

    class _Batches(paddle.io.Dataset):  # items already are whole batches
        def __getitem__(self, i: int) -> tuple:
            return batches[i]

        def __len__(self) -> int:
            return len(batches)

    with static_mode() as scope:
        place = paddle.CPUPlace()
        exe = paddle.static.Executor(place)
        # Feed vars declared from the specs: no need to load the weights a second time.
        feed_vars = [paddle.static.data(f["name"], f["shape"], f["dtype"]) for f in feeds]
        loader = paddle.io.DataLoader(_Batches(), feed_list=feed_vars, places=place,
                                      return_list=False, batch_size=None)
        from paddleopt.utils.native_output import third_party_muted

        try:
            # PaddleSlim's tqdm bars, its INFO log and the deprecation warning about loading
            # the inference model go straight to the terminal: muted unless `-v`.
            with third_party_muted(), quiet_paddleslim():
                quant_post_static(
                    executor=exe, model_dir=str(model_file.parent),
                    quantize_model_path=str(out_dir), data_loader=loader,
                    model_filename=model_file.name,
                    params_filename=params_file.name if params_file else None,
                    save_model_filename="model.pdmodel",
                    save_params_filename="model.pdiparams",
                    batch_nums=len(batches), scope=scope, algo=paddle_algo,
                    hist_percent=hist_percent, bias_correction=bias_correction,
                    quantizable_op_type=list(quantizable_op_types),
                    weight_quantize_type=weight_quantize_type, onnx_format=onnx_format,
                    skip_tensor_list=list(skip_tensors) or None,
                    optimize_model=optimize_model)
        except (IndexError, ValueError, TypeError, ZeroDivisionError) as exc:
            # Paddle's own PTQ code failing on this model with this algorithm (avg reshapes
            # every activation by its first dimension and fails on ERNIE's 0-d tensors): the
            # data were validated above, so it is the algorithm that does not fit.
            raise UserError(f"PaddleSlim's post-training quantization with algo "
                            f"'{algo.lower()}' failed on '{model_file}': "
                            f"{type(exc).__name__}: {exc}",
                            "use another algo (hist, mse, kl, abs_max); the data and the "
                            "model were checked and are not the cause.") from exc

    from paddleopt.compress.int8_check import program_quant_summary
    from paddleopt.compress.onednn_fix import apply_onednn_int8_fixes

    out_model = out_dir / "model.pdmodel"
    fixes = apply_onednn_int8_fixes(out_model)  # so that oneDNN INT8 can run it (see there)
    return PTQReport(
        algo=algo.lower(), batches=len(batches),
        samples=int(sum(np.asarray(b[0]).shape[0] if np.ndim(b[0]) else 1 for b in batches)),
        weight_quantize_type=weight_quantize_type, onnx_format=onnx_format,
        quantizable_op_types=list(quantizable_op_types), skip_tensors=list(skip_tensors),
        model_file=str(out_model), params_file=str(out_dir / "model.pdiparams"),
        quant=program_quant_summary(out_model), onednn_fixes=fixes)

"""A pipeline's ``source``: a Paddle inference folder the first stage reads.

``source: {model_dir: DIR, shapes: {...}, preprocess: {...}}`` lets any stage that consumes
an inference artifact (ptq, to_onnx, to_lite) come first, and makes ``check -c``, the
pre-check and the report use that model. The folder is opened once at plan time (its
program parsed, shapes and preprocess validated) so a wrong path or shape stops the plan.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from paddleopt.artifact.artifact import Artifact
from paddleopt.artifact.manifest import sha256_file
from paddleopt.artifact.shapes import apply_shapes, parse_shapes
from paddleopt.utils.errors import ConfigError, UserError
from paddleopt.utils.grammar import a_an

if TYPE_CHECKING:
    from paddleopt.config.sections import SourceConfig


def open_model(model_dir: str | Path, shapes: dict[str, Any] | None = None,
               preprocess: dict[str, Any] | None = None, where: str = "source",
               inputs: str | Path | None = None) -> Artifact:
    """Open an inference folder (foreign or ours) with ``shapes``/``preprocess`` applied.

    The manifest is in memory only; for a foreign folder it gets each file's sha256, so the
    pipeline's resume fingerprint changes when the model files do.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise UserError(f"{where}.model_dir: '{folder}' is not a folder.",
                        "point it at the folder holding the .pdmodel and .pdiparams.")
    art = Artifact.open(folder).verify()  # digests (ours) and program structure
    if art.kind != "inference":
        raise UserError(f"{where}.model_dir: '{folder}' holds {a_an(art.kind)} artifact.",
                        "point it at a Paddle inference model folder (.pdmodel + .pdiparams).")
    if shapes:
        apply_shapes(art.manifest, parse_shapes(shapes, f"{where}.shapes"), f"{where}.shapes")
    if preprocess:
        from paddleopt.config.schema import parse, to_dict
        from paddleopt.data.preprocess import ImagePreprocess

        spec = parse(ImagePreprocess, {"channels": 3, **preprocess}, path=f"{where}.preprocess")
        art.manifest.preprocess = to_dict(spec)
    if inputs:
        import numpy as np

        try:
            with np.load(inputs, allow_pickle=False) as data:
                missing = [s.name for s in art.manifest.io.inputs if s.name not in data.files]
        except (OSError, ValueError) as exc:
            raise UserError(f"{where}.inputs: cannot read '{inputs}': {exc}",
                            "write it with numpy.savez(path, input_name=array, ...).") from None
        if missing:
            raise UserError(f"{where}.inputs: '{inputs}' lacks {missing}.",
                            "save one array per model input, named like the input.")
        art.manifest.model = {**art.manifest.model, "inputs_npz": str(Path(inputs).resolve())}
    if not art.manifest.file_digests:
        art.manifest.file_digests = {role: sha256_file(folder / rel)
                                     for role, rel in art.manifest.files.items()
                                     if (folder / rel).is_file()}
    return art


def open_source(cfg: SourceConfig, source: str = "") -> Artifact:
    """The artifact of a pipeline's ``source`` section; errors name the key."""
    prefix = f"{source}: " if source else ""
    try:
        return open_model(cfg.model_dir, cfg.shapes, cfg.preprocess, inputs=cfg.inputs)
    except UserError as exc:
        raise ConfigError(f"{prefix}{exc.message}", exc.fix) from None

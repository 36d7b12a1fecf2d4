"""File names a deployment tool expects: ``inference.pdmodel/.pdiparams`` (+ ``inference.yml``).

PaddleClas deploy, FastDeploy and PaddleOCR's tools look for ``inference.*`` in a model folder;
paddleopt's stages write ``model.*``. ``file_prefix: inference`` on export, ptq and qat renames
the result, ``preprocess_file: true`` writes the image preprocess as a PaddleClas/PaddleX
``inference.yml`` beside it (which paddleopt reads back).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def check_file_prefix(stage: str, prefix: str) -> tuple[str, str] | None:
    """A config problem (message, fix) when ``prefix`` is not a plain file stem."""
    if not prefix or "/" in prefix or "." in prefix:
        return (f"{stage}.file_prefix must be a plain file stem, got {prefix!r}",
                "use model or inference")
    return None


def deploy_names(out_dir: Path, manifest: Any, file_prefix: str = "model",
                 preprocess_file: bool = False) -> None:
    """Rename the model/params files of ``manifest`` in ``out_dir`` to ``file_prefix``.*
    and, with ``preprocess_file``, write ``inference.yml``; the manifest follows."""
    for key, suffix in (("model", ".pdmodel"), ("params", ".pdiparams")):
        current = manifest.files.get(key)
        wanted = f"{file_prefix}{suffix}"
        if current and current != wanted:
            (Path(out_dir) / current).replace(Path(out_dir) / wanted)
            manifest.files[key] = wanted
    if preprocess_file:
        from paddleopt.artifact.preprocess_files import write_preprocess_file

        written = write_preprocess_file(Path(out_dir), manifest.preprocess, manifest.labels)
        if written is not None:
            manifest.files["preprocess"] = written.name

"""Installed versions of the stack, read from package metadata (imports nothing heavy)."""
from __future__ import annotations

from importlib import metadata

STACK = ("paddlepaddle", "paddlepaddle-gpu", "paddleslim", "paddlenlp", "paddle2onnx",
         "onnxruntime", "onnx", "paddlelite", "lac", "numpy", "paddleopt")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def stack_versions() -> dict[str, str]:
    return {name: v for name in STACK if (v := package_version(name)) is not None}

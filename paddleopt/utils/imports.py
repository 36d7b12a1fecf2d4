"""Optional dependencies: which extra provides what, and imports that respect Paddle's quirks."""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from paddleopt.utils.errors import UserError

# extra name -> modules that must import for the extra to count as installed.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "core": ("paddle", "numpy", "yaml"),
    "slim": ("paddleslim",),
    "nlp": ("paddlenlp",),
    "onnx": ("paddle2onnx", "onnxruntime", "onnx"),
    "lite": ("paddlelite",),
    "serve": ("fastapi", "uvicorn"),
    "openvino": ("openvino",),
    "test": ("pytest",),
}

INSTALL_HINT = 'pip install -c constraints.txt -e ".[{extra}]"'


def import_paddle() -> ModuleType:
    """Import paddle after zlib and gzip.

    libpaddle exports its own deflate/inflate/crc32 symbols; a zlib or gzip import that
    happens after paddle can bind to them and segfault or raise "inconsistent stream state".
    """
    import gzip  # noqa: F401
    import zlib  # noqa: F401

    return importlib.import_module("paddle")


def missing_modules(extra: str) -> list[str]:
    """Return the modules of ``extra`` that are not installed (cheap: no import)."""
    return [m for m in EXTRA_MODULES[extra] if not _has_module(m)]


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        return False


def extra_import_error(extra: str) -> str | None:
    """Try importing every module of ``extra``; return the first failure as text, or None."""
    if extra in ("slim", "nlp", "core"):
        import_paddle()
    for module in EXTRA_MODULES[extra]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an extra can be present but broken (wrong paddle version)
            return f"{module}: {type(exc).__name__}: {exc}"
    return None


def require_extra(extra: str, what: str) -> None:
    """Raise a UserError naming the pip line when ``extra`` is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise UserError(
            f"{what} needs the '{extra}' extra, but {', '.join(missing)} is not installed.",
            f"run: {INSTALL_HINT.format(extra=extra)}",
        )

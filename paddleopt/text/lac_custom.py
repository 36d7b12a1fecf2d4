"""LAC's user dictionary ("customization"), reimplemented from LAC 2.1.2 ``LAC/custom.py``.

A dictionary file has one item per line. An item is one or more words separated by ``sep``
(default: any whitespace); a word may carry a tag after its last "/". Examples from LAC's
README::

    春天/SEASON      force the word 春天 and give it the tag SEASON
    花/n 开/v        force the split 花|开 with tags n and v
    秋天的风         force one word, keep the model's tag
    落 阳            force the split 落|阳, keep the model's tags

Matching works on the model's per-character tags before they are turned into words, so the
same dictionary applies to the seg, lac and rank modes. The matching rules (including their
quirks, e.g. overlapping matches are applied in order, one-character untagged items are
ignored) are LAC's, kept so that a LAC user dictionary gives the same result here.
"""
from __future__ import annotations

import os

from paddleopt.utils.errors import UserError


class PrefixTrie:
    """LAC's ``TriedTree``: a flat dict of words (value: length) and their prefixes (None)."""

    def __init__(self) -> None:
        self.tree: dict[str, int | None] = {}

    def add_word(self, word: str) -> None:
        self.tree[word] = len(word)
        for i in range(1, len(word)):
            prefix = word[:i]
            self.tree[prefix] = self.tree.get(prefix, None)

    def search(self, content: str) -> list[tuple[int, int]]:
        """Left-to-right longest matches as (begin, end) with end exclusive.

        From each start position the longest dictionary word is kept if it ends after the
        previously kept match; matches can therefore overlap, exactly as in LAC.
        """
        result: list[tuple[int, int]] = []
        length = len(content)
        for start in range(length):
            for end in range(start + 1, length + 1):
                value = self.tree.get(content[start:end], -1)
                if value == -1:
                    break
                if value and (not result or end > result[-1][1]):
                    result.append((start, end))
        return result


def parse_item(item: str, sep: str | None) -> tuple[str, list[str], list[int]] | None:
    """One dictionary line -> (phrase, tag per word, end offset per word), or None to skip."""
    words = item.strip().split(sep)
    if not words:
        return None
    phrase = ""
    tags: list[str] = []
    offsets: list[int] = []
    for word in words:
        slash = word.rfind("/")
        if slash < 1:  # no tag (a leading "/" belongs to the word)
            phrase += word
            tags.append("")
        else:
            phrase += word[:slash]
            tags.append(word[slash + 1:])
        offsets.append(len(phrase))
    # A single character without a tag would force nothing; LAC drops such items.
    if len(phrase) < 2 and tags[0] == "":
        return None
    return phrase, tags, offsets


class Customization:
    """A loaded user dictionary that rewrites the model's per-character tags."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[list[str], list[int]]] = {}
        self.trie = PrefixTrie()

    def add_word(self, item: str, sep: str | None = None) -> None:
        """Add one item in the dictionary-file format, e.g. "花/n 开/v"."""
        parsed = parse_item(item, sep)
        if parsed is not None:
            phrase, tags, offsets = parsed
            self.items[phrase] = (tags, offsets)  # a later item with the same text wins
            self.trie.add_word(phrase)

    def load(self, path: str | os.PathLike, sep: str | None = None) -> None:
        """Add every line of a UTF-8 dictionary file."""
        try:
            with open(path, "r", encoding="utf8") as file:
                lines = file.readlines()
        except OSError as exc:
            raise UserError(f"cannot read the LAC user dictionary {os.fspath(path)!r}: {exc}",
                            "pass the path of an existing UTF-8 text file.") from exc
        except UnicodeDecodeError as exc:
            raise UserError(f"the LAC user dictionary {os.fspath(path)!r} is not UTF-8: {exc}",
                            "save the dictionary as UTF-8.") from exc
        for line in lines:
            self.add_word(line, sep)

    def apply(self, text: str, tags: list[str]) -> None:
        """Rewrite ``tags`` (one "<label>-B/-I/..." per character of ``text``) in place.

        Inside a matched item every character becomes "-I" (with the item's tag when it has
        one), then the first character of the item and the character after each of its words
        become "-B", which forces the item's segmentation.
        """
        for begin, end in self.trie.search(text):
            item_tags, offsets = self.items[text[begin:end]]
            index = begin
            for tag, offset in zip(item_tags, offsets):
                while index < begin + offset:
                    tags[index] = tags[index][:-1] + "I" if tag == "" else tag + "-I"
                    index += 1
            tags[begin] = tags[begin][:-1] + "B"
            for offset in offsets:
                index = begin + offset
                if index < len(tags):
                    tags[index] = tags[index][:-1] + "B"

"""Small English helpers for messages built from names ("an inference artifact")."""
from __future__ import annotations

# Names read letter by letter or starting with a vowel sound, as they appear in messages.
_AN = ("a", "e", "i", "o", "u", "x86", "fp", "nb", "rss", "onnx", "arm", "int8", "opencl")


def a_an(word: str) -> str:
    """'an inference', 'an arm', 'an x86', 'a checkpoint', 'a lite'."""
    w = str(word).lower()
    return f"{'an' if w.startswith(_AN) else 'a'} {word}"

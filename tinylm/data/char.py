"""Character-level tokenizer: one id per Unicode code point seen in a text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .tokenizers import Tokenizer


class CharTokenizer(Tokenizer):
    r"""One id per distinct character (Unicode code point) of the text it is built from.

    >>> tok = CharTokenizer("hello")
    >>> tok.encode("hole"), tok.vocab_size
    ([1, 3, 2, 0], 4)

    The ids follow the sorted characters (``sorted(set(text))``), so the same text always
    gives the same vocabulary. Characters are code points with no Unicode normalisation:
    a precomposed "é" (U+00E9) and "e" + combining acute (U+0065 U+0301) are different
    sequences, each decoded back exactly as it was.

    Unknown characters: by default ``encode`` raises ``ValueError`` naming the character,
    its code point and its position, because silently dropping or replacing text hides
    bugs. With ``unk="\ufffd"`` (any non-empty string) every unknown character encodes to
    one extra id, which decodes to that string; then ``decode(encode(s)) == s`` holds only
    for strings within the vocabulary. If ``unk`` is itself a single character of the
    text, it reuses that character's id.
    """

    kind = "char"

    def __init__(self, text: str, *, unk: str | None = None):
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer: expected the text as a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharTokenizer: cannot build a vocabulary from an empty text")
        self._setup(sorted(set(text)), unk)

    def _setup(self, chars: list[str], unk: str | None) -> None:
        if unk is not None and (not isinstance(unk, str) or not unk):
            raise ValueError(f"CharTokenizer: unk must be a non-empty str or None, got {unk!r}")
        self.chars = chars  # id -> character
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.unk = unk
        self.unk_id: int | None = None
        self.itos = list(chars)  # id -> decoded string (the characters, then unk)
        if unk is not None:
            self.unk_id = self.stoi.get(unk, len(chars))
            if self.unk_id == len(chars):
                self.itos.append(unk)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.encode: expected a str, got {type(text).__name__}")
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pass
        if self.unk_id is not None:
            return [stoi.get(c, self.unk_id) for c in text]
        pos = next(i for i, c in enumerate(text) if c not in stoi)
        c = text[pos]
        raise ValueError(
            f"CharTokenizer.encode: character {c!r} (U+{ord(c):04X}) at position {pos} is not "
            f"in the vocabulary of {len(self.chars)} characters; build the tokenizer from a "
            f"text that contains it, or pass unk=... to map unknown characters to one id"
        )

    def decode(self, ids: Iterable[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in self._check_ids(ids))

    def _state(self) -> dict[str, Any]:
        return {"chars": self.chars, "unk": self.unk}

    @classmethod
    def _from_state(cls, d: dict[str, Any]) -> CharTokenizer:
        chars = d["chars"]
        if (
            not isinstance(chars, list)
            or not all(isinstance(c, str) and len(c) == 1 for c in chars)
            or len(set(chars)) != len(chars)
        ):
            raise ValueError(
                "CharTokenizer.from_dict: 'chars' must be a list of distinct single characters"
            )
        tok = cls.__new__(cls)
        tok._setup(chars, d["unk"])
        return tok

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unk={self.unk!r})"

"""Word-level tokenizer: one id per frequent word, "<unk>" for the rest. Lossy by design."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .tokenizers import Tokenizer

UNK = "<unk>"

# a word may carry hyphens inside it ("self-love") and apostrophes inside it or at either
# end ("o'er", "'tis", "th'": Shakespeare's elisions, so decode can put them back);
# any other non-space character is punctuation, a run of the same one is one token ("--")
_WORD = r"['\u2019]?\w+(?:['\u2019-]\w+)*['\u2019]?"
_PUNCT = r"([^\w\s])\1*"

_CLOSERS = set(".,;:!?)]}%\u3001\u3002\uff0c\uff1a\uff1b\uff01\uff1f\uff09")  # no space before
_OPENERS = set("([{\uff08")  # no space after these (the last ones are CJK full-width forms)
_QUOTES = {'"', "'"}  # alternate between opening and closing


class WordTokenizer(Tokenizer):
    """One id per word seen at least ``min_freq`` times in the text it is built from.

    >>> tok = WordTokenizer("To be, or not to be.\\n", lowercase=True)
    >>> tok.tokenize("Not to be!")
    ['not', 'to', 'be', '!']
    >>> tok.decode(tok.encode("Not to be!"))
    'not to be <unk>'

    Options:

    - ``lowercase``: lower-case the text (building and encoding) so "The" and "the" share
      an id.
    - ``split_punctuation``: make each punctuation mark its own token (runs of the same
      mark, like "--" or "...", stay together; hyphens inside a word and apostrophes
      inside or at either end of it stay with it: "self-love", "o'er", "'tis", "th'").
      When False, words are simply the whitespace-separated chunks, so "be," and "be"
      are different words.
    - ``keep_newlines``: make each line break a token, so decoded text keeps its lines
      (a verse corpus stays verse).
    - ``min_freq``: words seen fewer times are left out of the vocabulary.

    Id 0 is ``"<unk>"``: any word not in the vocabulary encodes to it (never dropped), and
    it decodes as the text ``<unk>``. The other ids follow frequency (most frequent first;
    ties in alphabetical order), so the same text and options give the same vocabulary.

    Word tokenization is lossy: ``decode`` joins the tokens with single spaces, except
    before closing punctuation (``.,;:!?)]}`` and the CJK full-width ``，。、：；！？）``),
    after opening brackets, on both sides of a dash ("--"), and inside quotes (a quote
    after closing punctuation closes, otherwise quotes alternate between opening and
    closing within a line). It cannot know what whitespace there was:
    tabs, runs of spaces, indentation, and line breaks too when ``keep_newlines`` is
    False, are all lost. Lower-casing and ``<unk>`` lose information as well. Made for
    space-separated languages: a run of Chinese characters is a single "word".
    """

    kind = "word"

    def __init__(
        self,
        text: str,
        *,
        lowercase: bool = False,
        split_punctuation: bool = True,
        keep_newlines: bool = True,
        min_freq: int = 1,
    ):
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer: expected the text as a str, got {type(text).__name__}")
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"WordTokenizer: min_freq must be an int >= 1, got {min_freq!r}")
        self._set_options(lowercase, split_punctuation, keep_newlines, min_freq)
        counts = Counter(self.tokenize(text))
        counts.pop(UNK, None)  # "<unk>" is always id 0
        kept = [w for w, n in counts.items() if n >= min_freq]
        kept.sort(key=lambda w: (-counts[w], w))  # most frequent first, ties alphabetical
        if not kept:
            raise ValueError(
                f"WordTokenizer: no word of the text occurs at least min_freq={min_freq} "
                f"times ({len(counts)} distinct words)"
            )
        self._set_vocab([UNK, *kept])

    def _set_options(self, lowercase, split_punctuation, keep_newlines, min_freq) -> None:
        for name, v in [
            ("lowercase", lowercase),
            ("split_punctuation", split_punctuation),
            ("keep_newlines", keep_newlines),
        ]:
            if not isinstance(v, bool):
                raise TypeError(f"WordTokenizer: {name} must be True or False, got {v!r}")
        self.lowercase = lowercase
        self.split_punctuation = split_punctuation
        self.keep_newlines = keep_newlines
        self.min_freq = min_freq
        word = _WORD + "|" + _PUNCT if split_punctuation else r"\S+"
        self._pattern = re.compile(r"\n|" + word if keep_newlines else word)

    def _set_vocab(self, vocab: list[str]) -> None:
        self.itos = vocab  # id -> word
        self.stoi = {w: i for i, w in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        """The words (strings) that ``encode`` maps to ids, in order."""
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer: expected a str, got {type(text).__name__}")
        if self.lowercase:
            text = text.lower()
        return [m.group(0) for m in self._pattern.finditer(text)]

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        return [stoi.get(w, 0) for w in self.tokenize(text)]  # 0 is "<unk>"

    def decode(self, ids: Iterable[int]) -> str:
        out: list[str] = []
        glue = True  # no space before the next token: at the start, after "\n" or an opener
        open_quotes: set[str] = set()
        prev = "\n"  # the token before
        for i in self._check_ids(ids):
            w = self.itos[i]
            if w == "\n":
                out.append(w)
                glue, prev = True, w
                open_quotes.clear()  # an unclosed quote does not carry over to the next line
                continue
            space, glue_next = not glue, False
            if self.split_punctuation:
                if w[0] in _CLOSERS:
                    space = False
                elif w in _QUOTES:
                    if w in open_quotes or prev[0] in _CLOSERS:  # closing ("so," he said)
                        open_quotes.discard(w)
                        space = False
                    else:  # opening: attach to the word after
                        open_quotes.add(w)
                        glue_next = True
                elif w[0] in _OPENERS:
                    glue_next = True
                elif len(w) > 1 and set(w) == {"-"}:  # a dash "--" attaches on both sides
                    space, glue_next = False, True
            if space:
                out.append(" ")
            out.append(w)
            glue, prev = glue_next, w
        return "".join(out)

    def _state(self) -> dict[str, Any]:
        return {
            "lowercase": self.lowercase,
            "split_punctuation": self.split_punctuation,
            "keep_newlines": self.keep_newlines,
            "min_freq": self.min_freq,
            "vocab": self.itos,
        }

    @classmethod
    def _from_state(cls, d: dict[str, Any]) -> WordTokenizer:
        vocab = d["vocab"]
        if (
            not isinstance(vocab, list)
            or not vocab
            or vocab[0] != UNK
            or not all(isinstance(w, str) and w for w in vocab)
            or len(set(vocab)) != len(vocab)
        ):
            raise ValueError(
                "WordTokenizer.from_dict: 'vocab' must be a list of distinct non-empty "
                f"strings starting with {UNK!r}"
            )
        tok = cls.__new__(cls)
        tok._set_options(d["lowercase"], d["split_punctuation"], d["keep_newlines"], d["min_freq"])
        tok._set_vocab(vocab)
        return tok

    def __repr__(self) -> str:
        return (
            f"WordTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
            f"split_punctuation={self.split_punctuation}, keep_newlines={self.keep_newlines}, "
            f"min_freq={self.min_freq})"
        )

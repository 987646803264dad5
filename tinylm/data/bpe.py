r"""Byte-level byte-pair encoding (BPE), trained from scratch.

Training (``BPETokenizer.train(text, vocab_size)``):

1. Pre-split the text with ``SPLIT_PATTERN`` into chunks (a word with its leading space,
   a punctuation run, whitespace), so no merge ever crosses a word boundary.
2. Write each chunk as its UTF-8 bytes: ids 0..255 are the 256 bytes, so any string
   can be encoded and nothing is ever unknown.
3. Repeat until the vocabulary has ``vocab_size`` ids: find the most frequent adjacent
   pair of ids (a, b) over all chunks (ties: the smallest (a, b)), give it the next id
   and replace every occurrence, left to right.

Pair counts are updated incrementally: a merge touches only the chunks that contain the
pair, and only their pairs' counts change, so training does not recount the corpus per
merge. A heap with lazy deletion finds the most frequent pair.

Encoding applies the learned merges to each chunk by rank (earliest-learned first),
which reproduces what training did to that chunk. Decoding concatenates the bytes of
the ids, so ``decode(encode(s)) == s`` for every string that has a UTF-8 encoding.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from .tokenizers import Tokenizer

# a word with an optional leading space | punctuation with one | whitespace not followed by
# a word | trailing whitespace. Every character matches one branch, so chunks tile the text.
SPLIT_PATTERN = r" ?\w+| ?[^\w\s]+|\s+(?!\S)|\s+"
_SPLIT = re.compile(SPLIT_PATTERN)
_CACHE_LIMIT = 100_000  # encoded chunks remembered per tokenizer


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` (scanning left to right) replaced."""
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """Byte-level BPE: ids 0..255 are bytes, id 256 + k is the k-th learned merge.

    >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=260)
    >>> tok.decode(tok.encode("slowest!")) == "slowest!"
    True

    ``decode`` of ids that do not form valid UTF-8 (a model's output may split a
    character) shows each bad byte as U+FFFD; ``decode_bytes`` gives the raw bytes.
    ``encode`` refuses a lone surrogate (it has no UTF-8 encoding), naming its position.
    """

    kind = "bpe"

    def __init__(self, merges: Iterable[tuple[int, int]] = ()):
        """A tokenizer with the given merges (pair of ids -> the next id, in order);
        usually made by ``BPETokenizer.train`` or ``Tokenizer.load``."""
        self.merges: list[tuple[int, int]] = []
        self.ranks: dict[tuple[int, int], int] = {}  # pair -> the id it merges into
        self.vocab: list[bytes] = [bytes([i]) for i in range(256)]  # id -> its bytes
        for k, pair in enumerate(merges):
            if (
                not isinstance(pair, (list, tuple))
                or len(pair) != 2
                or not all(isinstance(t, int) and not isinstance(t, bool) for t in pair)
            ):
                raise ValueError(f"BPETokenizer: merge {k} is {pair!r}, not a pair of ints")
            a, b = pair
            new_id = 256 + k
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(
                    f"BPETokenizer: merge {k} ({a}, {b}) uses an id outside [0, {new_id})"
                )
            if (a, b) in self.ranks:
                raise ValueError(f"BPETokenizer: merge {k} ({a}, {b}) repeats an earlier merge")
            self.merges.append((a, b))
            self.ranks[(a, b)] = new_id
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # --- training -------------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if the text runs out of
        pairs, when every chunk is a single token). Deterministic: same text, same merges."""
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.train: expected a str, got {type(text).__name__}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(
                f"BPETokenizer.train: vocab_size must be an int >= 256 (the bytes), "
                f"got {vocab_size!r}"
            )
        _check_utf8(text, "BPETokenizer.train")
        chunk_freq = Counter(m.group(0) for m in _SPLIT.finditer(text))
        words = [list(c.encode("utf-8")) for c in chunk_freq]  # each distinct chunk, as ids
        freqs = list(chunk_freq.values())

        counts: dict[tuple[int, int], int] = defaultdict(int)  # pair -> occurrences
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks with it
        for w, (ids, f) in enumerate(zip(words, freqs)):
            for pair in zip(ids, ids[1:]):
                counts[pair] += f
                where[pair].add(w)
        heap = [(-c, pair) for pair, c in counts.items()]  # most frequent, then smallest pair
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        while 256 + len(merges) < vocab_size:
            while heap and counts.get(heap[0][1], 0) != -heap[0][0]:
                heapq.heappop(heap)  # a stale entry: that pair's count has changed since
            if not heap:
                break  # no adjacent pairs left
            _, pair = heapq.heappop(heap)
            new_id = 256 + len(merges)
            merges.append(pair)
            changed = set()
            for w in where.pop(pair):
                old = words[w]
                new = _merge(old, pair, new_id)
                if len(new) == len(old):
                    continue  # the chunk lost this pair to an earlier merge
                f = freqs[w]
                for p in zip(old, old[1:]):  # remove the chunk's old pairs ...
                    counts[p] -= f
                    changed.add(p)
                for p in zip(new, new[1:]):  # ... and add its new ones
                    counts[p] += f
                    where[p].add(w)
                    changed.add(p)
                words[w] = new
            for p in changed:
                if counts[p] > 0:
                    heapq.heappush(heap, (-counts[p], p))
                else:
                    del counts[p]
        return cls(merges)

    # --- encoding and decoding ------------------------------------------------------

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = list(chunk.encode("utf-8"))
        ranks = self.ranks
        while len(ids) >= 2:
            # the adjacent pair that was learned first (lowest new id), if any
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, 1 << 62))
            if pair not in ranks:
                break
            ids = _merge(ids, pair, ranks[pair])
        return ids

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode: expected a str, got {type(text).__name__}")
        _check_utf8(text, "BPETokenizer.encode")
        cache = self._cache
        out: list[int] = []
        for m in _SPLIT.finditer(text):
            chunk = m.group(0)
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[chunk] = ids
            out.extend(ids)
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes the ids stand for (exact, even when they are not valid UTF-8)."""
        vocab = self.vocab
        return b"".join(vocab[i] for i in self._check_ids(ids))

    def decode(self, ids: Iterable[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def _state(self) -> dict[str, Any]:
        return {"merges": [list(p) for p in self.merges]}

    @classmethod
    def _from_state(cls, d: dict[str, Any]) -> BPETokenizer:
        if not isinstance(d["merges"], list):
            raise ValueError("BPETokenizer.from_dict: 'merges' must be a list of [a, b] pairs")
        return cls(d["merges"])


def _check_utf8(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        c = text[e.start]
        raise ValueError(
            f"{where}: character {c!r} (U+{ord(c):04X}) at position {e.start} is a lone "
            "surrogate, which has no UTF-8 encoding"
        ) from None

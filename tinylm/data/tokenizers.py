"""What every tokenizer shares: the interface, id checking, and saving as JSON.

A tokenizer maps text to a list of integer ids in ``[0, vocab_size)`` and back:

    tok.encode("to be") -> [3, 1, 0, 4, 1]      tok.decode([3, 1]) -> "to"

``to_dict()`` gives a JSON-friendly dict (``{"kind": "char" | "word" | "bpe",
"version": 1, ...}``) that ``Tokenizer.from_dict`` turns back into the same tokenizer,
so a checkpoint can carry its tokenizer in its metadata; ``save(path)`` / ``load(path)``
write and read that dict as a UTF-8 JSON file. Never pickle.

The three kinds live in ``char.py``, ``word.py`` and ``bpe.py``; see
``lessons/10_language_model.py`` for how they compare.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


class Tokenizer:
    """Base class: subclasses set ``kind`` and implement the methods that raise here."""

    kind: str = ""

    @property
    def vocab_size(self) -> int:
        """Number of ids; every id ``encode`` returns is in ``[0, vocab_size)``."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """The kind-specific part of ``to_dict()``."""
        raise NotImplementedError

    @classmethod
    def _from_state(cls, d: dict[str, Any]) -> Tokenizer:
        raise NotImplementedError

    # --- serialisation --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description that ``Tokenizer.from_dict`` rebuilds exactly."""
        return {"kind": self.kind, "version": FORMAT_VERSION, **self._state()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from ``to_dict()``. ``Tokenizer.from_dict`` accepts any
        kind; ``CharTokenizer.from_dict`` etc. insist on their own."""
        if not isinstance(d, dict) or "kind" not in d:
            raise ValueError(f"{cls.__name__}.from_dict: expected a dict with a 'kind' key")
        kinds = _kinds()
        if d["kind"] not in kinds:
            raise ValueError(
                f"{cls.__name__}.from_dict: unknown tokenizer kind {d['kind']!r}; "
                f"known kinds: {sorted(kinds)}"
            )
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{cls.__name__}.from_dict: unsupported format version {d.get('version')!r} "
                f"(this tinylm reads version {FORMAT_VERSION})"
            )
        target = kinds[d["kind"]]
        if cls is not Tokenizer and cls is not target:
            raise ValueError(
                f"{cls.__name__}.from_dict: this is a {d['kind']!r} tokenizer; "
                f"use {target.__name__}.from_dict or Tokenizer.from_dict"
            )
        try:
            return target._from_state(d)
        except (KeyError, TypeError) as e:
            raise ValueError(
                f"{target.__name__}.from_dict: malformed tokenizer dict ({e})"
            ) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` to ``path`` as UTF-8 JSON (atomically: temp file, rename)."""
        d = self.to_dict()
        try:
            data = json.dumps(d, ensure_ascii=False, indent=1).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in a vocabulary: escape it instead
            data = json.dumps(d, ensure_ascii=True, indent=1).encode("utf-8")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer written by ``save``. ``Tokenizer.load`` accepts any kind."""
        raw = Path(path).read_bytes()
        try:
            d = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(
                f"{cls.__name__}.load: {str(path)!r} is not a UTF-8 JSON file ({e})"
            ) from None
        return cls.from_dict(d)

    # --- helpers for subclasses -----------------------------------------------------

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        """``ids`` as a list of Python ints, each checked to be in ``[0, vocab_size)``.
        Accepts lists, tuples, 1-D NumPy arrays and tinylm tensors."""
        if hasattr(ids, "tolist"):  # a NumPy array or a tinylm Tensor
            ids = ids.tolist()
        if isinstance(ids, (str, bytes)) or isinstance(ids, int):
            raise TypeError(
                f"{type(self).__name__}.decode: expected a sequence of ids, got {ids!r}"
            )
        out = list(ids)
        n = self.vocab_size
        for i, t in enumerate(out):
            if isinstance(t, bool) or not isinstance(t, int):
                if hasattr(t, "__index__") and not isinstance(t, bool):
                    t = out[i] = t.__index__()  # NumPy integer scalars
                else:
                    raise TypeError(
                        f"{type(self).__name__}.decode: id at position {i} is {t!r}, not an int"
                    )
            if not 0 <= t < n:
                raise ValueError(
                    f"{type(self).__name__}.decode: token id {t} out of range [0, {n}) "
                    f"at position {i}"
                )
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def _kinds() -> dict[str, type[Tokenizer]]:
    from .bpe import BPETokenizer
    from .char import CharTokenizer
    from .word import WordTokenizer

    return {"char": CharTokenizer, "word": WordTokenizer, "bpe": BPETokenizer}

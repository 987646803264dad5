"""Text in, token ids out: shipped corpora, tokenizers and language-model batches.

- ``load_text(name_or_path)``: a shipped corpus (``CORPORA``) or any UTF-8 text file.
- ``train_val_split(seq, val_fraction)``: a contiguous split (the end is validation).
- ``CharTokenizer``, ``WordTokenizer``, ``BPETokenizer``: one interface (``Tokenizer``).
- ``random_batch``, ``sequential_batches``, ``stream_batches``: (B, T) inputs and targets.

Shipped corpora load through ``importlib.resources`` (never a relative path, so they
load the same from a notebook, a script or an installed wheel); nothing is downloaded.
See ``tinylm/data/SOURCES.md`` for where each text comes from and its licence.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import TypeVar

from .batching import random_batch, sequential_batches, stream_batches
from .bpe import BPETokenizer
from .char import CharTokenizer
from .tokenizers import Tokenizer
from .word import WordTokenizer

# name -> file in this folder; every file has a section in SOURCES.md
CORPORA = {
    "names": "names.txt",  # 5,163 US first names, one per line (36 KB)
    "sonnets": "sonnets.txt",  # Shakespeare's 154 sonnets (96 KB)
    "plays": "plays.txt",  # Hamlet, Macbeth, Romeo and Juliet, A Midsummer Night's Dream (515 KB)
}


def load_text(name_or_path: str | os.PathLike) -> str:
    r"""The text of a shipped corpus (``load_text("sonnets")``) or of a UTF-8 text file.

    A shipped name wins over a file of the same name. Line endings are normalised
    (``\r\n`` and a lone ``\r`` become ``\n``) and a leading UTF-8 byte-order mark is
    dropped; nothing else is changed.

    Raises ``ValueError`` for an unknown corpus name (a bare word that is no file either),
    a file that is not UTF-8 (naming the byte, its offset and line) or is empty;
    ``FileNotFoundError`` for a missing path; ``IsADirectoryError`` for a folder.
    """
    if isinstance(name_or_path, str) and name_or_path in CORPORA:
        resource = resources.files(__name__).joinpath(CORPORA[name_or_path])
        return _decode(resource.read_bytes(), f"shipped corpus {name_or_path!r}")
    path = Path(name_or_path)
    if path.is_dir():
        raise IsADirectoryError(f"load_text: {str(path)!r} is a directory, not a text file")
    if not path.exists():
        if isinstance(name_or_path, str) and not any(c in name_or_path for c in "/.\\"):
            # a bare word is most likely a mistyped corpus name
            close = difflib.get_close_matches(name_or_path, CORPORA, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown corpus {name_or_path!r}; shipped corpora: {sorted(CORPORA)}{hint} "
                f"(and there is no file {name_or_path!r} in {os.getcwd()!r})"
            )
        raise FileNotFoundError(f"load_text: no such file: {str(path)!r}")
    return _decode(path.read_bytes(), repr(str(path)))


def _decode(raw: bytes, what: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"load_text: {what} is not UTF-8 text: byte 0x{raw[e.start]:02x} at offset "
            f"{e.start} (line {line}) cannot be decoded ({e.reason}); re-save the file as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        raise ValueError(f"load_text: {what} is empty")
    return text


def load_names() -> list[str]:
    """The 5,163 public-domain US first names (lower case, a-z only), one string each."""
    return load_text("names").split()


S = TypeVar("S")


def train_val_split(seq: S, val_fraction: float = 0.1) -> tuple[S, S]:
    """Split a text or a sequence (list, array, tensor) into ``(train, val)``, contiguously.

    The last ``n_val = round(len(seq) * val_fraction)`` elements (clamped to
    ``[1, len(seq) - 1]``, so neither part is empty) are validation, everything before
    them training. Nothing is shuffled and no element is in both, so validation is
    unseen running text (for ``"plays"``, the end of A Midsummer Night's Dream). Both
    parts keep the input's type (they are slices).
    """
    if isinstance(val_fraction, bool) or not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    n = len(seq)
    if n < 2:
        raise ValueError(
            f"train_val_split: {n} element(s) cannot be split into non-empty train and "
            f"validation parts"
        )
    n_val = min(max(1, round(n * float(val_fraction))), n - 1)
    return seq[: n - n_val], seq[n - n_val :]

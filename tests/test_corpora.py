"""Shipped corpora, load_text on any UTF-8 file, and the contiguous train/val split."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm
from tinylm import data

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True)
SOURCES = resources.files("tinylm.data").joinpath("SOURCES.md").read_text(encoding="utf-8")

# ----------------------------------------------------------------------------- shipped corpora


@pytest.mark.parametrize("name", sorted(data.CORPORA))
def test_shipped_corpus_is_clean_text(name):
    text = data.load_text(name)
    assert isinstance(text, str) and len(text) > 10_000
    assert "\r" not in text and "\ufeff" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    for boilerplate in ["gutenberg", "ebook", "etext", "copyright", "http", "www."]:
        assert boilerplate not in text.lower()


@pytest.mark.parametrize("name", sorted(data.CORPORA))
def test_shipped_file_matches_the_sha256_in_sources(name):
    filename = data.CORPORA[name]
    raw = resources.files("tinylm.data").joinpath(filename).read_bytes()
    section = SOURCES.split(f"## {filename}\n", 1)[1].split("\n## ", 1)[0]
    listed = re.search(r"SHA-256: `([0-9a-f]{64})`", section).group(1)
    assert hashlib.sha256(raw).hexdigest() == listed


def test_sonnets_are_all_154():
    text = data.load_text("sonnets")
    numerals = re.findall(r"^([IVXLC]+)$", text, flags=re.MULTILINE)
    assert len(numerals) == 154 and numerals[0] == "I" and numerals[-1] == "CLIV"
    assert text.startswith("THE SONNETS\nby William Shakespeare\n")
    assert "Shall I compare thee to a summer's day?" in text


def test_plays_are_the_four_in_order():
    text = data.load_text("plays")
    titles = [
        "HAMLET, PRINCE OF DENMARK",
        "MACBETH\n\nby William Shakespeare",
        "ROMEO AND JULIET",
        "A MIDSUMMER NIGHT'S DREAM",
    ]
    where = [text.index(t) for t in titles]
    assert where == sorted(where) and where[0] == 0
    assert "To be, or not to be" in text  # modern spelling, not the Folio's
    assert text.count("by William Shakespeare") == 4


def test_package_data_stays_small():
    folder = Path(data.__file__).parent
    total = sum(f.stat().st_size for f in folder.iterdir() if f.suffix in {".txt", ".md"})
    assert total < 2_000_000


def test_every_corpus_is_documented_with_a_licence():
    for filename in data.CORPORA.values():
        section = SOURCES.split(f"## {filename}\n", 1)[1].split("\n## ", 1)[0]
        assert "Source:" in section and "Licence: public domain" in section


def test_names_still_load():
    assert len(data.load_names()) == 5163


# ----------------------------------------------------------------------------- load_text(path)


def test_load_text_reads_any_utf8_file(tmp_path):
    f = tmp_path / "poem.txt"
    f.write_bytes("naïve 汉字 😀\n".encode())
    assert data.load_text(f) == data.load_text(str(f)) == "naïve 汉字 😀\n"


def test_load_text_normalises_line_endings_and_drops_a_bom(tmp_path):
    f = tmp_path / "dos.txt"
    f.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    assert data.load_text(f) == "one\ntwo\nthree\n"


def test_a_shipped_name_wins_over_a_file_of_that_name(tmp_path, monkeypatch):
    (tmp_path / "sonnets").write_text("not the sonnets\n")
    monkeypatch.chdir(tmp_path)
    assert data.load_text("sonnets").startswith("THE SONNETS")
    (tmp_path / "mytext").write_text("mine\n")
    assert data.load_text("mytext") == "mine\n"


def test_unknown_corpus_name_lists_the_corpora_and_suggests(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    listed = r"unknown corpus '{}'; shipped corpora: \['names', 'plays', 'sonnets'\]"
    with pytest.raises(ValueError, match=listed.format("sonets") + r"; did you mean 'sonnets'\?"):
        data.load_text("sonets")
    with pytest.raises(ValueError, match=listed.format("poems") + r" \(and there is no file"):
        data.load_text("poems")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: .*missing.txt"):
        data.load_text(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError):
        data.load_text(str(tmp_path / "missing.txt"))


def test_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory, not a text file"):
        data.load_text(tmp_path)


def test_non_utf8_names_the_byte_offset_and_line(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("first line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"not UTF-8 text: byte 0xe9 at offset 14 \(line 2\)"):
        data.load_text(f)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])
def test_empty_file_is_refused(tmp_path, content):
    f = tmp_path / "empty.txt"
    f.write_bytes(content)
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        data.load_text(f)


# ----------------------------------------------------------------------------- train_val_split


def test_split_is_contiguous_with_validation_at_the_end():
    text = data.load_text("sonnets")
    train, val = data.train_val_split(text, 0.1)
    assert train + val == text
    assert len(val) == round(len(text) * 0.1)
    assert val.endswith("water cools not love.\n")


def test_split_keeps_the_type():
    ids = list(range(10))
    assert data.train_val_split(ids, 0.2) == (list(range(8)), [8, 9])
    a_train, a_val = data.train_val_split(np.arange(10), 0.3)
    assert isinstance(a_val, np.ndarray) and a_val.tolist() == [7, 8, 9]
    t_train, t_val = data.train_val_split(tinylm.tensor(list(range(10))), 0.5)
    assert isinstance(t_train, tinylm.Tensor) and t_val.tolist() == [5, 6, 7, 8, 9]


def test_split_never_leaves_a_part_empty():
    assert data.train_val_split("abc", 0.01) == ("ab", "c")
    assert data.train_val_split("ab", 0.99) == ("a", "b")


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, True])
def test_split_refuses_a_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        data.train_val_split("abcdef", fraction)


@pytest.mark.parametrize("seq", ["", "a", [7]])
def test_split_refuses_too_short_input(seq):
    with pytest.raises(ValueError, match="cannot be split into non-empty train and validation"):
        data.train_val_split(seq, 0.5)


@SETTINGS
@given(st.integers(2, 10_000), st.floats(0.001, 0.999))
def test_split_sizes(n, fraction):
    train, val = data.train_val_split(range(n), fraction)
    assert len(train) >= 1 and len(val) >= 1 and len(train) + len(val) == n
    assert list(train) + list(val) == list(range(n))
    if 1 <= n * fraction <= n - 1:
        assert abs(len(val) - n * fraction) <= 0.5


def test_shipped_paths_are_resources_not_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # loading must not depend on the working directory
    assert data.load_text("plays").startswith("HAMLET")
    assert Path(data.__file__).parent.joinpath("plays.txt").exists()

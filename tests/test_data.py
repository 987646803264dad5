"""Shipped corpora load through importlib.resources and say where they come from."""

from __future__ import annotations

from importlib import resources

import pytest

from tinylm import data


def test_names_corpus_loads_and_is_clean():
    names = data.load_names()
    assert len(names) == 5163
    assert len(set(names)) == len(names)
    assert all(n.isascii() and n.isalpha() and n.islower() for n in names)
    assert {"mary", "john", "emma"} <= set(names)


def test_every_shipped_corpus_names_its_source_and_licence():
    sources = resources.files("tinylm.data").joinpath("SOURCES.md").read_text()
    for filename in data.CORPORA.values():
        assert f"## {filename}" in sources
    assert "public domain" in sources.lower()


def test_unknown_corpus_is_refused_with_the_list():
    want = r"unknown corpus 'sonets'; shipped corpora: \['names', 'plays', 'sonnets'\]"
    with pytest.raises(ValueError, match=want):
        data.load_text("sonets")

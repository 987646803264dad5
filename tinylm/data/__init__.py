"""Shipped corpora, loaded through ``importlib.resources`` (never a relative path, so
they load the same from a notebook, a script or an installed wheel).

See ``tinylm/data/SOURCES.md`` for where each text comes from and its licence.
"""

from __future__ import annotations

from importlib import resources

CORPORA = {"names": "names.txt"}


def load_text(name: str) -> str:
    """The text of a shipped corpus, e.g. ``load_text("names")``."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; shipped corpora: {sorted(CORPORA)}")
    return resources.files(__name__).joinpath(CORPORA[name]).read_text(encoding="utf-8")


def load_names() -> list[str]:
    """The 5,163 public-domain US first names (lower case, a-z only), one string each."""
    return load_text("names").split()

"""A tinylm source tree: where it is, its registered lesson markers, its files, its blocks."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .markers import Block, find_blocks

__all__ = ["CourseError", "MANIFEST", "course_config", "find_root", "registered_lessons",
           "parse_lessons", "source_files", "scan_blocks", "read_manifest"]

MANIFEST = "course.json"  # written at the root of every student copy


class CourseError(Exception):
    """A course command cannot do what was asked; the message says why and what to do."""


def _is_tree(p: Path) -> bool:
    pyproject = p / "pyproject.toml"
    return (p / "tinylm" / "__init__.py").is_file() and pyproject.is_file() and bool(
        re.search(r'(?m)^name\s*=\s*"tinylm"', pyproject.read_text(encoding="utf-8")))


def find_root(start=None) -> Path:
    """The tinylm source tree to work on: ``start`` if given, else the current directory,
    else the tree the imported tinylm comes from (an editable install)."""
    if start is not None:
        p = Path(start).resolve()
        if not _is_tree(p):
            raise CourseError(f"{p} is not a tinylm source tree (no pyproject.toml naming "
                              "tinylm beside a tinylm/ package)")
        return p
    candidates = [Path.cwd(), Path(__file__).resolve().parents[2]]
    for p in candidates:
        if _is_tree(p):
            return p
    raise CourseError("no tinylm source tree here: run this from a clone of tinylm (the folder "
                      "with pyproject.toml, tinylm/, lessons/ and tests/) or pass --source DIR")


def registered_lessons(root: Path) -> dict[str, str]:
    """``{"lesson01": "grades lesson 01 (autograd)", ...}`` from pyproject's pytest markers."""
    text = (Path(root) / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        markers = tomllib.loads(text)["tool"]["pytest"]["ini_options"].get("markers", [])
    except ModuleNotFoundError:  # Python 3.10: the marker lines are simple enough to read
        markers = re.findall(r'^\s*"(lesson\d\d:[^"]*)"', text, flags=re.M)
    out = {}
    for m in markers:
        name, _, desc = m.partition(":")
        if re.fullmatch(r"lesson\d\d", name.strip()):
            out[name.strip()] = desc.strip()
    return dict(sorted(out.items()))


def course_config(root: Path) -> dict:
    """``[tool.tinylm.course]`` of the tree's pyproject.toml (``audit_exempt``: test files the
    self-check leaves out)."""
    text = (Path(root) / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        return tomllib.loads(text).get("tool", {}).get("tinylm", {}).get("course", {})
    except ModuleNotFoundError:  # Python 3.10: one list of strings to read
        m = re.search(r"(?ms)^\[tool\.tinylm\.course\].*?^audit_exempt\s*=\s*\[(.*?)\]", text)
        return {"audit_exempt": re.findall(r'"([^"]+)"', m.group(1))} if m else {}


def parse_lessons(spec, registered: dict) -> list[str]:
    """``"6,7"``, ``"06 07"``, ``"lesson07"`` or a list of those -> ``["lesson06", "lesson07"]``.
    Anything that is not a registered lesson marker is refused, naming the valid ones."""
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    tokens = [t for item in items for t in re.split(r"[,\s]+", str(item)) if t]
    valid = ", ".join(registered) or "(none registered)"
    out = []
    for t in tokens:
        m = re.fullmatch(r"(?:lesson)?(\d{1,2})", t.strip(), flags=re.I)
        if not m:
            raise CourseError(f"not a lesson: {t!r}; give lesson numbers like 6,7 or names "
                              f"like lesson07 (registered: {valid})")
        name = f"lesson{int(m.group(1)):02d}"
        if name not in registered:
            raise CourseError(f"{name} is not a registered lesson marker in pyproject.toml "
                              f"(registered: {valid})")
        if name not in out:
            out.append(name)
    if not out:
        raise CourseError(f"no lessons given (registered: {valid})")
    return sorted(out)


_SKIP_ANYWHERE = {"__pycache__", "node_modules"}
_SKIP_AT_TOP = {"build", "dist", "out"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".nbi", ".nbc")


def _skip_dir(root: Path, rel: tuple) -> bool:
    """A folder left out of a copy: dot-folders, caches, build output, a virtual environment,
    another student copy."""
    name = rel[-1]
    if name.startswith(".") or name in _SKIP_ANYWHERE or name.endswith(".egg-info"):
        return True
    if len(rel) == 1 and name in _SKIP_AT_TOP:
        return True
    d = root.joinpath(*rel)
    return (d / "pyvenv.cfg").exists() or (d / MANIFEST).exists()


def _skipped(root: Path, rel: Path) -> bool:
    parts = rel.parts
    if any(_skip_dir(root, parts[: i + 1]) for i in range(len(parts) - 1)):
        return True
    name = parts[-1]
    if name.startswith(".") and name != ".gitignore":
        return True
    return name.endswith(_SKIP_SUFFIXES) or rel == Path(MANIFEST)


def source_files(root: Path, exclude=()) -> list[Path]:
    """The files a student copy is made of, relative to ``root``: in a git work tree, the
    tracked and untracked-but-not-ignored files; elsewhere, a walk of the tree. Either way
    without dot-folders (.git, .ci, a .venv), caches, virtual environments, build output
    and other student copies; ``exclude`` names folders to leave out (the output)."""
    root = Path(root).resolve()
    exclude = [Path(e).resolve() for e in exclude]
    rels = None
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                  "--exclude-standard"], cwd=root, capture_output=True,
                                 check=True).stdout  # fmt: skip
            rels = [Path(p) for p in out.decode().split("\0") if p]
        except (OSError, subprocess.CalledProcessError):
            rels = None
    if rels is None:
        rels = []
        for dirpath, dirnames, filenames in os.walk(root):
            d = Path(dirpath)
            rel_d = d.relative_to(root).parts
            dirnames[:] = sorted(n for n in dirnames if not _skip_dir(root, (*rel_d, n))
                                 and (d / n).resolve() not in exclude)
            rels += [(d / f).relative_to(root) for f in sorted(filenames)]
    keep = []
    for rel in rels:
        full = (root / rel).resolve()
        if _skipped(root, rel) or not full.is_file():
            continue
        if any(full == e or e in full.parents for e in exclude):
            continue
        keep.append(rel)
    return sorted(keep)


def scan_blocks(root: Path, files=None) -> list[Block]:
    """Every solution block in the package (``tinylm/**/*.py``), validated."""
    root = Path(root)
    if files is None:
        files = [p.relative_to(root) for p in (root / "tinylm").rglob("*.py")]
    blocks = []
    for rel in sorted(files):
        if rel.parts[0] != "tinylm" or rel.suffix != ".py" or "__pycache__" in rel.parts:
            continue
        blocks += find_blocks((root / rel).read_text(encoding="utf-8"), rel.as_posix())
    return blocks


def read_manifest(root: Path) -> dict | None:
    import json

    p = Path(root) / MANIFEST
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

"""lessons/NN_topic.py and notebooks/NN_topic.ipynb must agree, the committed notebooks
carry no outputs, and every test a lesson names must exist.

Regenerate notebooks with ``python tools/sync_notebooks.py``.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
NOTEBOOKS = ROOT / "notebooks"
TOOL = ROOT / "tools" / "sync_notebooks.py"

LESSON_FILES = sorted(p for p in LESSONS.glob("*.py") if re.match(r"^\d\d_\w+\.py$", p.name))
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
TEST_ID = re.compile(r"\b(tests/[\w/]+\.py)((?:::\w+)+)")
MARKER_USE = re.compile(r"pytest -m (\w+)")


def cells(nb) -> list[tuple[str, str, tuple]]:
    """Type, source and tags of each cell: what must agree between lesson and notebook."""
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def lesson_ids(paths):
    return [p.stem for p in paths]


def test_there_are_lessons():
    assert LESSON_FILES, f"no lessons/NN_topic.py found in {LESSONS}"


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lesson_ids(LESSON_FILES))
def test_every_lesson_has_a_notebook(lesson):
    nb = NOTEBOOKS / f"{lesson.stem}.ipynb"
    assert nb.exists(), (
        f"lesson {lesson.name} has no notebook {nb.name}: run python tools/sync_notebooks.py"
    )


@pytest.mark.parametrize("nb_path", NOTEBOOK_FILES, ids=lesson_ids(NOTEBOOK_FILES))
def test_every_notebook_has_a_lesson(nb_path):
    assert (LESSONS / f"{nb_path.stem}.py").exists(), (
        f"notebook {nb_path.name} has no lesson source lessons/{nb_path.stem}.py"
    )


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lesson_ids(LESSON_FILES))
def test_notebook_matches_lesson(lesson, tmp_path):
    committed_path = NOTEBOOKS / f"{lesson.stem}.ipynb"
    if not committed_path.exists():
        pytest.fail(f"lesson {lesson.name} has no notebook: run python tools/sync_notebooks.py")
    regenerated_path = tmp_path / committed_path.name
    jupytext.write(jupytext.read(lesson, fmt="py:percent"), regenerated_path, fmt="ipynb")
    want = cells(nbformat.read(regenerated_path, as_version=4))
    have = cells(nbformat.read(committed_path, as_version=4))
    if want != have:
        first = next(
            (i for i, (w, h) in enumerate(zip(want, have)) if w != h), min(len(want), len(have))
        )
        pytest.fail(
            f"lesson {lesson.name} is out of sync with notebooks/{committed_path.name} "
            f"(first difference at cell {first}; lesson has {len(want)} cells, notebook "
            f"{len(have)}): run python tools/sync_notebooks.py"
        )


@pytest.mark.parametrize("nb_path", NOTEBOOK_FILES, ids=lesson_ids(NOTEBOOK_FILES))
def test_notebook_has_no_outputs(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    dirty = [
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]  # fmt: skip
    assert not dirty, f"{nb_path.name} is committed with outputs in cells {dirty}"
    assert "kernelspec" not in nb.metadata, f"{nb_path.name} carries kernel metadata"


def _defined_tests(path: Path) -> set[str]:
    """'test_x' for module-level tests and 'TestC::test_x' for methods, collected with ast."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{item.name}")
    return names


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lesson_ids(LESSON_FILES))
def test_test_ids_named_by_lesson_exist(lesson):
    text = lesson.read_text(encoding="utf-8")
    named = TEST_ID.findall(text)
    assert named, f"{lesson.name} names no test IDs (tests/test_x.py::test_name)"
    missing = []
    for file, parts in named:
        path = ROOT / file
        name = parts.removeprefix("::")
        if not path.exists():
            missing.append(f"{file} (no such file)")
        elif name not in _defined_tests(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"{lesson.name} names tests that do not exist: {missing}"


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lesson_ids(LESSON_FILES))
def test_markers_named_by_lesson_grade_something(lesson):
    """`pytest -m lessonNN` in a lesson: the marker is registered and some test carries it."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    test_sources = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")
    )
    for marker in MARKER_USE.findall(lesson.read_text(encoding="utf-8")):
        assert re.search(rf'"{marker}:', pyproject), (
            f"{lesson.name} names marker {marker!r}, which pyproject.toml does not register"
        )
        assert f"pytest.mark.{marker}" in test_sources, (
            f"{lesson.name} says `pytest -m {marker}`, but no test carries that marker"
        )


def _run_tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120
    )


def test_sync_tool_check_passes_on_the_repository():
    res = _run_tool("--check")
    assert res.returncode == 0, res.stderr


def test_sync_tool_check_names_the_stale_lesson(tmp_path):
    lessons, notebooks = tmp_path / "lessons", tmp_path / "notebooks"
    lessons.mkdir()
    for name in ("01_first.py", "02_second.py"):
        (lessons / name).write_text(
            f"# %% [markdown]\n# # {name}\n\n# %%\nprint({name[:2]!r})\n", encoding="utf-8"
        )
    shutil.copy(LESSONS / "jupytext.toml", lessons / "jupytext.toml")

    def tool(*args):
        return _run_tool(*args, "--lessons", str(lessons), "--notebooks", str(notebooks))

    assert tool().returncode == 0
    assert tool("--check").returncode == 0

    with open(lessons / "02_second.py", "a", encoding="utf-8") as f:
        f.write("\n# %%\nprint('an edit')\n")
    res = tool("--check")
    assert res.returncode == 1
    assert "02_second.py" in res.stderr and "01_first" not in res.stderr

    res = tool()
    assert "02_second.ipynb" in res.stdout and "01_first" not in res.stdout  # only the stale one
    assert tool("--check").returncode == 0

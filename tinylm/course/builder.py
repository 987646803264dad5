"""The student copy: tinylm with the chosen lessons' solution blocks cut out.

``build_student_copy(root, out, ["lesson06", "lesson07"])`` copies the tree
(package, lessons, notebooks, tests, tools, pyproject, README) to ``out`` and
replaces every block of those lessons by ``raise NotImplementedError("lesson07:
...")`` at the block's indent. Other lessons keep their solutions.

The guarantee, for a copy with lesson N stripped (checked for every lesson by
tests/test_course_selfcheck.py):

1. ``import tinylm`` works, and every ``.py`` file of the copy parses;
2. lesson N's tests fail: at least one does, and each one that fails does so
   with a lesson-N ``NotImplementedError`` (its message, ``lessonNN: <what to
   implement>``, is in the failure report); all of them pass in the reference;
3. tests of earlier lessons (markers below N) still pass: a block of lesson N is
   only run by lesson N's tests and later ones. Later lessons may build on lesson
   N, so their tests may fail too.

The copy's ``course.json`` records the stripped lessons, where each block now is,
and (the census) the id of every test of those lessons, so that ``tinylm course
grade`` counts a test that vanished (a test file that no longer imports) as failed.
"""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .markers import Block, MarkerError, strip_blocks
from .tree import (
    MANIFEST,
    CourseError,
    parse_lessons,
    registered_lessons,
    scan_blocks,
    source_files,
)

__all__ = ["BuildResult", "build_student_copy", "census"]


@dataclass
class BuildResult:
    out: Path
    lessons: list
    blocks: list  # Block, at their line numbers in the copy
    files: int = 0
    expected_tests: dict = field(default_factory=dict)  # lesson -> [nodeid]; {} if no census


def _moved(blocks: list[Block]) -> list[Block]:
    """The blocks at their line numbers after stripping (each became one line)."""
    out, shift, path = [], 0, None
    for b in sorted(blocks, key=lambda b: (b.path, b.begin)):
        if b.path != path:
            shift, path = 0, b.path
        out.append(Block(b.path, b.lesson, b.what, b.begin - shift, b.begin - shift, b.indent,
                         b.function))
        shift += b.end - b.begin
    return out


def census(out: Path, lessons: list[str]) -> dict:
    """The id of every test of ``lessons`` in tree ``out`` (``pytest --collect-only``)."""
    from .runner import run_pytest

    res = run_pytest(out, ["--collect-only", "-q", "-m", " or ".join(lessons), "tests"])
    if res.collect_errors or not res.report_written:
        errs = "\n".join(f"  {e['nodeid']}: {e['message'].strip().splitlines()[-1]}"
                         for e in res.collect_errors) or res.output[-3000:]
        raise CourseError(f"the student copy in {out} was written, but its tests do not all "
                          f"collect:\n{errs}")
    return {lesson: [c["nodeid"] for c in res.collected if lesson in c["lessons"]]
            for lesson in lessons}


def _readme_note(lessons: list[str], blocks: list[Block]) -> str:
    nums = ",".join(str(int(x[6:])) for x in lessons)
    where = "\n".join(f"- `{b.path}:{b.begin}` ({b.function}): {b.message}" for b in blocks)
    return (
        f"> **Student copy** for {', '.join(lessons)}: the blocks listed below were cut out "
        "and raise `NotImplementedError` until you write them. Each lesson's notebook derives "
        "what they compute. Check your work with\n"
        ">\n"
        f"> `pytest -m {lessons[0]}` (one lesson) or `tinylm course grade` (a score table).\n\n"
        f"{where}\n\n"
        f"<!-- tinylm course student --lessons {nums} -->\n\n"
    )


def build_student_copy(root, out, lessons, census_tests: bool = True,
                       force: bool = False) -> BuildResult:  # fmt: skip
    """Write the student copy of tree ``root`` to ``out`` with ``lessons`` stripped."""
    root, out = Path(root).resolve(), Path(out).resolve()
    lessons = parse_lessons(lessons, registered_lessons(root))
    if out == root or out in root.parents:
        raise CourseError(f"the output {out} would contain the source tree {root}")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise CourseError(f"{out} exists and is not empty (pass --force to replace a "
                              "student copy built before)")
        if not (out / MANIFEST).is_file():
            raise CourseError(f"{out} is not a student copy (no {MANIFEST}); refusing to "
                              "delete it, choose another folder")
        shutil.rmtree(out)

    files = source_files(root, exclude=[out])
    try:
        blocks = scan_blocks(root, files)
    except MarkerError as e:
        raise CourseError(f"solution markers: {e}") from e
    chosen = [b for b in blocks if b.lesson in lessons]
    empty = [x for x in lessons if not any(b.lesson == x for b in chosen)]
    if empty:
        have = sorted({b.lesson for b in blocks})
        raise CourseError(f"no solution blocks for {', '.join(empty)}: nothing to strip "
                          f"(lessons with blocks: {', '.join(have) or 'none'})")

    by_file: dict[str, list[Block]] = {}
    for b in chosen:
        by_file.setdefault(b.path, []).append(b)
    out.mkdir(parents=True, exist_ok=True)
    for rel in files:
        src, dst = root / rel, out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel.as_posix() in by_file:
            text = src.read_text(encoding="utf-8")
            dst.write_text(strip_blocks(text, by_file[rel.as_posix()], rel.as_posix()),
                           encoding="utf-8")
        else:
            shutil.copy2(src, dst)
    bad = []
    for rel in files:  # every Python file of the copy must parse
        if rel.suffix == ".py":
            try:
                ast.parse((out / rel).read_text(encoding="utf-8"), filename=str(rel))
            except SyntaxError as e:
                bad.append(f"{rel}:{e.lineno}: {e.msg}")
    if bad:
        raise CourseError("files of the student copy do not parse:\n  " + "\n  ".join(bad))

    moved = _moved(chosen)
    readme = out / "README.md"
    if readme.is_file():
        readme.write_text(_readme_note(lessons, moved) + readme.read_text(encoding="utf-8"),
                          encoding="utf-8")
    res = BuildResult(out, lessons, moved, len(files))
    manifest = {
        "tinylm_course": 1,
        "lessons": lessons,
        "blocks": [{"lesson": b.lesson, "path": b.path, "line": b.begin,
                    "function": b.function, "message": b.message} for b in moved],
        "expected_tests": None,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    if census_tests:
        res.expected_tests = census(out, lessons)
        manifest["expected_tests"] = res.expected_tests
        (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return res

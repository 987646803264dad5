"""Grading: run the lesson-marked tests of a tree and score them per lesson.

``grade(root, lessons)`` runs ``pytest -m "lesson06 or lesson07"`` on the tree's
``tests/`` (and on an instructor's hidden ``extra_tests`` folder, collected with
the same registered, strict markers) in a subprocess that imports the tree's own
tinylm. Each lesson is worth ``points`` (default 10), shared equally by its tests;
a skipped test (no GPU, no PyTorch) counts for nothing either way. In a student
copy the census in ``course.json`` lists every test the assignment had: a test
that did not run (its file no longer imports) counts as failed. A test file that
fails to import (a collection error: broken code, or a hidden test with an
unregistered marker) zeroes the lessons it grades, since its tests cannot be
counted; the table says which.

``gradescope_results(report)`` is the ``results.json`` an autograder uploads
(Gradescope's shape: ``{"score", "tests": [{"name", "score", "max_score",
"status", "output"}]}``, with the per-lesson table in ``extra_data``).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .runner import Outcome, run_pytest
from .tree import MANIFEST, CourseError, parse_lessons, read_manifest, registered_lessons

__all__ = ["GradeReport", "LessonScore", "grade", "format_table", "gradescope_results",
           "take_submission"]


@dataclass
class LessonScore:
    lesson: str
    title: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    points: float = 0.0
    max_points: float = 0.0
    broken_files: list = field(default_factory=list)  # its test files that did not import

    @property
    def total(self) -> int:
        return self.passed + self.failed


@dataclass
class GradeReport:
    lessons: list  # LessonScore
    tests: list  # Outcome (every graded test, missing ones included as failed)
    collect_errors: list
    returncode: int
    output: str
    points_per_test: dict = field(default_factory=dict)  # nodeid -> {lesson: points}

    @property
    def score(self) -> float:
        return round(sum(s.points for s in self.lessons), 4)

    @property
    def max_score(self) -> float:
        return round(sum(s.max_points for s in self.lessons), 4)

    @property
    def all_passed(self) -> bool:
        return not self.collect_errors and all(s.failed == 0 for s in self.lessons)


def _extra_dir(root: Path, extra) -> Path:
    extra = Path(extra).resolve()
    if not extra.is_dir():
        raise CourseError(f"--extra-tests {extra}: no such folder")
    ours = {p.name for p in (root / "tests").rglob("test_*.py")}
    clash = sorted(p.name for p in extra.rglob("test_*.py") if p.name in ours)
    if clash:  # pytest's default import mode refuses two test modules with one basename
        raise CourseError(f"--extra-tests: {', '.join(clash)} also exist in tests/; give hidden "
                          "test files their own names (e.g. test_hidden_lesson07.py)")
    return extra


def _broken_lessons(root: Path, errors: list, lessons: list) -> dict:
    """``{lesson: [files]}``: a test file that fails to import zeroes the graded lessons it
    names (its tests cannot be counted); an error that is not in one file (pytest could not
    start, a conftest or folder failed), every graded lesson."""
    out: dict = {}
    for e in errors:
        path = (root / e["nodeid"].split("::")[0]).resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            named = set(lessons)
        else:
            named = set(re.findall(r"lesson\d\d", text)) & set(lessons)
        for lesson in sorted(named):
            out.setdefault(lesson, []).append(e["nodeid"])
    return out


def take_submission(root: Path, submission) -> list[str]:
    """Copy the assignment's files (those holding its blocks, listed in course.json) from a
    student's ``submission`` folder over the copy in ``root``; nothing else is taken, so
    the tests and the grading code stay the instructor's. A file is looked for at its path
    in the package (``tinylm/nn/rnn_cells.py``), else by its name alone. Returns the paths
    taken."""
    manifest = read_manifest(root)
    if not manifest:
        raise CourseError(f"--submission needs a student copy: {root} has no {MANIFEST}")
    sub = Path(submission).resolve()
    if not sub.is_dir():
        raise CourseError(f"--submission {sub}: no such folder")
    taken = []
    for rel in sorted({b["path"] for b in manifest["blocks"]}):
        for src in (sub / rel, sub / Path(rel).name):
            if src.is_file():
                shutil.copyfile(src, root / rel)
                taken.append(rel)
                break
    return taken


def grade(root=".", lessons=None, extra_tests=None, points: float = 10.0,
          workers: int | None = None, stream: bool = False) -> GradeReport:  # fmt: skip
    """Run and score the tests of ``lessons`` (default: the lessons a student copy strips,
    else every registered lesson) in tree ``root``."""
    root = Path(root).resolve()
    if not (root / "pyproject.toml").is_file() or not (root / "tests").is_dir():
        raise CourseError(f"{root} has no pyproject.toml and tests/: run `tinylm course grade` "
                          "from the root of a tinylm tree (a clone or a student copy)")
    registered = registered_lessons(root)
    manifest = read_manifest(root) or {}
    if lessons is None:
        lessons = manifest.get("lessons") or list(registered)
    lessons = parse_lessons(lessons, registered)
    paths = ["tests"] + ([str(_extra_dir(root, extra_tests))] if extra_tests else [])
    args = ["-m", " or ".join(lessons), "-q", "--tb=short", *paths]
    if workers:
        args[:0] = ["-n", str(workers)]
    res = run_pytest(root, args, stream=stream)
    expected = manifest.get("expected_tests") or {}
    if not res.report_written:
        if not any(expected.get(x) for x in lessons):
            raise CourseError(f"pytest did not run (exit status {res.returncode}):\n"
                              f"{res.output[-4000:]}")
        # a student copy whose code stops pytest itself (a plugin that fails to import):
        # every test of the census fails, and the report says why
        res.collect_errors = [{"nodeid": "(pytest could not start)",
                               "message": res.output[-4000:]}]

    tests = {t.nodeid: t for t in res.tests if set(t.lessons) & set(lessons)}
    for lesson in lessons:  # the census: a test that did not run is a failed test
        for nodeid in expected.get(lesson, []):
            if nodeid not in tests:
                tests[nodeid] = Outcome(nodeid, [lesson], "failed", "collect",
                                        "this test did not run: its file failed to import or "
                                        "the test was removed (see the collection errors)")
            elif lesson not in tests[nodeid].lessons:
                tests[nodeid].lessons = sorted({*tests[nodeid].lessons, lesson})
    broken = _broken_lessons(root, res.collect_errors, lessons)
    scores, per_test = [], {}
    for lesson in lessons:
        mine = [t for t in tests.values() if lesson in t.lessons]
        topic = re.search(r"\((.*)\)\s*$", registered[lesson])
        s = LessonScore(lesson, topic.group(1) if topic else registered[lesson])
        s.passed = sum(t.outcome == "passed" for t in mine)
        s.failed = sum(t.outcome == "failed" for t in mine)
        s.skipped = sum(t.outcome == "skipped" for t in mine)
        s.broken_files = broken.get(lesson, [])
        if s.total or s.broken_files:
            s.max_points = points
            share = points / s.total if s.total else 0.0
            s.points = 0.0 if s.broken_files else round(share * s.passed, 4)
            for t in mine:
                if t.outcome != "skipped":
                    per_test.setdefault(t.nodeid, {})[lesson] = 0.0 if s.broken_files else share
        scores.append(s)
    return GradeReport(scores, sorted(tests.values(), key=lambda t: t.nodeid),
                       res.collect_errors, res.returncode, res.output, per_test)


def format_table(report: GradeReport, failures: int = 20) -> str:
    """The score table, then the first ``failures`` failing tests with the last line of
    their report, and any collection errors."""
    w = max(len("lesson"), *(len(s.lesson) for s in report.lessons))
    head = f"{'lesson':{w}s}  {'passed':>11s}  {'skipped':>7s}  {'points':>13s}  topic"
    lines = [head, "-" * len(head)]
    for s in report.lessons:
        frac = f"{s.passed}/{s.total}"
        pts = f"{round(s.points, 2):g}/{s.max_points:g}"
        lines.append(f"{s.lesson:{w}s}  {frac:>11s}  {s.skipped:7d}  {pts:>13s}  {s.title}")
    lines.append("-" * len(head))
    lines.append(f"{'total':{w}s}  {'':11s}  {'':7s}  "
                 f"{f'{round(report.score, 2):g}/{report.max_score:g}':>13s}")
    failed = [t for t in report.tests if t.outcome == "failed"]
    if failed:
        lines.append(f"\n{len(failed)} failing test(s):")
        for t in failed[:failures]:
            last = [ln for ln in t.message.strip().splitlines() if ln.strip()]
            lines.append(f"  {t.nodeid}\n      {last[-1].strip() if last else t.phase}")
        if len(failed) > failures:
            lines.append(f"  ... and {len(failed) - failures} more")
    for e in report.collect_errors:
        last = [ln for ln in e["message"].strip().splitlines() if ln.strip()]
        lines.append(f"\ncollection error in {e['nodeid']}:\n  "
                     + (last[-1].strip() if last else ""))
    for s in report.lessons:
        if s.broken_files:
            lines.append(f"{s.lesson} scores 0: its test file(s) {', '.join(s.broken_files)} "
                         "do not import, so its tests cannot all be counted")
    return "\n".join(lines)


def _tail(text: str, n: int = 3000) -> str:
    return text if len(text) <= n else "[...]\n" + text[-n:]


def gradescope_results(report: GradeReport) -> dict:
    """The autograder upload: one entry per graded test (a test of two lessons appears
    once per lesson), a collection error as a zero-point failed entry."""
    tests = []
    for t in report.tests:
        for lesson, share in sorted(report.points_per_test.get(t.nodeid, {}).items()):
            passed = t.outcome == "passed"
            tests.append({
                "name": f"{lesson}: {t.nodeid}",
                "score": round(share if passed else 0.0, 4),
                "max_score": round(share, 4),
                "status": "passed" if passed else "failed",
                "output": "" if passed else _tail(t.message),
            })
    for e in report.collect_errors:
        tests.append({"name": f"collection error: {e['nodeid']}", "score": 0.0,
                      "max_score": 0.0, "status": "failed", "output": _tail(e["message"])})
    return {
        "score": report.score,
        "max_score": report.max_score,
        "output": format_table(report, failures=0),
        "tests": tests,
        "extra_data": {"lessons": [
            {"lesson": s.lesson, "passed": s.passed, "total": s.total, "skipped": s.skipped,
             "points": s.points, "max_points": s.max_points} for s in report.lessons]},
    }


def write_json(report: GradeReport, path) -> None:
    Path(path).write_text(json.dumps(gradescope_results(report), indent=1) + "\n",
                          encoding="utf-8")

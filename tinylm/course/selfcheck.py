"""The course self-check: the stripping guarantee, proven for every lesson.

``selfcheck(root)`` checks what builder.py promises, for each lesson N that has
solution blocks:

1. the reference passes: the marker audit (audit.py) runs every lesson-marked test
   on a copy whose blocks only record that they ran, and all of them must pass;
2. a block of lesson N is run only by tests of lesson N or later (the audit);
3. every block is run by at least one test of its own lesson (else stripping it
   would go unnoticed);
4. the copy with only lesson N stripped imports (``python -c "import tinylm"`` with
   the copy first on ``PYTHONPATH``), and the lesson-N tests that run its blocks
   fail there, each because of a lesson-N stub: the failure report quotes the
   ``NotImplementedError`` message ``lessonNN: <what>`` (directly, or through an
   error that wraps it: gradcheck's "backward failed", a ``pytest.raises`` whose
   message did not match). The other lesson-N tests run none of its code, so they
   pass as in the reference.

Cost: one run of the lesson-marked tests (the audit) plus, per lesson, a run of only
the tests that reach its blocks (they fail at once). ``exempt`` test files are left
out of the audit, with the reason (default: ``audit_exempt`` under
``[tool.tinylm.course]`` in pyproject.toml).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .audit import audit
from .builder import build_student_copy
from .runner import run_pytest
from .tree import CourseError, course_config, registered_lessons, scan_blocks, source_files

__all__ = ["LessonCheck", "SelfCheck", "selfcheck", "lessons_with_tests"]


@dataclass
class LessonCheck:
    lesson: str
    blocks: int
    tests: int = 0  # tests of the lesson (audit run)
    reaching: int = 0  # of them, those that run one of its blocks
    failed: int = 0  # of those, failing in the stripped copy (as they should)
    passed_anyway: list = field(default_factory=list)  # reach a block but pass when stripped
    problems: list = field(default_factory=list)


@dataclass
class SelfCheck:
    lessons: list  # LessonCheck
    problems: list = field(default_factory=list)  # about the whole tree
    exempt: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(c.problems for c in self.lessons)

    def format(self) -> str:
        lines = [f"{'lesson':8s} {'blocks':>6s} {'tests':>6s} {'reach a block':>13s} "
                 f"{'fail stripped':>13s}  result"]
        for c in self.lessons:
            lines.append(f"{c.lesson:8s} {c.blocks:6d} {c.tests:6d} {c.reaching:13d} "
                         f"{c.failed:13d}  {'ok' if not c.problems else 'FAIL'}")
        for c in self.lessons:
            lines += [f"{c.lesson}: {p}" for p in c.problems]
            if c.passed_anyway:
                lines.append(f"{c.lesson}: note: {len(c.passed_anyway)} test(s) reach a block "
                             f"but pass when it is stripped (they catch the error), e.g. "
                             f"{c.passed_anyway[0]}")
        lines += self.problems
        for path, why in self.exempt.items():
            lines.append(f"left out of the audit: {path} ({why})")
        return "\n".join(lines)


def lessons_with_tests(root) -> dict[str, int]:
    """``{lesson: number of tests}`` for the registered lessons that have tests (a
    ``pytest --collect-only`` of tests/, so markers applied any way count)."""
    registered = registered_lessons(root)
    if not registered:
        return {}
    res = run_pytest(root, ["--collect-only", "-q", "-m", " or ".join(registered), "tests"])
    if res.collect_errors or not res.report_written:
        raise CourseError(f"the tests of {root} do not collect:\n{res.output[-3000:]}")
    counts: dict[str, int] = {}
    for c in res.collected:
        for lesson in c["lessons"]:
            counts[lesson] = counts.get(lesson, 0) + 1
    return dict(sorted(counts.items()))


def _imports(copy: Path) -> str:
    """'' if the copy's own tinylm imports, else the error."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(copy), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])}
    code = ("import pathlib, sys, tinylm; p = pathlib.Path(tinylm.__file__).resolve(); "
            f"sys.exit(0 if pathlib.Path({str(copy.resolve())!r}) in p.parents "
            "else f'imported {p}')")
    r = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env, capture_output=True,
                       text=True)  # fmt: skip
    return "" if r.returncode == 0 else (r.stderr.strip() or r.stdout.strip())[-2000:]


def _check_lesson(root: Path, c: LessonCheck, reaching: list[str], tmp: Path) -> None:
    copy = tmp / c.lesson
    built = build_student_copy(root, copy, [c.lesson], census_tests=False)
    err = _imports(copy)
    if err:
        c.problems.append(f"the copy with {c.lesson} stripped does not import: {err}")
        return
    # --tb=native: the plain traceback (chained exceptions included), twice as fast
    res = run_pytest(copy, ["-q", "--tb=native", *reaching])
    if res.collect_errors or not res.report_written:
        first = res.collect_errors[0]["message"] if res.collect_errors else res.output
        c.problems.append(f"its tests do not collect in the stripped copy: {first[-1500:]}")
        return
    stubs = {b.message for b in built.blocks}
    for t in res.tests:
        if t.outcome == "failed":
            c.failed += 1
            if not any(m in t.message for m in stubs):
                last = t.message.strip().splitlines()[-1:] or [""]
                c.problems.append(f"{t.nodeid} fails in the stripped copy, but not because of "
                                  f"a {c.lesson} NotImplementedError: {last[0]}")
        elif t.outcome == "passed":
            c.passed_anyway.append(t.nodeid)
    if not c.failed:
        c.problems.append("no test fails when it is stripped")


def selfcheck(root, lessons=None, exempt: dict | None = None,
              workers: int | None = None) -> SelfCheck:  # fmt: skip
    """Check the stripping guarantee for ``lessons`` (default: every lesson with blocks)."""
    root = Path(root).resolve()
    if exempt is None:
        exempt = {p: "[tool.tinylm.course] audit_exempt in pyproject.toml"
                  for p in course_config(root).get("audit_exempt", [])}
    exempt = dict(exempt)
    blocks = scan_blocks(root, source_files(root))
    with_blocks = sorted({b.lesson for b in blocks})
    wanted = [x for x in (lessons or with_blocks) if x in with_blocks]
    report = SelfCheck([LessonCheck(x, sum(b.lesson == x for b in blocks)) for x in wanted],
                       exempt=exempt)
    for x in lessons or ():
        if x not in with_blocks:
            report.problems.append(f"{x} has no solution blocks: mark what it asks a student "
                                   "to write (# BEGIN SOLUTION ...)")
    # the tests that can run a wanted lesson's block: its own and every earlier lesson's
    # (all lessons for a full check, to find lessons with tests but no blocks)
    registered = list(registered_lessons(root))
    audited = [x for x in registered if lessons is None or x <= max(wanted, default="")]
    if not audited:
        return report
    a = audit(root, audited, workers=workers, ignore=list(exempt))
    tested = {x for marks in a.test_lessons.values() for x in marks}
    for lesson in sorted(tested & set(audited)):
        if lesson not in with_blocks and lessons is None:
            report.problems.append(f"{lesson} has tests but no solution blocks: mark what it "
                                   "asks a student to write (# BEGIN SOLUTION ...)")
    report.problems += [f"fails in the reference: {t.nodeid}: "
                        f"{(t.message.strip().splitlines() or [''])[-1]}" for t in a.failed]
    for nodeid, mine, later in a.violations():
        if later in wanted:
            report.problems.append(f"{nodeid} ({mine}) runs a {later} block: it would fail "
                                   f"in a copy with {later} stripped")
    for b in a.unexercised_blocks():
        if b.lesson in wanted:
            report.problems.append(f"{b.where()} ({b.lesson} {b.function}) is run by no "
                                   f"{b.lesson} test: stripping it would go unnoticed")
    jobs = []
    for c in report.lessons:
        mine = [n for n, marks in a.test_lessons.items() if c.lesson in marks]
        reaching = [n for n in mine if any(h == c.lesson for h, _ in a.hits.get(n, ()))]
        c.tests, c.reaching = len(mine), len(reaching)
        if reaching:
            jobs.append((c, reaching))
        else:
            c.problems.append("no test of the lesson runs its blocks")
    with tempfile.TemporaryDirectory(prefix="tinylm-selfcheck-") as tmp:
        with ThreadPoolExecutor(max_workers=max(1, workers or 1)) as pool:
            for f in [pool.submit(_check_lesson, root, c, r, Path(tmp)) for c, r in jobs]:
                f.result()
    return report

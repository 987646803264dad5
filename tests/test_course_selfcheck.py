"""The course self-check on the real tree: every lesson can be handed out as an assignment.

For each lesson with solution blocks (tinylm/course/selfcheck.py): the reference passes;
no test of an earlier lesson runs the lesson's blocks; in a copy with only that lesson
stripped, ``import tinylm`` works and the lesson's tests that reach its blocks fail
with its ``NotImplementedError``. About a minute: one run of the lesson-marked tests on
a probed copy, then one short run per lesson of only the tests that reach its blocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tinylm.course import registered_lessons, scan_blocks
from tinylm.course.selfcheck import lessons_with_tests, selfcheck
from tinylm.course.tree import MANIFEST, course_config, read_manifest, source_files

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(read_manifest(ROOT) is not None,
                                reason=f"a student copy ({MANIFEST}): its solutions are cut out")


def test_every_lesson_with_tests_has_solution_blocks():
    blocks = scan_blocks(ROOT, source_files(ROOT))
    with_blocks = {b.lesson for b in blocks}
    tested = lessons_with_tests(ROOT)
    missing = sorted(set(tested) - with_blocks)
    assert not missing, (f"lessons with tests but no solution blocks: {missing}; mark what "
                         "each asks a student to write")
    untested = sorted(set(registered_lessons(ROOT)) - set(tested))
    assert all(x > "lesson09" for x in untested), f"registered lessons without tests: {untested}"
    assert all(b.lesson in registered_lessons(ROOT) for b in blocks)


def test_stripping_guarantee_holds_for_every_lesson():
    report = selfcheck(ROOT)  # exempt: [tool.tinylm.course] audit_exempt in pyproject
    assert report.ok, "\n" + report.format()
    assert [c.lesson for c in report.lessons] == [f"lesson{n:02d}" for n in range(1, 12)]
    for c in report.lessons:
        assert c.failed == c.reaching - len(c.passed_anyway) > 0


def test_the_audit_exemptions_are_test_files_of_the_tree():
    exempt = course_config(ROOT).get("audit_exempt", [])
    assert all((ROOT / p).is_file() and p.startswith("tests/") for p in exempt), exempt

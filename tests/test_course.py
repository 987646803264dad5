"""Student copies and grading (tinylm/course), on a small tree shaped like tinylm's.

The tree has two lessons: lesson01 writes ``double``, lesson02 writes ``square``
(which uses ``double``: a later lesson builds on an earlier one). The real tree's
guarantee is proven in tests/test_course_selfcheck.py.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path

import pytest

from tinylm.cli import main
from tinylm.course import CourseError, build_student_copy, format_table, grade
from tinylm.course.grader import gradescope_results, take_submission
from tinylm.course.tree import parse_lessons, registered_lessons, source_files

PYPROJECT = '''\
[project]
name = "tinylm"
version = "0.0.1"

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--strict-markers -p no:cacheprovider"
markers = [
    "lesson01: grades lesson 01 (doubling)",
    "lesson02: grades lesson 02 (squares)",
]
'''

CORE = '''\
def double(x):
    """2 x."""
    # BEGIN SOLUTION lesson01 return twice x
    return 2 * x
    # END SOLUTION


def square(x):
    """x^2, built on double."""
    # BEGIN SOLUTION lesson02
    y = double(x) * x / 2
    return y
    # END SOLUTION
'''

TEST_L1 = '''\
import pytest
from tinylm.core import double

pytestmark = pytest.mark.lesson01


def test_double():
    assert double(3) == 6


def test_double_of_zero():
    assert double(0) == 0
'''

TEST_L2 = '''\
import pytest
from tinylm.core import square


@pytest.mark.lesson02
@pytest.mark.parametrize("x", [1, 2, 3])
def test_square(x):
    assert square(x) == x * x


@pytest.mark.lesson02
def test_square_skipped_without_a_gpu():
    pytest.skip("no GPU")


def test_unmarked_is_not_graded():
    assert True
'''


def write(root: Path, files: dict) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return write(tmp_path / "src", {
        "pyproject.toml": PYPROJECT, "README.md": "# tiny\n",
        "tinylm/__init__.py": "from .core import double, square\n", "tinylm/core.py": CORE,
        "tests/test_l1.py": TEST_L1, "tests/test_l2.py": TEST_L2,
        "lessons/01_double.py": "# %% [markdown]\n# Doubling\n",
        # what a copy leaves out
        ".venv/pyvenv.cfg": "", ".venv/lib/x.py": "", ".git/config": "",
        "tinylm/__pycache__/core.cpython-311.pyc": "", "build/lib/x.py": "",
        "old_copy/course.json": "{}", "old_copy/tinylm/core.py": "",
    })


def test_registered_lessons_and_parse_lessons(tree):
    reg = registered_lessons(tree)
    assert reg == {"lesson01": "grades lesson 01 (doubling)",
                   "lesson02": "grades lesson 02 (squares)"}
    assert parse_lessons("2,1", reg) == ["lesson01", "lesson02"]
    assert parse_lessons("01 lesson02", reg) == ["lesson01", "lesson02"]
    assert parse_lessons(["lesson02"], reg) == ["lesson02"]
    with pytest.raises(CourseError, match=r"not a lesson: '7x'.*registered: lesson01, lesson02"):
        parse_lessons("7x", reg)
    with pytest.raises(CourseError, match="lesson10 is not a registered lesson marker"):
        parse_lessons("10", reg)
    with pytest.raises(CourseError, match="no lessons given"):
        parse_lessons(" , ", reg)


def test_the_real_tree_registers_lessons_01_to_09():
    reg = registered_lessons(Path(__file__).resolve().parents[1])
    assert [f"lesson{n:02d}" for n in range(1, 10)] == [x for x in reg if x <= "lesson09"]


def test_source_files_leave_out_environments_caches_and_other_copies(tree):
    rels = {p.as_posix() for p in source_files(tree)}
    assert rels == {"pyproject.toml", "README.md", "tinylm/__init__.py", "tinylm/core.py",
                    "tests/test_l1.py", "tests/test_l2.py", "lessons/01_double.py"}


def test_student_copy_strips_only_the_chosen_lesson(tree, tmp_path):
    res = build_student_copy(tree, tmp_path / "out", "2")
    out = tmp_path / "out"
    core = (out / "tinylm/core.py").read_text()
    assert "return 2 * x" in core  # lesson01 keeps its solution
    assert "y = double(x)" not in core
    assert "    raise NotImplementedError('lesson02: implement square')\n" in core
    assert '"""x^2, built on double."""' in core
    for p in out.rglob("*.py"):
        ast.parse(p.read_text())
    assert not (out / ".venv").exists() and not (out / "old_copy").exists()
    assert [(b.lesson, b.path, b.begin) for b in res.blocks] == [
        ("lesson02", "tinylm/core.py", 10)]
    manifest = json.loads((out / "course.json").read_text())
    assert manifest["lessons"] == ["lesson02"]
    assert manifest["blocks"][0]["line"] == 10
    assert manifest["expected_tests"] == {"lesson02": [
        "tests/test_l2.py::test_square[1]", "tests/test_l2.py::test_square[2]",
        "tests/test_l2.py::test_square[3]", "tests/test_l2.py::test_square_skipped_without_a_gpu"]}
    readme = (out / "README.md").read_text()
    assert readme.startswith("> **Student copy** for lesson02")
    assert "`tinylm/core.py:10` (square): lesson02: implement square" in readme
    assert readme.endswith("# tiny\n")


def test_student_copy_refusals(tree, tmp_path):
    with pytest.raises(CourseError, match="not a registered lesson"):
        build_student_copy(tree, tmp_path / "a", "3")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(CourseError, match="exists and is not empty"):
        build_student_copy(tree, tmp_path / "full", "1")
    with pytest.raises(CourseError, match="is not a student copy"):
        build_student_copy(tree, tmp_path / "full", "1", force=True)
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"  # never deleted
    with pytest.raises(CourseError, match="would contain the source tree"):
        build_student_copy(tree, tree.parent, "1")
    build_student_copy(tree, tmp_path / "b", "1", census_tests=False)
    build_student_copy(tree, tmp_path / "b", "2", census_tests=False, force=True)  # a copy
    assert "return 2 * x" in (tmp_path / "b/tinylm/core.py").read_text()


def test_a_lesson_without_blocks_or_a_bad_marker_is_refused(tree, tmp_path):
    (tree / "pyproject.toml").write_text(PYPROJECT.replace(
        '    "lesson02', '    "lesson03: grades lesson 03 (none)",\n    "lesson02'))
    with pytest.raises(CourseError, match=r"no solution blocks for lesson03.*lesson01, lesson02"):
        build_student_copy(tree, tmp_path / "a", "3")
    (tree / "tinylm/extra.py").write_text("def f():\n    # BEGIN SOLUTION lesson01\n    pass\n")
    with pytest.raises(CourseError, match=r"tinylm/extra\.py:2: BEGIN SOLUTION without an END"):
        build_student_copy(tree, tmp_path / "b", "1")


def test_grade_the_reference_scores_full_points(tree):
    report = grade(tree)
    l1, l2 = report.lessons
    assert (l1.lesson, l1.passed, l1.total, l1.points, l1.max_points) == (
        "lesson01", 2, 2, 10.0, 10.0)
    assert (l2.passed, l2.skipped, l2.total, l2.points) == (3, 1, 3, 10.0)
    assert report.all_passed and report.score == 20.0
    table = format_table(report)
    assert "lesson01" in table and "2/2" in table and "20/20" in table and "doubling" in table
    assert "test_unmarked_is_not_graded" not in str(report.tests)


def test_grade_a_student_copy_and_its_results_json(tree, tmp_path):
    build_student_copy(tree, tmp_path / "out", "2")
    report = grade(tmp_path / "out")  # default: the lessons the copy strips
    (l2,) = report.lessons
    assert (l2.lesson, l2.passed, l2.failed, l2.points) == ("lesson02", 0, 3, 0.0)
    failing = [t for t in report.tests if t.outcome == "failed"]
    assert all("NotImplementedError: lesson02: implement square" in t.message for t in failing)
    assert "lesson02: implement square" in format_table(report)
    # fill the block in: full marks
    core = tmp_path / "out/tinylm/core.py"
    core.write_text(core.read_text().replace(
        "raise NotImplementedError('lesson02: implement square')", "return x * x"))
    report = grade(tmp_path / "out", ["1", "2"])
    assert [s.points for s in report.lessons] == [10.0, 10.0]
    res = gradescope_results(report)
    assert res["score"] == 20.0 and res["max_score"] == 20.0
    assert len(res["tests"]) == 5  # the skipped test counts for nothing
    t = res["tests"][0]
    assert set(t) == {"name", "score", "max_score", "status", "output"}
    assert t["status"] == "passed" and t["score"] == t["max_score"] == 5.0
    assert json.loads(json.dumps(res)) == res


def test_census_counts_a_test_file_that_no_longer_imports(tree, tmp_path):
    build_student_copy(tree, tmp_path / "out", "2")
    core = tmp_path / "out/tinylm/core.py"
    core.write_text(core.read_text().replace("def square(x):", "def square_renamed(x):"))
    report = grade(tmp_path / "out")
    (l2,) = report.lessons
    assert l2.failed == 4 and l2.points == 0.0  # the skipped one did not run either
    assert l2.broken_files == ["tests/test_l2.py"]
    assert report.collect_errors and "collection error in tests/test_l2.py" in format_table(
        report)


def test_submission_brings_only_the_assignments_files(tree, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    build_student_copy(tree, out, "2", census_tests=False)
    sub = write(tmp_path / "sub", {
        "core.py": CORE,  # by name alone: the student's filled-in file
        "tests/test_l2.py": "def test_square():\n    pass\n",  # never taken
    })
    monkeypatch.chdir(out)
    assert main(["course", "grade", "--submission", str(sub)]) == 0
    assert "took from" in capsys.readouterr().out
    assert "y = double(x)" in (out / "tinylm/core.py").read_text()
    assert (out / "tests/test_l2.py").read_text() == TEST_L2
    with pytest.raises(CourseError, match="needs a student copy"):
        take_submission(tree, sub)


def test_a_copy_that_stops_pytest_itself_scores_zero_with_the_reason(tree, tmp_path):
    build_student_copy(tree, tmp_path / "out", "2")
    # the copy's pytest plugin (loaded through tinylm's entry point) fails to import
    write(tmp_path / "out", {"tinylm/testing/__init__.py": "",
                             "tinylm/testing/pytest_plugin.py": "raise ImportError('broken')\n"})
    report = grade(tmp_path / "out")
    (l2,) = report.lessons
    assert (l2.passed, l2.failed, l2.points) == (0, 4, 0.0)
    assert "broken" in report.collect_errors[0]["message"]
    assert "(pytest could not start)" in format_table(report)
    with pytest.raises(CourseError, match="pytest did not run"):  # no census: nothing to count
        grade(tmp_path / "out", "1")


def test_hidden_tests_are_collected_with_strict_markers(tree, tmp_path):
    hidden = write(tmp_path / "hidden", {"test_hidden_double.py": textwrap.dedent('''\
        import pytest
        from tinylm.core import double

        @pytest.mark.lesson01
        def test_double_negative():
            assert double(-2) == -4
        ''')})
    report = grade(tree, "1", extra_tests=hidden)
    assert report.lessons[0].total == 3 and report.all_passed
    assert any("test_double_negative" in t.nodeid for t in report.tests)
    (hidden / "test_hidden_typo.py").write_text(
        "import pytest\n\n@pytest.mark.lesson1\ndef test_x():\n    pass\n")
    report = grade(tree, "1", extra_tests=hidden)
    assert not report.all_passed and report.lessons[0].points == 0.0
    assert "'lesson1' not found in `markers`" in report.collect_errors[0]["message"]
    (hidden / "test_l1.py").write_text("")
    with pytest.raises(CourseError, match="test_l1.py also exist in tests/"):
        grade(tree, "1", extra_tests=hidden)


def test_cli_student_and_grade(tree, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["course", "student", str(out), "--lessons", "1", "--source", str(tree)]) == 0
    text = capsys.readouterr().out
    assert "stripped 1 solution block(s) of lesson01" in text
    assert "tinylm/core.py:3  double: lesson01: return twice x" in text
    monkeypatch.chdir(out)
    assert main(["course", "grade", "--json", "results.json"]) == 1  # lesson01 is stripped
    text = capsys.readouterr().out
    assert "lesson01" in text and "0/2" in text and "NotImplementedError: lesson01" in text
    assert json.loads((out / "results.json").read_text())["score"] == 0.0
    assert main(["course", "grade", "--lessons", "7x"]) == 2
    assert "not a lesson: '7x'" in capsys.readouterr().err
    assert main(["course", "grade", "--lessons", "10"]) == 2
    assert "lesson10 is not a registered lesson marker" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["course", "grade"]) == 2
    assert "run `tinylm course grade` from the root of a tinylm tree" in capsys.readouterr().err


@pytest.mark.skipif((Path(__file__).resolve().parents[1] / "course.json").exists(),
                    reason="a student copy: its stripped lessons have no blocks left")
def test_cli_blocks_lists_every_lesson_of_the_real_tree(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["course", "blocks"]) == 0
    text = capsys.readouterr().out
    for n in range(1, 10):
        assert re.search(rf"^lesson{n:02d} \(grades lesson {n:02d} .*\): \d+ solution blocks$",
                         text, flags=re.M), f"lesson{n:02d} has no solution blocks"
    assert re.search(r"^  tinylm/autograd\.py:\d+-\d+  run_backward: count each", text, re.M)

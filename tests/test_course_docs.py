"""docs/COURSE.md keeps its promises: its Python examples run, its test files pass, and
every ``tinylm`` command it shows parses with the real command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tinylm.cli import build_parser

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "COURSE.md"
TEXT = DOC.read_text()
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
BASH = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)
EXAMPLES = [b for b in PYTHON if "BEGIN SOLUTION" not in b and "def test_" not in b]
TEST_FILES = [b for b in PYTHON if "def test_" in b]
COMMANDS = [re.sub(r"\s*(\|\|.*|#.*)$", "", line).strip()
            for block in BASH for line in block.splitlines() if line.startswith("tinylm ")]


def test_the_guide_has_examples_test_files_and_commands():
    assert len(EXAMPLES) >= 1 and len(TEST_FILES) >= 2 and len(COMMANDS) >= 8


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_python_examples_run(code):
    exec(compile(code, str(DOC), "exec"), {})  # noqa: S102 - our own guide


@pytest.mark.parametrize("code", TEST_FILES, ids=[f"testfile{i}" for i in range(len(TEST_FILES))])
def test_test_files_in_the_guide_pass(code, pytester):
    pytester.makepyfile(test_from_guide=code)
    pytester.makeini("[pytest]\nmarkers =\n    lesson07: grades lesson 07\n")
    res = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    outcomes = res.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and not outcomes.get("failed"), res.stdout.str()


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_parse(command):
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.command == "course" and callable(args.func)

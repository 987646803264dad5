"""Solution markers: found as comments, validated, replaced (tinylm/course/markers.py)."""

from __future__ import annotations

import ast
import sys
import textwrap
import types

import pytest

from tinylm.course.markers import MarkerError, find_blocks, probe_blocks, strip_blocks

GOOD = textwrap.dedent('''\
    """A module. '# BEGIN SOLUTION lesson09' in a docstring is not a marker."""

    def f(x):
        """Doc."""
        y = 1
        # BEGIN SOLUTION lesson07 LSTM cell forward: gates, c and h
        z = x + y
        return z
        # END SOLUTION


    class C:
        def m(self, xs):
            for x in xs:
                if x:
                    # BEGIN SOLUTION lesson03
                    s = "# END SOLUTION"  # a marker inside a string is text
                    print(s)
                    # END SOLUTION
            return xs
''')


def test_find_blocks_reads_lesson_what_lines_indent_and_function():
    b1, b2 = find_blocks(GOOD, "pkg/mod.py")
    assert (b1.lesson, b1.what, b1.begin, b1.end, b1.indent, b1.function) == (
        "lesson07", "LSTM cell forward: gates, c and h", 6, 9, "    ", "f")
    assert b1.message == "lesson07: LSTM cell forward: gates, c and h"
    assert b1.where() == "pkg/mod.py:6"
    assert (b2.lesson, b2.begin, b2.end, b2.indent, b2.function) == (
        "lesson03", 16, 19, " " * 16, "C.m")
    assert b2.what == "implement C.m"  # no text after the lesson: the function is named


def test_strip_puts_one_raise_at_the_block_indent_and_keeps_the_rest():
    blocks = find_blocks(GOOD, "mod.py")
    out = strip_blocks(GOOD, blocks, "mod.py")
    ast.parse(out)
    lines = out.splitlines()
    msg = "lesson07: LSTM cell forward: gates, c and h"
    assert lines[5] == f"    raise NotImplementedError({msg!r})"
    assert lines[12] == " " * 16 + "raise NotImplementedError('lesson03: implement C.m')"
    assert "z = x + y" not in out and "print(s)" not in out
    assert '"""Doc."""' in out and "y = 1" in out and "return xs" in out
    assert len(lines) == len(GOOD.splitlines()) - 3 - 3
    ns: dict = {}
    exec(compile(out, "mod.py", "exec"), ns)
    with pytest.raises(NotImplementedError, match="^lesson07: LSTM cell forward"):
        ns["f"](1)


def test_strip_only_the_given_blocks():
    b1, b2 = find_blocks(GOOD, "mod.py")
    out = strip_blocks(GOOD, [b2], "mod.py")
    assert "z = x + y" in out and "# BEGIN SOLUTION lesson07" in out
    assert "print(s)" not in out


def test_probe_keeps_the_solution_and_calls_the_probe_first(monkeypatch):
    blocks = find_blocks(GOOD, "mod.py")
    out = probe_blocks(GOOD, blocks, "probe_mod")
    hits = []
    probe = types.ModuleType("probe_mod")
    probe.hit = lambda lesson, where: hits.append((lesson, where))
    monkeypatch.setitem(sys.modules, "probe_mod", probe)
    ns: dict = {}
    exec(compile(out, "mod.py", "exec"), ns)
    assert ns["f"](2) == 3
    assert hits == [("lesson07", "mod.py:6")]
    ns["C"]().m([0, 1])
    assert hits[-1] == ("lesson03", "mod.py:16")


def test_a_file_without_markers_has_no_blocks():
    assert find_blocks("def f():\n    return 1\n") == []


def _src(body: str) -> str:
    return textwrap.dedent(body)


REFUSED = {
    "nested": (_src('''\
        def f():
            # BEGIN SOLUTION lesson01
            # BEGIN SOLUTION lesson02
            return 1
            # END SOLUTION
            # END SOLUTION
        '''), 3, "nested BEGIN SOLUTION"),
    "unclosed": (_src('''\
        def f():
            # BEGIN SOLUTION lesson01
            return 1
        '''), 2, "without an END SOLUTION"),
    "stray END": (_src('''\
        def f():
            return 1
            # END SOLUTION
        '''), 3, "END SOLUTION without a BEGIN"),
    "module level": (_src('''\
        # BEGIN SOLUTION lesson01
        X = 1
        # END SOLUTION
        '''), 1, "module level"),
    "class body": (_src('''\
        class C:
            # BEGIN SOLUTION lesson01
            x = 1
            # END SOLUTION
        '''), 2, "outside a function body"),
    "after the function": (_src('''\
        def f():
            return 1
        if True:
            # BEGIN SOLUTION lesson01
            y = 2
            # END SOLUTION
        '''), 4, "outside a function body"),
    "END indented differently": (_src('''\
        def f(x):
            if x:
                # BEGIN SOLUTION lesson01
                return 1
            # END SOLUTION
        '''), 5, "indented differently"),
    "leaves its suite": (_src('''\
        def f(x):
            if x:
                # BEGIN SOLUTION lesson01
                y = 1
            return y
                # END SOLUTION
        '''), 5, "indented differently from the solution block"),
    "inside a statement": (_src('''\
        def f(x):
            return g(
                # BEGIN SOLUTION lesson01
                x,
                # END SOLUTION
            )
        '''), 3, "inside a statement"),
    "empty": (_src('''\
        def f(x):
            # BEGIN SOLUTION lesson01
            # END SOLUTION
            return x
        '''), 2, "empty solution block"),
    "no lesson": (_src('''\
        def f(x):
            # BEGIN SOLUTION
            return x
            # END SOLUTION
        '''), 2, "needs a lesson"),
    "one-digit lesson": (_src('''\
        def f(x):
            # BEGIN SOLUTION lesson7 the cell
            return x
            # END SOLUTION
        '''), 2, "needs a lesson"),
    "lower case": (_src('''\
        def f(x):
            # begin solution lesson07
            return x
            # END SOLUTION
        '''), 2, "malformed solution marker"),
    "after code": (_src('''\
        def f(x):
            y = x  # BEGIN SOLUTION lesson07
            return y
            # END SOLUTION
        '''), 2, "alone on its line"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_misplaced_or_malformed_markers_are_refused_naming_file_and_line(case):
    text, line, why = REFUSED[case]
    with pytest.raises(MarkerError) as err:
        find_blocks(text, "pkg/bad.py")
    assert f"pkg/bad.py:{line}:" in str(err.value)
    assert why in str(err.value)


def test_a_file_that_does_not_parse_is_refused():
    with pytest.raises(MarkerError, match=r"bad\.py:1: does not parse"):
        find_blocks("def f(:\n    # BEGIN SOLUTION lesson01\n    pass\n    # END SOLUTION\n",
                    "bad.py")

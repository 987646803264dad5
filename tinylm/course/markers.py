"""Solution markers: finding, validating and replacing ``# BEGIN SOLUTION`` blocks.

A solution block is the part of a function body that a lesson asks a student to write::

    def lstm_cell(...):
        '''docstring stays'''
        # BEGIN SOLUTION lesson07 LSTM cell forward: gates, c and h
        i, f, g, o = ...
        return h, c
        # END SOLUTION

In a student copy the lines from BEGIN to END (inclusive) become one line at the
same indent, ``raise NotImplementedError("lesson07: LSTM cell forward: gates, c and
h")``; the text after the lesson name says what to implement (without it, the
message names the function). Markers are comments, found with ``tokenize``, so a
marker quoted inside a string or docstring is not one.

Refused, with ``file:line``: a block inside another, a BEGIN without END, an END
without BEGIN, a block not inside a function body (or one that starts or ends in
the middle of a statement, or leaves its suite), an empty block, a malformed marker
(``# begin solution``, ``# BEGIN SOLUTION lesson7``, no lesson).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass

__all__ = ["Block", "MarkerError", "find_blocks", "strip_blocks", "probe_blocks"]

_ANY = re.compile(r"^#\s*(begin|end)[\s_-]*solutions?\b(.*)$", re.IGNORECASE)
_BEGIN = re.compile(r"^# BEGIN SOLUTION(?:\s+(?P<rest>.*))?$")
_END = re.compile(r"^# END SOLUTION\s*$")
_LESSON = re.compile(r"^(?P<lesson>lesson\d\d)(?:\s+(?P<what>.*))?$")


class MarkerError(ValueError):
    """A malformed, misplaced or unbalanced solution marker; the message names file:line."""


@dataclass(frozen=True)
class Block:
    """One solution block: lines ``begin``..``end`` (1-based, the marker lines included)."""

    path: str  # as given to find_blocks (relative to the source root in a build)
    lesson: str  # "lesson07"
    what: str  # what to implement (the BEGIN line's trailing text, or a default)
    begin: int
    end: int
    indent: str  # the markers' indentation, which the raise keeps
    function: str  # qualified name of the enclosing function

    @property
    def message(self) -> str:
        return f"{self.lesson}: {self.what}"

    def where(self) -> str:
        return f"{self.path}:{self.begin}"


def _marker_comments(text: str, path: str) -> list[tuple[int, str, str]]:
    """(line, kind, comment) for every BEGIN/END marker comment; malformed ones raise."""
    out = []
    lines = text.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as e:
        raise MarkerError(f"{path}: cannot tokenize: {e}") from e
    for tok in tokens:
        if tok.type != tokenize.COMMENT or not _ANY.match(tok.string):
            continue
        line, col = tok.start
        comment = tok.string.rstrip()
        if lines[line - 1][:col].strip():
            raise MarkerError(f"{path}:{line}: a solution marker must be alone on its line: "
                              f"{lines[line - 1].strip()!r}")
        if _END.match(comment):
            out.append((line, "end", comment))
        elif _BEGIN.match(comment):
            out.append((line, "begin", comment))
        else:
            raise MarkerError(f"{path}:{line}: malformed solution marker {comment!r}; write "
                              "'# BEGIN SOLUTION lessonNN what to implement' or '# END SOLUTION'")
    return out


def _parents(tree: ast.AST) -> dict:
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _qualname(node, parents) -> str:
    names = []
    while node is not None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        node = parents.get(node)
    return ".".join(reversed(names))


_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try,
             ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, getattr(ast, "TryStar", ast.Try),
             getattr(ast, "Match", ast.If))


def _check_placement(tree, parents, path, begin, end, indent) -> str:
    """The block's statements sit in one function body at the markers' indent; returns
    the function's qualified name."""
    col = len(indent)
    stmts = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    for s in stmts:  # a marker inside a multi-line simple statement cannot be replaced
        if isinstance(s, _COMPOUND):
            continue
        for line, name in ((begin, "BEGIN"), (end, "END")):
            if s.lineno < line <= s.end_lineno:
                raise MarkerError(f"{path}:{line}: {name} SOLUTION inside a statement that "
                                  f"spans lines {s.lineno}-{s.end_lineno}")
    inside = [s for s in stmts if begin < s.lineno < end]
    if not inside:
        raise MarkerError(f"{path}:{begin}: empty solution block (no statement before the END "
                          f"SOLUTION at line {end})")
    top = [s for s in inside if parents.get(s) is None or not (begin < parents[s].lineno < end)]
    func = None
    for s in top:
        if s.end_lineno >= end:
            raise MarkerError(f"{path}:{end}: END SOLUTION falls inside the statement that "
                              f"starts at line {s.lineno}")
        if s.col_offset != col:
            raise MarkerError(f"{path}:{s.lineno}: statement indented differently from the "
                              f"solution block's markers (line {begin}); a block must stay in "
                              "one suite")
        f = parents.get(s)
        while f is not None and not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
            f = parents.get(f)
        if f is None:
            raise MarkerError(f"{path}:{begin}: solution block outside a function body "
                              f"(line {s.lineno} is module- or class-level code); put the "
                              "markers inside the function the student writes")
        if func is not None and f is not func:
            raise MarkerError(f"{path}:{begin}: solution block spans more than one function")
        func = f
    return _qualname(func, parents)


def find_blocks(text: str, path: str = "<string>") -> list[Block]:
    """Every solution block of one Python source, validated (raises MarkerError)."""
    if not re.search(r"(?i)(begin|end)[\s_-]*solution", text):
        return []  # the common case, without tokenizing
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        raise MarkerError(f"{path}:{e.lineno}: does not parse: {e.msg}") from e
    markers = _marker_comments(text, path)
    if not markers:
        return []
    parents = _parents(tree)
    lines = text.splitlines()
    blocks, open_ = [], None
    for line, kind, comment in markers:
        indent = lines[line - 1][: len(lines[line - 1]) - len(lines[line - 1].lstrip())]
        if kind == "begin":
            if open_ is not None:
                raise MarkerError(f"{path}:{line}: nested BEGIN SOLUTION (the block opened at "
                                  f"{path}:{open_[0]} is not closed yet)")
            rest = (_BEGIN.match(comment).group("rest") or "").strip()
            m = _LESSON.match(rest)
            if not m:
                raise MarkerError(f"{path}:{line}: BEGIN SOLUTION needs a lesson: "
                                  f"'# BEGIN SOLUTION lessonNN what to implement' (two digits), "
                                  f"got {comment!r}")
            open_ = (line, indent, m.group("lesson"), (m.group("what") or "").strip(" :-—"))
            continue
        if open_ is None:
            raise MarkerError(f"{path}:{line}: END SOLUTION without a BEGIN SOLUTION")
        begin, b_indent, lesson, what = open_
        open_ = None
        if indent != b_indent:
            raise MarkerError(f"{path}:{line}: END SOLUTION is indented differently from its "
                              f"BEGIN SOLUTION at line {begin}")
        if not b_indent:
            raise MarkerError(f"{path}:{begin}: solution block at module level; put the "
                              "markers inside the function the student writes")
        function = _check_placement(tree, parents, path, begin, line, b_indent)
        blocks.append(Block(path, lesson, what or f"implement {function}", begin, line,
                            b_indent, function))
    if open_ is not None:
        raise MarkerError(f"{path}:{open_[0]}: BEGIN SOLUTION without an END SOLUTION")
    return blocks


def _replace(text: str, blocks: list[Block], make) -> str:
    """Replace each block's lines by ``make(block)`` (a list of lines without newlines)."""
    lines = text.splitlines(keepends=True)
    for b in sorted(blocks, key=lambda b: -b.begin):  # bottom-up keeps line numbers valid
        newline = "\n" if lines[b.end - 1].endswith("\n") else ""
        lines[b.begin - 1 : b.end] = [ln + "\n" for ln in make(b)[:-1]] + [make(b)[-1] + newline]
    return "".join(lines)


def strip_blocks(text: str, blocks: list[Block], path: str = "<string>") -> str:
    """The source with each block replaced by ``raise NotImplementedError("lessonNN: ...")``;
    checked to parse."""
    out = _replace(text, blocks, lambda b: [f"{b.indent}raise NotImplementedError({b.message!r})"])
    try:
        ast.parse(out, filename=path)
    except SyntaxError as e:  # pragma: no cover - find_blocks refuses what could cause this
        raise MarkerError(f"{path}:{e.lineno}: the stripped file does not parse: {e.msg}") from e
    return out


def probe_blocks(text: str, blocks: list[Block], module: str) -> str:
    """The source with a call ``module.hit(id)`` as the first line of each block (the
    solution kept), so a test run can record which blocks each test executes."""
    return _replace(text, blocks, lambda b: [
        f"{b.indent}__import__({module!r}).hit({b.lesson!r}, {b.where()!r})",
        *text.splitlines()[b.begin - 1 : b.end],
    ])

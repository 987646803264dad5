"""``tinylm course``: student copies, grading, the list of solution blocks.

    tinylm course student OUT --lessons 6,7     # a copy with lessons 06 and 07 cut out
    tinylm course grade [--lessons 6,7] [--extra-tests DIR] [--json results.json]
                        [--submission DIR]      # an autograder: the student's files first
    tinylm course blocks [--lessons 7]          # where each lesson's solution blocks are
    tinylm course check                         # prove the stripping guarantee (slow)

Exit status: 0 done (grade: everything passed), 1 grade: some test failed,
2 the request cannot be carried out (the message says why).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["add_course_parser"]


def _fail(e) -> int:
    print(f"tinylm course: {e}", file=sys.stderr)
    return 2


def _student(args) -> int:
    from .builder import build_student_copy
    from .tree import CourseError, find_root

    start = time.perf_counter()
    try:
        root = find_root(args.source)
        res = build_student_copy(root, args.out, args.lessons, census_tests=not args.no_census,
                                 force=args.force)
    except CourseError as e:
        return _fail(e)
    print(f"wrote a student copy of {root} to {res.out} ({res.files} files) in "
          f"{time.perf_counter() - start:.1f} s")
    print(f"stripped {len(res.blocks)} solution block(s) of {', '.join(res.lessons)}:")
    for b in res.blocks:
        print(f"  {b.path}:{b.begin}  {b.function}: {b.message}")
    if res.expected_tests:
        counts = ", ".join(f"{k}: {len(v)}" for k, v in res.expected_tests.items())
        print(f"tests that grade them ({counts}) are listed in course.json")
    print(f"grade it: cd {args.out} && tinylm course grade   (students: see its README.md)")
    return 0


def _grade(args) -> int:
    from .grader import format_table, grade, take_submission, write_json
    from .tree import CourseError

    start = time.perf_counter()
    try:
        if args.submission:
            taken = take_submission(Path("."), args.submission)
            print(f"took from {args.submission}: {', '.join(taken) or 'nothing'}")
        report = grade(".", args.lessons, args.extra_tests, points=args.points,
                       workers=args.workers, stream=args.verbose)
    except CourseError as e:
        return _fail(e)
    print(format_table(report, failures=args.max_failures))
    print(f"\ngraded in {time.perf_counter() - start:.1f} s")
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0 if report.all_passed else 1


def _blocks(args) -> int:
    from .markers import MarkerError
    from .tree import CourseError, find_root, parse_lessons, registered_lessons, scan_blocks

    try:
        root = find_root(args.source)
        registered = registered_lessons(root)
        wanted = parse_lessons(args.lessons, registered) if args.lessons else list(registered)
        blocks = scan_blocks(root)
    except (CourseError, MarkerError) as e:
        return _fail(e)
    for lesson in wanted:
        mine = [b for b in blocks if b.lesson == lesson]
        print(f"{lesson} ({registered[lesson]}): {len(mine) or 'no'} solution blocks")
        for b in mine:
            print(f"  {b.path}:{b.begin}-{b.end}  {b.function}: {b.what}")
    return 0


def _check(args) -> int:
    import os

    from .selfcheck import selfcheck
    from .tree import CourseError, course_config, find_root, parse_lessons, registered_lessons

    start = time.perf_counter()
    try:
        root = find_root(args.source)
        lessons = parse_lessons(args.lessons, registered_lessons(root)) if args.lessons else None
        exempt = {p: "[tool.tinylm.course] audit_exempt in pyproject.toml"
                  for p in course_config(root).get("audit_exempt", [])}
        exempt.update({p: "--exempt" for p in args.exempt or ()})
        report = selfcheck(root, lessons, exempt, workers=args.workers or os.cpu_count())
    except CourseError as e:
        return _fail(e)
    print(report.format())
    print(f"\nself-check {'passed' if report.ok else 'FAILED'} in "
          f"{time.perf_counter() - start:.1f} s")
    return 0 if report.ok else 1


def add_course_parser(sub) -> None:
    """Add ``course`` and its subcommands to the ``tinylm`` command's subparsers."""
    c = sub.add_parser(
        "course", help="cut student copies out of tinylm and grade them",
        description="Course tools: `student` writes a copy with chosen lessons' solution blocks "
        "replaced by NotImplementedError, `grade` runs the lesson-marked tests and prints a "
        "score table, `check` proves that every lesson can be cut out, `blocks` lists the "
        "solution blocks. See docs/COURSE.md.",
    )
    csub = c.add_subparsers(dest="course_command", metavar="SUBCOMMAND", required=True)

    s = csub.add_parser("student", help="write a student copy with some lessons cut out",
                        description="Copy the tinylm tree (package, lessons, notebooks, tests) "
                        "to OUT with every solution block of the chosen lessons replaced by "
                        "raise NotImplementedError(\"lessonNN: ...\").")
    s.add_argument("out", metavar="OUT", help="folder to write (must be new or empty)")
    s.add_argument("--lessons", required=True, metavar="N,M",
                   help="lessons to cut out: numbers (6,7) or names (lesson07)")
    s.add_argument("--source", metavar="DIR",
                   help="the tinylm tree to copy (default: the current folder)")
    s.add_argument("--force", action="store_true",
                   help="replace OUT if it holds a student copy built before")
    s.add_argument("--no-census", action="store_true",
                   help="do not record the assignment's test ids in course.json (faster; "
                   "grading then cannot count a test whose file stopped importing)")
    s.set_defaults(func=_student)

    g = csub.add_parser("grade", help="run the lesson tests here and print a score table",
                        description="Run the tests marked with the chosen lessons in the "
                        "current folder's tree (its own tinylm), score them per lesson, and "
                        "optionally write an autograder results.json.")
    g.add_argument("--lessons", metavar="N,M",
                   help="lessons to grade (default: those a student copy cut out, else all)")
    g.add_argument("--extra-tests", metavar="DIR",
                   help="a folder of hidden tests, collected too (with their lesson markers)")
    g.add_argument("--json", metavar="FILE", help="write a Gradescope-style results.json")
    g.add_argument("--submission", metavar="DIR",
                   help="first copy the assignment's files (those holding its blocks) from a "
                   "student's submission over this copy; nothing else is taken")
    g.add_argument("--points", type=float, default=10.0, metavar="P",
                   help="points per lesson, shared by its tests (default 10)")
    g.add_argument("-n", "--workers", type=int, metavar="N",
                   help="run the tests in N processes (pytest-xdist)")
    g.add_argument("--max-failures", type=int, default=20, metavar="N",
                   help="failing tests listed (default 20)")
    g.add_argument("--verbose", action="store_true", help="show pytest's own output")
    g.set_defaults(func=_grade)

    k = csub.add_parser("check", help="prove the stripping guarantee for every lesson",
                        description="For each lesson with solution blocks: the reference passes, "
                        "no earlier lesson's test runs its blocks, and in a copy with only that "
                        "lesson stripped, tinylm imports and the lesson's tests that reach its "
                        "blocks fail with its NotImplementedError. See docs/COURSE.md.")
    k.add_argument("--lessons", metavar="N,M", help="only these lessons")
    k.add_argument("--source", metavar="DIR", help="the tinylm tree (default: here)")
    k.add_argument("--exempt", action="append", metavar="TESTFILE",
                   help="also leave this test file out of the audit (repeatable; "
                   "pyproject's [tool.tinylm.course] audit_exempt are always left out)")
    k.add_argument("-n", "--workers", type=int, metavar="N",
                   help="parallel processes (default: one per CPU)")
    k.set_defaults(func=_check)

    b = csub.add_parser("blocks", help="list the solution blocks of each lesson")
    b.add_argument("--lessons", metavar="N,M", help="only these lessons")
    b.add_argument("--source", metavar="DIR", help="the tinylm tree (default: here)")
    b.set_defaults(func=_blocks)

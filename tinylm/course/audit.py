"""The marker audit: which tests run which lesson's solution blocks.

The stripping guarantee (see builder.py) says a block of lesson N is run only by
tests of lesson N and later lessons. ``audit(root)`` checks it for every lesson
at the cost of one test run: it copies the tree with a probe call as the first
line of every block (the solutions kept), runs the lesson-marked tests, and
reports

- violations: a test of lesson M that runs a block of a later lesson N > M (it
  would fail in a copy with lesson N stripped: move the block, or mark the test
  with the lesson it really exercises);
- blocks that no test of their own lesson runs (stripping them would go unnoticed);
- the tests of each lesson that run none of its blocks (they pass when it is stripped).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .markers import probe_blocks
from .runner import run_pytest
from .tree import CourseError, parse_lessons, registered_lessons, scan_blocks, source_files

__all__ = ["AuditReport", "audit", "format_audit"]

PROBE = "tinylm_course_probe"


@dataclass
class AuditReport:
    lessons: list
    blocks: list  # Block
    hits: dict  # nodeid -> {(lesson, where)}
    test_lessons: dict  # nodeid -> [lesson markers]
    failed: list = field(default_factory=list)  # tests that failed in the reference
    returncode: int = 0

    def violations(self) -> list[tuple[str, str, str]]:
        """(nodeid, its earliest lesson, a later lesson whose block it runs)."""
        out = []
        for nodeid, marks in sorted(self.test_lessons.items()):
            if not marks:
                continue
            later = sorted({h for h, _ in self.hits.get(nodeid, ())} - set(marks))
            later = [h for h in later if h > min(marks)]
            out += [(nodeid, min(marks), h) for h in later]
        return out

    def unexercised_blocks(self) -> list:
        """Blocks that no test of their own lesson runs."""
        run = {(h, w) for nodeid, marks in self.test_lessons.items()
               for h, w in self.hits.get(nodeid, ()) if h in marks}
        return [b for b in self.blocks if b.lesson in self.lessons
                and (b.lesson, b.where()) not in run]

    def coverage(self, lesson: str) -> tuple[int, int]:
        """(tests of ``lesson`` that run one of its blocks, tests of ``lesson``)."""
        mine = [n for n, marks in self.test_lessons.items() if lesson in marks]
        return sum(any(h == lesson for h, _ in self.hits.get(n, ())) for n in mine), len(mine)


def audit(root, lessons=None, workers: int | None = None, tests: str = "tests",
          ignore=()) -> AuditReport:  # fmt: skip
    """Run the tests of ``lessons`` (default all) on a probed copy of ``root``, leaving out
    the test files in ``ignore`` (paths relative to root)."""
    root = Path(root).resolve()
    registered = registered_lessons(root)
    lessons = parse_lessons(lessons if lessons else list(registered), registered)
    files = source_files(root)
    blocks = scan_blocks(root, files)
    by_file: dict = {}
    for b in blocks:
        by_file.setdefault(b.path, []).append(b)
    with tempfile.TemporaryDirectory(prefix="tinylm-audit-") as tmp:
        copy, probe_dir, hits_dir = Path(tmp) / "tree", Path(tmp) / "probe", Path(tmp) / "hits"
        for d in (copy, probe_dir, hits_dir):
            d.mkdir()
        for rel in files:
            dst = copy / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel.as_posix() in by_file:
                text = (root / rel).read_text(encoding="utf-8")
                dst.write_text(probe_blocks(text, by_file[rel.as_posix()], PROBE), "utf-8")
            else:
                shutil.copy2(root / rel, dst)
        shutil.copyfile(Path(__file__).with_name("_probe_plugin.py"), probe_dir / f"{PROBE}.py")
        args = ["-p", PROBE, "-m", " or ".join(lessons), "-q", tests,
                *(f"--ignore={i}" for i in ignore)]
        if workers and workers > 1 and importlib.util.find_spec("xdist"):
            args[:0] = ["-n", str(workers)]
        res = run_pytest(copy, args, env={"TINYLM_COURSE_PROBE": str(hits_dir)},
                         paths=(probe_dir,))
        if not res.report_written:
            raise CourseError(f"audit: pytest did not run ({res.returncode}):\n"
                              f"{res.output[-4000:]}")
        hits: dict = {}
        for f in hits_dir.glob("*.json"):
            for nodeid, hs in json.loads(f.read_text(encoding="utf-8")).items():
                hits.setdefault(nodeid, set()).update(tuple(h) for h in hs)
    return AuditReport(lessons, blocks, hits, {t.nodeid: t.lessons for t in res.tests},
                       [t for t in res.failed], res.returncode)


def format_audit(report: AuditReport, limit: int = 30) -> str:
    lines = [f"{'lesson':8s} {'blocks':>6s} {'tests running its blocks':>25s}"]
    for lesson in report.lessons:
        n = sum(b.lesson == lesson for b in report.blocks)
        ran, total = report.coverage(lesson)
        lines.append(f"{lesson:8s} {n:6d} {f'{ran}/{total}':>25s}")
    v = report.violations()
    lines.append(f"\n{len(v)} test(s) of an earlier lesson run a later lesson's block"
                 + (":" if v else " (the stripping guarantee holds)"))
    for nodeid, mine, later in v[:limit]:
        lines.append(f"  {nodeid} ({mine}) runs a {later} block")
    if len(v) > limit:
        lines.append(f"  ... and {len(v) - limit} more")
    for b in report.unexercised_blocks():
        lines.append(f"block {b.where()} ({b.lesson}) is run by no {b.lesson} test")
    for t in report.failed[:limit]:
        lines.append(f"failed in the reference: {t.nodeid}")
    return "\n".join(lines)

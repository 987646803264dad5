"""Run pytest on a tinylm tree in a subprocess and read back each test's outcome.

The subprocess imports the tree's own ``tinylm`` (the tree comes first on
``PYTHONPATH``), not whichever tinylm runs this code: a student copy is graded on
the student's code. The project's ``addopts`` (which turn on nbmake) are
replaced by ``--strict-markers -p no:cacheprovider``; ``-c pyproject.toml`` and
``--rootdir`` pin the configuration even when extra test folders lie elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Outcome", "RunResult", "run_pytest", "base_args"]

PLUGIN = "tinylm_course_results"


@dataclass
class Outcome:
    nodeid: str
    lessons: list
    outcome: str  # passed | failed | skipped
    phase: str = ""
    message: str = ""


@dataclass
class RunResult:
    returncode: int
    output: str
    tests: list = field(default_factory=list)  # Outcome
    collect_errors: list = field(default_factory=list)  # {"nodeid", "message"}
    collected: list = field(default_factory=list)  # {"nodeid", "lessons"} (--collect-only)
    report_written: bool = False

    @property
    def failed(self) -> list:
        return [t for t in self.tests if t.outcome == "failed"]


def base_args(root: Path) -> list[str]:
    """The options every course run uses (the caller adds -m, paths, -x, -n ...)."""
    args = ["-p", PLUGIN, "-o", "addopts=", "--strict-markers", "-p", "no:cacheprovider",
            "-c", str(root / "pyproject.toml"), "--rootdir", str(root)]
    if not (root / "tinylm" / "testing" / "pytest_plugin.py").is_file():
        args += ["-p", "no:tinylm"]  # the installed entry point would import a missing module
    return args


def run_pytest(root, args: list[str], timeout: float | None = None, stream: bool = False,
               env: dict | None = None, paths: tuple = ()) -> RunResult:  # fmt: skip
    """``python -m pytest <base_args> <args>`` in ``root``; the outcome of every test.

    ``stream=True`` lets pytest's output through to the terminal (it is not kept);
    ``env`` adds environment variables, ``paths`` folders to ``PYTHONPATH``."""
    root = Path(root).resolve()
    with tempfile.TemporaryDirectory(prefix="tinylm-course-") as tmp:
        shutil.copyfile(Path(__file__).with_name("_results_plugin.py"), Path(tmp) / f"{PLUGIN}.py")
        report = Path(tmp) / "report.json"
        full_env = {**os.environ, **(env or {})}
        old = [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p]
        full_env.update(PYTHONPATH=os.pathsep.join([str(root), tmp, *map(str, paths), *old]),
                        TINYLM_COURSE_REPORT=str(report), TQDM_DISABLE="1", MPLBACKEND="Agg")
        cmd = [sys.executable, "-m", "pytest", *base_args(root), *args]
        proc = subprocess.run(cmd, cwd=root, env=full_env, timeout=timeout, text=True,
                              stdout=None if stream else subprocess.PIPE,
                              stderr=None if stream else subprocess.STDOUT)  # fmt: skip
        res = RunResult(proc.returncode, proc.stdout or "")
        if report.exists():
            data = json.loads(report.read_text(encoding="utf-8"))
            res.tests = [Outcome(**t) for t in data["tests"]]
            res.collect_errors = data["collect_errors"]
            res.collected = data["collected"]
            res.report_written = True
    return res

"""Records which solution blocks each test runs (``tinylm course audit``).

Copied to a temporary folder as the top-level module ``tinylm_course_probe``. An
instrumented copy of the tree calls ``tinylm_course_probe.hit(lesson, where)`` as
the first statement of every solution block; loaded as a pytest plugin (``-p
tinylm_course_probe``) the module knows which test is running and, at the end,
writes ``{nodeid: [[lesson, where], ...]}`` to ``$TINYLM_COURSE_PROBE/<worker>.json``.
"""

from __future__ import annotations

import json
import os

_current = ["<no test>"]
_hits: dict = {}


def hit(lesson: str, where: str) -> None:
    _hits.setdefault(_current[0], set()).add((lesson, where))


def pytest_runtest_logstart(nodeid, location):
    _current[0] = nodeid


def pytest_sessionfinish(session):
    folder = os.environ.get("TINYLM_COURSE_PROBE")
    if not folder:
        return
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    with open(os.path.join(folder, f"{worker}.json"), "w", encoding="utf-8") as f:
        json.dump({k: sorted(v) for k, v in _hits.items()}, f)

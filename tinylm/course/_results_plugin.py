"""A pytest plugin that writes each test's outcome and lesson markers as JSON.

The course tools run pytest in a subprocess with this file copied to a temporary
folder as the top-level module ``tinylm_course_results`` (``-p
tinylm_course_results``): it imports nothing from tinylm, so a student copy whose
package fails to import is still graded (its tests fail) instead of crashing the
run. The report goes to the file named by ``TINYLM_COURSE_REPORT``:

    {"tests": [{"nodeid", "lessons", "outcome", "phase", "message"}],
     "collect_errors": [{"nodeid", "message"}], "collected": [{"nodeid", "lessons"}]}

``outcome`` is passed, failed or skipped (an xfail counts as passed, as in pytest's
own verdict); ``message`` is the failure's report, cut to a few thousand characters.
Works under pytest-xdist (the controller writes the file).
"""

from __future__ import annotations

import json
import os
import re

_LESSON = re.compile(r"^lesson\d\d$")
_KEY = "tinylm_lessons"
_MAX_MESSAGE = 16000  # the grader shortens it further for an upload
_tests: dict = {}
_lessons: dict = {}
_errors: list = []
_collected: list = []


def _cut(text: str) -> str:
    if len(text) <= _MAX_MESSAGE:
        return text
    half = _MAX_MESSAGE // 2
    return text[:half] + "\n[...]\n" + text[-half:]


def pytest_itemcollected(item):
    lessons = sorted({m.name for m in item.iter_markers() if _LESSON.match(m.name)})
    item.user_properties.append((_KEY, lessons))


def pytest_collection_finish(session):
    for item in session.items:
        lessons = dict(item.user_properties).get(_KEY, [])
        _collected.append({"nodeid": item.nodeid, "lessons": lessons})


def pytest_collectreport(report):
    if report.failed:
        _errors.append({"nodeid": report.nodeid, "message": _cut(report.longreprtext)})


def pytest_runtest_logreport(report):
    lessons = dict(report.user_properties).get(_KEY)
    if lessons is not None:
        _lessons[report.nodeid] = lessons
    rec = _tests.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed",
                                            "phase": "", "message": ""})
    if rec["outcome"] == "failed":
        return  # the first failure (setup, call or teardown) is the one to report
    if report.failed:
        xpass = report.when == "call" and hasattr(report, "wasxfail")  # strict xpass
        rec.update(outcome="failed", phase=report.when,
                   message=_cut(report.longreprtext or ("unexpectedly passed" if xpass else "")))
    elif report.skipped:
        if hasattr(report, "wasxfail"):
            rec.update(outcome="passed", phase=report.when, message="xfail: " + report.wasxfail)
        else:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            rec.update(outcome="skipped", phase=report.when, message=str(reason))


def pytest_sessionfinish(session):
    path = os.environ.get("TINYLM_COURSE_REPORT")
    if not path or hasattr(session.config, "workerinput"):  # xdist workers report upward
        return
    for rec in _tests.values():
        rec["lessons"] = _lessons.get(rec["nodeid"], [])
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"tests": list(_tests.values()), "collect_errors": _errors,
                   "collected": _collected}, f)

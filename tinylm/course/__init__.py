"""The course kit: student copies cut out of tinylm, and grading by lesson marker.

>>> from tinylm.course import build_student_copy, grade   # doctest: +SKIP
>>> build_student_copy(".", "student", ["lesson07"])       # doctest: +SKIP
>>> print(format_table(grade("student")))                  # doctest: +SKIP

See docs/COURSE.md, and ``tinylm course --help``.
"""

from .builder import BuildResult, build_student_copy
from .grader import GradeReport, format_table, grade, gradescope_results
from .markers import Block, MarkerError, find_blocks, strip_blocks
from .tree import CourseError, find_root, parse_lessons, registered_lessons, scan_blocks

__all__ = ["Block", "BuildResult", "CourseError", "GradeReport", "MarkerError",
           "build_student_copy", "find_blocks", "find_root", "format_table", "grade",
           "gradescope_results", "parse_lessons", "registered_lessons", "scan_blocks",
           "strip_blocks"]

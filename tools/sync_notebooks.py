"""Regenerate notebooks/NN_topic.ipynb from lessons/NN_topic.py (jupytext percent format).

    python tools/sync_notebooks.py            # rewrite every notebook that is out of date
    python tools/sync_notebooks.py --check    # change nothing; exit 1 naming each lesson
                                              # whose notebook is missing, stale or has outputs
    python tools/sync_notebooks.py 01_autograd  # only the named lessons

Notebooks are written without outputs, with the metadata filters of lessons/jupytext.toml,
and with cell ids derived from each cell's content, so regenerating an unchanged lesson
rewrites nothing and an edited cell changes only its own lines in the diff.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import load_jupytext_config
from jupytext.metadata_filter import filter_metadata

ROOT = Path(__file__).resolve().parents[1]
LESSON_NAME = re.compile(r"^\d\d_\w+\.py$")


def lesson_paths(lessons_dir: Path) -> list[Path]:
    """The lesson sources: lessons/NN_topic.py, sorted by number."""
    return sorted(p for p in lessons_dir.glob("*.py") if LESSON_NAME.match(p.name))


def notebook_path(lesson: Path, notebooks_dir: Path) -> Path:
    return notebooks_dir / (lesson.stem + ".ipynb")


def render(lesson: Path) -> nbformat.NotebookNode:
    """The notebook for one lesson: outputs empty, cell metadata filtered, cell ids stable."""
    config = load_jupytext_config(str(lesson))
    cell_filter = (config and config.cell_metadata_filter) or "tags,-all"
    nb = jupytext.read(lesson, fmt="py:percent", config=config)
    seen: dict[str, int] = {}
    for cell in nb.cells:
        # jupytext keeps layout hints such as lines_to_next_cell; the notebook needs none
        cell.metadata = filter_metadata(cell.metadata, cell_filter)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        n = seen.get(digest, 0)
        seen[digest] = n + 1
        cell.id = digest if n == 0 else f"{digest}-{n}"
    return nb


def to_text(nb: nbformat.NotebookNode) -> str:
    text = jupytext.writes(nb, fmt="ipynb")
    return text if text.endswith("\n") else text + "\n"


def cell_signature(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple]]:
    """What must agree between lesson and notebook: type, source and tags of each cell."""
    return [(c.cell_type, c.source, tuple(c.get("metadata", {}).get("tags", ()))) for c in nb.cells]


def problems(lesson: Path, notebooks_dir: Path) -> list[str]:
    """Why the committed notebook of ``lesson`` is not in sync (empty when it is)."""
    target = notebook_path(lesson, notebooks_dir)
    if not target.exists():
        return [f"{lesson.name}: no notebook {target.name}"]
    committed = nbformat.read(target, as_version=4)
    out = []
    want, have = cell_signature(render(lesson)), cell_signature(committed)
    if want != have:
        where = next(
            (i for i, (w, h) in enumerate(zip(want, have)) if w != h), min(len(want), len(have))
        )
        out.append(
            f"{lesson.name}: out of sync with {target.name} (first difference at cell {where}; "
            f"{len(want)} cells in the lesson, {len(have)} in the notebook)"
        )
    with_outputs = [
        i for i, c in enumerate(committed.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]  # fmt: skip
    if with_outputs:
        out.append(f"{lesson.name}: {target.name} has outputs in cells {with_outputs}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="lessons to handle (e.g. 01_autograd); default all")
    ap.add_argument("--check", action="store_true", help="change nothing; fail if out of sync")
    ap.add_argument("--lessons", type=Path, default=ROOT / "lessons")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    args = ap.parse_args(argv)

    lessons = lesson_paths(args.lessons)
    if args.names:
        wanted = {n.removesuffix(".py") for n in args.names}
        unknown = wanted - {p.stem for p in lessons}
        if unknown:
            print(f"unknown lessons: {sorted(unknown)}", file=sys.stderr)
            return 2
        lessons = [p for p in lessons if p.stem in wanted]

    if args.check:
        found = [msg for lesson in lessons for msg in problems(lesson, args.notebooks)]
        if not args.names:
            stems = {p.stem for p in lesson_paths(args.lessons)}
            found += [
                f"{nb.name}: no lesson {nb.stem}.py in {args.lessons}"
                for nb in sorted(args.notebooks.glob("*.ipynb"))
                if nb.stem not in stems
            ]
        for msg in found:
            print(msg, file=sys.stderr)
        if found:
            print("run: python tools/sync_notebooks.py", file=sys.stderr)
            return 1
        print(f"{len(lessons)} notebooks in sync")
        return 0

    args.notebooks.mkdir(parents=True, exist_ok=True)
    for lesson in lessons:
        target = notebook_path(lesson, args.notebooks)
        text = to_text(render(lesson))
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(args.notebooks.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench/RESULTS.md from the figures of one run: the layout, nothing else.

Each part says what its figures mean and what they are held against
(``summary`` rows with their targets, ``sections`` of tables and paragraphs:
see ``bench.common``); this module only turns that into Markdown, in the
order of the parts it is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

from bench.common import Measure, Section, Table, verdict

HOW_TO_RUN = """\
Run them all with `make bench` (it runs `scripts/bench.sh`: the usual setup
step, then `.venv/bin/python -m bench`, which rewrites this file). A quick
check that the bench still works, which writes nothing:
`make bench ARGS=--smoke` or `.venv/bin/python -m bench --smoke` (also run
by `tests/test_bench_smoke.py`).
One part: `.venv/bin/python -m bench --only package --output /tmp/package.md`.
Parts: `coldstart`, `inprocess`, `cost` (prices the in-process figures, so
it runs that part too), `localstack`, `frontend`, `package`.
Benchmarks are not tests: nothing here fails a build on a slow figure; the
smoke test asserts only facts (round-trip counts against their targets, no
AWS client or network at import, the cost model adds up)."""

Parts = Mapping[str, ModuleType]


def _table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "|".join("---" for _ in table.header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table.rows]
    return lines


def _blocks(blocks: list[Table | str]) -> list[str]:
    """Tables and paragraphs, a blank line between two."""
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        lines += _table(block) if isinstance(block, Table) else block.splitlines()
    return lines


def _failed(figures: Any) -> str | None:
    """Why a part has no figures, or None when it has."""
    if figures is None:
        return "not run in this invocation"
    if isinstance(figures, dict) and figures.get("ok") is False:
        return str(figures.get("error", "failed"))
    return None


def _parts(results: dict[str, Any], parts: Parts) -> Iterator[tuple[ModuleType, Any, str | None]]:
    for name, part in parts.items():
        figures = results.get(name)
        yield part, figures, _failed(figures)


def _summary_row(row: Measure, problem: str | None) -> list[str]:
    if row.result is None:
        return [row.what, problem or "not measured", row.target, verdict(None)]
    return [row.what, row.result, row.target, "-" if row.met is None else verdict(row.met)]


def summary(results: dict[str, Any], parts: Parts) -> Table:
    rows = [
        _summary_row(row, problem)
        for part, figures, problem in _parts(results, parts)
        for row in part.summary(None if problem else figures)
    ]
    return Table(["measure", "result", "target", ""], rows)


def sections(results: dict[str, Any], parts: Parts) -> list[Section]:
    """Every part's sections; a part without figures keeps its titles, with the reason."""
    found: list[Section] = []
    for part, figures, problem in _parts(results, parts):
        if problem:
            found += [Section(title, [problem]) for title in part.TITLES]
        else:
            found += part.sections(figures)
    return found


def _demoted(markdown: str) -> list[str]:
    """``markdown``'s lines with every heading made level 3 (code blocks left alone)."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            line = "### " + line.lstrip("#").lstrip()
        out.append(line)
    return out


def console(results: dict[str, Any], parts: Parts) -> str:
    """What a run that writes a file prints when it is done: the summary and the console sections."""
    lines = ["", "Summary", ""] + _table(summary(results, parts))
    for section in sections(results, parts):
        if section.console:
            lines += ["", section.title, ""] + _blocks(section.blocks)
    return "\n".join(lines) + "\n"


def render(results: dict[str, Any], parts: Parts) -> str:
    meta = results["meta"]
    m = meta["machine"]
    lines = [
        "# Benchmarks",
        "",
        HOW_TO_RUN,
        "",
        "## This run",
        "",
        f"- Date: {meta['date']}"
        + (" (smoke run: few iterations, figures not meaningful)" if meta["smoke"] else ""),
        f"- Machine: {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gib']} GiB memory, "
        f"{m.get('cpu') or 'CPU unknown'}; {m['platform']}",
        f"- Python {m['python']}; commit {m.get('commit') or 'unknown'}",
        f"- Command: `{meta['command']}`",
        "",
        "## Summary",
        "",
    ]
    lines += _table(summary(results, parts))
    for number, section in enumerate(sections(results, parts), start=1):
        lines += ["", f"## {number}. {section.title}", ""] + _blocks(section.blocks)
    record = results.get("package_record")
    if record:
        lines += ["", "## Deployment's package record (bench/RESULTS-package.md, as written there)", ""]
        lines += _demoted(record)
    return "\n".join(lines).rstrip() + "\n"

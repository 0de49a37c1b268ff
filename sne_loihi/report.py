"""Run reports: ``report.json`` (everything) and ``report.md`` (tables a person reads)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sne_loihi.io import atomic_write_bytes, atomic_write_json

REPORT_MD = "report.md"
REPORT_JSON = "report.json"



def percent(v: float) -> str:
    """A fraction as a percentage with two decimals (``0.9712`` -> ``97.12``)."""
    return f"{100 * v:.2f}"


def whole(v: float) -> str:
    """A count, rounded, with thousands separators."""
    return f"{v:,.0f}"


def two_decimals(v: float) -> str:
    """A value with thousands separators and two decimals."""
    return f"{v:,.2f}"


#: Columns of the main results table: (key, header, formatter).
COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("model", "model", str),
    ("active", "active", str),
    ("accuracy", "test acc. (%)", percent),
    ("params", "params", lambda v: f"{int(v):,}"),
    ("macs", "MACs/sample", whole),
    ("acs", "ACs/sample", whole),
    ("energy_pj", "energy/sample (nJ)", lambda v: two_decimals(v / 1000)),
)


def format_rows(rows: Sequence[dict[str, Any]], columns=COLUMNS) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells (missing values as ``-``)."""
    headers = [h for _, h, _ in columns]
    cells = [[fmt(r[k]) if r.get(k) is not None else "-" for k, _, fmt in columns] for r in rows]
    return headers, cells


def markdown_table(rows: Sequence[dict[str, Any]], columns=COLUMNS) -> str:
    """A GitHub-flavoured Markdown table."""
    headers, cells = format_rows(rows, columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines)


def write_report(run_dir: Path, title: str, sections: Sequence[tuple[str, str]], data: dict[str, Any]) -> None:
    """Write ``report.md`` (title + Markdown sections) and ``report.json`` (``data``)."""
    md = [f"# {title}", ""]
    for heading, body in sections:
        md += [f"## {heading}", "", body.rstrip(), ""]
    atomic_write_bytes(Path(run_dir) / REPORT_MD, "\n".join(md).encode())
    atomic_write_json(Path(run_dir) / REPORT_JSON, data)


def print_table(rows: Sequence[dict[str, Any]], title: str, columns=COLUMNS) -> None:
    """Render the results table on the terminal with rich."""
    from rich.console import Console
    from rich.table import Table

    headers, cells = format_rows(rows, columns)
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 2 else "right")
    for c in cells:
        table.add_row(*c)
    console = Console()
    # Never squeeze cells into "12,3..." on a narrow (or piped, 80-column) console: widen the
    # console to the table's natural width; a terminal wraps the long lines instead.
    needed = console.measure(table, options=console.options.update(max_width=1000)).maximum
    if needed > console.width:
        console = Console(width=needed)
    console.print(table)

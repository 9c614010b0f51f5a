"""A report of a result store: PNG and SVG figures and one self-contained HTML page.

For each experiment tag in the store, :mod:`figures` draws its figures;
the page opens with a contents list, gives each experiment its specs'
descriptions, and embeds the figures as base64 PNG, each followed by the
table behind it; each table is also written as Markdown (``<figure>.md``).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from .. import __version__
from ..errors import OvertensorError
from .figures import Figure, Table, _group, figures_for
from .store import RunRecord, Store

__all__ = ["write_report", "ReportFiles", "markdown_table"]

DEFAULT_EPSILON = 1e-2


class ReportFiles(NamedTuple):
    html: Path
    figures: list[Path]  # PNG and SVG
    tables: Sequence[Path] = ()  # one Markdown table per figure, the figure's stem + .md


def write_report(store: Store, out_dir: str | Path, *, epsilon: float | None = None) -> ReportFiles:
    """Draw every experiment in ``store`` into ``out_dir`` (created if missing).

    ``epsilon`` (success threshold) defaults to each spec's ``epsilon``, else 1e-2.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OvertensorError(f"cannot write the report into {out}: it is a file")
    runs = list(store.records())
    if not runs:
        raise OvertensorError(f"{store.path} holds no runs; run `overtensor sweep` first")
    out.mkdir(parents=True, exist_ok=True)
    specs = store.specs()
    sections, files, tables, contents = [], [], [], []
    for experiment, group in _group(runs, lambda r: r.experiment).items():
        eps = epsilon or next((s["epsilon"] for s in specs.values() if s["experiment"] == experiment),
                              DEFAULT_EPSILON)
        anchor = f"x-{experiment}"
        block = _experiment(experiment, group, specs, eps, anchor)
        entries = []
        for fig in figures_for(experiment, group, eps):
            stem = fig.name if fig.name.startswith(experiment) else f"{experiment}_{fig.name}"
            paths, png = _save(fig, out / stem)
            files += paths
            tables.append(out / f"{stem}.md")
            tables[-1].write_text(markdown_table(fig.table))
            block.append(_section(fig, png, f"{anchor}-{fig.name}"))
            entries.append(f'<li><a href="#{anchor}-{html.escape(fig.name)}">{html.escape(fig.name)}</a></li>')
        contents.append(f'<li><a href="#{anchor}">{html.escape(experiment)}</a><ul>{"".join(entries)}</ul></li>')
        sections.append("\n".join(block))
    body = "<nav><h2>Contents</h2><ul>" + "".join(contents) + "</ul></nav>\n" + "\n".join(sections)
    page = out / "report.html"
    page.write_text(_PAGE.format(title=html.escape(f"overtensor report: {store.path.name}"),
                                 meta=html.escape(f"{len(runs)} runs; overtensor {__version__}; "
                                                  f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"),
                                 body=body))
    return ReportFiles(page, files, tables)


def _experiment(experiment: str, group: list[RunRecord], specs: dict[str, Any], eps: float, anchor: str) -> list[str]:
    """The heading and description paragraphs of one experiment's section."""
    ok = sum(r.status == "ok" for r in group)
    names = sorted({r.spec for r in group})
    block = [f'<h2 id="{anchor}">{html.escape(experiment)}</h2>',
             f"<p>{len(group)} runs ({len(group) - ok} errors) from spec(s) {html.escape(', '.join(names))}; "
             f"fit: relative error &le; {eps:g}; recovery: every true component matched at |cos| &ge; 0.99 "
             "with its weight within 10%, nothing spurious.</p>"]
    for name in names:
        description = (specs.get(name) or {}).get("description") or ""
        if description:
            block.append(f"<p><b>{html.escape(name)}</b>: {html.escape(description)}</p>")
    return block


def markdown_table(table: Table) -> str:
    """``table`` as a GitHub Markdown table (the report's tables, ready for docs/results.md)."""
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _save(fig: Figure, stem: Path) -> tuple[list[Path], bytes]:
    """Write ``stem.png`` and ``stem.svg``; return their paths and the PNG bytes."""
    buffer = io.BytesIO()
    fig.figure.savefig(buffer, format="png", dpi=110)
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    png.write_bytes(buffer.getvalue())
    fig.figure.savefig(svg)
    return [png, svg], buffer.getvalue()


def _section(fig: Figure, png: bytes, anchor: str) -> str:
    data = base64.b64encode(png).decode()
    return (f'<figure id="{html.escape(anchor)}"><img alt="{fig.name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>\n{_table(fig.table)}")


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
figure {{ margin: 1.5rem 0 0.5rem; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9rem; }}
table {{ border-collapse: collapse; font-size: 0.85rem; margin-bottom: 2rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }}
th {{ background: #f2f2f2; }}
</style></head>
<body><h1>{title}</h1><p>{meta}</p>
{body}
</body></html>
"""

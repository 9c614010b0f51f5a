"""MkDocs hooks (``hooks:`` in mkdocs.yml): generated content for the pages.

Two markers, each an HTML comment so the page reads the same on GitHub:

- ``<!-- options: METHOD -->`` becomes ``overtensor.solvers.options.option_table("METHOD")``,
  the Markdown table of the method's options, generated from the one declaration of them;
- ``<!-- readme: HEADING | HEADING -->`` becomes those ``##`` sections of README.md (``intro``:
  the text before the first one), with the README's ``docs/...`` links made relative to the
  page, so the quick start has one source.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

OPTIONS = re.compile(r"<!--\s*options:\s*([A-Za-z_-]+)\s*-->")
README = re.compile(r"<!--\s*readme:\s*([^>]+?)\s*-->")
ROOT = Path(__file__).resolve().parent.parent


def readme_sections(headings: list[str], depth: int = 0) -> str:
    """The README's ``## heading`` sections, in the order asked, links rebased into docs/.

    ``depth`` is how many folders below docs/ the including page sits.
    """
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^(?=## )", text, flags=re.M)
    found = {p.splitlines()[0][3:].strip(): p for p in parts if p.startswith("## ")}
    found["intro"] = parts[0]
    missing = [h for h in headings if h not in found]
    if missing:
        raise ValueError(f"README.md has no section {missing[0]!r}; it has {', '.join(found)}")
    up = "../" * depth
    return "\n".join(re.sub(r"\]\(docs/", f"]({up}", found[h]) for h in headings)


def escape_stars(text: str) -> str:
    """``*`` outside code spans escaped: the help texts write ``T*`` for the target, not emphasis."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else p.replace("*", "\\*") for p in parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill in the markers of one page (MkDocs calls this for every page)."""
    if OPTIONS.search(markdown):
        from overtensor.solvers.options import option_table

        markdown = OPTIONS.sub(lambda m: escape_stars(option_table(m.group(1))), markdown)
    depth = page.file.src_uri.count("/")
    return README.sub(lambda m: readme_sections([h.strip() for h in m.group(1).split("|")], depth), markdown)

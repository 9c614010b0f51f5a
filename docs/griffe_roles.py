"""Griffe extension for the API reference: this project's docstring conventions, in Markdown.

1. The docstrings cite objects as reST roles, ``:func:`~overtensor.analysis.recovery.recover```.
   mkdocstrings renders Markdown, so each role becomes an optional cross-reference: a link
   where the object has a page, plain code where it has none (``~`` keeps the last name).
2. Parameters are written ``name : type, what it is`` on one line, and a Returns section is
   often a sentence. mkdocstrings would put such a line, unrendered, in the *type* column, so
   a line that is more than a type moves to the description, and the type column shows the
   signature's annotation instead.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc):`(~?)([^`<>]+?)`")
ITEM = re.compile(r"^(\S.*?)\s+:\s+(.*)$")
NAMED = {"Parameters", "Other Parameters", "Attributes", "Keyword Arguments"}
RETURNS = {"Returns", "Yields"}


def _link(match: re.Match[str], scope: str) -> str:
    short, name = match.group(1), match.group(2).strip()
    title = name.rsplit(".", 1)[-1] if short else name
    target = f"{scope}.{name.lstrip('.')}" if name.startswith(".") else name
    return f'<autoref optional identifier="{target}"><code>{title}</code></autoref>'


def _is_type(text: str) -> bool:
    """A bare type (``float``, ``(m, d) array``, ``{"a", "b"}``), not a phrase with markup."""
    return not re.search(r"`|<|:|;", text) and len(text.split()) <= 4


def _sections(lines: list[str]) -> list[str | None]:
    """The section each line belongs to (None before the first, and for the headers)."""
    out: list[str | None] = []
    current = None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"-{3,}", nxt.strip()) and not line.startswith(" "):
            current = line.strip()
            out.append(None)
        elif re.fullmatch(r"-{3,}", line.strip()):
            out.append(None)
        else:
            out.append(current)
    return out


def restructure(text: str, returns: str | None) -> str:
    """``text`` (a dedented NumPy docstring) with long type lines moved to the descriptions."""
    lines = text.splitlines()
    out: list[str] = []
    moved_returns: set[str] = set()
    for line, section in zip(lines, _sections(lines)):
        if section in NAMED and (m := ITEM.match(line)) and not _is_type(m.group(2)):
            out += [m.group(1), "    " + m.group(2)]
        elif section in RETURNS and returns and line and not line.startswith(" "):
            if section not in moved_returns and _is_type(line):
                out.append(line)
                continue
            if section not in moved_returns:
                out.append(returns)
                moved_returns.add(section)
            out.append("    " + line)
        else:
            out.append(line)
    return "\n".join(out)


class ProjectDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package (roles, then long type lines)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _rewrite(pkg)


def _rewrite(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        scope = obj.path if obj.is_module else obj.module.path
        text = ROLE.sub(lambda m: _link(m, scope), obj.docstring.value)
        returns = str(obj.returns) if obj.is_function and obj.returns else None
        obj.docstring.value = restructure(text, returns)
    for member in obj.members.values():
        if not member.is_alias:  # an alias's target is rewritten where it is defined
            _rewrite(member)

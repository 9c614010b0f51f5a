"""Griffe extension for the API reference: the docstrings' reST roles as Markdown links.

The docstrings cite objects as ``:func:`~overtensor.analysis.recovery.recover``` (reST, as
NumPy-style docstrings usually do). mkdocstrings renders Markdown, so each role becomes an
optional cross-reference: a link where the object has a page, plain code where it has none
(the ``~`` keeps only the last name, as in Sphinx).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc):`(~?)([^`<>]+?)`")


def _link(match: re.Match[str], scope: str) -> str:
    short, name = match.group(1), match.group(2).strip()
    title = name.rsplit(".", 1)[-1] if short else name
    target = name.lstrip(".")
    if name.startswith("."):  # relative to the documented object's module, as Sphinx reads it
        target = f"{scope}.{target}"
    return f'<autoref optional identifier="{target}"><code>{title}</code></autoref>'


class RolesToAutorefs(griffe.Extension):
    """Rewrite reST roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _rewrite(pkg)


def _rewrite(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        scope = obj.path if obj.is_module else obj.module.path
        obj.docstring.value = ROLE.sub(lambda m: _link(m, scope), obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:  # an alias's target is rewritten where it is defined
            _rewrite(member)

"""A tiny HTML builder that escapes by default.

Every string that is not wrapped in :class:`Markup` is escaped, so text from data (concept names, file names,
model names) can only ever appear as text. Only this module's own builders produce ``Markup``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

# Elements that never have children or a closing tag.
_VOID = frozenset({"img", "br", "hr", "meta", "link", "input", "source", "col"})


class Markup(str):
    """A string of trusted HTML (built by :func:`el`); everything else is escaped."""


def escape(value: Any) -> Markup:
    """Escape any value as HTML text or attribute content (``&``, ``<``, ``>``, ``"`` and ``'``).

    Example:
        >>> escape("<img src=x onerror=alert(1)>")
        '&lt;img src=x onerror=alert(1)&gt;'
    """
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def _children(children: Iterable[Any]) -> str:
    parts = []
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, (list, tuple)):
            parts.append(_children(child))
        else:
            parts.append(escape(child))
    return "".join(parts)


def el(tag: str, *children: Any, **attrs: Any) -> Markup:
    """Build an element; attribute names use ``_`` for ``-`` and a trailing ``_`` for keywords (``class_``).

    ``None`` / ``False`` attributes are left out, ``True`` ones are written bare; lists of children are flattened.

    Example:
        >>> el("td", "<b>", class_="num", data_concept="car & bus")
        '<td class="num" data-concept="car &amp; bus">&lt;b&gt;</td>'
    """
    rendered = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        key = name.rstrip("_").replace("_", "-")
        rendered.append(f" {key}" if value is True else f' {key}="{escape(value)}"')
    open_tag = f"<{tag}{''.join(rendered)}>"
    if tag in _VOID:
        return Markup(open_tag)
    return Markup(f"{open_tag}{_children(children)}</{tag}>")


def json_script(data: Any, element_id: str) -> Markup:
    """Embed JSON in ``<script type="application/json">``, safe against ``</script>`` and comment tricks.

    ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc., which JSON.parse reads back unchanged.

    Example:
        >>> json_script({"name": "</script>"}, "d")
        '<script type="application/json" id="d">{"name": "\\\\u003c/script\\\\u003e"}</script>'
    """
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(f'<script type="application/json" id="{escape(element_id)}">{text}</script>')


def raw(trusted: str) -> Markup:
    """Mark package-owned text (the bundled CSS and JS) as trusted; never use it on data."""
    return Markup(trusted)

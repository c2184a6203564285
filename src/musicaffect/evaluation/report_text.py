"""How the report writes text and values: Markdown report text to escaped HTML
(markdown-it-py, CommonMark, raw HTML disabled), text made safe for Markdown, and numbers
formatted for tables (a fixed number of digits, a dash for missing values)."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["flatten", "format_value", "inline_html", "is_number", "markdown_to_html",
           "md_cell", "md_text", "slug"]

_DASH = "\u2013"
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?$")


# ----------------------------------------------------------------------------- text


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "section"


def _markdown() -> Any:
    """The report's Markdown renderer (markdown-it-py, CommonMark, raw HTML disabled).

    Two changes to the standard output: headings in report text start at ``<h3>`` (the page
    has ``<h1>`` and the sections ``<h2>``), and links to other sites are written out as text,
    so that the report makes no outside reference.
    """
    global _MD
    if _MD is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False})

        def heading(self, tokens, idx, options, env):
            tok = tokens[idx]
            level = min(6, int(tok.tag[1]) + 2)
            return f"<{'/' if tok.nesting < 0 else ''}h{level}>"

        def link_open(self, tokens, idx, options, env):
            href = tokens[idx].attrGet("href") or ""
            external = bool(re.match(r"^[a-z][a-z0-9+.-]*:", href, flags=re.I))
            env.setdefault("links", []).append(href if external else None)
            return "" if external else f"<a href=\"{html.escape(href)}\">"

        def link_close(self, tokens, idx, options, env):
            href = env["links"].pop()
            if href is None:
                return "</a>"
            return f" (<span class=\"url\">{html.escape(href)}</span>)"

        for rule in ("heading_open", "heading_close"):
            md.add_render_rule(rule, heading)
        md.add_render_rule("link_open", link_open)
        md.add_render_rule("link_close", link_close)
        _MD = md
    return _MD


_MD = None


def inline_html(text: str) -> str:
    """Markdown inline syntax (code, bold, italic, links) to escaped HTML."""
    return _markdown().renderInline(text, {})


def markdown_to_html(text: str) -> str:
    """Convert Markdown report text to escaped HTML (CommonMark, no raw HTML).

    Headings are rendered from ``<h3>`` down, and external links are written out as text.

    Parameters
    ----------
    text : str

    Returns
    -------
    html : str
    """
    return _markdown().render(text, {}).strip()


def md_text(text: str) -> str:
    """Plain text made safe for a Markdown heading or link label."""
    return (html.escape(text, quote=False).replace("[", "\\[").replace("]", "\\]")
            .replace("\n", " "))


def md_cell(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


# ----------------------------------------------------------------------------- values


def is_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    return isinstance(value, str) and bool(_NUMERIC.match(value.strip()))


def format_value(value, digits: int) -> str:
    if value is None:
        return _DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return _DASH
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 0.5 * 10.0 ** -digits):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v, digits) for v in value)
    return str(value)


def flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten(value, prefix=f"{name}."))
        else:
            rows.append((name, value))
    return rows

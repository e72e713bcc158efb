"""Render report sections (text, tables, images) to one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.fail{color:#b00;font-weight:bold}.pass{color:#070;font-weight:bold}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}pre{background:#f7f7f7;padding:.5em;overflow-x:auto}
"""


@dataclass
class Section:
    """One titled part of the report."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    images: list[Path | str] = field(default_factory=list)  # PNG paths or URLs
    links: list[tuple[str, str]] = field(default_factory=list)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def render_table(rows: list[dict[str, Any]]) -> str:
    """An HTML table whose columns are the union of the rows' keys, in first-seen order."""
    if not rows:
        return "<p><em>(empty)</em></p>"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_page(title: str, sections: list[Section]) -> str:
    """The whole page; PNGs are inlined as data URIs so the file travels alone."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    parts.append(
        "<ul>" + "".join(f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>" for i, s in enumerate(sections)) + "</ul>"
    )
    for i, s in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(s.title)}</h2>")
        parts += [f"<p>{t}</p>" for t in s.text]  # text is trusted HTML built by the report itself
        for caption, rows in s.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>{render_table(rows)}")
        for img in s.images:
            with fsspec.open(str(img), "rb") as f:  # a local path or a URL
                data = base64.b64encode(f.read()).decode()
            parts.append(f"<img alt='{html.escape(str(img).rsplit('/', 1)[-1])}' src='data:image/png;base64,{data}'>")
        if s.links:
            parts.append(
                "<ul>" + "".join(f"<li><a href='{html.escape(u)}'>{html.escape(n)}</a></li>" for n, u in s.links) + "</ul>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)

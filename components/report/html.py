"""The one HTML path: Jinja2 templates under components/report/templates, one stylesheet, one `render` call."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import fsspec
import jinja2

TEMPLATES = Path(__file__).with_name("templates")


def fmt(v: Any) -> str:
    """A number as people read it (4 significant digits), anything else as text; None as a dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def pct(v: Any, digits: int = 1) -> str:
    """A fraction as a percentage ("12.5%"); a dash when missing."""
    if v is None or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.{digits}f}%"


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """The union of the rows' keys, in first-seen order."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as `a/b/c` keys; lists are left out (they belong in their own tables)."""
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, f"{key}/"))
        elif not isinstance(v, list):
            flat[key] = v
    return flat


def kv_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """A dict (flattened) as key/value rows."""
    return [{"key": k, "value": v} for k, v in flatten(d).items()]


def data_uri(src: Any) -> str:
    """A PNG inlined: from a path or URL, raw bytes, a PIL image or a matplotlib figure; so the page travels alone."""
    if isinstance(src, bytes):
        data = src
    elif hasattr(src, "savefig"):
        buf = io.BytesIO()
        src.savefig(buf, format="png", dpi=90)
        data = buf.getvalue()
    elif hasattr(src, "save"):
        buf = io.BytesIO()
        src.save(buf, format="PNG")
        data = buf.getvalue()
    else:
        with fsspec.open(str(src), "rb") as f:
            data = f.read()
    return "data:image/png;base64," + base64.b64encode(data).decode()


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name in a template is an error, not an empty cell
)
_ENV.filters.update(num=fmt, pct=pct, columns=columns, kv_rows=kv_rows, data_uri=data_uri)


def render(template: str, **context: Any) -> str:
    """Render `templates/<template>` (each page extends base.html, which inlines style.css)."""
    return _ENV.get_template(template).render(**context)


def render_table(rows: list[dict[str, Any]]) -> str:
    """An HTML table whose columns are the union of the rows' keys, in first-seen order."""
    return _ENV.from_string('{% import "macros.html" as m %}{{ m.table(rows) }}').render(rows=rows)

"""A report as one self-contained HTML page: every PNG embedded as a base64 data URI."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from orchestrator.render.section import Section

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#f0f0f0}img{max-width:100%;display:block;margin:1em 0}code{background:#f4f4f4;padding:1px 3px}"""


def _inline(text: str) -> str:
    """Escape ``text`` and turn Markdown's `code` and **bold** into HTML."""
    parts = html.escape(text).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def report_html(title: str, sections: Sequence[Section]) -> str:
    """Return the report as one HTML file."""
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        out.append(f"<h2>{html.escape(s.title)}</h2>")
        out += [f"<p>{_inline(p)}</p>" for p in s.paragraphs]
        for headers, rows in s.tables:
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                       + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</tbody></table>")
        for img in s.images:
            data = base64.b64encode(img.read_bytes()).decode()
            out.append(f"<img alt='{html.escape(img.stem)}' src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out)

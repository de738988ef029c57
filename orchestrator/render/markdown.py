"""A report as Markdown: sections of paragraphs, tables and linked PNG figures."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.render.section import Section


def report_markdown(title: str, sections: Sequence[Section]) -> str:
    """Return the report as Markdown, linking the PNG files by name."""
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for headers, rows in s.tables:
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
            lines.append("")
        for img in s.images:
            lines += [f"![{img.stem}]({img.name})", ""]
    return "\n".join(lines)

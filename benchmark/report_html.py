"""report.html: the report as one self-contained page (figures embedded), for people.

It is rendered from report.md, so the two never disagree. Only the Markdown the report
writes is understood: headings, paragraphs, bullet lists, pipe tables, images and inline
``**bold**``, ``*emphasis*``, ```code``` and links. Every text is HTML-escaped; an image is
embedded as base64 when it lies inside the report's folder, and named otherwise.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from benchmark.imageio import write_bytes_atomic

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")
_INLINE = [
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
]
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f1f1f1; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
img { max-width: 100%; border: 1px solid #ddd; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
"""


def _inline(text: str) -> str:
    """Escape, then apply the inline marks outside code spans."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part, quote=False)
        for pattern, repl in _INLINE:
            escaped = pattern.sub(repl, escaped)
        out.append(escaped)
    return "".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cells(line: str) -> list[str]:
    body = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _image(alt: str, src: str, base: Path) -> str:
    path = (base / src).resolve()
    if path.is_file() and path.suffix.lower() == ".png" and path.is_relative_to(base.resolve()):
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'
    return f"<p>[figure not found: {html.escape(src)}]</p>"


def markdown_to_html(text: str, base: Path, title: str) -> str:
    """The page for ``text`` (report.md), images read from ``base``."""
    body: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif heading := re.match(r"^(#{1,4}) (.*)$", line):
            level, words = len(heading[1]), heading[2]
            body.append(f'<h{level} id="{_slug(words)}">{_inline(words)}</h{level}>')
            i += 1
        elif image := _IMAGE.match(line.strip()):
            body.append(_image(image["alt"], image["src"], base))
            i += 1
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            head, rows = _cells(block[0]), block[2:] if len(block) > 1 else []
            out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
            for row in rows:
                out.append(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(row)) + "</tr>"
                )
            body.append("\n".join([*out, "</table>"]))
        elif line.lstrip().startswith(("- ", "* ")):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith(("- ", "* ")):
                items.append(f"<li>{_inline(lines[i].lstrip()[2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
        else:
            paragraph = []
            while (
                i < len(lines)
                and lines[i].strip()
                and not re.match(r"^(#|\||!\[|- |\* )", lines[i].lstrip())
            ):
                paragraph.append(lines[i].strip())
                i += 1
            body.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_html_report(markdown_path: Path) -> Path:
    """report.html beside ``markdown_path``, written atomically."""
    markdown_path = Path(markdown_path)
    text = markdown_path.read_text(encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ").strip() if text else "dmbench report"
    out = markdown_path.with_suffix(".html")
    write_bytes_atomic(out, markdown_to_html(text, markdown_path.parent, title).encode())
    return out

"""report.html: the report as one self-contained page (figures embedded), for people.

It is rendered from report.md, so the two never disagree, by markdown-it-py (CommonMark
plus tables), not by a converter of our own: raw HTML is off, so any markup in the
Markdown is shown as text; a link is kept only for ``http``, ``https`` and ``mailto`` or a
path without a scheme (``javascript:``, ``vbscript:``, ``data:`` and the rest stay
text); every attribute is escaped by the renderer. An image is embedded as base64 only
when it is a regular PNG file inside the report's folder (not a link), and named
otherwise. The page also carries a Content-Security-Policy that allows no script at all,
so even a mistake here could not run one.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from pathlib import Path

from markdown_it import MarkdownIt

from benchmark.imageio import write_bytes_atomic
from benchmark.runfolder import breaks_lines

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
# No script from anywhere, images only as data: URIs, styles only from the page itself.
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'"
_SAFE_SCHEMES = ("http", "https", "mailto")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.IGNORECASE)


def safe_link(url: str) -> bool:
    """A link target the page may hold: a web or mail address, or a relative path."""
    # Browsers drop ASCII whitespace and control characters inside a scheme ("java\tscript:").
    squeezed = re.sub(r"[\x00-\x20\x7f]", "", url)
    scheme = _SCHEME.match(squeezed)
    return scheme is None or scheme[1].lower() in _SAFE_SCHEMES


# -- text from the data, made safe for Markdown ----------------------------------------
# Every character that can begin Markdown or HTML markup: a name, path or reason from the
# data is shown as the text it is, in report.md, leaderboard.md and the page from them.
_MARKUP = re.compile(r"([\\`*_\[\]<>|~&#$])")


def visible(value: object) -> str:
    """``value`` on one line, every character that shows nothing or moves other text shown
    as its code: line breaks (any Unicode separator) fold to spaces, and control, format
    (bidi overrides such as U+202E, zero-width characters) and surrogate characters become
    ``\\u202e``, so a name can neither break its line nor read as another name."""
    return "".join(
        f"\\u{ord(ch):04x}" if breaks_lines(ch) else ch for ch in " ".join(str(value).split())
    )


def md_text(value: object) -> str:
    """A value from the data as Markdown text: markup characters escaped, shown as
    ``visible`` shows it, so it stays in its line and cell."""
    return _MARKUP.sub(r"\\\1", visible(value))


def md_code(value: object) -> str:
    """A value from the machine or the data as a code span (never markup), safe in a table
    cell too: a pipe is escaped, which GFM tables read as a pipe inside the span."""
    text = visible(value).replace("`", "'").replace("|", "\\|")
    return f"`{text}`"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _embedded_png(src: str, base: Path, figures: Mapping[str, bytes]) -> str | None:
    """``src`` as a data URI: a figure about to be written beside the page, or a regular
    PNG file inside ``base``."""
    if src in figures:
        return "data:image/png;base64," + base64.b64encode(figures[src]).decode()
    if not safe_link(src) or _SCHEME.match(src):
        return None
    path = base / src
    try:
        inside = path.resolve().is_relative_to(base.resolve())
        regular = path.is_file() and not path.is_symlink()
    except (OSError, ValueError):
        return None
    if not (inside and regular and path.suffix.lower() == ".png"):
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _renderer(base: Path, figures: Mapping[str, bytes]) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.validateLink = safe_link

    def image(self, tokens, idx, options, env) -> str:
        token = tokens[idx]
        alt = self.renderInlineAsText(token.children or [], options, env)
        src = str(token.attrGet("src") or "")
        data = _embedded_png(src, base, figures)
        if data is None:
            return f"[figure not found: {html.escape(src)}]"
        return f'<img alt="{html.escape(alt)}" src="{data}">'

    def heading_open(self, tokens, idx, options, env) -> str:
        words = tokens[idx + 1].content if idx + 1 < len(tokens) else ""
        tokens[idx].attrSet("id", _slug(words))
        return self.renderToken(tokens, idx, options, env)

    md.add_render_rule("image", image)
    md.add_render_rule("heading_open", heading_open)
    return md


def markdown_to_html(
    text: str, base: Path, title: str, figures: Mapping[str, bytes] | None = None
) -> str:
    """The page for ``text`` (report.md), images taken from ``figures`` (name → PNG) or
    read from ``base``."""
    body = _renderer(Path(base), figures or {}).render(text)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + body
        + "\n</body></html>\n"
    )


def html_report(markdown: str, base: Path, figures: Mapping[str, bytes] | None = None) -> str:
    """The page for report.md's text, titled by its first heading."""
    first = markdown.splitlines()[0] if markdown else ""
    title = re.sub(r"[`*_\\]", "", first.lstrip("# ").strip()) or "dmbench report"
    return markdown_to_html(markdown, base, title, figures)


def write_html_report(markdown_path: Path) -> Path:
    """report.html beside ``markdown_path``, written atomically."""
    markdown_path = Path(markdown_path)
    out = markdown_path.with_suffix(".html")
    page = html_report(markdown_path.read_text(encoding="utf-8"), markdown_path.parent)
    write_bytes_atomic(out, page.encode())
    return out

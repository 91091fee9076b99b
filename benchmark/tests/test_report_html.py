"""report.html: the report people open. Self-contained (figures embedded), rendered from
report.md, and opened in a real headless Chromium, which must find the claims table.
Without a browser the Chromium check is skipped with the reason; CI installs Debian's
chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmark.report_html import markdown_to_html, write_html_report

pytestmark = pytest.mark.integration

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def html_report(small_study) -> tuple[Path, str]:
    from benchmark.report import write_report

    results, out = small_study
    write_report(results, out)
    page = out / "report.html"
    assert page.is_file(), "write_report writes report.html beside report.md"
    return page, page.read_text(encoding="utf-8")


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    """The DOM headless Chromium builds from ``page``, after its scripts (if any) ran."""
    done = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _claims_table(dom: str) -> str:
    match = re.search(r'<h2 id="claims">.*?(<table>.*?</table>)', dom, re.S)
    assert match, "a Claims heading followed by its table"
    return match[1]


def test_the_page_is_self_contained_and_has_the_claims(small_study, html_report) -> None:
    results, _ = small_study
    _, text = html_report
    assert text.startswith("<!DOCTYPE html>")
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    table = _claims_table(text)
    for record in results.claims:
        assert record["statement"].split(":")[0] in table
    assert "<script" not in text.lower(), "no script: names and reasons are only text"


def test_text_is_escaped_and_images_outside_the_folder_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG not really")
    (tmp_path / "run").mkdir()
    md = "# t\n\nname <script>alert(1)</script> & **bold**\n\n![x](../secret.png)\n"
    page = markdown_to_html(md, tmp_path / "run", "t")
    assert "<script>" not in page and "&lt;script&gt;" in page and "<strong>bold</strong>" in page
    assert "base64" not in page and "figure not found" in page


def test_a_real_browser_finds_the_claims_table(html_report, tmp_path: Path) -> None:
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip(
            "no Chromium here (apt-get install chromium; CI installs it): the page's "
            "structure is still checked above"
        )
    page, _ = html_report
    table = _claims_table(dump_dom(browser, page, tmp_path / "profile"))
    assert table.count("<tr>") >= 2, "the browser parsed the table's rows"


def test_write_html_report_beside_markdown(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("# dmbench report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    out = write_html_report(tmp_path / "report.md")
    assert out == tmp_path / "report.html" and "<td>1</td>" in out.read_text()


# -- hostile strings in every string field of results.json ---------------------------------
# The page's own check: a script that runs marks the document; a link or attribute left
# live is found in the DOM the browser built.
MARK = "document.documentElement.setAttribute('data-pwned','1')"
HOSTILE = (
    f"<script>{MARK}</script>",
    f'<img src=x onerror="{MARK}">',
    f"[a](javascript:{MARK})",
    "[b](JaVaScRiPt:alert(1)) [c](vbscript:msgbox) [d](data:text/html;base64,PHNjcmlwdD4=)",
    f"![e](javascript:{MARK})",
    f'https://x"onmouseover="{MARK}',
    "<javascript:alert(1)> &lt;script&gt; &#106;avascript:alert(1)",
    "`tick` | pipe | **bold** _under_ ~strike~ $math$ # hash",
    "line\nbreak\u2028sep\r\n[r]: javascript:alert(1)",
)
# Fields whose values the schema fixes (enums, patterns, the scenario names this dmbench
# knows): a results.json with anything else there is refused before a report is drawn.
FIXED = {
    "created",
    "git_commit",
    "selection",
    "alignment",
    "outcome",
    "executor",
    "scenario",
    "family",
}


def _schema_names() -> set[str]:
    """Every property name results.schema.json knows: structure, not data."""
    from benchmark.specs import SPEC_DIR

    names: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads((SPEC_DIR / "results.schema.json").read_text()))
    return names


def _hostile(value, payload: str, key: str | None = None, names: frozenset = frozenset()):
    """Every string of ``value`` with ``payload`` added, keys that are data (names of
    masks, reasons, packages) too, the same way everywhere, so that the report's
    look-ups still find their rows."""
    names = names or frozenset(_schema_names())
    if isinstance(value, dict):
        return {
            (k if k in FIXED or k in names else f"{k}{payload}"): _hostile(v, payload, k, names)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hostile(v, payload, key, names) for v in value]
    if isinstance(value, str) and key not in FIXED and value != "prep":  # "prep": the photo side
        return value + payload
    return value


def _live(page: str) -> list[str]:
    """What in an HTML page could run script: script elements, event-handler attributes,
    links or sources with a script scheme, frames and objects."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs) -> None:
            if tag in ("script", "iframe", "object", "embed", "base", "form"):
                found.append(f"<{tag}>")
            for name, value in attrs:
                squeezed = re.sub(r"[\x00-\x20]", "", value or "").lower()
                if name.startswith("on"):
                    found.append(f"{tag} {name}=")
                if name in ("href", "src", "action", "formaction", "xlink:href") and (
                    re.match(r"^(javascript|vbscript|data):", squeezed)
                    and not squeezed.startswith("data:image/png;base64,")
                ):
                    found.append(f"{tag} {name}={squeezed[:40]}")

    Finder().feed(page)
    return found


@pytest.fixture(scope="module")
def hostile_reports(small_study, tmp_path_factory) -> list[tuple[str, Path]]:
    """The small study's results.json with each hostile string in every string field,
    rendered again by `dmbench report`: (payload, folder)."""
    from benchmark.cli import main

    _, out = small_study
    data = json.loads((out / "results.json").read_text())
    made = []
    for index, payload in enumerate(HOSTILE):
        folder = tmp_path_factory.mktemp(f"hostile{index}")
        (folder / "results.json").write_text(json.dumps(_hostile(data, payload)))
        assert main(["report", str(folder / "results.json")]) == 0, payload
        made.append((payload, folder))
    return made


def test_hostile_strings_give_a_page_with_nothing_live(hostile_reports) -> None:
    for payload, folder in hostile_reports:
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert not _live(page), (payload, _live(page))
        assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_hostile_strings_stay_text_in_report_md(hostile_reports) -> None:
    """report.md shown by a viewer that does render raw HTML (GitHub's, an editor's
    preview) holds no live markup either: every string from the data is escaped."""
    from markdown_it import MarkdownIt

    permissive = MarkdownIt("commonmark", {"html": True}).enable("table")
    permissive.validateLink = lambda url: True
    for payload, folder in hostile_reports:
        text = (folder / "report.md").read_text(encoding="utf-8")
        assert not _live(permissive.render(text)), (payload, _live(permissive.render(text)))
        # the names still read as they are, once rendered
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert "&lt;script&gt;" in page or "<script" not in payload


def test_a_real_browser_runs_nothing_from_hostile_strings(hostile_reports, tmp_path) -> None:
    """Each hostile page in headless Chromium, with its script-blocking policy taken out
    so that escaping alone is tested: no script ran (it would mark the document), and the
    DOM the browser built has no live link, attribute or element."""
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip(
            "no Chromium here (apt-get install chromium; CI installs it): the pages are "
            "still checked without a browser above"
        )
    for index, (payload, folder) in enumerate(hostile_reports):
        page = (folder / "report.html").read_text(encoding="utf-8")
        unguarded = tmp_path / f"page{index}.html"
        unguarded.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page))
        dom = dump_dom(browser, unguarded, tmp_path / "profile")
        assert "<table>" in dom, "the browser built the page"
        assert not re.search(r"<html[^>]*data-pwned=", dom), ("a script ran", payload)
        assert not _live(dom), (payload, _live(dom))


def test_invisible_and_reordering_characters_are_shown_as_their_codes() -> None:
    """A name holding a bidi override (U+202E), a zero-width joiner or an escape sequence
    reads in the report as the codes it holds, never as another name (issue 22, item 7)."""
    from benchmark.report_html import md_code, md_text

    name = "Adam\u202eSandler\u200d\x1b[31m"
    for shown in (md_text(name), md_code(name)):
        assert not any(ch in shown for ch in "\u202e\u200d\x1b"), shown
        assert "u202e" in shown and "u200d" in shown and "u001b" in shown

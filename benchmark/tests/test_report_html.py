"""report.html: the report people open. Self-contained (figures embedded), rendered from
report.md, and opened in a real headless Chromium, which must find the claims table.
Without a browser the Chromium check is skipped with the reason; CI installs Debian's
chromium."""

from __future__ import annotations

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
    done = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = _claims_table(done.stdout)
    assert table.count("<tr>") >= 2, "the browser parsed the table's rows"


def test_write_html_report_beside_markdown(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("# dmbench report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    out = write_html_report(tmp_path / "report.md")
    assert out == tmp_path / "report.html" and "<td>1</td>" in out.read_text()

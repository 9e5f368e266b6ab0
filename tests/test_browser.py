"""Every page of the built smoke book, opened in headless Chromium the way a reader opens it.

Checks per page: it loads; every image inside the article is loaded with a non-zero size; no
unresolved glue key, traceback or error output shows. A screenshot of the first page is kept
in ``test-artifacts/`` (or ``$MIA_TEST_ARTIFACTS``).
"""

import os
import re

import pytest

from chromium import PAGE_REPORT, Chromium, find_chromium
from conftest import ROOT

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None and not os.environ.get("CI"),
                                 reason="needs Debian's chromium package (.ci/run and the Makefile install it)")]

# Signs of a page that rendered wrongly: unresolved glue, a Python traceback, an error cell.
BROKEN = [
    (re.compile(r"\{glue(:\w+)?\}|glue:(text|figure|math|any)"), "unresolved glue key"),
    (re.compile(r"Traceback \(most recent call last\)"), "Python traceback"),
    (re.compile(r"\b\w*(Error|Exception): "), "an exception message"),
]


def book_pages(html_root):
    """The rendered pages of the book: every page under book/ (the root index.html is only a
    redirect to book/intro.html)."""
    index = (html_root / "index.html").read_text()
    assert 'url=book/intro.html' in index, "index.html should redirect to the intro page"
    return sorted((html_root / "book").rglob("*.html"))


@pytest.fixture(scope="module")
def reports(built_smoke_book):
    html_root = built_smoke_book / "_build" / "html"
    artifacts = os.environ.get("MIA_TEST_ARTIFACTS", str(ROOT / "test-artifacts"))
    os.makedirs(artifacts, exist_ok=True)
    found = {}
    with Chromium() as browser:
        for i, page in enumerate(book_pages(html_root)):
            browser.open(page.as_uri())
            found[page.relative_to(html_root).as_posix()] = browser.evaluate(PAGE_REPORT)
            if i == 0:
                browser.screenshot(os.path.join(artifacts, "smoke_book_first_page.png"))
    return found


def test_every_toc_page_is_rendered(reports):
    from mia_utils.book.chapters import toc_chapters

    for chapter in toc_chapters():
        assert f"book/executed/{chapter}.html" in reports
    for page in ("book/intro.html", "book/setup.html", "book/rerun.html", "book/glossary.html",
                 "book/related_work.html", "book/references.html"):
        assert page in reports


def test_pages_load_with_content(reports):
    for page, report in reports.items():
        assert report["ready"] == "complete", page
        assert len(report["text"].strip()) > 200, f"{page} is nearly empty"


def test_every_figure_is_loaded_with_nonzero_size(reports):
    chapters_with_figures = 0
    for page, report in reports.items():
        for image in report["images"]:
            assert image["loaded"], f"{page}: image {image['src']} did not load"
            assert image["width"] > 0 and image["height"] > 0 and image["shown_width"] > 0, (page, image)
        chapters_with_figures += page.startswith("book/executed/") and len(report["images"]) > 0
    assert chapters_with_figures >= 4


def test_no_glue_key_traceback_or_error_output(reports):
    for page, report in reports.items():
        assert report["error_outputs"] == 0, f"{page} shows an error or stderr cell output"
        for pattern, what in BROKEN:
            match = pattern.search(report["text"])
            assert match is None, f"{page} shows {what}: {match.group(0) if match else ''!r}"


def test_first_page_screenshot_is_kept(reports):
    artifacts = os.environ.get("MIA_TEST_ARTIFACTS", str(ROOT / "test-artifacts"))
    shot = os.path.join(artifacts, "smoke_book_first_page.png")
    assert os.path.getsize(shot) > 10_000
    with open(shot, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


def test_chapter_pages_offer_launch_and_repository_buttons(built_smoke_book):
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]["url"].rstrip("/")
    html = (built_smoke_book / "_build" / "html" / "book" / "executed" / "01_baselines.html").read_text()
    assert "mybinder.org/v2/gh/" in html and "colab.research.google.com" in html
    assert repository in html

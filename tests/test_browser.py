"""Every page of the built smoke book, opened in headless Chromium the way a reader opens it.

Checks per page: it loads; every image inside the article is loaded with a non-zero size; no
unresolved glue key, traceback or error output shows. A screenshot of the first page is kept
in ``test-artifacts/`` (or ``$MIA_TEST_ARTIFACTS``).
"""

import os
import re
import shutil
import subprocess

import pytest

from chromium import PAGE_REPORT, Chromium, find_chromium
from conftest import PYTHON, ROOT

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


def wider_than_the_column(report: dict) -> list[str]:
    """The tables of one page report that would need sideways scrolling (1 px of rounding allowed)."""
    return [f"{t['width']} px > {t['column']} px: {t['start']}" for t in report["tables"] if t["width"] > t["column"] + 1]


def test_the_width_check_flags_a_wide_table():
    report = {"tables": [{"width": 900, "column": 752, "start": "a b"}, {"width": 753, "column": 752, "start": "c"}]}
    assert wider_than_the_column(report) == ["900 px > 752 px: a b"]


def test_every_table_fits_the_content_column(reports):
    wide = {page: wider_than_the_column(report) for page, report in reports.items()}
    assert sum(len(report["tables"]) for report in reports.values()) > 20
    assert {page: tables for page, tables in wide.items() if tables} == {}


def test_first_page_screenshot_is_kept(reports):
    artifacts = os.environ.get("MIA_TEST_ARTIFACTS", str(ROOT / "test-artifacts"))
    shot = os.path.join(artifacts, "smoke_book_first_page.png")
    assert os.path.getsize(shot) > 10_000
    with open(shot, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


def page_links(html_root):
    """Every ``<a href>`` of every built page: (page, href) pairs."""
    from html.parser import HTMLParser

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.hrefs = []

        def handle_starttag(self, tag, attrs):
            href = dict(attrs).get("href")
            if tag == "a" and href:
                self.hrefs.append(href)

    pairs = []
    for page in sorted(html_root.rglob("*.html")):
        parser = Links()
        parser.feed(page.read_text())
        pairs += [(page, href) for href in parser.hrefs]
    return pairs


def reference_urls() -> set[str]:
    """The external addresses the references allow: each entry's url, doi and arXiv eprint."""
    bib = (ROOT / "book" / "references.bib").read_text()
    urls = set(re.findall(r"url\s*=\s*[{\"]([^}\"]+)", bib))
    urls |= {f"https://doi.org/{doi}" for doi in re.findall(r"doi\s*=\s*[{\"]([^}\"]+)", bib)}
    urls |= {f"https://arxiv.org/abs/{eprint}" for eprint in re.findall(r"eprint\s*=\s*[{\"]([^}\"]+)", bib)}
    return urls


def broken_links(html_root, repository: str | None = None) -> list[str]:
    """Links of the built book that go nowhere: a local target that does not exist, or an external
    address that is neither the configured repository (with its Binder and Colab launches) nor in
    the references."""
    from urllib.parse import unquote, urlsplit

    allowed = reference_urls()
    problems = []
    for page, href in page_links(html_root):
        parts = urlsplit(href)
        if parts.scheme in ("http", "https"):
            launch = repository and any(href.startswith(prefix) for prefix in (
                repository, "https://mybinder.org/v2/gh/" + repository.removeprefix("https://github.com/"),
                "https://colab.research.google.com/github/" + repository.removeprefix("https://github.com/")))
            if not launch and href not in allowed:
                problems.append(f"{page.relative_to(html_root)}: external link {href}")
        elif parts.scheme in ("", "file") and parts.path:
            target = (page.parent / unquote(parts.path)).resolve()
            if not target.exists():
                problems.append(f"{page.relative_to(html_root)}: {href} does not exist")
        elif parts.scheme not in ("", "mailto"):
            problems.append(f"{page.relative_to(html_root)}: link of scheme {parts.scheme}: {href}")
    return problems


def test_the_link_checker_finds_missing_pages_and_foreign_addresses(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#x">b</a> <a href="c.html">c</a> '
                                     '<a href="https://example.org/">x</a> <a href="#top">top</a>')
    (tmp_path / "b.html").write_text("<p>b</p>")
    assert broken_links(tmp_path) == ["a.html: c.html does not exist", "a.html: external link https://example.org/"]


def test_every_link_of_the_book_resolves_and_no_repository_button_is_invented(built_smoke_book):
    html_root = built_smoke_book / "_build" / "html"
    assert broken_links(html_root) == []
    page = (html_root / "book" / "executed" / "01_baselines.html").read_text()
    assert "github.com" not in page and "mybinder.org" not in page and "colab.research.google.com" not in page
    assert "dropdown-download-buttons" in page  # the download button stays


def test_with_a_repository_the_buttons_open_the_source_notebooks(built_smoke_book, tmp_path):
    book = tmp_path / "book"
    shutil.copytree(built_smoke_book, book, ignore=shutil.ignore_patterns("_build", "store"))
    repository = "https://github.com/example/regularization-mia-book"
    result = subprocess.run([PYTHON, "-m", "mia_utils", "build", "--dir", str(book), "--repository", repository + "/"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    html_root = book / "_build" / "html"
    assert broken_links(html_root, repository) == []
    page = (html_root / "book" / "executed" / "01_baselines.html").read_text()
    for launch in ("https://mybinder.org/v2/gh/example/regularization-mia-book/main?urlpath=lab/tree/notebooks/"
                   "01_baselines.ipynb",
                   "https://colab.research.google.com/github/example/regularization-mia-book/blob/main/notebooks/"
                   "01_baselines.ipynb",
                   f"{repository}/edit/main/notebooks/01_baselines.ipynb"):
        assert launch in page
    external = [href for _, href in page_links(html_root) if href.startswith("https://")]
    assert not [href for href in external if "book/executed/" in href and ".ipynb" in href]
    assert "_sources/book/executed/01_baselines.ipynb" in page  # the download button keeps the executed page
    assert (ROOT / "notebooks" / "01_baselines.ipynb").exists()


def test_a_repository_that_is_not_a_github_url_is_refused_before_building(tmp_path, capsys):
    from mia_utils.cli import main

    assert main(["build", "--dir", str(tmp_path), "--repository", "github.com/example"]) == 2
    assert "repository: got 'github.com/example'; allowed: a GitHub repository URL" in capsys.readouterr().err



def exercise_counts(page_html: str) -> tuple[int, int]:
    """(exercises, solutions folded until opened) on one built page."""
    return (len(re.findall(r'class="exercise admonition"', page_html)),
            len(re.findall(r'class="solution dropdown admonition"', page_html)))


def test_every_chapter_has_exercises_whose_solutions_stay_folded(built_smoke_book):
    from mia_utils.book.chapters import toc_chapters

    for name in toc_chapters():
        page = (built_smoke_book / "_build" / "html" / "book" / "executed" / f"{name}.html").read_text()
        exercises, folded = exercise_counts(page)
        assert 2 <= exercises <= 4 and folded == exercises, (name, exercises, folded)
        assert "{glue:" not in page  # every number in a solution was filled in from the computation
    teaching = (built_smoke_book / "_build" / "html" / "book" / "teaching.html").read_text()
    assert all(f"executed/{name}.html" in teaching for name in toc_chapters() if name != "findings")


def test_the_exercise_counter_sees_folded_and_open_solutions():
    page = ('<div class="exercise admonition"></div><div class="solution dropdown admonition"></div>'
            '<div class="exercise admonition"></div><div class="solution admonition"></div>')
    assert exercise_counts(page) == (2, 1)


@pytest.mark.skipif(any(shutil.which(tool) is None for tool in ("xelatex", "latexmk", "xindy")),
                    reason="needs TeX Live with xelatex, latexmk and xindy (make pdf installs them)")
def test_the_book_builds_as_a_pdf(built_smoke_book, tmp_path):
    book = tmp_path / "book"
    shutil.copytree(built_smoke_book, book, ignore=shutil.ignore_patterns("_build", "store"))
    result = subprocess.run([PYTHON, "-m", "mia_utils", "build", "--dir", str(book), "--pdf"], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    pdf = book / "_build" / "latex" / "book.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 500_000
    tex = (book / "_build" / "latex" / "book.tex").read_text()
    assert all(f"{{{title}}}" in tex or title in tex for title in ("A primer", "Stronger attacks"))


def test_a_pdf_without_tex_stops_with_what_to_install(tmp_path, monkeypatch, capsys):
    from mia_utils import cli

    monkeypatch.setattr(cli.shutil, "which", lambda tool: None)
    assert cli.main(["build", "--dir", str(tmp_path), "--pdf"]) == 2
    assert "--pdf: needs xelatex, latexmk, xindy on PATH" in capsys.readouterr().err

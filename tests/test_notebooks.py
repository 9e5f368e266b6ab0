"""Every chapter executed with the smoke profile, then the book built with warnings as errors."""

import re

import nbformat
import pytest

from conftest import ROOT
from mia_utils.book.chapters import toc_chapters

pytestmark = pytest.mark.slow


def test_source_notebooks_carry_no_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"
        tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
        assert sum("parameters" in t for t in tags) == 1, f"{path.name} needs one 'parameters' cell"


#: The most code lines a chapter's notebook may hold: the logic lives in the package, with tests.
MAX_CODE_LINES = 60


def code_lines(notebook) -> list[str]:
    """The notebook's code lines that are neither blank nor comments."""
    return [line for cell in notebook.cells if cell.cell_type == "code" for line in cell.source.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_code_lines_skip_blanks_and_comments():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# a comment\n\nx = 1\n  # indented"),
                                               nbformat.v4.new_markdown_cell("y = 2")])
    assert code_lines(notebook) == ["x = 1"]


def test_notebooks_narrate_and_call_the_package():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        lines = code_lines(nbformat.read(path, as_version=4))
        assert len(lines) <= MAX_CODE_LINES, f"{path.name}: {len(lines)} code lines"
        defined = [line for line in lines
                   if re.match(r"\s*(async\s+)?(def|class)\s", line) or re.search(r"\blambda\b", line)]
        assert defined == [], f"{path.name} defines functions: {defined}"


def test_every_chapter_executes_under_smoke(smoke_book):
    book, _ = smoke_book
    for name in toc_chapters():
        notebook = nbformat.read(book / "book" / "executed" / f"{name}.ipynb", as_version=4)
        errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
        assert notebook.metadata["papermill"]["parameters"]["profile"] == "smoke"


def test_book_builds_with_warnings_as_errors(built_smoke_book):
    book = built_smoke_book
    html = book / "_build" / "html" / "book" / "executed" / "01_baselines.html"
    text = html.read_text()
    visible = re.sub(r"<[^>]+>", "", text)
    assert "Traceback" not in visible and "Error" not in visible
    assert "{glue" not in visible and "glue:text" not in visible and "glue:figure" not in visible
    assert text.count("<img") >= 2
    assert re.search(r"test\s+accuracy", text)
    for page in ("intro", "setup", "references"):
        assert (book / "_build" / "html" / "book" / f"{page}.html").exists()

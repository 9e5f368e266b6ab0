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


def install_cell(path):
    from mia_utils.cli import INSTALL_CELL

    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first.get("id") == INSTALL_CELL, f"{path.name}: the first code cell must install the package when launched"
    return first


def test_every_notebook_starts_with_the_same_install_cell_hidden_from_the_page():
    cells = [install_cell(path) for path in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    assert len({cell.source for cell in cells}) == 1
    assert all(cell.metadata["tags"] == ["remove-cell"] for cell in cells)


def run_install_cell(monkeypatch, tmp_path, launched: bool, repository: str = "", local: bool = False):
    """Execute the install cell in ``tmp_path/notebooks`` as a launch would, recording pip's command."""
    import importlib.util
    import subprocess

    source = install_cell(ROOT / "notebooks" / "00_primer.ipynb").source
    source = re.sub(r'^REPOSITORY = "[^"]*"', f'REPOSITORY = "{repository}"', source, flags=re.M)
    (tmp_path / "notebooks").mkdir(parents=True)
    if local:
        (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path / "notebooks")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: calls.append(command))
    if launched:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    namespace = {}
    exec(source, namespace)
    return namespace, calls


def test_the_install_cell_does_nothing_inside_the_repository(monkeypatch, tmp_path):
    namespace, calls = run_install_cell(monkeypatch, tmp_path, launched=False)
    assert namespace["LAUNCHED"] is False and calls == []


def test_the_install_cell_installs_from_the_checkout_or_the_stamped_repository(monkeypatch, tmp_path):
    namespace, calls = run_install_cell(monkeypatch, tmp_path / "a", launched=True, local=True)
    assert namespace["LAUNCHED"] is True and calls[0][-2:] == ["-e", ".."]
    _, calls = run_install_cell(monkeypatch, tmp_path / "b", launched=True, repository="https://github.com/o/book")
    assert calls[0][-1] == "mia_utils @ git+https://github.com/o/book"
    with pytest.raises(RuntimeError, match="install the package first"):
        run_install_cell(monkeypatch, tmp_path / "c", launched=True)


def test_stamp_writes_the_repository_into_every_install_cell(tmp_path):
    from mia_utils.cli import main

    for path in (ROOT / "notebooks").glob("*.ipynb"):
        (tmp_path / path.name).write_text(path.read_text())
    assert main(["stamp", "--repository", "https://github.com/o/book/", "--dir", str(tmp_path)]) == 0
    stamped = {install_cell(path).source for path in tmp_path.glob("*.ipynb")}
    assert len(stamped) == 1 and 'REPOSITORY = "https://github.com/o/book"' in stamped.pop()
    assert main(["stamp", "--repository", "gitlab.com/o/book", "--dir", str(tmp_path)]) == 2

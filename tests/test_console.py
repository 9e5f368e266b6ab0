"""The console of a book build: short, truthful, and still loud about a real failure."""

import json
import subprocess
import sys
import textwrap

import nbformat

from conftest import PYTHON, ROOT
from mia_utils.book.console import ChapterOutcome, count_warnings, summary_lines


def test_a_repeated_warning_is_counted_once_and_other_lines_are_not_warnings():
    lines = ["/x/prv.py:120: RuntimeWarning: invalid value encountered in log",
             "/x/prv.py:120: RuntimeWarning: invalid value encountered in log",
             "/y/other.py:7: RuntimeWarning: invalid value encountered in log",
             "\x1b[0;31m/z.py:3: UserWarning: colour codes are ignored\x1b[0m",
             "[IPKernelApp] WARNING | Kernel is running over TCP without encryption",
             "12/07/2026 22:46:37:WARNING:PRV epsilon is NaN for sigma_DP = 0.01, q = 0.256, 6 steps",
             "12/07/2026 22:48:04:WARNING:PRV epsilon is NaN for sigma_DP = 0.01, q = 0.249027, 8 steps",
             "12/07/2026 22:48:05:WARNING:PRV epsilon is NaN for sigma_DP = 0.01, q = 0.263374, 6 steps",
             "WARNING:mia_utils.defenses.dp:the noise is too small",
             "accuracy 0.85"]
    assert count_warnings(lines) == {"RuntimeWarning: invalid value encountered in log": 3,
                                     "UserWarning: colour codes are ignored": 1,
                                     "WARNING: PRV epsilon is NaN for sigma_DP = 0.01, q = 0.256, 6 steps": 3,
                                     "WARNING: mia_utils.defenses.dp:the noise is too small": 1}


def test_the_summary_names_runs_pages_warnings_logs_and_the_book(tmp_path):
    outcomes = [ChapterOutcome("01_a", 3.0, "a.log", 2, 5, {"RuntimeWarning: NaN at q = 0.25": 3}),
                ChapterOutcome("02_b", 4.0, "b.log", 0, 7, {"RuntimeWarning: NaN at q = 0.2634": 2,
                                                            "UserWarning: odd": 1})]
    lines = summary_lines(outcomes, kept=1, log_folder=tmp_path / "logs", trained_before=10,
                          book=tmp_path / "index.html")
    assert lines[0] == "[mia_utils] 12 runs trained; 2 pages executed, 1 kept unchanged; 6 warnings (2 distinct)"
    assert lines[1] == "  5 x RuntimeWarning: NaN at q = 0.25" and lines[2] == "  1 x UserWarning: odd"
    assert str(tmp_path / "logs") in lines[3] and lines[4] == f"  the book: {tmp_path / 'index.html'}"


def make_notebook(path, *sources):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.cells[0].metadata["tags"] = ["parameters"]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_cell_output_and_kernel_messages_go_to_the_log_and_a_failing_chapter_shows_its_traceback(tmp_path, cli_env):
    """Two chapters through `run`: one that prints, warns three times and succeeds, one that
    fails in its second cell. The console shows a line each, the warning once with its count,
    and the failure's chapter, cell and traceback; the cells' output is only in the logs."""
    make_notebook(tmp_path / "zz_passes.ipynb", 'profile = "smoke"',
                  "import warnings\nwarnings.simplefilter('always')\nprint('noisy cell output ' * 3)\n"
                  "for seed in range(3):\n    warnings.warn('NaN in the accountant', RuntimeWarning)")
    make_notebook(tmp_path / "zz_fails.ipynb", 'profile = "smoke"', "print('before the failure')",
                  "def divide(a, b):\n    return a / b\ndivide(1, 0)")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from mia_utils import cli
        from mia_utils.book import chapters

        class Scratch(chapters.Chapter):
            @property
            def notebook(self):
                return Path({str(tmp_path)!r}) / f"{{self.name}}.ipynb"

        for name in ("zz_passes", "zz_fails"):
            chapters.CHAPTERS[name] = Scratch(name, name, (chapters.COMMON[0],))
        sys.exit(cli.main(["run", "zz_passes", "zz_fails", "--profile", "smoke", "--out", {str(tmp_path / "out")!r}]))
    """)
    result = subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=cli_env, capture_output=True, text=True,
                            timeout=600)
    console = result.stdout + result.stderr
    assert result.returncode == 1, console
    assert "noisy cell output" not in console and "before the failure" not in console
    assert "KeyboardInterrupt caught in kernel" not in console and "without encryption" not in console
    lines = console.splitlines()
    passed = next(line for line in lines if line.strip().startswith("zz_passes"))
    assert "3 warnings" in passed and "FAILED" not in passed
    failed = next(line for line in lines if line.strip().startswith("zz_fails"))
    assert "FAILED" in failed and str(tmp_path / "out" / "logs" / "zz_fails.log") in failed
    assert "In [4] (cell index 3)" in console and "ZeroDivisionError" in console and "return a / b" in console
    assert "  3 x RuntimeWarning: NaN in the accountant" in lines
    assert "noisy cell output" in (tmp_path / "out" / "logs" / "zz_passes.log").read_text()
    assert "before the failure" in (tmp_path / "out" / "logs" / "zz_fails.log").read_text()
    assert (tmp_path / "out" / "zz_passes.ipynb").exists() and not (tmp_path / "out" / "zz_fails.ipynb").exists()


def test_the_smoke_book_console_is_short_and_has_no_error_line(built_smoke_book):
    """Executing and building the smoke book prints fewer than 60 lines, none with ERROR (the
    kernels' normal shutdown messages go to the logs), a line per chapter and the book's place."""
    console = (built_smoke_book / "console.txt").read_text() + (built_smoke_book / "build-console.txt").read_text()
    lines = console.split("\n")
    assert len(lines) < 60, console
    assert not [line for line in lines if "ERROR" in line], console
    from mia_utils.book.chapters import toc_chapters

    for name in toc_chapters(built_smoke_book):
        assert any(line.strip().startswith(name) for line in lines), (name, console)
    assert "index.html" in console

"""What ``make book`` prints: one line per chapter and a closing summary; everything else to logs.

A chapter executes with its process's standard output and error (file descriptors 1 and 2)
pointed at ``<log folder>/<chapter>.log`` (:func:`output_to`): the cells' streamed output, the
kernel's own messages (its normal shutdown, "KeyboardInterrupt caught in kernel", and the
"Kernel is running over TCP without encryption" notice) and progress bars all land there,
since the kernel inherits those descriptors. The console then gets one line per chapter
(:func:`chapter_line`), a failing chapter's cell and traceback (:func:`failure_text`), and a
summary (:func:`summary_lines`) in which a warning that repeats (the PRV accountant's NaN, once
per seed) is counted once.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: A Python warning as ``warnings.showwarning`` prints it: ``FILE:LINE: CATEGORY: MESSAGE``.
WARNING_LINE = re.compile(r"^(?P<file>\S.*?):(?P<line>\d+): (?P<category>\w*Warning): (?P<message>.*)$")
#: A log record at level WARNING as Python's logging prints it in a Dask worker
#: (``DATE TIME:WARNING:MESSAGE``) or by default (``WARNING:LOGGER:MESSAGE``).
LOGGED_WARNING = re.compile(r"^(?:[\d/-]+ [\d:,.]+:)?WARNING:(?P<message>.+)$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class ChapterOutcome:
    """How one chapter's execution went: its name, wall time in seconds, the runs it trained and
    read from the store (None where the page does not say), its warnings as
    ``{"Category: message": count}``, its log file, and, on failure, the error text."""

    name: str
    seconds: float
    log: str
    trained: int | None = None
    read: int | None = None
    warnings: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@contextlib.contextmanager
def output_to(path: Path):
    """Point this process's file descriptors 1 and 2 (and so every child it starts, such as a
    Jupyter kernel) at ``path`` (overwritten) until the block ends; then restore them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "w") as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def count_warnings(lines) -> collections.Counter:
    """Python warnings and logged warnings among ``lines`` as ``{"Category: message": count}``
    (``"WARNING: message"`` for a logged one); the same warning raised from several places or
    seeds counts as one key, as do messages that differ only in their numbers (the PRV
    accountant's NaN for each seed's sampling rate): the key is the first one seen."""
    texts = []
    for line in lines:
        line = _ANSI.sub("", line.rstrip())
        if match := WARNING_LINE.match(line):
            texts.append(f"{match['category']}: {match['message'].strip()}")
        elif match := LOGGED_WARNING.match(line):
            texts.append(f"WARNING: {match['message'].strip()}")
    return merge_warnings(collections.Counter(texts))


def merge_warnings(*counters) -> collections.Counter:
    """The warning counts of several sources (``{"Category: message": count}`` each) added up,
    messages that differ only in their numbers counted under the first one seen."""
    merged, first = collections.Counter(), {}
    for counter in counters:
        for text, count in counter.items():
            merged[first.setdefault(_NUMBER.sub("#", text), text)] += count
    return merged


def page_facts(page: Path) -> tuple[int | None, int | None, collections.Counter]:
    """From an executed notebook: the runs it trained and read from the store (the provenance
    values the page glues, ``provenance_trained`` and ``provenance_from_store``; None where it
    glues none) and the warnings in its cells' standard-error output (:func:`count_warnings`)."""
    notebook = json.loads(page.read_text())
    glued, lines = {}, []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = output.get("text", "")
                lines += ("".join(text) if isinstance(text, list) else text).splitlines()
            scrap = output.get("metadata", {}).get("scrapbook", {})
            if scrap.get("name") in ("provenance_trained", "provenance_from_store"):
                value = output.get("data", {}).get(scrap.get("mime_prefix", "") + "text/plain")
                try:
                    glued[scrap["name"]] = int(str(value).strip())
                except ValueError:
                    pass
    return glued.get("provenance_trained"), glued.get("provenance_from_store"), count_warnings(lines)


def failure_text(error: BaseException) -> str:
    """A failed execution for the console: the cell (its index and execution count, when
    papermill says) and the traceback, without terminal colour codes."""
    where = ""
    if getattr(error, "cell_index", None) is not None:
        where = f"In [{getattr(error, 'exec_count', '?')}] (cell index {error.cell_index})"
        source = (getattr(error, "source", "") or "").strip().splitlines()
        if source:
            where += f", which begins: {source[0][:100]}"
        where += "\n"
    return where + _ANSI.sub("", str(error)).strip()


def _runs_text(outcome: ChapterOutcome) -> str:
    if outcome.trained is None:
        return ""
    if outcome.trained:
        return f"trained {outcome.trained} runs, read {outcome.read}"
    return f"read {outcome.read} runs"


def chapter_line(outcome: ChapterOutcome, width: int = 28) -> str:
    """One console line for a chapter: name, seconds, runs trained or read, warnings."""
    parts = [f"{outcome.seconds:5.0f} s", _runs_text(outcome)]
    total = sum(outcome.warnings.values())
    if total:
        parts.append(f"{total} warning{'s' if total > 1 else ''}")
    if not outcome.ok:
        parts.append(f"FAILED (log: {outcome.log})")
    return f"  {outcome.name:<{width}}" + "  ".join(p for p in parts if p)


def summary_lines(outcomes: list[ChapterOutcome], kept: int, log_folder: Path, trained_before: int = 0,
                  book: Path | None = None, limit: int = 5, training_warnings: dict | None = None) -> list[str]:
    """The closing summary, as console lines: runs trained, pages executed and kept, each
    distinct warning once with its count, where the cell outputs are, and where the book is.

    Args:
        outcomes: the executed chapters' :class:`ChapterOutcome` (their runs trained and warnings).
        kept: the number of pages kept unchanged (not executed).
        log_folder: the folder of the chapters' logs.
        trained_before: runs trained before the chapters executed (by the sweep).
        book: the built book's first page, or None when it was not built.
        limit: at most this many distinct warnings are listed, the most frequent first.
        training_warnings: the sweep's warnings, ``{"Category: message": count}`` (see
            :func:`count_warnings`), or None.
    """
    trained = trained_before + sum(o.trained or 0 for o in outcomes)
    failed = [o.name for o in outcomes if not o.ok]
    warnings = merge_warnings(training_warnings or {}, *(outcome.warnings for outcome in outcomes))
    executed = len(outcomes) - len(failed)
    lines = [f"[mia_utils] {trained} runs trained; {executed} page{'s' * (executed != 1)} executed, {kept} kept "
             "unchanged"
             + (f", {len(failed)} failed ({', '.join(failed)})" if failed else "")
             + f"; {sum(warnings.values())} warnings ({len(warnings)} distinct)"]
    for text, count in warnings.most_common(limit):
        lines.append(f"  {count} x {text[:160]}")
    if len(warnings) > limit:
        lines.append(f"  ... and {len(warnings) - limit} more distinct warnings (see the logs)")
    lines.append(f"  cell outputs and kernel messages: {log_folder}/<chapter>.log")
    if book is not None:
        lines.append(f"  the book: {book}")
    return lines

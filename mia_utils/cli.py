"""Command line: ``python -m mia_utils {run,build,train,plan,sweep,params,store,mechanisms,stamp,clean}``.

* ``run [CHAPTER ...] --profile P -p NAME VALUE [--build]``: execute chapters with papermill
  into ``book/executed/`` (all chapters listed in ``_toc.yml`` when none is named), then, with
  ``--build``, re-render the book. Parameters are validated before any kernel starts; a failed
  run leaves the previous page untouched.
* ``build``: build the HTML book into ``_build/html`` with warnings as errors.
* ``train --profile P --dataset D [-p FIELD VALUE]``: train one configuration into the store
  and print its metrics as JSON.
* ``params CHAPTER`` / ``params --markdown``: list a chapter's parameters, defaults and allowed
  values (``--markdown``: every chapter's, as the re-run page shows them).
* ``plan --profile P``: every run the book needs (:mod:`mia_utils.book.plan`), which are in the store,
  and the cost of the rest in model-epochs and hours.
* ``sweep --profile P [--workers N | --cluster ADDRESS] [--retries R] [--lockstep K]``: train
  every planned run the store lacks, in this process, on a local Dask cluster of N workers, or
  on the Dask scheduler at ADDRESS (:mod:`mia_utils.book.sweep`; resumable; failed runs are retried,
  then listed, and the exit status is 1). ``--lockstep K`` trains up to K compatible runs as one
  task (for a GPU; see :func:`mia_utils.train.train_many`).
* ``store export FILE [--profile P]`` / ``store import FILE``: one verified, compressed bundle of
  the runs a profile's book reads and the store's derived measurements, and its import
  (:func:`mia_utils.store.export_bundle`, :func:`mia_utils.store.import_bundle`): a class renders
  the book without training.
* ``clean [--store]``: remove generated files (executed notebooks, the built book; the store too).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mia_utils.book.chapters import EXECUTED, PROJECT_ROOT, toc_chapters
from mia_utils.data import DataUnavailableError
from mia_utils.store import DERIVED_PREFIXES


def _parse_overrides(chapter, pairs):
    from mia_utils.book.chapters import get_chapter

    spec = get_chapter(chapter)
    return {name: spec.param(name).parse(value) for name, value in pairs}


class _QuietCellMarkers(logging.Filter):
    """Drop papermill's 'Executing Cell N' / 'Ending Cell N' lines; keep the cells' own output."""

    def filter(self, record):
        message = record.getMessage()
        return not (message.startswith("Executing Cell") or message.startswith("Ending Cell"))


def command_run(args) -> int:
    """Execute the chapters (see :func:`execute_chapters`), print the summary, then build with ``--build``."""
    if args.build and args.out:
        raise ValueError("--build: builds the project's book, so it cannot be combined with --out")
    outcomes, kept, log_folder = execute_chapters(args)
    from mia_utils.book.console import summary_lines

    for line in summary_lines(outcomes, kept, log_folder):
        print(line, file=sys.stderr)
    if not all(outcome.ok for outcome in outcomes):
        return 1
    if args.build:
        return command_build(argparse.Namespace(dir=str(PROJECT_ROOT), repository="", pdf=False, branch="main"))
    return 0


def execute_chapters(args) -> tuple[list, int, Path]:
    """Execute the chapters ``args.chapters`` (all in ``_toc.yml`` when none) with papermill into
    ``args.out`` (default ``book/executed``), ``args.jobs`` at once, each one's output going to
    ``<log folder>/<chapter>.log`` (:mod:`mia_utils.book.console`), and print one line per
    chapter as it ends. Pages whose inputs have not changed are kept unless ``args.force``.
    Every chapter's parameters are validated before anything executes. Returns the chapters'
    :class:`~mia_utils.book.console.ChapterOutcome` list, the number of pages kept and the log
    folder (``_build/logs``, or ``logs`` beside the pages with ``--out``)."""
    from mia_utils.book.chapters import get_chapter, validate

    if args.jobs < 1:
        raise ValueError(f"--jobs: must be >= 1, got {args.jobs}")
    chapters = args.chapters or toc_chapters()
    out_dir = Path(args.out) if args.out else PROJECT_ROOT / EXECUTED
    log_folder = (out_dir / "logs") if args.out else PROJECT_ROOT / "_build" / "logs"
    plans = []
    for chapter in chapters:  # validate everything before executing anything
        spec = get_chapter(chapter)
        params = _parse_overrides(spec.name, args.param)
        params["profile"] = args.profile
        validate(spec.name, params)
        plans.append((spec, params))
    plans.sort(key=lambda plan: plan[0].summary)  # the findings page reads every other chapter's runs
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MIA_STORE", str((PROJECT_ROOT / ".mia_store").resolve()))
    os.environ.setdefault("MIA_PROGRESS", "1")
    store_root = Path(os.environ["MIA_STORE"])
    pending, kept = [], 0
    for spec, params in plans:
        target = out_dir / f"{spec.name}.ipynb"
        if not args.force and _stored_fingerprint(target) == execution_fingerprint(PROJECT_ROOT / spec.notebook,
                                                                                   params, store_root):
            print(f"  {spec.name:<28}kept (same notebook, parameters, package and stored runs; --force "
                  "executes it again)", file=sys.stderr, flush=True)
            kept += 1
            continue
        pending.append((spec.name, spec.notebook, params, str(out_dir), str(store_root), args.verbose,
                        str(log_folder)))
    jobs = min(args.jobs, len(pending)) or 1
    # The summary reads every other chapter's runs and measurements, so it comes last, alone.
    first = [job for job in pending if not get_chapter(job[0]).summary]
    last = [job for job in pending if get_chapter(job[0]).summary]
    outcomes = []

    def report(outcome) -> bool:
        from mia_utils.book.console import chapter_line

        outcomes.append(outcome)
        print(chapter_line(outcome), file=sys.stderr, flush=True)
        if not outcome.ok:
            print(f"[mia_utils] {outcome.name} failed; its page was left as it was. The error, at "
                  f"{outcome.error}\n[mia_utils] its cells' output: {outcome.log}", file=sys.stderr, flush=True)
        return outcome.ok

    if jobs == 1:
        all(report(_execute_chapter(*job)) for job in first)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Longest first, by how long each page took when it was last executed (papermill records
        # it): the longest chapter then does not start last. Pages never executed keep their order.
        first.sort(key=lambda job: -_last_duration(out_dir / f"{job[0]}.ipynb"))

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, initializer=_limit_threads, initargs=(threads,)) as pool:
            for future in as_completed([pool.submit(_execute_chapter, *job) for job in first]):
                report(future.result())
    if all(outcome.ok for outcome in outcomes):
        all(report(_execute_chapter(*job)) for job in last)
    return outcomes, kept, log_folder


def _last_duration(page: Path) -> float:
    """Seconds papermill took to execute ``page`` last time (0 when unknown)."""
    try:
        return float(json.loads(page.read_text())["metadata"]["papermill"]["duration"] or 0.0)
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _limit_threads(threads: int) -> None:
    """In a ``run --jobs`` worker: the kernels it starts use ``threads`` threads each."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def _execute_chapter(name: str, notebook: str, params: dict, out_dir: str, store_root: str, verbose: bool,
                     log_folder: str):
    """Execute one chapter's notebook into ``out_dir/<name>.ipynb`` through a hidden partial file,
    so that a failure or an interruption leaves the previous page as it was, with this process's
    output (and its kernel's) in ``log_folder/<name>.log``; ``verbose`` also logs the cells'
    output there as they run. Returns its :class:`~mia_utils.book.console.ChapterOutcome`."""
    import papermill

    from mia_utils.book.console import ChapterOutcome, failure_text, output_to, page_facts

    target, partial = Path(out_dir) / f"{name}.ipynb", Path(out_dir) / f".{name}.partial.ipynb"
    log = Path(log_folder) / f"{name}.log"
    papermill_log = logging.getLogger("papermill")
    if not any(isinstance(f, _QuietCellMarkers) for f in papermill_log.filters):
        papermill_log.addFilter(_QuietCellMarkers())
    started = time.perf_counter()
    with output_to(log):
        print(f"[mia_utils] executing {notebook} with {params} -> {target}", file=sys.stderr, flush=True)
        try:
            papermill.execute_notebook(str(PROJECT_ROOT / notebook), str(partial), parameters=params,
                                       kernel_name="python3", cwd=str(PROJECT_ROOT), progress_bar=False,
                                       log_output=verbose, request_save_on_cell_execute=False)
            error = None
        except Exception as caught:
            partial.unlink(missing_ok=True)
            error = failure_text(caught)
            print(f"[mia_utils] {name} failed:\n{error}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    if error is not None:
        return ChapterOutcome(name, seconds, str(log), error=error)
    _finish_executed(partial, execution_fingerprint(PROJECT_ROOT / notebook, params, Path(store_root)))
    os.replace(partial, target)
    trained, read, warnings = page_facts(target)
    return ChapterOutcome(name, seconds, str(log), trained, read, dict(warnings))


def execution_fingerprint(notebook: Path, params: dict, store_root: Path) -> str:
    """SHA-256 over everything an executed chapter depends on: the notebook's source, its
    parameters, the package's source and reference files, and the manifest (sizes and SHA-256s)
    of every run in the store. Measurements derived from runs (entries with
    :data:`mia_utils.store.DERIVED_PREFIXES`) are left out: they are deterministic functions of
    the runs and the package. Equal fingerprints mean that executing the chapter again would give
    the same page."""
    import hashlib

    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}:{len(data)}:".encode())
        digest.update(data)

    add("notebook", notebook.read_bytes())
    add("params", json.dumps(params, sort_keys=True, default=str).encode())
    package = Path(__file__).resolve().parent
    for path in sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in (".py", ".csv", ".md", ".json")):
        add(str(path.relative_to(package)), path.read_bytes())
    runs = store_root / "runs"
    if runs.is_dir():
        for entry in sorted(runs.iterdir()):
            manifest = entry / "manifest.json"
            if not entry.name.startswith((".", *DERIVED_PREFIXES)) and manifest.is_file():
                add(entry.name, manifest.read_bytes())
    return digest.hexdigest()


def _stored_fingerprint(path: Path) -> str | None:
    """The fingerprint an executed notebook was written with, or None."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("metadata", {}).get("mia_utils", {}).get("fingerprint")
    except (OSError, ValueError):
        return None


def _finish_executed(path: Path, fingerprint: str) -> None:
    """Fold the parameter cells (defaults and papermill's injected values) in the rendered page,
    as the provenance table states the values, and record the execution's fingerprint."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("parameters" in tags or "injected-parameters" in tags) and "hide-cell" not in tags:
            tags.append("hide-cell")
    notebook.metadata["mia_utils"] = {"fingerprint": fingerprint}
    nbformat.write(notebook, path)


#: Where the launch buttons open a chapter, with the repository's URL set (see :func:`repository_config`).
LAUNCH_BUTTONS = {"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
                  "colab_url": "https://colab.research.google.com"}


def repository_url(text: str) -> str:
    """The book's repository setting, checked: ``https://github.com/OWNER/NAME`` (launch buttons
    need a GitHub repository), without a trailing slash or ``.git``."""
    url = text.strip().removesuffix("/").removesuffix(".git")
    if not re.fullmatch(r"https://github\.com/[A-Za-z0-9][\w.-]*/[\w.-]+", url):
        raise ValueError(f"repository: got {text!r}; allowed: a GitHub repository URL, https://github.com/OWNER/NAME")
    return url


def repository_config(root: Path, url: str, branch: str) -> Path:
    """A copy of ``root/_config.yml`` with the repository's buttons (repository, issues, edit) and
    the launch buttons (Binder, Colab) turned on for ``url`` at ``branch``, written to
    ``root/_build/_config.repository.yml``; the path."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    config["repository"] = {"url": url, "path_to_book": ".", "branch": branch}
    config.setdefault("html", {}).update(use_repository_button=True, use_issues_button=True,
                                         use_edit_page_button=True)
    config["launch_buttons"] = dict(LAUNCH_BUTTONS)
    # relative paths in the configuration stay relative to the book's root
    config["bibtex_bibfiles"] = [str((root / name).resolve()) for name in config.get("bibtex_bibfiles", [])]
    path = root / "_build" / "_config.repository.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


def point_buttons_at_sources(html_root: Path, url: str) -> int:
    """Make the launch and edit buttons of every chapter page open the source notebook
    (``notebooks/NAME.ipynb``, which runs anywhere) instead of papermill's executed copy under
    ``book/executed/``, which git ignores. Returns the number of links changed."""
    executed = EXECUTED.as_posix() + "/"
    changed = 0
    for page in html_root.rglob("*.html"):
        text = page.read_text()

        def to_source(match):
            nonlocal changed
            changed += 1
            return match.group(0).replace(executed, "notebooks/").replace("/./notebooks/", "/notebooks/")

        new = re.sub(r'href="https://[^"]*' + re.escape(executed) + r'[^"]*\.ipynb[^"]*"', to_source, text)
        if new != text:
            page.write_text(new)
    return changed


#: What the PDF route needs besides Python: the LaTeX engine, its driver and the index builder
#: (Debian: texlive-xetex, latexmk, xindy; the book class also needs texlive-latex-extra and
#: texlive-fonts-extra, see ``make pdf``).
PDF_TOOLS = ("xelatex", "latexmk", "xindy")


#: The id of the first code cell of every source notebook, which installs the package when the
#: notebook is launched outside this repository (it must live in the notebook: until it has run,
#: the package is not there to call).
INSTALL_CELL = "install-when-launched"


def stamp_repository(folder: Path, url: str) -> list[Path]:
    """Write ``url`` (checked by :func:`repository_url`) into the ``REPOSITORY = ...`` line of the
    install cell of every notebook in ``folder``, so that a notebook opened by a Colab launch button
    can install the package from the book's repository. Returns the notebooks changed."""
    import nbformat

    url = repository_url(url)
    changed = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cell = next((c for c in notebook.cells if c.get("id") == INSTALL_CELL), None)
        if cell is None:
            raise ValueError(f"{path.name}: has no install cell (id {INSTALL_CELL!r}) to stamp")
        source = re.sub(r'^REPOSITORY = "[^"]*"', f'REPOSITORY = "{url}"', cell.source, count=1, flags=re.M)
        if source != cell.source:
            cell.source = source
            nbformat.write(notebook, path)
            changed.append(path)
    return changed


def command_stamp(args) -> int:
    changed = stamp_repository(Path(args.dir), args.repository)
    print(f"[mia_utils] {len(changed)} notebooks now install from {repository_url(args.repository)} when launched; "
          "commit them so that the launch buttons find them", file=sys.stderr)
    return 0


def command_book(args) -> int:
    """``make book``: import ``--bundle`` if given, train what the store lacks (one progress bar),
    execute the changed chapters (a line each; their output to ``_build/logs``), build the HTML
    book quietly, and close with one summary: runs trained, pages executed, warnings, where the
    book and the logs are. Stops at the first step that fails."""
    from mia_utils.book.console import summary_lines

    started = time.perf_counter()
    if args.bundle:
        status = command_store_import(argparse.Namespace(file=args.bundle, store=None))
        if status:
            return status
    logs = PROJECT_ROOT / "_build" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sweep_args = argparse.Namespace(profile=args.profile, seed=0, retries=1, lockstep=1, store=None, chapters=None,
                                    workers=args.workers, cluster=None, threads=None, quiet=False,
                                    log=str(logs / "sweep.log"))
    trained, warnings = [], collections.Counter()
    status = command_sweep(sweep_args, trained=trained, warnings=warnings)
    if status:
        return status
    run_args = argparse.Namespace(chapters=[], profile=args.profile, out=None, verbose=True, jobs=args.workers or 1,
                                  force=False, build=False, param=[])
    outcomes, kept, log_folder = execute_chapters(run_args)
    if not all(outcome.ok for outcome in outcomes):
        for line in summary_lines(outcomes, kept, log_folder, len(trained), training_warnings=warnings):
            print(line, file=sys.stderr)
        return 1
    status = command_build(argparse.Namespace(dir=str(PROJECT_ROOT), repository=args.repository, pdf=False,
                                              branch=os.environ.get("MIA_BOOK_BRANCH", "main")))
    book = PROJECT_ROOT / "_build" / "html" / "index.html"
    for line in summary_lines(outcomes, kept, log_folder, len(trained), book if status == 0 else None,
                              training_warnings=warnings):
        print(line, file=sys.stderr)
    print(f"[mia_utils] make book {'done' if status == 0 else 'FAILED at the build'} in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return status


def command_build(args) -> int:
    root = Path(args.dir)
    repository = args.repository or os.environ.get("MIA_BOOK_REPOSITORY", "")
    url = repository_url(repository) if repository else None
    executable = Path(sys.executable).parent / "jupyter-book"
    command = [str(executable if executable.exists() else "jupyter-book"), "build", str(root),
               "--warningiserror", "--keep-going"]
    if args.pdf:
        missing = [tool for tool in PDF_TOOLS if shutil.which(tool) is None]
        if missing:
            raise ValueError(f"--pdf: needs {', '.join(missing)} on PATH; `make pdf` installs Debian's TeX packages")
        # LaTeX reports overfull boxes and the like as warnings: they do not stop the PDF
        command = command[:3] + ["--builder", "pdflatex"]
    if url:
        command += ["--config", str(repository_config(root, url, args.branch))]
    missing = [name for name in toc_chapters(root) if not (root / EXECUTED / f"{name}.ipynb").exists()]
    if missing:
        print(f"[mia_utils] not executed yet: {', '.join(missing)}; run `python -m mia_utils run` first",
              file=sys.stderr)
        return 1
    log = root / "_build" / "logs" / ("pdf.log" if args.pdf else "build.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w") as output:
        status = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    if status != 0:
        text = log.read_text(errors="replace").splitlines()
        problems = [line for line in text if "WARNING" in line or "ERROR" in line or "Error" in line]
        print(f"[mia_utils] the book failed to build ({len(problems)} warnings and errors; Sphinx treats "
              f"warnings as errors); the full output: {log}", file=sys.stderr)
        for line in (problems or text)[-25:]:
            print(f"  {line}", file=sys.stderr)
    elif not args.pdf:
        print(f"[mia_utils] book built in {seconds:.0f} s: {root / '_build' / 'html' / 'index.html'} "
              f"(Sphinx's output: {log})", file=sys.stderr)
    if status == 0 and args.pdf:
        print(f"[mia_utils] the book as a PDF: {root / '_build' / 'latex' / 'book.pdf'}", file=sys.stderr)
    if status == 0 and url and not args.pdf:
        changed = point_buttons_at_sources(root / "_build" / "html", url)
        print(f"[mia_utils] repository buttons for {url}; {changed} launch and edit links point at notebooks/",
              file=sys.stderr)
    return status


def parse_mechanisms(text: str) -> list[list]:
    """``-p mechanisms`` as given on the command line, e.g. ``distillation=50,random_crop=4``, into
    the configuration's (name, value) pairs; an empty string means no mechanism. Only the syntax is
    checked here; names, ranges and combinations are checked as a ``RunConfig`` checks them."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"-p mechanisms: {item!r} must be NAME=VALUE, e.g. distillation=50,random_crop=4 "
                             "(see `python -m mia_utils mechanisms`)")
        try:
            pairs.append([name.strip(), float(value)])
        except ValueError:
            raise ValueError(f"-p mechanisms: the value of {name.strip()} must be a number, got {value!r}") from None
    return pairs


def parse_config_value(name: str, text: str, default):
    """One ``-p NAME VALUE`` for ``train``, converted to the type of the configuration field's
    ``default``: true/false for flags, comma-separated integers for lists (``snapshot_epochs``),
    NAME=VALUE pairs for ``mechanisms``. A value of the wrong kind stops with a message naming
    the field, the value and what is allowed."""
    if name == "mechanisms":
        return parse_mechanisms(text)
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return text.lower() in ("1", "true", "yes")
        if kind is list:
            return [int(v) for v in text.split(",") if v.strip()]
        return kind(text)
    except ValueError:
        allowed = {bool: "true or false", list: "comma-separated whole numbers", int: "a whole number",
                   float: "a number", str: "text"}[kind]
        raise ValueError(f"-p {name}: got {text!r}; allowed: {allowed}") from None


def command_train(args) -> int:
    from mia_utils.config import RunConfig
    from mia_utils.experiment import run
    from mia_utils.attacks import yeom_on_run
    from mia_utils.book.profiles import get_profile
    from mia_utils.store import ResultStore

    config = get_profile(args.profile).base_config(args.dataset, args.seed)
    changes = {}
    defaults = config.to_dict()
    for name, value in args.param:
        if name not in defaults:
            raise ValueError(f"-p {name}: not a configuration field; allowed: {', '.join(defaults)}")
        changes[name] = parse_config_value(name, value, defaults[name])
    config = RunConfig.from_dict({**defaults, **changes})
    result = run(config, ResultStore(args.store) if args.store else None, progress=not args.quiet)
    report = {"key": result.key, "from_store": result.from_store, **result.metrics,
              "adv_yeom": yeom_on_run(result.outputs).advantage,
              "train_seconds": result.provenance["train_seconds"]}
    print(json.dumps(report, indent=1))
    return 0


def parameters_markdown() -> str:
    """Every chapter's parameters as Markdown tables (the re-run page embeds this text)."""
    from mia_utils.book.chapters import CHAPTERS

    lines = []
    for spec in CHAPTERS.values():
        lines += [f"### `{spec.name}`: {spec.title}", "", "| parameter | type | default | meaning | allowed |",
                  "|---|---|---|---|---|"]
        for param in spec.params:
            allowed = param.allowed().replace("|", "\\|")
            lines.append(f"| `{param.name}` | {param.kind} | `{param.default!r}` | {param.meaning} | {allowed} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def command_params(args) -> int:
    from mia_utils.book.chapters import get_chapter

    if args.update:
        page = Path(args.update)
        text = page.read_text()
        start, end = "<!-- parameters:start -->\n", "<!-- parameters:end -->"
        if start not in text or end not in text:
            raise ValueError(f"--update: {page} has no '{start.strip()}' ... '{end}' section to replace")
        head, rest = text.split(start, 1)
        page.write_text(head + start + parameters_markdown() + end + rest.split(end, 1)[1])
        print(f"updated the parameter tables in {page}")
        return 0
    if args.markdown:
        print(parameters_markdown(), end="")
        return 0
    if not args.chapter:
        raise ValueError("chapter: name a chapter (or pass --markdown for every chapter's table)")
    spec = get_chapter(args.chapter)
    print(f"{spec.name}: {spec.title}")
    for param in spec.params:
        print(f"  {param.name} ({param.kind}, default {param.default!r}): {param.meaning}; "
              f"allowed: {param.allowed()}")
    return 0


def _store(folder):
    """The result store at ``folder``, else ``$MIA_STORE``, else the project's ``.mia_store``."""
    from mia_utils.store import ResultStore

    return ResultStore(folder or os.environ.get("MIA_STORE", PROJECT_ROOT / ".mia_store"))


def _plan_scope(args) -> list[str] | None:
    """Check ``--profile`` and ``--chapters`` before anything starts; the chapters to plan."""
    from mia_utils.book.chapters import get_chapter
    from mia_utils.book.profiles import get_profile

    get_profile(args.profile)
    if not args.chapters:
        return None
    return [get_chapter(name).name for name in args.chapters.split(",")]


def command_plan(args) -> int:
    from mia_utils.book.plan import book_plan, describe
    from mia_utils.book.sweep import planning_quietly

    chapters = _plan_scope(args)
    store = _store(args.store)
    with planning_quietly():
        plan = book_plan(args.profile, seed=args.seed, store=store, chapters=chapters)
    print(describe(plan, store))
    return 0


def command_sweep(args, trained: list | None = None, warnings=None) -> int:
    """``sweep``; the keys of the runs trained are appended to ``trained`` and, with ``--log``
    and ``--workers``, the workers' warnings are added to the counter ``warnings``, when given."""
    from mia_utils.book.sweep import DaskExecutor, InProcessExecutor, default_threads, planning_quietly, sweep

    chapters = _plan_scope(args)
    if args.retries < 0:
        raise ValueError(f"--retries: must be >= 0, got {args.retries}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers: must be >= 1, got {args.workers}")
    if args.cluster and not re.fullmatch(r"([a-z]+://)?[^\s:/]+:\d+", args.cluster):
        raise ValueError(f"--cluster: got {args.cluster!r}; allowed: a Dask scheduler address such as "
                         "tcp://10.0.0.5:8786")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: must be >= 1, got {args.threads}")
    if args.lockstep < 1:
        raise ValueError(f"--lockstep: must be >= 1, got {args.lockstep}")
    store = _store(args.store)
    if args.workers is not None or args.cluster:
        # Starting a cluster costs about a minute here; not worth it when nothing is missing.
        from mia_utils.book.plan import book_plan

        with planning_quietly():
            plan = book_plan(args.profile, seed=args.seed, store=store, chapters=chapters)
            missing = plan.missing(store)
        if not missing and not plan.pending:
            print(f"[mia_utils] sweep {args.profile}: all {len(plan.runs)} planned runs are in the store; "
                  "nothing to train", file=sys.stderr)
            return 0
    threads = args.threads
    log = getattr(args, "log", None)
    if args.workers is not None:
        threads = threads or default_threads(args.workers)
        executor = DaskExecutor.local(args.workers, log=log)
    elif args.cluster:
        executor = DaskExecutor.connect(args.cluster)
    else:
        executor = InProcessExecutor()
    started = time.perf_counter()
    report = sweep(args.profile, store, seed=args.seed, retries=args.retries, progress=not args.quiet,
                   executor=executor, chapters=chapters, threads=threads, lockstep=args.lockstep)
    if trained is not None:
        trained.extend(report.trained)
    noted = ""
    if log and args.workers is not None:
        from mia_utils.book.console import count_warnings

        found = count_warnings(Path(log).read_text(errors="replace").splitlines())
        if warnings is not None:
            warnings.update(found)
        noted = f"; {sum(found.values())} warnings ({len(found)} distinct), the workers' output: {log}"
    print(f"[mia_utils] sweep {args.profile}: {len(report.trained)} runs trained, {len(report.failed)} failed, "
          f"{len(report.retried)} retried, in {time.perf_counter() - started:.0f} s{noted}", file=sys.stderr)
    for key, error in report.retried:
        print(f"  retried {key[:12]} after: {error}", file=sys.stderr)
    for key, error in report.failed.items():
        print(f"  failed {key[:12]}: {error}", file=sys.stderr)
    return 1 if report.failed else 0


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The commit checked out at ``root`` (with ``-dirty`` when tracked files were changed), or
    None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def command_store_export(args) -> int:
    """Bundle the runs a profile's book reads (its plan) and every derived measurement in the
    store (cached evaluations, DtC, attacks: small, and read by the chapters) into one file."""
    from mia_utils import __version__
    from mia_utils.book.plan import book_plan
    from mia_utils.book.profiles import get_profile
    from mia_utils.book.sweep import planning_quietly
    from mia_utils.store import export_bundle

    get_profile(args.profile)
    store = _store(args.store)
    with planning_quietly():
        plan = book_plan(args.profile, store=store)
        missing = plan.missing(store)
    if (missing or plan.pending) and not args.allow_missing:
        raise ValueError(f"--profile {args.profile}: {len(missing)} of the {len(plan.runs)} planned runs are not in "
                         f"{store.root}{' and some runs cannot be planned yet' if plan.pending else ''}; run "
                         f"`make book PROFILE={args.profile}` first, or pass --allow-missing to bundle what is there")
    absent = {p.key for p in missing}
    keys = [key for key in plan.runs if key not in absent and store.exists(key)]
    derived = [key for key in store.keys() if key.startswith(DERIVED_PREFIXES)]
    started = time.perf_counter()
    info = {"mia_utils": __version__, "commit": git_commit(), "profile": args.profile,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    export_bundle(store, keys + derived, args.file, info)
    size = Path(args.file).stat().st_size
    print(f"[mia_utils] {args.file}: {len(keys)} runs and {len(derived)} derived entries of profile {args.profile}, "
          f"{size / 2**20:.1f} MiB, in {time.perf_counter() - started:.0f} s (mia_utils {__version__}, commit "
          f"{info['commit'] or 'unknown'})", file=sys.stderr)
    return 0


def command_store_import(args) -> int:
    from mia_utils.store import BundleError, import_bundle

    store = _store(args.store)
    started = time.perf_counter()
    try:
        report = import_bundle(store, args.file)
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    manifest = report.manifest
    print(f"[mia_utils] {args.file}: {len(report.imported)} entries imported into {store.root}, "
          f"{len(report.skipped)} already there, in {time.perf_counter() - started:.0f} s (profile "
          f"{manifest.get('profile')}, mia_utils {manifest.get('mia_utils')}, commit {manifest.get('commit')})",
          file=sys.stderr)
    return 0


def command_mechanisms(args) -> int:
    """Print every mechanism a run may use: its name (for ``-p mechanisms NAME=VALUE``), symbol,
    allowed range and what it does, and the pairs that cannot be combined."""
    from mia_utils.defenses import MECHANISM_ORDER, REGISTRY

    names = [n for n in MECHANISM_ORDER if n in REGISTRY] + sorted(set(REGISTRY) - set(MECHANISM_ORDER))
    width = max(map(len, names))
    print(f"{'name':<{width}}  {'symbol':<8} {'range':<20}  meaning")
    for name in names:
        cls = REGISTRY[name]
        allowed = f"{'whole' if cls.integer else 'real'} {cls.low:g} to {cls.high:g}"
        print(f"{name:<{width}}  {cls.symbol:<8} {allowed:<20}  {cls.description}")
    print(f"{'early_stopping':<{width}}  {'E':<8} {'whole 1 to epochs':<20}  training stopped after E epochs "
          "(not a mechanism here: pass -p epochs E)")
    print("\nNot combinable: " + "; ".join(f"{name} with {other} ({reason})" for name in names
                                         for other, reason in REGISTRY[name].excludes.items()))
    print("Example: python -m mia_utils train -p mechanisms distillation=50,random_crop=4")
    return 0


def command_clean(args) -> int:
    targets = [PROJECT_ROOT / "_build"] + sorted((PROJECT_ROOT / EXECUTED).glob("*.ipynb"))
    if args.store:
        targets.append(Path(os.environ.get("MIA_STORE", PROJECT_ROOT / ".mia_store")))
    for path in targets:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        print(f"removed {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m mia_utils", description=__doc__.split("\n\n")[0])
    commands = main.add_subparsers(dest="command", required=True)

    def add_param_option(sub):
        sub.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                         help="override a parameter (repeatable); lists are comma-separated")

    run = commands.add_parser("run", help="execute chapters with papermill into book/executed/")
    run.add_argument("chapters", nargs="*", help="chapter names (default: every chapter in _toc.yml)")
    run.add_argument("--profile", default=os.environ.get("PROFILE", "quick"), help="smoke, quick or paper")
    run.add_argument("--out", help="output folder (default book/executed)")
    run.add_argument("-q", "--quiet", dest="verbose", action="store_false", help="do not stream cell output")
    run.add_argument("--jobs", type=int, default=1,
                     help="chapters executed at once, each kernel with cores / jobs threads (default 1); the "
                          "findings page still runs last, alone")
    run.add_argument("--force", action="store_true",
                     help="execute every chapter, even one whose inputs have not changed since it was executed")
    run.add_argument("--build", action="store_true",
                     help="then re-render the HTML book (Sphinx re-reads only the changed pages)")
    add_param_option(run)
    run.set_defaults(handler=command_run)

    book = commands.add_parser("book", help="what `make book` runs: [import a bundle,] sweep, execute, build, "
                                            "with one summary")
    book.add_argument("--profile", default=os.environ.get("PROFILE", "quick"), help="smoke, quick or paper")
    book.add_argument("--workers", type=int, help="training workers and chapters executed at once (default: 1, "
                                                 "in this process)")
    book.add_argument("--bundle", help="import this bundle (`store export`) into the store first")
    book.add_argument("--repository", default="", help="GitHub URL of the book's repository (see `build`)")
    book.set_defaults(handler=command_book)

    build = commands.add_parser("build", help="build the HTML book with warnings as errors")
    build.add_argument("--dir", default=str(PROJECT_ROOT), help="book root holding _config.yml")
    build.add_argument("--repository", default="",
                       help="GitHub URL of the book's repository (default $MIA_BOOK_REPOSITORY); without it the "
                            "repository, issue, edit and launch buttons are left out")
    build.add_argument("--pdf", action="store_true",
                       help="build the PDF (_build/latex/book.pdf) through Jupyter Book's LaTeX route instead of HTML")
    build.add_argument("--branch", default=os.environ.get("MIA_BOOK_BRANCH", "main"),
                       help="the repository's branch the buttons open (default $MIA_BOOK_BRANCH or main)")
    build.set_defaults(handler=command_build)

    train = commands.add_parser("train", help="train one configuration into the store")
    train.add_argument("--profile", default="quick")
    train.add_argument("--dataset", default="fmnist")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--store", help="store folder (default $MIA_STORE or .mia_store)")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_param_option(train)
    train.set_defaults(handler=command_train)

    stamp = commands.add_parser("stamp", help="write the book's repository URL into the notebooks' install cell")
    stamp.add_argument("--repository", required=True, help="GitHub URL of the book's repository")
    stamp.add_argument("--dir", default=str(PROJECT_ROOT / "notebooks"), help="folder of the source notebooks")
    stamp.set_defaults(handler=command_stamp)

    mechanisms = commands.add_parser("mechanisms", help="list the mechanisms (name, symbol, range, meaning)")
    mechanisms.set_defaults(handler=command_mechanisms)

    plan = commands.add_parser("plan", help="list every run the book needs, which are stored, and the cost of the rest")
    plan.add_argument("--profile", default=os.environ.get("PROFILE", "quick"), help="smoke, quick or paper")
    plan.add_argument("--seed", type=int, default=0)
    plan.add_argument("--store", help="store folder (default $MIA_STORE or .mia_store)")
    plan.add_argument("--chapters", help="comma-separated chapters to plan (default: every chapter in _toc.yml)")
    plan.set_defaults(handler=command_plan)

    sweep = commands.add_parser("sweep", help="train every planned run the store lacks (here or on a Dask cluster)")
    sweep.add_argument("--profile", default=os.environ.get("PROFILE", "quick"), help="smoke, quick or paper")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--retries", type=int, default=1, help="retries per failing run (default 1)")
    sweep.add_argument("--lockstep", type=int, default=1,
                       help="train up to K compatible runs together as one task (pays on a GPU; default 1)")
    sweep.add_argument("--store", help="store folder (default $MIA_STORE or .mia_store)")
    sweep.add_argument("--chapters", help="comma-separated chapters to sweep (default: every chapter in _toc.yml)")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="start a local Dask cluster of N worker processes")
    where.add_argument("--cluster", metavar="ADDRESS", help="use the Dask scheduler at ADDRESS (tcp://host:port)")
    sweep.add_argument("--threads", type=int,
                       help="torch threads per run (default: cores / workers on a local cluster; else unchanged)")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--log", help="with --workers: the file the local cluster's and its workers' output goes to "
                                     "(default: the console)")
    sweep.set_defaults(handler=command_sweep)

    params = commands.add_parser("params", help="list a chapter's parameters")
    params.add_argument("chapter", nargs="?")
    params.add_argument("--markdown", action="store_true",
                        help="print every chapter's parameters as Markdown tables (the re-run page's source)")
    params.add_argument("--update", metavar="PAGE",
                        help="rewrite the parameter tables between the markers of PAGE (book/rerun.md)")
    params.set_defaults(handler=command_params)

    store = commands.add_parser("store", help="export or import a bundle of stored runs (to hand them to a class)")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    export = store_commands.add_parser("export", help="write the runs a profile's book reads into one verified file")
    export.add_argument("file", help="the bundle to write (e.g. quick.tar.gz)")
    export.add_argument("--profile", default=os.environ.get("PROFILE", "quick"), help="smoke, quick or paper")
    export.add_argument("--store", help="store folder (default $MIA_STORE or .mia_store)")
    export.add_argument("--allow-missing", action="store_true",
                        help="bundle the planned runs the store has even when some are missing")
    export.set_defaults(handler=command_store_export)
    load = store_commands.add_parser("import", help="verify a bundle in full, then add its entries to the store")
    load.add_argument("file", help="a bundle written by `store export`")
    load.add_argument("--store", help="store folder (default $MIA_STORE or .mia_store)")
    load.set_defaults(handler=command_store_import)

    clean = commands.add_parser("clean", help="remove generated files")
    clean.add_argument("--store", action="store_true", help="also remove the result store")
    clean.set_defaults(handler=command_clean)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[mia_utils] %(message)s", stream=sys.stderr)
    try:
        return args.handler(args)
    except (ValueError, DataUnavailableError) as error:  # a user's mistake or missing data
        print(f"error: {error}", file=sys.stderr)
        return 2

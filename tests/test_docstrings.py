"""Every public function of the package with five or more parameters says what each one is: its
docstring has a Google-style ``Args:`` section with one entry per parameter (issue 16)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import mia_utils

PACKAGE = Path(mia_utils.__file__).resolve().parent

#: Functions (methods and nested functions included) with at least this many parameters, not
#: counting ``self`` / ``cls`` / ``*args`` / ``**kwargs``, must document each one.
MIN_PARAMETERS = 5

#: (path relative to the package, function name) -> why it may lack its ``Args:`` section. Only
#: functions in files that another piece of work owns may be listed; remove an entry as soon as
#: its function is documented (the test then holds it to the rule). Empty: nothing is exempt.
EXEMPT: dict[tuple[str, str], str] = {}

#: One entry of an ``Args:`` section: ``name:`` or ``name (type):``, also ``*args:`` / ``**kwargs:``.
_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:(?:\s|$)")


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The parameters that must be documented: positional(-only) and keyword-only ones, less
    ``self`` and ``cls``."""
    arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
    return [a.arg for a in arguments if a.arg not in ("self", "cls")]


def documented_arguments(docstring: str | None) -> set[str] | None:
    """The names the ``Args:`` section of ``docstring`` documents (``*``s stripped), or None when
    it has no such section. The section runs from a line ``Args:`` to the next line indented no
    deeper than it; its entries are the lines at the first entry's indentation."""
    lines = (docstring or "").expandtabs().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if start is None:
        return None
    header_indent = len(lines[start]) - len(lines[start].lstrip())
    names, entry_indent = set(), None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= header_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        if indent == entry_indent:
            match = _ENTRY.match(line.strip())
            if match:
                names.add(match.group(1).lstrip("*"))
    return names


def argument_problems(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """What is wrong with ``node``'s ``Args:`` section, in words (empty: nothing, or the function
    has fewer than :data:`MIN_PARAMETERS` parameters)."""
    wanted = parameters(node)
    if len(wanted) < MIN_PARAMETERS:
        return []
    documented = documented_arguments(ast.get_docstring(node))
    if documented is None:
        return [f"no Args: section for its {len(wanted)} parameters"]
    problems = [f"Args: does not name {name!r}" for name in wanted if name not in documented]
    allowed = set(wanted) | {a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None}
    problems += [f"Args: names {name!r}, which is not a parameter" for name in sorted(documented - allowed)]
    return problems


def public_functions(tree: ast.AST):
    """Every function and method of ``tree`` (nested ones too) whose name does not start with ``_``."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node


def package_problems() -> dict[tuple[str, str, int], list[str]]:
    """(module path, function name, line) -> its problems, over the whole package, less :data:`EXEMPT`."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for node in public_functions(ast.parse(path.read_text(), filename=str(path))):
            problems = argument_problems(node)
            if problems and (relative, node.name) not in EXEMPT:
                found[(relative, node.name, node.lineno)] = problems
    return found


def test_every_public_function_with_many_parameters_documents_each_one():
    problems = package_problems()
    assert not problems, "\n".join(f"mia_utils/{path}:{line} {name}: {'; '.join(p)}"
                                   for (path, name, line), p in problems.items())


def test_exemptions_are_still_needed():
    """An exempted function that is now documented (or gone) must leave :data:`EXEMPT`."""
    needing = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for node in public_functions(ast.parse(path.read_text())):
            if argument_problems(node):
                needing.add((relative, node.name))
    assert not set(EXEMPT) - needing, f"documented or gone, remove from EXEMPT: {sorted(set(EXEMPT) - needing)}"


def _function(source: str) -> ast.FunctionDef:
    return next(public_functions(ast.parse(source)))


def test_the_checker_flags_a_missing_parameter_and_accepts_a_complete_section():
    complete = '''
def attack(self, logits, labels, step, max_steps=100, *, seed=0, **kwargs):
    """Summary.

    Args:
        logits: float tensor (N, classes).
        labels (int tensor): (N,), with a continuation line
            that says more.
        step: PGD step in pixel-range units (1/1000 = 0.001).
        max_steps: the budget.
        seed: the seed.
        **kwargs: passed on.

    Returns:
        nothing: a line that looks like an entry outside the section.
    """
'''
    assert argument_problems(_function(complete)) == []
    missing = complete.replace("        max_steps: the budget.\n", "")
    assert argument_problems(_function(missing)) == ["Args: does not name 'max_steps'"]
    # a name only in the Returns section, or only in a continuation line, does not count
    hidden = complete.replace("        seed: the seed.\n", "").replace("that says more.", "seed: the seed.")
    assert argument_problems(_function(hidden.replace("nothing:", "seed:"))) == ["Args: does not name 'seed'"]
    stale = complete.replace("        seed: the seed.\n", "        seed: the seed.\n        sead: a typo.\n")
    assert argument_problems(_function(stale)) == ["Args: names 'sead', which is not a parameter"]
    no_section = 'def f(a, b, c, d, e):\n    """Prose that mentions a, b, c, d and e."""\n'
    assert argument_problems(_function(no_section)) == ["no Args: section for its 5 parameters"]
    few = 'def f(self, a, b, c, d):\n    """Four parameters besides self: no section needed."""\n'
    assert argument_problems(_function(few)) == []

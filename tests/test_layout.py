"""The package's structure: no import circle anywhere (module-level or inside functions), and the
mechanism registry above its plug-ins."""

from __future__ import annotations

import ast
from pathlib import Path

import mia_utils
from mia_utils.defenses import REGISTRY, base, dp, mmd, recipe

PACKAGE = Path(mia_utils.__file__).resolve().parent


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at any depth of its code (lazy imports too)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("mia_utils", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        modules[name] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mia_utils"):
                submodules = [f"{node.module}.{alias.name}" for alias in node.names
                              if f"{node.module}.{alias.name}" in modules]
                # ``from package import submodule`` imports the submodule; the package's own names only
                # when something else is taken from it
                targets = submodules + ([node.module] if len(submodules) < len(node.names) else [])
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert "mia_utils.defenses.registry" in graph and graph["mia_utils.defenses.registry"]
    assert circles(graph) == []


def test_mechanism_modules_import_only_the_base_of_the_defenses():
    graph = import_graph()
    for module in ("mia_utils.defenses.recipe", "mia_utils.defenses.dp", "mia_utils.defenses.mmd"):
        defenses = {m for m in graph[module] if m.startswith("mia_utils.defenses")}
        assert defenses <= {"mia_utils.defenses.base"}, module


def test_registry_lists_every_mechanism_class_of_the_package():
    classes = {cls for module in (recipe, dp, mmd) for cls in vars(module).values()
               if isinstance(cls, type) and issubclass(cls, base.Mechanism) and cls is not base.Mechanism
               and cls.__module__ == module.__name__}
    assert classes == set(REGISTRY.values())
    assert all(REGISTRY[cls.name] is cls for cls in classes)


def test_package_docstring_names_every_module():
    names = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    names |= {path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    missing = [name for name in sorted(names) if f"``{name}``" not in mia_utils.__doc__]
    assert missing == []


def test_each_subpackage_docstring_names_each_of_its_modules():
    import importlib

    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        package = importlib.import_module(f"mia_utils.{folder.name}")
        missing = [path.stem for path in sorted(folder.glob("*.py"))
                   if path.stem != "__init__" and f"mia_utils.{folder.name}.{path.stem}`" not in package.__doc__]
        assert missing == [], folder.name


#: The package's levels, bottom up: a module may import from its own level and the ones before it.
LEVELS = ("core", "attacks", "book", "cli")


def level(module: str) -> int:
    """The level of a module of the package (``mia_utils.attacks.lira`` -> 1)."""
    parts = module.split(".")
    top = {"__main__": "cli"}.get(parts[1], parts[1]) if len(parts) > 1 else ""
    return LEVELS.index(top) if top in LEVELS else 0


def test_levels_finds_an_upward_import():
    graph = {"mia_utils.data": {"mia_utils.book.plan"}, "mia_utils.book.plan": {"mia_utils.data"}}
    assert upward_imports(graph) == [("mia_utils.data", "mia_utils.book.plan")]


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (importer, imported) pair where a module imports from a higher level."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if level(b) > level(a))


def test_no_module_imports_from_a_higher_level():
    graph = import_graph()
    assert {level(m) for m in graph} == {0, 1, 2, 3}
    assert upward_imports(graph) == []

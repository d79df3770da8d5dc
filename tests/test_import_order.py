"""Imports point down the layer order of docs/architecture.md's "Module layers" table, never up.

Every module under ``hgq_chip/`` is parsed with ``ast`` (nothing is imported, so this runs in
well under a second). An import is any of: ``import hgq_chip.x``, ``from hgq_chip.x import y``,
relative ``from ..x import y`` (module level, inside functions, under ``TYPE_CHECKING``),
``importlib.import_module("hgq_chip.x")`` with a literal name, and the name tables handed to
``lazy_exports`` (``_EXPORTS`` / ``_SUBMODULES``), which import on first attribute access.
``from pkg import name`` counts as importing ``pkg.name`` when that is a module.

A module may import its own layer or a lower one. The layer table is read from the docs page,
so the documented order and the checked order cannot drift apart. Inside one package (a folder
of ``hgq_chip/`` with its subfolders, or the top-level modules) the imports form no cycle, and
the layer families (``conversion/rules/``) import no conversion driver.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hgq_chip"
ARCHITECTURE = REPO / "docs" / "architecture.md"

# Upward imports that are accepted, as (importing module, imported module) -> reason.
# Empty on purpose: a new entry needs a reason a reviewer accepts, and a stale entry fails
# test_allow_list_has_no_stale_entries.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def architecture_table(text: str) -> dict[str, int]:
    """``{"fixed/": 1, "cost.py": 4, ...}`` from the "Module layers" table of docs/architecture.md."""
    section = re.search(r"^## Module layers\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/architecture.md has no '## Module layers' section followed by another '## ' section"
    table = {}
    for rank, cell in re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", section.group(1), re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", cell):
            assert name not in table, f"{name} is listed twice in the Architecture table"
            table[name] = int(rank)
    assert table, "the Architecture section has no layer table"
    return table


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """``{"hgq_chip.fixed.format": path, "hgq_chip.fixed": path/__init__.py, ...}``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """The layer of a dotted module name: its top-level package folder or its own file."""
    parts = module.split(".")
    assert parts[0] == "hgq_chip", module
    if len(parts) == 1:
        return table.get("__init__.py")
    if f"{parts[1]}/" in table:
        return table[f"{parts[1]}/"]
    if len(parts) == 2:
        return table.get(f"{parts[1]}.py")
    return None


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _literal_names(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level ``NAME = {...}`` / ``NAME = (...)`` of string literals: dict values, tuple items."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            values = node.value.values if isinstance(node.value, ast.Dict) else getattr(node.value, "elts", [])
            strings = [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = strings
    return found


def imports_of(module: str, source: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """``(line, imported hgq_chip module)`` for every import in ``source`` (see module docstring)."""
    tree = ast.parse(source)
    literals = _literal_names(tree)
    found = []

    def add(line: int, target: str, names=()):
        if target.split(".")[0] != "hgq_chip":
            return
        submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in known]
        found.extend((line, sub) for sub in submodules)
        if not submodules or len(submodules) < len(names):
            found.append((line, target))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module) if node.level else node.module
            add(node.lineno, target, [alias.name for alias in node.names])
        elif isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            args = node.args
            if called == "import_module" and args and isinstance(args[0], ast.Constant):
                name = args[0].value
                if isinstance(name, str) and name.startswith("."):
                    name = _resolve(module, is_package, len(name) - len(name.lstrip(".")), name.lstrip(".") or None)
                add(node.lineno, name)
            elif called == "lazy_exports":
                for position, arg in enumerate(args[1:3]):
                    for name in literals.get(getattr(arg, "id", None), []):
                        relative = name if position == 0 else f".{name}"
                        level = len(relative) - len(relative.lstrip("."))
                        add(node.lineno, _resolve(module, is_package, level, relative.lstrip(".") or None))
    return found


def upward_imports(table: dict[str, int], sources: dict[str, tuple[str, bool]]) -> list[tuple[str, int, str, int, int]]:
    """``(module, line, imported, its layer, imported layer)`` for every import of a higher layer."""
    known = set(sources)
    upward = []
    for module, (source, is_package) in sorted(sources.items()):
        own = layer_of(module, table)
        for line, target in imports_of(module, source, is_package, known):
            other = layer_of(target, table)
            if other is not None and own is not None and other > own:
                upward.append((module, line, target, own, other))
    return upward


def _package_sources() -> dict[str, tuple[str, bool]]:
    return {name: (path.read_text(), path.name == "__init__.py") for name, path in module_names().items()}


@pytest.fixture(scope="module")
def table():
    return architecture_table(ARCHITECTURE.read_text())


def test_every_module_has_a_layer_and_every_listed_name_exists(table):
    unplaced = [name for name in module_names() if layer_of(name, table) is None]
    assert not unplaced, f"add these modules to docs/architecture.md's Module layers table: {unplaced}"
    missing = [name for name in table if not (PACKAGE / name).exists()]
    assert not missing, f"docs/architecture.md's Module layers table lists names that do not exist under hgq_chip/: {missing}"


def test_no_module_imports_a_higher_layer(table):
    upward = [u for u in upward_imports(table, _package_sources()) if (u[0], u[2]) not in ALLOWED_UPWARD]
    assert not upward, "upward imports (move the shared piece down instead):\n" + "\n".join(
        f"  {module}:{line} imports {target} (layer {own} -> {other})" for module, line, target, own, other in upward
    )


def test_allow_list_has_no_stale_entries(table):
    edges = {(u[0], u[2]) for u in upward_imports(table, _package_sources())}
    stale = [edge for edge in ALLOWED_UPWARD if edge not in edges]
    assert not stale, f"remove these entries from ALLOWED_UPWARD, the imports are gone: {stale}"


def test_every_imported_hgq_chip_module_exists():
    sources = _package_sources()
    known = set(sources)
    unknown = [(module, line, target) for module, (source, is_package) in sources.items()
               for line, target in imports_of(module, source, is_package, known) if target not in known]
    assert not unknown, f"imports of modules that do not exist (the layer check cannot see them): {unknown}"


def package_of(module: str, sources: dict[str, tuple[str, bool]]) -> str:
    """The package whose cycles are checked together: ``hgq_chip.<folder>`` for a module under a
    folder of ``hgq_chip/`` (subfolders included), ``hgq_chip`` for the top-level modules."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and sources[module][1]):
        return ".".join(parts[:2])
    return "hgq_chip"


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """``{module: modules it imports}`` (every kind of import, module level and inside functions)."""
    known = set(sources)
    return {module: {target for _, target in imports_of(module, source, is_package, known)
                     if target in known and target != module}
            for module, (source, is_package) in sources.items()}


def cycles_within_packages(sources: dict[str, tuple[str, bool]]) -> list[list[str]]:
    """Every strongly connected component of more than one module among the imports between
    modules of one package (Tarjan's algorithm, iterative), sorted."""
    graph = import_graph(sources)
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def edges(module):
        return sorted(t for t in graph[module] if package_of(t, sources) == package_of(module, sources))

    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(edges(root)))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            module, successors = work[-1]
            for target in successors:
                if target not in index:
                    index[target] = low[target] = counter[0]
                    counter[0] += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges(target))))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def test_no_import_cycle_inside_a_package():
    cycles = cycles_within_packages(_package_sources())
    assert not cycles, "import cycles inside a package (move the shared piece into a leaf module):\n" + "\n".join(
        "  " + " <-> ".join(cycle) for cycle in cycles)


# Modules of conversion/ that run the families; a family (conversion/rules/*) imports none of them.
CONVERSION_DRIVERS = {"precision", "hls_handlers", "layer_options", "stream", "project", "facts", "reports",
                      "verification", "csim", "api"}


def test_families_import_no_driver():
    sources = _package_sources()
    known = set(sources)
    bad = [(module, line, target) for module, (source, is_package) in sources.items()
           if module.startswith("hgq_chip.conversion.rules")
           for line, target in imports_of(module, source, is_package, known)
           if target.startswith("hgq_chip.conversion.") and target.split(".")[2] in CONVERSION_DRIVERS]
    assert not bad, f"families import drivers (use conversion/family.py and rules/_stages.py): {bad}"


def test_the_cycle_finder_finds_function_level_cycles_within_a_package_only():
    sources = {
        "hgq_chip": ("", True),
        "hgq_chip.api": ("from .conversion import b\n", False),
        "hgq_chip.conversion": ("", True),
        "hgq_chip.conversion.a": ("from . import b\n", False),
        "hgq_chip.conversion.b": ("def f():\n    from .rules import c\n", False),
        "hgq_chip.conversion.rules": ("", True),
        "hgq_chip.conversion.rules.c": ("from ..a import x\n", False),
        "hgq_chip.conversion.d": ("from ..api import y\n", False),  # a cycle across packages: not counted
    }
    assert cycles_within_packages(sources) == [
        ["hgq_chip.conversion.a", "hgq_chip.conversion.b", "hgq_chip.conversion.rules.c"]]
    sources["hgq_chip.conversion.rules.c"] = ("", False)
    assert cycles_within_packages(sources) == []


FAKE_TABLE = {"__init__.py": 10, "errors.py": 0, "fixed/": 1, "api.py": 10, "cli.py": 12, "report/": 8}
FAKE_SOURCES = {
    "hgq_chip": ("", True),
    "hgq_chip.errors": ("", False),
    "hgq_chip.api": ("", False),
    "hgq_chip.cli": ("", False),
    "hgq_chip.report": ("", True),
    "hgq_chip.report.page": ("", False),
    "hgq_chip.fixed": (("from .._lazy import lazy_exports\n_EXPORTS = {'x': '..report.page'}\n"
                        "__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)\n"), True),
    "hgq_chip.fixed.format": ((
        "import importlib\nfrom ..errors import X\nfrom . import hls\n"            # downward, same layer: fine
        "def g():\n    from ..api import convert\n"                                    # function level, relative
        "import hgq_chip.cli\n"                                                        # absolute
        "from hgq_chip import report\n"                                                # submodule via from-import
        "importlib.import_module('hgq_chip.report.page')\n"                            # dynamic, literal name
        "if False:\n    from hgq_chip import convert\n"                                # the root package
    ), False),
    "hgq_chip.fixed.hls": ("", False),
}


def test_the_checker_finds_every_kind_of_upward_import():
    found = {(module, target) for module, _, target, _, _ in upward_imports(FAKE_TABLE, FAKE_SOURCES)}
    assert found == {
        ("hgq_chip.fixed.format", "hgq_chip.api"),
        ("hgq_chip.fixed.format", "hgq_chip.cli"),
        ("hgq_chip.fixed.format", "hgq_chip.report"),
        ("hgq_chip.fixed.format", "hgq_chip.report.page"),
        ("hgq_chip.fixed.format", "hgq_chip"),
        ("hgq_chip.fixed", "hgq_chip.report.page"),
    }


def test_the_table_parser_reads_ranks_and_names():
    text = ("## Module layers\n\n| layer | modules |\n|---|---|\n"
            "| 0 | `errors.py` `_lazy.py` |\n| 3 | `layers/` |\n\n## Next\n")
    assert architecture_table(text) == {"errors.py": 0, "_lazy.py": 0, "layers/": 3}

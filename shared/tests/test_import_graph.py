"""flow_shared's modules import one another without a cycle (not even one hidden in a
function body), so any of them can be imported first and each can be read alone."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import flow_shared

PACKAGE = "flow_shared"
PACKAGE_DIR = Path(flow_shared.__file__).parent


def _module_name(path: Path, package_dir: Path, package: str) -> str:
    parts = path.relative_to(package_dir).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _RuntimeImports(ast.NodeVisitor):
    """Every module an import statement names, wherever it sits (functions included),
    except under `if TYPE_CHECKING:`, which never runs."""

    def __init__(self, importer: str, is_package: bool) -> None:
        self.importer_package = importer if is_package else importer.rpartition(".")[0]
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.importer_package.rsplit(".", node.level - 1)[0]
            base = f"{anchor}.{base}" if base else anchor
        self.names.add(base)
        # `from pkg import module` imports the module too.
        self.names.update(f"{base}.{alias.name}" for alias in node.names)


def import_graph(package_dir: Path, package: str) -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports at run time."""
    paths = {_module_name(path, package_dir, package): path for path in package_dir.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        visitor = _RuntimeImports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        graph[module] = {name for name in visitor.names if name in paths and name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        cycle: list[str] = error.args[1]
        return cycle
    return None


def test_the_graph_sees_imports_inside_functions(tmp_path: Path) -> None:
    # The shape of the errors <-> security cycle this test exists for, and an import
    # that only type checkers see.
    sources = {
        "__init__.py": "",
        "a.py": "from pkg.b import g\n\ndef f():\n    from pkg import b\n",
        "b.py": "def g():\n    from . import a\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
    }
    for name, source in sources.items():
        (tmp_path / name).write_text(source)

    graph = import_graph(tmp_path, "pkg")

    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg", "pkg.b"},
        "pkg.b": {"pkg", "pkg.a"},
        "pkg.c": set(),
    }
    cycle = find_cycle(graph)
    assert cycle is not None
    assert set(cycle) == {"pkg.a", "pkg.b"}


def test_flow_shared_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE_DIR, PACKAGE)
    # The pair that had the cycle is really in the graph, with the edge that remains.
    assert "flow_shared.errors" in graph["flow_shared.security"]

    assert find_cycle(graph) is None

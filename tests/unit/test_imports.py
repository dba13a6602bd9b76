"""The modules of mlmagic import each other in no cycle at import time.

A cycle works until someone imports the modules in another order; this test reads every
module's top-level imports (not those under ``TYPE_CHECKING`` or inside functions, which
run later) and fails with the cycle it finds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mlmagic

PACKAGE = Path(mlmagic.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The mlmagic modules an import statement names.

    ``from a.b import c`` names the module ``a.b.c`` when there is one, else ``a.b`` (whose
    names it reads). A package's ``__init__`` that its child imports implicitly is no
    edge: the package is already being imported when the child runs.
    """
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        if node.level:
            is_package = MODULES[module].name == "__init__.py"
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        submodules = {f"{base}.{alias.name}" for alias in node.names}
        names = {m for m in submodules if m in MODULES}
        if len(names) < len(submodules):
            names.add(base)
    return {name for name in names if name in MODULES and name != module}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = set().union(*(_targets(module, n) for n in _top_level_imports(tree)))
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_stack:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in done:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_imports():
    graph = _graph()
    assert "mlmagic.targets.base" in graph["mlmagic.targets.docker"]
    assert "mlmagic.targets" in graph["mlmagic.workspace"]  # names from the package
    assert "mlmagic.run.journal" in graph["mlmagic.run.lifecycle"]  # from mlmagic.run import
    assert "mlmagic.workspace" not in graph["mlmagic.run.lifecycle"]  # TYPE_CHECKING only


def test_a_cycle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_mlmagic_imports_itself_back_at_import_time():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])

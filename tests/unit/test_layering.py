"""The code's layering, read from the source: no import cycle, services apart, one reactor.

- No module imports itself back through others (imports inside ``if TYPE_CHECKING:`` and
  ``if __name__ == "__main__":`` blocks are not dependencies and are left out; imports inside
  functions are counted: a lazy import hides a cycle, it does not remove it).
- The three services (``rpn``, ``mutuelle``, ``indicators``) never import each other; the
  wire model both ends share (``roc``) imports no other package of the project, and the
  service kit (``piano``) none of the services.
- The global reactor is reached only by the taps (``<service>/tap.py``); everything else is
  given its reactor, so that tests drive it with a strict clock.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("roc", "piano", "rpn", "mutuelle", "indicators", "tools")
SERVICES = ("rpn", "mutuelle", "indicators")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _is_guard(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` / ``typing.TYPE_CHECKING`` or ``__name__ == "__main__"``."""
    if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
        return True
    if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
        return True
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_guard(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_names(module: str, source: str) -> set[str]:
    """Every dotted name *module* imports (``from a import b`` gives ``a`` and ``a.b``)."""
    package = module if module.count(".") == 0 else module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in _imports(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        names = imported_names(module, path.read_text(encoding="utf-8"))
        graph[module] = {n for n in names if n in modules and n != module}
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of *graph* as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


MODULES = project_modules()
GRAPH = import_graph(MODULES)


def test_the_graph_is_read_from_the_source() -> None:
    assert "rpn.relay" in GRAPH
    assert "rpn.exchange" in GRAPH["rpn.relay"]
    assert "rpn.routing" in GRAPH["rpn.exchange"]
    assert "roc.routing" in GRAPH["rpn.routing"] and "roc.routing" in GRAPH["mutuelle.soap"]


def test_the_cycle_finder_finds_a_cycle_and_names_it() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_guarded_and_relative_imports_are_read_as_python_does() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    import rpn.relay\n"
        "def f():\n    from roc.model import Service\n"
        'if __name__ == "__main__":\n    import mutuelle.catalogue_cli\n'
    )
    names = imported_names("rpn.exchange", source)
    assert {"rpn.sibling", "roc.model", "roc.model.Service"} <= names
    assert "rpn.relay" not in names and "mutuelle.catalogue_cli" not in names


def test_no_module_imports_itself_back() -> None:
    assert find_cycle(GRAPH) is None, f"import cycle: {' -> '.join(find_cycle(GRAPH) or [])}"


def _crossings(allowed: dict[str, set[str]]) -> list[str]:
    """Imports from a package of *allowed* to a project package it may not import."""
    project = set(PACKAGES)
    return sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if (top := module.split(".")[0]) in allowed
        and (other := target.split(".")[0]) in project
        and other != top
        and other not in allowed[top]
    )


def test_the_services_never_import_each_other_and_the_shared_packages_no_service() -> None:
    assert (
        _crossings(
            {
                "roc": set(),
                "piano": {"roc"},
                "rpn": {"roc", "piano"},
                "mutuelle": {"roc", "piano"},
                "indicators": {"roc", "piano"},
            }
        )
        == []
    )


def test_a_forbidden_import_is_seen() -> None:
    assert "rpn.exchange -> rpn.routing" not in _crossings({"rpn": set()})
    assert "rpn.routing -> roc.routing" in _crossings({"rpn": set()})


def test_only_the_taps_reach_the_global_reactor() -> None:
    reaching = sorted(
        module
        for module, path in MODULES.items()
        if module.split(".")[0] in (*SERVICES, "roc", "piano")
        and not module.endswith(".tap")
        and any(
            n == "twisted.internet.reactor"
            for n in imported_names(module, path.read_text(encoding="utf-8"))
        )
    )
    assert reaching == []

"""The layout: no import cycle between modules, and every package says what it owns and may import.

The layers themselves (which package may import which) are import-linter's contracts in
pyproject.toml, run by .ci/run; this checks what those contracts cannot: a cycle through
modules of different top-level packages (``stream.worker.main -> agents -> stream.worker``
is fine only while no module of the worker imports the stages back).
"""

from __future__ import annotations

import importlib
import pkgutil

import grimp

ROOTS = ("schemas", "alerts", "agents", "stream")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: every strongly connected component of more than one module (a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_tarjan_finds_a_cycle_and_only_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_through_any_chain() -> None:
    # grimp counts imports inside functions and under TYPE_CHECKING as well
    g = grimp.build_graph(*ROOTS, exclude_type_checking_imports=False)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    # a package's __init__ naming its own modules is not a dependency between two ideas
    graph = {m: {w for w in ws if not w.startswith(m + ".")} for m, ws in graph.items()}
    assert strongly_connected(graph) == []


def test_every_package_says_what_it_owns_and_what_it_may_import() -> None:
    missing = []
    for root in ROOTS:
        package = importlib.import_module(root)
        names = [root] + [
            info.name for info in pkgutil.walk_packages(package.__path__, root + ".") if info.ispkg
        ]
        for name in names:
            doc = importlib.import_module(name).__doc__ or ""
            # top-level packages and processes say what they may import; every package says something
            if (name.count(".") <= 1 and "May import" not in doc) or not doc.strip():
                missing.append(name)
    assert missing == []

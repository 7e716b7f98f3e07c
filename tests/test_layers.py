"""The project's own import graph, function-local and TYPE_CHECKING imports included: no cycles, and no module
importing from a layer above its own.

Layers, bottom to top: `penny` (records, errors, Settings) <- `retrieval` <- `ingest`, `answer` <- `eval` <- `api`.
`ingest` and `answer` stand side by side and import neither each other; `eval` is a library (metrics, runs,
reports, benchmark scripts) that imports no UI; `api` is the shell (FastAPI app, the `penny` command).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"penny": 0, "retrieval": 1, "ingest": 2, "answer": 2, "eval": 3, "api": 4}


def project_modules() -> dict[str, Path]:
    modules = {"penny": REPO / "penny.py"}
    for package in LAYERS:
        if package == "penny":
            continue
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name `module` imports anywhere in its body; `from a import b` names a.b when b is a module."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        targets = {name for name in imported_names(module, path) if name in modules}
        # `from answer import external` imports answer.external; it names the package only to reach the module
        graph[module] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)} - {module}
        graph[module] |= {t for t in targets if t == module}  # a module importing itself stays visible
    return graph


def layer_of(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_local_and_type_checking_imports():
    graph = import_graph()
    assert "api.cli_eval" in graph["api.cli"]  # a top-level import
    assert "eval.runner" in graph["api.cli_eval"]  # imported inside the command function
    assert "answer.external" in graph["answer.router"]  # `from answer import external`
    assert set(graph) >= {"penny", "retrieval.catalogue", "retrieval.migrations.env", "api.routes.openai"}


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_nothing_imports_from_a_higher_or_sibling_layer():
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if module.split(".")[0] != target.split(".")[0] and layer_of(target) >= layer_of(module)
    ]
    assert upward == []

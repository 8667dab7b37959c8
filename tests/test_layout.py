"""The package's shape, kept by a test: short modules, imports that flow one way, no Prefect.

Every `feedletter.*` import that runs counts, including those inside functions: a lazy import hides a
circle from the interpreter but not from a reader. Imports under `if TYPE_CHECKING:` name types only and
never run, so they are left out.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "feedletter"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def syntax(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The feedletter modules that `path` imports, resolved to modules that exist."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    tree = syntax(path)
    type_only = {id(inner) for node in ast.walk(tree)
                 if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for stmt in node.body for inner in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            # `from feedletter.x import name` names a module when one exists, else a thing in feedletter.x.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(path, name, known) for name, path in found.items()}


def test_no_module_is_over_the_line_limit() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_imports_have_no_circle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_library_does_not_import_prefect() -> None:
    users = []
    for name, path in modules().items():
        for node in ast.walk(syntax(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "prefect" or n.startswith("prefect.") for n in names):
                users.append(name)
    assert not users, f"library modules importing prefect (flows/ is where it belongs): {users}"


@pytest.mark.parametrize("stage", ["ingest", "stories", "issue", "deliver", "publish", "web", "text"])
def test_every_stage_is_one_package_with_a_public_surface(stage: str) -> None:
    init = PACKAGE / stage / "__init__.py"
    assert init.is_file(), f"feedletter/{stage} is not a package"
    assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init} says nothing of itself"

"""The package's layout holds: no import cycles, dependencies pointing one way (data <- nets <- accel
<- inference <- evaluation <- training <- cli), a docstring on every module, no module over ~300 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import roadseg

ROOT = Path(roadseg.__file__).resolve().parent
# A package may import only the ones after it in its entry (top-level foundations are always allowed).
FOUNDATIONS = {"errors", "classes", "config", "device", "checkpoint", "safety", "nets", "data"}
ALLOWED = {
    "data": {"errors", "classes", "config", "safety"},
    "nets": {"errors"},
    "accel": {"errors", "nets"},
    "inference": FOUNDATIONS | {"accel"},
    "evaluation": FOUNDATIONS | {"inference"},
    "training": FOUNDATIONS | {"accel", "evaluation", "inference"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every roadseg module `path` imports, at any depth (lazy imports inside functions too)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports only for type checkers never run
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            if not target.startswith("roadseg"):
                continue
            for alias in node.names:  # `from . import x` may name a module
                sub = f"{target}.{alias.name}"
                found.add(sub if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                          or (ROOT.parent / sub.replace(".", "/")).is_dir() else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("roadseg")}
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in ROOT.rglob("*.py")}


def test_no_import_cycles():
    g = graph()
    # a package's __init__ importing its own modules is not a cycle of concern; modules importing
    # their package's __init__ are: keep both directions in the graph
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in g.get(node, ()):
            if nxt not in g:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                parent_init = all(a.startswith(b) or b.startswith(a) for a, b in zip(cycle, cycle[1:]))
                assert parent_init, f"import cycle: {' -> '.join(cycle)}"
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2
    for node in g:
        if node not in state:
            visit(node)


def test_dependencies_point_one_way():
    for module, deps in graph().items():
        parts = module.split(".")
        if len(parts) < 3 or parts[1] not in ALLOWED:
            continue
        for dep in deps:
            top = dep.split(".")[1] if "." in dep else ""
            if top and top != parts[1]:
                assert top in ALLOWED[parts[1]], f"{module} imports {dep}: {parts[1]}/ may import {sorted(ALLOWED[parts[1]])}"


def test_every_module_says_what_it_holds_and_stays_short():
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        if path.name != "__main__.py":
            assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} has no module docstring"
        assert len(path.read_text().splitlines()) <= 320, f"{path.relative_to(ROOT)} is over 300 lines"

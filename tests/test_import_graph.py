"""The package arrows point downward and no modules import each other in a circle (static: ast only)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dcbench", "pretrain", "evaluators", "adapters", "reports", "benchmarks")
# Fixed on the detection branch of issue 13 (a leaf job module); empty this when it is merged.
def _modules() -> dict[str, Path]:
    mods = {"run_all": REPO / "run_all.py"}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imported(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                package = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{package}.{base}" if base else package
            found.update([base, *(f"{base}.{a.name}" for a in node.names)])
    with_parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 2)}
    return {m for m in with_parents if m in mods and m != name and not name.startswith(m + ".")}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imported(name, path, mods) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_circle() -> None:
    assert _cycles(_graph()) == []


def test_arrows_point_downward() -> None:
    allowed = {  # package -> project packages it may import
        "dcbench": set(),
        "adapters": {"dcbench"},
        "pretrain": {"dcbench", "adapters"},
        "evaluators": {"dcbench", "adapters", "evaluators"},
        "reports": {"dcbench", "evaluators"},
    }
    wrong = []
    for name, deps in _graph().items():
        top = name.split(".")[0]
        for dep in deps:
            if top in allowed and dep.split(".")[0] not in allowed[top] | {top}:
                wrong.append(f"{name} -> {dep}")
            # a family's `__main__` is a command-line entry (like run_all), not protocol code
            protocol = (name.startswith("evaluators.") and not name.startswith("evaluators.suite")
                        and not name.endswith(".__main__"))
            if protocol and dep.startswith("evaluators.suite"):
                wrong.append(f"{name} -> {dep} (a protocol must not know the suite)")
    assert wrong == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

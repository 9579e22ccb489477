"""No import cycle anywhere in vaegan: the graph of every module's imports, module-level and inside functions alike
(``if TYPE_CHECKING:`` blocks excluded), has no circle; and the registry stays a leaf.

An edge ``a -> b`` is an import in ``a`` of the vaegan module ``b``: ``from .pkg import name`` points at the
submodule ``pkg.name`` when there is one, else at the package ``pkg`` (its ``__init__``). The parent packages that
Python runs before any submodule are not edges: every package imports its own modules, so they would make a circle
of every package.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import vaegan

SRC = Path(vaegan.__file__).parent


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file of every module of the package at ``root`` (packages by their ``__init__``)."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    return {id(n) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}


def imports_of(module: str, files: dict[str, Path]) -> dict[str, int]:
    """The package modules ``module`` imports at run time -> the line of the first such import."""
    path = files[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in files and target != module:
            found.setdefault(target, line)

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                add(submodule if submodule in files else target, node.lineno)
    return found


def import_graph(root: Path = SRC) -> dict[str, dict[str, int]]:
    files = module_files(root)
    return {module: imports_of(module, files) for module in files}


def import_groups(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """The groups of modules that import each other in a circle (strongly connected, more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(start: str) -> None:  # Tarjan's strongly connected components, iteratively
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    work.append((target, iter(graph[target])))
                    break
                if target in stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def shortest_circle(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """The shortest circle ``[a, b, ..., a]`` of ``group`` (from its first module in sorted order)."""
    circle = min((_circle_through(graph, group, module) for module in sorted(group)), key=len)
    first = circle.index(min(circle[:-1]))
    return [*circle[first:-1], *circle[:first], circle[first]]


def _circle_through(graph: dict[str, dict[str, int]], group: set[str], start: str) -> list[str]:
    paths = {start: [start]}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target == start:
                return [*paths[node], start]
            if target in group and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"{start} is on no circle of {sorted(group)}")


def describe(circle: list[str], graph: dict[str, dict[str, int]], files: dict[str, Path]) -> str:
    steps = [f"{a} -> {b} (line {graph[a][b]} of {files[a].relative_to(SRC.parent)})"
             for a, b in zip(circle, circle[1:], strict=False)]
    return " -> ".join(circle) + ":\n    " + "\n    ".join(steps)


def test_no_import_cycle_anywhere():
    graph, files = import_graph(), module_files(SRC)
    groups = import_groups(graph)
    assert not groups, "modules importing each other in a circle (module- or function-level imports):\n" + "\n".join(
        f"{sorted(group)}, e.g. {describe(shortest_circle(graph, group), graph, files)}" for group in groups)


def test_the_graph_sees_function_level_imports_and_submodules(tmp_path):
    """The checker itself: a circle through a function-level import and a ``from . import module`` is found; one
    closed only under ``if TYPE_CHECKING:`` or through a name of a package ``__init__`` is not a submodule edge."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .sub import b\nVALUE = 1\n")
    (pkg / "sub" / "__init__.py").write_text("NAME = 1\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
                              "from .sub import NAME\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b": 1} and graph["pkg.sub.b"] == {"pkg.c": 2}
    assert graph["pkg.c"] == {"pkg.sub": 4}  # NAME is not a module: the edge goes to the package
    assert import_groups(graph) == []
    (pkg / "c.py").write_text("def g():\n    from .a import VALUE\n")
    graph = import_graph(pkg)
    [group] = import_groups(graph)
    assert shortest_circle(graph, group) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]


def test_registry_is_a_leaf_and_cards_know_no_model_class():
    graph = import_graph()
    assert {m for m in graph["vaegan.models.registry"] if m.startswith("vaegan.models")} <= {
        "vaegan.models.validation"}
    assert not {m for m in graph["vaegan.cards"] if m.startswith("vaegan.models")}
    assert not {"vaegan.models.auto", "vaegan.hub"} & set(graph["vaegan.models.base"])
    assert "vaegan.models.base" in graph["vaegan.models.auto"]


def test_cards_names_are_still_importable_from_hub():
    from vaegan import cards, hub

    assert hub.write_model_card is cards.write_model_card and hub.dataset_tag is cards.dataset_tag

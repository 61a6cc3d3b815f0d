"""Imports in the AMQP adapter run one way: server -> connection -> channel
-> consumer / publish / declare. A lower piece that must reach up holds a
protocol from dovecote/amqp/interfaces.py; importing the upper module, even
under TYPE_CHECKING only, counts as a circle here."""

from __future__ import annotations

import ast
from pathlib import Path

import dovecote.amqp

PACKAGE = Path(dovecote.amqp.__file__).parent
PREFIX = "dovecote.amqp."

# Higher imports lower, never the other way round (modules of one rank may
# import each other as long as there is no circle).
RANK = {
    "server": 5,
    "connection": 4,
    "settling": 2,
    "handshake": 3,
    "channel": 3,
    "declare": 2,
    "publish": 2,
    "consumer": 2,
    "interfaces": 1,
}


def module_name(path: Path) -> str:
    """The node a file stands for: a module, or a subpackage as one node."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def imported(tree: ast.AST) -> set[str]:
    """Modules of the package a file imports, anywhere (TYPE_CHECKING blocks,
    functions) and in any form."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "dovecote.amqp":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith(PREFIX):
                found.add(node.module.removeprefix(PREFIX).split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PREFIX):
                    found.add(alias.name.removeprefix(PREFIX).split(".")[0])
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        targets = imported(ast.parse(path.read_text(), str(path))) - {name}
        edges.setdefault(name, set()).update(targets)
    return edges


def test_the_graph_is_read():
    edges = graph()
    assert "connection" in edges["server"]
    assert {"channel", "interfaces"} <= edges["connection"]
    assert {"consumer", "declare", "publish"} <= edges["channel"]


def test_no_module_imports_one_above_it():
    upward = [
        (source, target)
        for source, targets in graph().items()
        for target in targets
        if source in RANK and target in RANK and RANK[target] > RANK[source]
    ]
    assert upward == []


def test_the_package_imports_without_a_circle():
    edges = graph()
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in path, f"import circle: {' -> '.join([*path, node])}"
        path.append(node)
        for target in sorted(edges.get(node, ())):
            visit(target)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)

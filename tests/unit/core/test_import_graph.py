"""The core's imports run one way: nothing broker.py uses imports broker back.

Managers receive the services they use (a clock, a partition, a lookup),
not BrokerCore, so no module below the facade needs it, not even for type
hints. The imports are read from the source with ``ast`` (TYPE_CHECKING
blocks and imports inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import dovecote

ROOT = Path(dovecote.__file__).parent
BROKER = "dovecote.core.broker"

# Edges back to the broker that other slices of issue 12 remove
# (SubscriptionStore: the subscription slice). Empty it when it is merged.
NOT_YET_CUT = {"dovecote.core.substate"}


def module_path(name: str) -> Path | None:
    relative = Path(*name.split(".")[1:])
    for path in (ROOT / relative.with_suffix(".py"), ROOT / relative / "__init__.py"):
        if path.exists():
            return path
    return None


def imports_of(name: str) -> set[str]:
    """The dovecote modules ``name`` imports, anywhere in its source."""
    path = module_path(name)
    return set() if path is None else imports_in(path.read_text())


def imports_in(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from dovecote.core import broker`` names a module too.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.startswith("dovecote.") and module_path(m) is not None}


def graph_from(start: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        graph[name] = imports_of(name)
        todo.extend(graph[name])
    return graph


def reaches(graph: dict[str, set[str]], start: str, target: str) -> bool:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return False


def test_the_graph_reader_sees_every_kind_of_import():
    source = """
from typing import TYPE_CHECKING
from dovecote.core import clock
if TYPE_CHECKING:
    from dovecote.core.broker import BrokerCore
def later():
    import dovecote.core.topic
"""
    assert imports_in(source) == {
        "dovecote.core",
        "dovecote.core.clock",
        BROKER,
        "dovecote.core.topic",
    }


def test_no_module_broker_imports_imports_broker_back():
    graph = graph_from(BROKER)
    back = {name for name, imported in graph.items() if BROKER in imported}
    assert back <= NOT_YET_CUT, f"these import {BROKER} back: {sorted(back - NOT_YET_CUT)}"
    # Without the edges still to be cut, nothing leads back to the broker.
    for name in NOT_YET_CUT:
        graph.get(name, set()).discard(BROKER)
    circle = sorted(name for name in graph if name != BROKER and reaches(graph, name, BROKER))
    assert not circle, f"in a circle with {BROKER}: {circle}"


def test_groups_and_the_local_member_do_not_know_the_broker():
    for name in ("dovecote.core.groups", "dovecote.core.local_member"):
        graph = graph_from(name)
        assert BROKER not in graph, f"{name} reaches {BROKER}"

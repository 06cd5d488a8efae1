"""The package's structure: every import goes down the layers (data flows one way), none forms a cycle, and the
search reads its configuration through :class:`~hwnas.search.config.RunConfig`'s attributes only.

Imports are read from the source (module level and inside functions alike), so a lazy import that climbs a
layer is caught too.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import hwnas

PACKAGE = Path(hwnas.__file__).resolve().parent

#: Lowest first; a module may import from its own layer and those below, never above.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "io", "registry", "shapes", "units", "arch", "locks"},  # foundations
    {"nn", "data"},  # building blocks and data sets
    {"spaces"},  # search spaces
    {"onnx_export", "runtimes", "training", "predictors"},  # one architecture: export, training, prediction
    {"profiling", "supernet", "cluster"},  # many architectures: device profiles, weight sharing, Ray
    {"devices"},  # where latencies are measured: this machine, a Ray node, a device out of reach
    {"search"},  # the search
    {"deploy"},  # the answer, shipped
    {"api"},  # the Python API
    {"cli", "__main__"},  # the command line
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """``module -> hwnas modules it imports`` (``from hwnas.x import y`` counts ``hwnas.x.y`` when that is a
    module)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        if name == "hwnas":  # the package's facade names the public API for type checkers only (run time: lazily)
            tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module}: package {top!r} is in no layer of tests/test_layers.py: place it")


def test_every_import_goes_down_the_layers():
    upward = sorted(f"{a} -> {b}" for a, targets in _imports().items() for b in targets
                    if _layer(b) > _layer(a))
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycles_between_modules():
    # a package imports its own modules in __init__ (re-exports); the cycle that matters runs between modules
    edges = {a: {b for b in targets if not a.startswith(b + ".") and not b.startswith(a + ".")}
             for a, targets in _imports().items()}
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_search_reads_no_configuration_dict():
    pattern = re.compile(r"\bconfig(\[|\.get\()")
    found = [f"{p.relative_to(PACKAGE.parent)}:{i}: {line.strip()}"
             for p in sorted((PACKAGE / "search").rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "config dict access in hwnas/search (use RunConfig's attributes):\n" + "\n".join(found)


def test_the_checks_are_not_vacuous():
    """A search module importing the command line would be reported, and so would a cycle."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert _layer("hwnas.search.loop") < _layer("hwnas.cli.search_cmds")
    graph = _imports()
    assert "hwnas.search.state" in graph["hwnas.search.loop"]  # module-level and from-imports are read
    assert "hwnas.devices.local" in graph["hwnas.devices.ray"]  # function-level ones too


def test_cluster_keeps_only_executors():
    """Where a latency is measured is :mod:`hwnas.devices`' business: the executors know nothing of profiles."""
    assert not [t for t in _imports()["hwnas.cluster"] if t.startswith(("hwnas.profiling", "hwnas.devices"))]


def test_no_code_outside_devices_asks_where_a_device_is():
    """Search, deploy, the command line and the API talk to a Device; none branches on where it is."""
    pattern = re.compile(r"\bnode is (not )?None|where\.local|\bdevice_node\b|\.where\s*[!=]=")
    places = [*PACKAGE.glob("search/*.py"), *PACKAGE.glob("search/sources/*.py"), *PACKAGE.glob("deploy/*.py"),
              *PACKAGE.glob("cli/*.py"), *PACKAGE.glob("profiling/*.py"), PACKAGE / "api.py", PACKAGE / "cluster.py"]
    found = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
             for path in places
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)

"""The import structure of src/sigwarehouse and analyses/: no import circle, no import that
goes up the layers, and an import inside a function only with a comment saying what it keeps
out of CLI start-up.

Every module's imports are read from its source (the AST: imports at the top, inside
functions, under `if TYPE_CHECKING`), so a circle hidden in a function is found too.
`from package import name` counts as an import of package.name when that is a module,
else of the package. Run as a script, it prints the graph between layers:

    python tests/test_layers.py
"""

from __future__ import annotations

import ast
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ROOT = "sigwarehouse"
# The shipped analyses: the top-level analyses/ folder, `sigwarehouse.analyses` once
# installed (and in a checkout, see sigwarehouse/shipped.py).
ANALYSES = REPO / "analyses"

# Bottom first: a module may import modules of its own layer and of the layers below.
# A layer lists modules and packages; a module belongs to the longest entry naming it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        ("sigwarehouse", "sigwarehouse.errors", "sigwarehouse.devices", "sigwarehouse.shipped"),
    ),
    ("store", ("sigwarehouse.store",)),
    # what the search and the catalog need of a model: the classifier interface, its
    # precision, its labels, and the python-factory checks
    (
        "model interface",
        (
            "sigwarehouse.models.base",
            "sigwarehouse.models.precision",
            "sigwarehouse.models.labels",
            "sigwarehouse.models.factory",
        ),
    ),
    ("freqrex", ("sigwarehouse.freqrex",)),
    ("domain", ("sigwarehouse.audio", "sigwarehouse.records", "sigwarehouse.catalog")),
    ("models", ("sigwarehouse.models",)),
    (
        "signals",
        (
            "sigwarehouse.signals",
            "sigwarehouse.probes",
            "sigwarehouse.noise_floor",
            "sigwarehouse.clips",
        ),
    ),
    ("jobs", ("sigwarehouse.jobs",)),
    ("report", ("sigwarehouse.report",)),
    ("analyses", ("sigwarehouse.analyses",)),
    ("api", ("sigwarehouse.api",)),
    ("corpus", ("sigwarehouse.corpus",)),
    ("cli", ("sigwarehouse.cli", "sigwarehouse.__main__")),
]

# Modules whose imports inside functions are not held to the comment rule: the search
# engine, which its owner is rewriting (its one such import keeps torch's STFT lazy).
UNCHECKED_LAZY = ("sigwarehouse.freqrex",)


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package, the shipped analyses included."""
    found = {}
    files = [(p, p.relative_to(SRC)) for p in sorted((SRC / ROOT).rglob("*.py"))]
    files += [(p, ROOT / p.relative_to(REPO)) for p in sorted(ANALYSES.rglob("*.py"))]
    for path, relative in files:
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, ast.stmt, bool]]:
    """(imported module, statement, inside a function) for each import of the package's
    own modules in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if _is_package(path) else name.rpartition(".")[0]
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                for a in node.names
            ]
        for target in targets:
            while target and target not in known:  # import a.b.c: the deepest module known
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.append((target, node, id(node) in in_function))
    return found


def layer_of(module: str) -> int:
    best, depth = -1, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            matches = module == entry or (entry != ROOT and module.startswith(entry + "."))
            if matches and entry.count(".") > depth:
                best, depth = index, entry.count(".")
    return best


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        edges[name] |= {target for target, _, _ in imports(name, path, known)}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if layer_of(m) < 0] == []


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_no_import_goes_up_the_layers() -> None:
    upward = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in sorted(graph().items())
        for b in sorted(targets)
        if layer_of(b) > layer_of(a)
    ]
    assert upward == []


def lazy_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """The imports inside the functions of the module at `path` (each once)."""
    tree = ast.parse(path.read_text())
    found: dict[int, ast.Import | ast.ImportFrom] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found[id(inner)] = inner
    return sorted(found.values(), key=lambda n: n.lineno)


def test_an_import_inside_a_function_says_why() -> None:
    """A comment on the import's lines, or on the line above it (above the first of a
    group of imports), says what the import keeps out of start-up."""
    bare = []
    for name, path in modules().items():
        if name.startswith(UNCHECKED_LAZY):
            continue
        lines = path.read_text().splitlines()
        nodes = lazy_imports(path)
        covered = {i for n in nodes for i in range(n.lineno - 1, n.end_lineno)}
        for node in nodes:
            own = lines[node.lineno - 1 : node.end_lineno]
            above = node.lineno - 2
            while above in covered:
                own.append(lines[above])
                above -= 1
            if not any("#" in line for line in own) and not (
                above >= 0 and lines[above].strip().startswith("#")
            ):
                bare.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert bare == []


def summary() -> str:
    """The graph between layers (arrows with their number of imports), the circles, and
    the imports inside functions per 1,000 lines."""
    known = modules()
    edges = graph()
    arrows: Counter[tuple[str, str]] = Counter()
    for a, targets in edges.items():
        for b in targets:
            if layer_of(a) != layer_of(b):
                arrows[(LAYERS[layer_of(a)][0], LAYERS[layer_of(b)][0])] += 1
    lines = [f"{len(known)} modules in {len(LAYERS)} layers (bottom first):"]
    lines += [f"  {name}: {', '.join(entries)}" for name, entries in LAYERS]
    lines += ["arrows between layers (imports):"]
    lines += [f"  {a} -> {b} ({n})" for (a, b), n in sorted(arrows.items())]
    lines += [f"circles: {cycles(edges) or 'none'}"]
    total = sum(len(p.read_text().splitlines()) for p in known.values())
    lazy = sum(len(lazy_imports(p)) for p in known.values())
    lines.append(
        f"imports inside functions: {lazy} in {total:,} lines ({1000 * lazy / total:.1f} per 1,000)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(print(summary()))

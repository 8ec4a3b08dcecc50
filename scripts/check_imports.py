"""Check the import graph of ``src/robnas``: no circle, and no import that goes up a layer.

The layers are those of DESIGN.md, bottom to top (:data:`LAYERS`). Every ``import`` and
``from ... import`` of a ``robnas`` module is read with :mod:`ast`, wherever it stands:

* at module level (also under ``try`` or ``if``): must go down or sideways (same layer), and
  counts for circles;
* inside a function or method (loaded on first use, to keep ``import robnas`` cheap): must go
  down or sideways too, and counts for circles as well (a lazy circle is still a circle);
* under ``if TYPE_CHECKING:``: ignored (annotations only, never executed);
* ``import robnas`` / ``from robnas import x``: the facade (``robnas/__init__.py``) imports
  nothing but :mod:`robnas.errors` and loads submodules by name on first use, so it is allowed
  anywhere; ``from robnas import x`` is judged as an import of ``robnas.x``.

Plug-ins loaded by module name (``importlib.import_module``, :meth:`robnas.registry.Registry.defer`)
are not imports of the loader: the registry's owner never names them.

Circles are searched between modules (``robnas.oneshot.wsr.search``, not packages), one edge
per import statement; importing a package's ``__init__`` is an edge to the package module.
Only ``robnas.cli`` (the top) may import ``robnas.cli``. Exit status 1 with one line per
problem, 0 when the graph is clean.

    python scripts/check_imports.py [SRC_DIR]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: Layer of each module prefix (the longest matching prefix wins), bottom (0) to top.
LAYERS: dict[str, float] = {
    # foundations
    "robnas": 9,  # the package facade: loads submodules on first use; only the CLI's entry may use it
    "robnas.errors": 0,
    "robnas.fingerprint": 0,
    "robnas.cost": 0,
    "robnas.units": 0,
    "robnas.options": 0,
    "robnas.registry": 0,
    "robnas.store": 0,
    "robnas.data": 0,
    "robnas.seeding": 0,
    "robnas.runtime": 0,
    "robnas.stopping": 0,  # SIGINT / SIGTERM: stop at safe points, never inside an import
    "robnas.assets": 0,
    # building blocks
    "robnas.targets": 1,
    "robnas.spaces": 1,
    "robnas.corruptions": 1,
    "robnas.corruption_params": 1,  # the corruptions' parameter table
    "robnas.parallel": 1,
    # networks, proxies, benchmark readers
    "robnas.proxies": 2,
    "robnas.benchmarks": 2,
    "robnas.baselines": 1.5,  # hand-designed networks, entries of the zoo
    "robnas.zoo": 2,
    "robnas.models": 2.5,  # a model by name or checkpoint: the zoo, a space's arch or a checkpoint
    # what uses networks
    "robnas.train": 3,
    "robnas.attacks": 3,
    "robnas.correlate": 3,
    "robnas.scoring": 3,
    "robnas.report": 3,
    "robnas.evaluate": 3.5,  # clean + attacks + corruptions of a (trained) model
    "robnas.holdout": 3.5,  # held-out correlation statistics over correlate
    "robnas.export": 3.5,  # a trained model as TorchScript / ONNX
    # weight sharing: shared parts, then each paper's room
    "robnas.oneshot": 4,
    "robnas.oneshot.robnets": 4.5,
    "robnas.oneshot.wsr": 4.5,
    # what a search maximises
    "robnas.objectives": 5,
    # search strategies
    "robnas.search": 6,
    # the few-shot predictor (features, LightGBM model): below objectives, whose predict: plug-in uses it
    "robnas.predict": 3.5,
    # end to end
    "robnas.pipeline": 7,
    "robnas.demo": 7,
    "robnas.cli": 8,
    "robnas.__main__": 8,
}

#: ``(importer, imported)`` module pairs allowed to go against the rule, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> float:
    parts = module.split(".")
    for n in range(len(parts), 1, -1):  # "robnas" itself matches only the facade
        found = LAYERS.get(".".join(parts[:n]))
        if found is not None:
            return found
    if module == "robnas":
        return LAYERS["robnas"]
    raise KeyError(module)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, lazy)`` for every robnas import of ``tree`` outside TYPE_CHECKING."""
    found: list[tuple[str, int, bool]] = []
    package = module if is_package else module.rpartition(".")[0]

    def target(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, lazy)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "robnas" or alias.name.startswith("robnas."):
                    found.append((target(alias.name) or alias.name, node.lineno, lazy))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "robnas" or base.startswith("robnas."):
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in known else target(base) or base, node.lineno, lazy))
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def check(src: Path) -> list[str]:
    files = {module_name(p, src): p for p in sorted((src / "robnas").rglob("*.py"))}
    known = set(files)
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        try:
            own = layer(module)
        except KeyError:
            problems.append(f"{path}: module {module} has no layer in scripts/check_imports.py LAYERS")
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for imported, line, lazy in sorted(set(imports(tree, module, path.name == "__init__.py", known))):
            if imported == module or imported not in known:
                continue
            graph[module].add(imported)
            if (module, imported) in EXCEPTIONS:
                continue
            if imported.startswith("robnas.cli") and not module.startswith(("robnas.cli", "robnas.__main__")):
                problems.append(f"{path}:{line}: {module} imports {imported} (library code never imports the CLI)")
                continue
            if module.startswith(imported + ".") and imported == "robnas":
                continue  # ``from robnas import x`` resolved to the facade: judged by x below
            try:
                theirs = layer(imported)
            except KeyError:
                continue
            if theirs > own:
                how = "lazily " if lazy else ""
                problems.append(
                    f"{path}:{line}: upward import: {module} (layer {own:g}) {how}imports {imported} (layer {theirs:g})"
                )
    problems += [f"import circle: {' -> '.join(c)}" for c in circles(graph)]
    return problems


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10000)

    def connect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_cycle(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One concrete circle through the smallest module of ``component`` (breadth first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "src"
    problems = check(src)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} import problem(s) in {src / 'robnas'}", file=sys.stderr)
        return 1
    print(f"imports of {src / 'robnas'}: no circle, no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

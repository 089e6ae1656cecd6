"""The layering contract of docs/architecture.md, checked from the code's own imports.

Every ``import`` and ``from ... import`` in ``hessflow/`` is read with :mod:`ast` (those inside
functions too: a lazy import is still a dependency), and so is every ``importlib.import_module``
call with a literal module name. The contract:

1. a module imports only its own layer and the layers below it (the table ``LAYERS``);
2. inside the ML layer, the model families (``ml.property``, ``ml.vae``, ``ml.bp``) build on the
   shared core ``ml.core`` and never on each other; inside qm, molecule input stays pure chemistry
   (``qm.molecules`` imports no engine);
3. no private name (leading underscore) is imported from another package;
4. no import cycle between packages;
5. no module is longer than ``MAX_LINES``.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "hessflow"

# Bottom to top. A module belongs to the longest prefix that names it.
LAYERS = (
    ("base", ("hessflow", "hessflow.errors", "hessflow.units", "hessflow.settings",
              "hessflow.progress", "hessflow.system")),
    ("qm", ("hessflow.qm",)),
    ("store", ("hessflow.store",)),
    ("formats", ("hessflow.formats",)),
    ("ml", ("hessflow.ml",)),
    ("analysis", ("hessflow.analysis",)),
    ("slurm", ("hessflow.slurm",)),
    ("workflows", ("hessflow.workflows",)),
    ("api", ("hessflow.api",)),
    ("cli", ("hessflow.cli", "hessflow.__main__")),
)

# Rooms inside a layer that must not lean on each other: (importer prefix, forbidden prefixes).
SIBLING_RULES = (
    ("hessflow.ml.core", ("hessflow.ml.property", "hessflow.ml.vae", "hessflow.ml.bp")),
    ("hessflow.ml.property", ("hessflow.ml.vae", "hessflow.ml.bp")),
    ("hessflow.ml.vae", ("hessflow.ml.property", "hessflow.ml.bp")),
    ("hessflow.ml.bp", ("hessflow.ml.property", "hessflow.ml.vae")),
    ("hessflow.qm.molecules", ("hessflow.qm.engines",)),
)

MAX_LINES = 500


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


@functools.cache
def imports() -> list[tuple[str, str, tuple[str, ...], int]]:
    """(importer, imported module, names taken from it, line) for every import in hessflow/."""
    out = []
    for name, path in modules().items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    out.append((name, alias.name, (), node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node.level, node.module)
                names = tuple(a.name for a in node.names)
                out.append((name, target, names, node.lineno))
                for a in node.names:  # `from pkg import submodule`
                    if f"{target}.{a.name}" in modules():
                        out.append((name, f"{target}.{a.name}", (), node.lineno))
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                target = node.args[0].value
                if target.startswith("."):
                    level = len(target) - len(target.lstrip("."))
                    target = _resolve(name, is_package, level, target.lstrip(".") or None)
                out.append((name, target, (), node.lineno))
    return [i for i in out if i[1] == "hessflow" or i[1].startswith("hessflow.")]


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_name, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank is not None, f"{module} is in no layer of LAYERS: add it"
    return rank


def package_of(module: str) -> str:
    """The room a module lives in: hessflow.<first part> (base modules are their own room)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_every_import_names_a_module_of_the_package():
    """A moved module leaves no importer behind (lazy imports fail only when they run)."""
    known = set(modules())
    bad = [f"{a}:{line} imports {b}" for a, b, _names, line in imports()
           if b not in known]
    assert not bad, "\n".join(bad)


def test_layers_import_only_downwards():
    bad = [f"{a}:{line} imports {b} ({LAYERS[layer_of(b)][0]} is above {LAYERS[layer_of(a)][0]})"
           for a, b, _names, line in imports() if layer_of(b) > layer_of(a)]
    assert not bad, "\n".join(bad)


def test_rooms_inside_a_layer_stay_apart():
    bad = []
    for a, b, _names, line in imports():
        for room, forbidden in SIBLING_RULES:
            if a == room or a.startswith(room + "."):
                bad += [f"{a}:{line} imports {b}" for f in forbidden
                        if b == f or b.startswith(f + ".")]
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_a_package():
    bad = []
    for a, b, names, line in imports():
        if package_of(a) == package_of(b):
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        private += [part for part in b.split(".") if part.startswith("_") and part != "__init__"]
        bad += [f"{a}:{line} takes {n} from {b}" for n in private]
    assert not bad, "\n".join(bad)


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for a, b, _names, _line in imports():
        pa, pb = package_of(a), package_of(b)
        if pa != pb and pb != "hessflow":
            graph.setdefault(pa, set()).add(pb)

    def visit(node, path):
        if node in path:
            return path[path.index(node):] + [node]
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, path + [node])
            if cycle:
                return cycle
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        assert cycle is None, " -> ".join(cycle)


def test_modules_stay_small():
    long = [f"{name}: {n} lines" for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("case", [
    ("hessflow.qm.tasks", "hessflow.store", "layer"),
    ("hessflow.ml.vae.model", "hessflow.analysis.plots", "layer"),
])
def test_the_checker_sees_a_violation(case):
    """The contract can fail: an upward import is ranked as one."""
    a, b, _ = case
    assert layer_of(b) > layer_of(a)


def test_tests_mirror_the_package_tree():
    """Every folder of tests/ is a package of hessflow/ (tests/qm/engines <-> hessflow/qm/engines)."""
    tests = PKG.parent / "tests"
    folders = [d for d in tests.rglob("*") if d.is_dir() and d.name != "__pycache__"]
    assert folders, "tests/ has no sub-folders"
    bad = [str(d.relative_to(tests)) for d in folders
           if not (PKG / d.relative_to(tests) / "__init__.py").exists()]
    assert not bad, f"test folders without a package of the same path: {bad}"

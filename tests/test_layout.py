"""The package's imports point one way: no two modules import each other, directly or through others
(imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import algnet_cli

ROOT = Path(algnet_cli.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _targets(mod: str, path: Path, node, mods) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    base = mod.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [t for t in [target, *(f"{target}.{a.name}" for a in node.names)] if t in mods]


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(mod, path, node, mods):
                    if t != mod and not mod.startswith(t + "."):  # a module's own package is no cycle
                        graph[mod].add(t)
    return graph


def _reaches(graph, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        for n in graph[todo.pop()]:
            if n == goal:
                return True
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return False


def test_no_import_cycle_within_the_package():
    graph = import_graph()
    assert len(graph) > 50  # the walk saw the package
    cycles = sorted((a, b) for a in graph for b in graph[a] if _reaches(graph, b, a))
    assert not cycles, cycles


def test_the_walk_finds_a_cycle_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _reaches(graph, "b", "a") and not _reaches(graph, "a", "d")


#: decorators that mark a compiled kernel (numba, Triton): straight-line kernel code is exempt
_KERNEL_DECORATORS = ("jit", "njit", "guvectorize", "vectorize")


def _decorated_as_kernel(node) -> bool:
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in _KERNEL_DECORATORS:
            return True
    return False


def _long_functions(limit: int = 80) -> list[str]:
    """Functions whose body (docstring included, signature and decorators not) runs over ``limit`` lines."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _decorated_as_kernel(node):
                lines = node.body[-1].end_lineno - node.body[0].lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_no_function_body_runs_over_80_lines():
    assert _long_functions() == []


def test_the_length_check_counts_bodies_and_exempts_only_kernels(tmp_path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        f"def long(\n    a=1,\n    b=2,\n):\n{body}\n\n@numba.njit(cache=True)\ndef kernel():\n{body}\n"
    )
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path / "pkg")
    assert [f.split(" ", 1)[1] for f in _long_functions()] == ["long: 81 lines"]


#: the package's layers, bottom first: a module may import its own layer and the ones below, never
#: one above (a module not listed belongs to its parent package's layer)
LAYERS = (
    # plumbing: errors, files, paths, signals, progress, the generic pipeline, reports
    ("errors", "paths", "fileio", "interrupts", "progress", "cpu", "outputs", "report", "pipeline"),
    # kernels, formats and storage: no model
    ("ops", "images", "metrics", "tiling", "hub"),
    # the model, the media around it, what measures pixels
    ("model", "video", "scoring", "compare", "triage"),
    # running a model over tensors, training one
    ("runner", "train"),
    # batches of files, the Python API
    ("batch", "api"),
    # many machines
    ("cluster",),
    # the shell
    ("cli", "__main__"),
)


def layer_of(module: str, layers=LAYERS) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return len(layers)  # the package root imports nothing eagerly; it is the top
    for i, names in enumerate(layers):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def upward_imports(graph, layers=LAYERS) -> list[str]:
    return sorted(
        f"{a} (layer {layer_of(a, layers)}) imports {b} (layer {layer_of(b, layers)})"
        for a in graph
        for b in graph[a]
        if layer_of(b, layers) > layer_of(a, layers)
    )


def test_no_import_runs_up_a_layer():
    graph = import_graph()
    assert upward_imports(graph) == []
    assert {layer_of(m) for m in graph} == set(range(len(LAYERS) + 1))  # every layer holds a module


def test_the_layer_rule_sees_an_upward_import():
    graph = {"p.a.x": {"p.b.y"}, "p.b.y": set()}
    assert upward_imports(graph, (("a",), ("b",))) == ["p.a.x (layer 0) imports p.b.y (layer 1)"]
    assert upward_imports(graph, (("b",), ("a",))) == []


def test_no_module_runs_over_450_lines():
    long = [
        f"{p.relative_to(ROOT.parent)}: {n}" for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450
    ]
    assert long == []

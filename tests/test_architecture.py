"""The package's shape: no import cycles inside `kerlm`, no lower tier importing a higher one,
and `kerlm.config` (the CLI's configuration) only in the tiers that turn flags into objects.

The import graph is read from the source with `ast` (nothing is imported), counting every
`import` statement, in-function ones included: an import moved into a function to dodge a
cycle is still an edge. `python3 tests/test_architecture.py` prints the graph's cycles, tier
violations and in-function imports.

Tiers, low to high; a module may import its own tier and lower ones. A new top-level module
or package gets a tier in `TIERS` (`test_every_module_has_a_tier` says so).
"""

import ast
import os
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kerlm")

TIERS = {
    "kerlm": 0, "kerlm.layers": 0,
    # building blocks: backbones, tokenizers, decoding, metrics, text → features, records,
    # baselines and callbacks (pure functions of texts, ids and models)
    "kerlm.models": 1, "kerlm.tokenizers": 1, "kerlm.generation": 1, "kerlm.metrics": 1,
    "kerlm.preprocessing": 1, "kerlm.data": 1, "kerlm.baselines": 1, "kerlm.callbacks": 1,
    "kerlm.heads": 2,
    "kerlm.tasks": 3, "kerlm.config": 3,
    # running them: the training loop and its checkpoints, strategies and clusters, export
    "kerlm.training": 4, "kerlm.steps": 4, "kerlm.checkpointing": 4, "kerlm.distribute": 4,
    "kerlm.parameter_server": 4, "kerlm.local_cluster": 4, "kerlm.export": 4,
    "kerlm.serving": 4,
    "kerlm.apps": 5,
}
# Where `kerlm.config` may be imported (besides itself).
CONFIG_USERS = ("kerlm.tasks", "kerlm.training", "kerlm.apps", "kerlm.export",
                "kerlm.distribute")

def _modules():
    """`{dotted name: path}` of every module under kerlm/ (packages by their name)."""
    modules = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def _imports(module, path, modules):
    """`[(imported kerlm module, line, in a function)]` of one module's import statements."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    functions = {id(n) for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package upwards
                parts = module.split(".")[:len(module.split(".")) - node.level + is_package]
                base = ".".join(parts + ([base] if base else []))
            # `from package import submodule` imports the submodule; else the package
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name != "kerlm" and not name.startswith("kerlm."):
                continue
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name != module:
                found.append((name, node.lineno, id(node) in functions))
    return found


def import_graph():
    """`{module: [(imported module, line, in a function)]}` for every kerlm module."""
    modules = _modules()
    return {module: _imports(module, path, modules) for module, path in modules.items()}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _, _ in graph[v]:
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def tier(module):
    """The tier of `module`: that of its longest prefix in `TIERS`, or None."""
    while module not in TIERS and "." in module:
        module = module.rsplit(".", 1)[0]
    return TIERS.get(module)


def tier_violations(graph, module):
    """`["line N: imports X (tier t > own tier s)"]` for one module."""
    own = tier(module)
    return [f"line {line}: imports {name} (tier {tier(name)} > {own})"
            for name, line, _ in graph[module]
            if own is not None and tier(name) is not None and tier(name) > own]


def config_violations(graph, module):
    if module == "kerlm.config" or module.startswith(CONFIG_USERS):
        return []
    return [f"line {line}: imports kerlm.config" for name, line, _ in graph[module]
            if name == "kerlm.config"]


GRAPH = import_graph()


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles inside kerlm:\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_every_module_has_a_tier():
    assert [m for m in sorted(GRAPH) if tier(m) is None] == [], \
        "give these modules a tier in tests/test_architecture.py TIERS"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_lower_tier_imports_a_higher_one(module):
    assert tier_violations(GRAPH, module) == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_config_is_imported_only_by_tasks_training_export_and_apps(module):
    assert config_violations(GRAPH, module) == []


def test_the_checks_see_cycles_and_tiers():
    """The graph reader on a made-up graph: a cycle hidden in a function and a tier breach."""
    graph = {"kerlm.models.a": [("kerlm.models.b", 1, False)],
             "kerlm.models.b": [("kerlm.models.a", 9, True), ("kerlm.heads", 2, False)],
             "kerlm.heads": [("kerlm.config", 3, False)], "kerlm.config": []}
    assert cycles(graph) == [["kerlm.models.a", "kerlm.models.b"]]
    assert tier_violations(graph, "kerlm.models.b") == ["line 2: imports kerlm.heads "
                                                        "(tier 2 > 1)"]
    assert config_violations(graph, "kerlm.heads") == ["line 3: imports kerlm.config"]
    imported = _imports("kerlm.models.presets", os.path.join(ROOT, "models", "presets.py"),
                        _modules())
    assert {name for name, _, _ in imported} == {"kerlm.models.checkpoints",
                                                 "kerlm.models.registry"}


def test_the_test_layout_mirrors_the_package():
    """`tests/X/test_*.py` tests `kerlm/X/` (fixtures apart); tests of top-level modules
    (config, training, export) and of contracts across tiers sit in `tests/`."""
    tests = os.path.dirname(os.path.abspath(__file__))
    packages = {name for name in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, name))
                and os.path.exists(os.path.join(ROOT, name, "__init__.py"))}
    folders = {name for name in os.listdir(tests) if os.path.isdir(os.path.join(tests, name))
               and any(f.startswith("test_") for f in os.listdir(os.path.join(tests, name)))}
    assert folders <= packages, f"test folders with no kerlm package: {folders - packages}"
    names = [f for _, _, files in os.walk(tests) for f in files
             if f.startswith("test_") and f.endswith(".py")]
    assert len(names) == len(set(names)), "test module names must be unique (pytest imports " \
                                          "them by base name)"


if __name__ == "__main__":
    found = cycles(GRAPH)
    print(f"{len(GRAPH)} modules, {sum(map(len, GRAPH.values()))} kerlm imports, "
          f"{len(found)} import cycles")
    for component in found:
        print("  cycle:", " <-> ".join(component))
    for module in sorted(GRAPH):
        for problem in tier_violations(GRAPH, module) + config_violations(GRAPH, module):
            print(f"  {module}: {problem}")
    inner = [(m, name, line) for m in sorted(GRAPH) for name, line, in_function in GRAPH[m]
             if in_function]
    print(f"{len(inner)} in-function imports of kerlm modules")
    for module, name, line in inner:
        print(f"  {module}:{line} imports {name}")
    sys.exit(1 if found else 0)

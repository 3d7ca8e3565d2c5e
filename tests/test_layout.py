"""The layout holds: no import cycle between the project's modules (imports inside functions included, so none
can hide a cycle), `callbacks/` holds Keras callbacks only, and the benchmarks stay out of the installed package."""
import ast
import configparser
import os

from registry.write_manifest import ROOT, project_modules

MODULES = project_modules()


def imported_modules(module, path):
    """The project modules that `module` (source file `path`) imports anywhere in its code."""
    found = set()
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names)
    return {name for name in found if name in MODULES and name != module}


def import_cycles(edges):
    """The strongly connected components of more than one module in the graph `edges` (module → imported)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycle_between_project_modules():
    edges = {module: imported_modules(module, path) for module, path in MODULES.items()}
    assert edges["recipes.commands.cli"] >= {"recipes.commands.help", "recipes.plugins"}  # the graph is read
    assert import_cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle_of_two_files():
    assert import_cycles({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [["a", "b"]]


def test_callbacks_modules_hold_keras_callbacks_and_their_registration():
    """Each module of callbacks/ registers callbacks (no storage, schedule or metrics module sits there), and one
    that defines classes defines a Keras callback; callbacks/context.py holds RunContext, the factories' argument,
    and callbacks/options.py their option ranges (TensorFlow-free, as heads/options.py and losses/options.py)."""
    for module, path in MODULES.items():
        if not module.startswith("callbacks.") or module in ("callbacks.context", "callbacks.options"):
            continue
        with open(path, encoding="utf-8") as file:
            source = file.read()
        assert "@CALLBACKS.register(" in source, module
        bases = [ast.unparse(base) for node in ast.parse(source).body if isinstance(node, ast.ClassDef)
                 for base in node.bases]
        assert not bases or any(base.startswith("keras.callbacks.") for base in bases), module


def test_benchmarks_and_tests_stay_out_of_the_installed_packages():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    included = {line.strip().rstrip("*") for line in config["options.packages.find"]["include"].split() if line.strip()}
    packages = {module for module in MODULES if "." not in module}
    assert included == packages and not {"benchmarks", "tests"} & included

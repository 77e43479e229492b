"""Imports flow one way (docs/design.md): a lower layer never imports a higher one."""

import ast
import pathlib

import fnnet

ROOT = pathlib.Path(fnnet.__file__).parent

# package -> fnnet packages it may import (besides itself)
ALLOWED = {
    "kernels": set(),
    "tree": set(),
    "random": {"kernels", "autodiff"},  # autodiff.recording only: draws are recorded by fnnet.jit
    "init": {"random"},
    "autodiff": {"tree"},
    "ops": {"kernels", "autodiff", "random", "tree"},
    "layers": {"ops", "init", "random", "tree"},
    "losses": {"ops", "kernels", "autodiff", "tree"},
    "optim": {"kernels", "tree", "autodiff"},  # autodiff.recording only: updates are recorded by fnnet.jit
    "jit": {"autodiff", "tree", "kernels"},  # kernels._jit only: the thread count a replay runs with
    "testing": {"tree", "autodiff", "random", "ops", "losses", "layers"},  # docs/design.md: everything below
    "io": {"tree", "layers", "optim"},
    "datasets": {"random"},
    "distributed": {"kernels", "tree", "random"},
}


def _package_of(path):
    rel = path.relative_to(ROOT).with_suffix("")
    return rel.parts[0]


def _imports(path):
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ["fnnet", *rel.parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
        base = parts
    else:
        base = parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
                if not node.module:
                    for a in node.names:
                        yield f"{mod}.{a.name}"
                    continue
            else:
                mod = node.module
            yield mod


def test_imports_flow_one_way():
    wrong = []
    for path in ROOT.rglob("*.py"):
        pkg = _package_of(path)
        if pkg not in ALLOWED:
            continue  # top-level __init__, examples, bench: may import everything
        for mod in _imports(path):
            if not mod.startswith("fnnet"):
                continue
            target = mod.split(".")[1] if "." in mod else None
            if target is None or target == pkg:
                continue
            if target not in ALLOWED[pkg]:
                wrong.append(f"{path.relative_to(ROOT.parent)} imports {mod} ({pkg} -> {target})")
    assert not wrong, "wrong-way imports:\n" + "\n".join(wrong)


def test_kernels_only_import_numpy_numba_math():
    for path in (ROOT / "kernels").rglob("*.py"):
        for mod in _imports(path):
            top = mod.split(".")[0]
            assert top in {"numpy", "numba", "llvmlite", "scipy", "math", "fnnet", "os", "sys", "ctypes", "glob",
                           "tempfile", "hashlib", "importlib", "__future__"}, f"{path.name} imports {mod}"


# ---------------------------------------------------------- knowledge about a layer lives in the layer's file
def _layer_classes():
    """{class name: the file that defines it} for every Layer subclass defined in fnnet/layers."""
    import inspect

    import fnnet.layers as L

    found = {}
    for path in (ROOT / "layers").glob("*.py"):
        module = __import__(f"fnnet.layers.{path.stem}", fromlist=["_"])
        for name, obj in vars(module).items():
            defined_here = inspect.isclass(obj) and obj.__module__ == module.__name__
            if defined_here and issubclass(obj, L.Layer) and obj is not L.Layer:
                found[name] = path
    return found


def _names_in(node):
    """Identifiers and string constants anywhere inside ``node``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            yield sub.id
        elif isinstance(sub, ast.Attribute):
            yield sub.attr
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def _class_switches(source, layer_names):
    """``(line, layer name)`` for each place that dispatches on a layer class: ``isinstance``/``issubclass``
    naming it, a comparison naming it (``type(x) in (Linear, Conv2D)``, ``type(x).__name__ == "Residual"``),
    or a dict keyed by layer names (``{"Conv2D": 10}``)."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "issubclass"):
            targets = node.args[1:]
        elif isinstance(node, ast.Compare):
            targets = [node.left, *node.comparators]
        elif isinstance(node, ast.Dict):
            targets = [k for k in node.keys if isinstance(k, ast.Constant)]
        else:
            continue
        hits += [(node.lineno, name) for t in targets for name in _names_in(t) if name in layer_names]
    return hits


def test_class_switch_detector_finds_the_known_patterns():
    names = {"Linear", "Conv2D", "ReLU", "Residual"}
    bad = ("isinstance(layer, L.Linear)\ntype(a) in (Linear, Conv2D) and type(b) is ReLU\n"
           "type(layer).__name__ == 'Residual'\nCOST = {'Conv2D': 10}\n")
    assert sorted(_class_switches(bad, names)) == [(1, "Linear"), (2, "Conv2D"), (2, "Linear"), (2, "ReLU"),
                                                    (3, "Residual"), (4, "Conv2D")]
    assert _class_switches("isinstance(x, (tuple, list))\nkind == 'same'\n", names) == []


def test_no_code_outside_a_layers_file_switches_on_its_class():
    """Per-layer knowledge (FLOPs, tape bytes, torch layout, compile hints, fusion) is a method or attribute
    of the layer, read through the protocol; nothing else dispatches on concrete layer classes.
    ``fnnet/bench`` and ``fnnet/examples`` are scripts that build particular models and are not scanned."""
    owners = _layer_classes()
    wrong = []
    for path in ROOT.rglob("*.py"):
        if _package_of(path) in ("bench", "examples"):
            continue
        names = {name for name, owner in owners.items() if owner != path}
        for line, name in _class_switches(path.read_text(), names):
            wrong.append(f"{path.relative_to(ROOT.parent)}:{line} switches on {name} (defined in {owners[name].name})")
    assert not wrong, "move this knowledge into a method of the layer:\n" + "\n".join(wrong)

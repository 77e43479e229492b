"""Imports flow one way (docs/design.md): a lower layer never imports a higher one."""

import ast
import pathlib

import fnnet

ROOT = pathlib.Path(fnnet.__file__).parent

# package -> fnnet packages it may import (besides itself)
ALLOWED = {
    "kernels": set(),
    "tree": set(),
    "random": set(),
    "init": {"random"},
    "autodiff": {"tree"},
    "ops": {"kernels", "autodiff", "random", "tree"},
    "layers": {"ops", "init", "random", "tree"},
    "losses": {"ops", "kernels", "autodiff", "tree"},
    "optim": {"kernels", "tree"},
    "testing": {"tree", "autodiff"},
    "io": {"tree", "layers", "optim"},
    "datasets": {"random"},
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
            assert top in {"numpy", "numba", "llvmlite", "scipy", "math", "fnnet", "os", "sys", "ctypes", "glob", "tempfile",
                           "__future__"}, f"{path.name} imports {mod}"

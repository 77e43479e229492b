"""The documentation site: it builds with no warning, and every public name has a docstring and a place in it.

Public names are those in the ``__all__`` of the modules below.  Docstrings are read the way the API
reference reads them (statically, with griffe), so a NamedTuple's generated ``__doc__`` does not count.
"""

import ast
import html
import importlib
import os
import pathlib
import re
import subprocess
import sys

import griffe
import pytest

import fnnet

ROOT = pathlib.Path(__file__).resolve().parent.parent
API_PAGES = sorted((ROOT / "docs" / "api").glob("*.md"))
MODULES = (
    "fnnet", "fnnet.autodiff", "fnnet.layers", "fnnet.ops", "fnnet.losses", "fnnet.optim", "fnnet.optim.schedules",
    "fnnet.tree", "fnnet.random", "fnnet.init", "fnnet.io", "fnnet.datasets", "fnnet.train", "fnnet.precision",
    "fnnet.testing", "fnnet.distributed", "fnnet.summary", "fnnet.precompile", "fnnet.vmap",
)
# "::: fnnet.ops.add", with its indented options (a module's introduction says "members: false").
DIRECTIVE = re.compile(r"^::: ([\w.]+)[ \t]*\n((?:[ \t]+\S.*\n)*)", re.MULTILINE)


def _directives():
    """``(page name, identifier, options text)`` for every mkdocstrings directive of the API pages."""
    return [(page.name, ident, options) for page in API_PAGES
            for ident, options in DIRECTIVE.findall(page.read_text() + "\n")]


@pytest.fixture(scope="module")
def package():
    return griffe.load("fnnet", search_paths=[str(ROOT)], resolve_aliases=False)


def _lookup(package, path):
    """The griffe object at ``path`` ("fnnet.ops.add"), aliases followed to their definition."""
    obj = package if path == "fnnet" else package[path.removeprefix("fnnet.")]
    return obj.final_target if obj.is_alias else obj


def _definition(package, module, name):
    """Where ``module.name`` is defined, as griffe sees it.

    ``fnnet.summary`` (the function) is also the name of a module, and griffe finds the module there; the
    object's own ``__module__`` and ``__qualname__`` then say where it is defined.
    """
    obj = _lookup(package, f"{module}.{name}")
    runtime = getattr(importlib.import_module(module), name)
    if obj.is_module and not isinstance(runtime, type(sys)):
        obj = _lookup(package, f"{runtime.__module__}.{runtime.__qualname__}")
    return obj


def _public_names():
    return [(module, name) for module in MODULES for name in getattr(importlib.import_module(module), "__all__", ())]


def test_every_listed_module_declares_its_public_names():
    missing = [module for module in MODULES if not hasattr(importlib.import_module(module), "__all__")]
    assert not missing, f"these modules have no __all__ (the list of their public names): {missing}"


def test_every_public_name_has_a_docstring(package):
    undocumented = [f"{module}.{name}" for module, name in _public_names()
                    if not (_definition(package, module, name).docstring or griffe.Docstring("")).value.strip()]
    assert not undocumented, (
        f"public names without a docstring: {undocumented}; write one (a summary line, then Args/Returns "
        "where not obvious); for a constant, a string literal on the line after the assignment"
    )


def test_every_public_name_is_in_the_api_reference(package):
    rendered = {_lookup(package, ident).path for _, ident, _ in _directives()}
    absent = [f"{module}.{name}" for module, name in _public_names()
              if _definition(package, module, name).path not in rendered]
    assert not absent, (
        f"public names missing from the API reference: {absent}; add a '::: <name>' line to the fitting "
        "docs/api/*.md page"
    )


def _attribute(path):
    """What ``path`` means in Python, by attribute access from ``fnnet`` (None when it means nothing)."""
    obj = fnnet
    for part in path.split(".")[1:]:
        obj = getattr(obj, part, None)
    return obj


def test_api_pages_show_what_each_name_means_in_python(package):
    # fnnet.ops.softmax is a function, and also the name of the module defining it: a directive naming it
    # would render the module (the same trap as fnnet.primitive vs the module fnnet.autodiff.primitive).
    wrong = []
    for page, ident, options in _directives():
        runtime = _attribute(ident)
        if "members: false" not in options and _lookup(package, ident).is_module and runtime is not None \
                and not isinstance(runtime, type(sys)):
            wrong.append(f"{page}: '::: {ident}' shows the module, but {ident} is {runtime!r}; "
                         f"write '::: {runtime.__module__}.{runtime.__qualname__}'")
    assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built by ``mkdocs build --strict`` (any warning fails: broken link, missing page, bad docstring)."""
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    log = run.stdout + run.stderr
    problems = "\n".join(line for line in log.splitlines() if "WARNING" in line or "ERROR" in line)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{problems or log[-4000:]}"
    return out


def test_site_builds_strictly_with_every_page(site):
    pages = [page.relative_to(ROOT / "docs").with_suffix(".html") for page in (ROOT / "docs").rglob("*.md")
             if "_hooks" not in page.parts]
    notebooks = [pathlib.Path("notebooks", nb.stem + ".html") for nb in (ROOT / "notebooks").glob("*.ipynb")]
    missing = [str(page) for page in pages + notebooks if not (site / page).is_file()]
    assert not missing, f"pages missing from the built site: {missing}"


def test_custom_op_how_to_is_in_the_api_reference(site):
    # help(fnnet.primitive) shows the how-to (a worked example); the API page must show that same function.
    example = 'cube = fnnet.primitive("cube", _cube_fwd, _cube_bwd)'
    assert example in fnnet.primitive.__doc__
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / "api" / "autodiff.html").read_text()))
    assert example in page


def test_home_page_example_runs_and_learns(capsys):
    source = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "index.md").read_text(), re.DOTALL).group(1)
    exec(compile(source, "docs/index.md", "exec"), {"__name__": "__docs__"})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert ast.literal_eval(printed)["accuracy"] > 0.95, printed  # the page says 0.98...

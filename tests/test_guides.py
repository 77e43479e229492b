"""The guides stay true: every ```python block of every guide in docs/guides runs.

The blocks of one guide run in order in one namespace, as a reader pastes them into one session; a block
that raises fails the test with the guide, the block number and the guide's line.  Each guide runs in a
temporary working directory, with matplotlib on Agg, and whatever it registers (its own primitives or
layers) is unregistered afterwards, so the op and layer coverage tests never see it.
"""

import pathlib
import re

import matplotlib
import pytest

from fnnet.autodiff.primitive import _REGISTRY as PRIMITIVES
from fnnet.layers.base import _LAYERS as LAYERS

matplotlib.use("Agg")

ROOT = pathlib.Path(__file__).parent.parent
GUIDE_DIR = ROOT / "docs" / "guides"
GUIDES = sorted(GUIDE_DIR.glob("*.md"))
EXPECTED = [
    "mental-model.md", "training-loop.md", "state.md", "randomness.md", "custom-ops.md", "memory.md",
    "mixed-precision.md", "activation-statistics.md", "saving-loading.md", "performance-tips.md",
    "from-pytorch.md", "from-jax.md",
]
_PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", flags=re.S | re.M)


def python_blocks(text):
    """``(first line number, source)`` of each ```python block of a Markdown text."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _PYTHON_BLOCK.finditer(text)]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Run in a temporary folder; forget primitives and layers registered during the test."""
    monkeypatch.chdir(tmp_path)
    saved = [(PRIMITIVES, dict(PRIMITIVES)), (LAYERS, dict(LAYERS))]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


def test_every_guide_is_there():
    assert sorted(p.name for p in GUIDES) == sorted(EXPECTED)


@pytest.mark.parametrize("path", GUIDES, ids=[p.name for p in GUIDES])
def test_guide_runs(path, isolated):
    blocks = python_blocks(path.read_text())
    assert blocks, f"{path.name} has no ```python block"
    namespace = {"__name__": "__guide__"}
    for number, (line, source) in enumerate(blocks, start=1):
        # Blank lines in front keep the traceback's line numbers those of the guide.
        code = compile("\n" * (line - 1) + source, f"docs/guides/{path.name}", "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            raise AssertionError(f"docs/guides/{path.name}: python block {number} (line {line}) raised "
                                 f"{type(error).__name__}: {error}") from error


def test_readme_links_every_guide():
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/guides/[^)#]+)\)", readme))
    assert linked == {f"docs/guides/{name}" for name in EXPECTED}

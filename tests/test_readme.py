"""The README's code examples run as written."""

import pathlib
import re

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md[python block {i}]", "exec"), {"__name__": "__readme__"})


def test_ci_runs_the_readme_test_command():
    ci = (pathlib.Path(__file__).parent.parent / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")]
    assert command and command[0].strip() in README

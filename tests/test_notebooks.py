"""The notebooks stay true: each one runs top to bottom in a fresh Jupyter kernel, and is stored executed.

The documentation renders the stored notebooks without running them, so their saved outputs (plots
included) must come from the code as it is.  After editing a notebook, run it and store it with::

    python tests/test_notebooks.py notebooks/NAME.ipynb      # no argument: every notebook
"""

import pathlib
import re
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = pathlib.Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600  # a cold Numba cache compiles kernels for minutes on 2 cores


def _kernel_manager():
    """A manager for ipykernel's own 'python3' kernel, run by this interpreter (``sys.executable``): the
    spec is built in, so a 'python3' kernelspec installed elsewhere on the machine is never picked up."""
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    return KernelManager(kernel_name=NATIVE_KERNEL_NAME, kernel_spec_manager=specs)


def execute(path):
    """Run the notebook at ``path`` top to bottom in a fresh kernel; return it with its new outputs.

    Raises:
        CellExecutionError: from the first cell that raises, with the notebook and cell index prepended.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, km=_kernel_manager(), timeout=CELL_TIMEOUT_S, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel(cleanup_kc=True):  # shut the kernel down afterwards (nbclient does not own km)
        for index, cell in enumerate(notebook.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                first_lines = " / ".join(cell.source.splitlines()[:3])
                plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # without the traceback's terminal colours
                raise CellExecutionError(f"{path.name}, cell {index} ({first_lines}):\n{plain}",
                                         error.ename, error.evalue) from None
    return notebook


def _execution_counts(notebook):
    return [c.execution_count for c in notebook.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "transformer.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_a_fresh_kernel(path):
    try:
        executed = execute(path)
    except CellExecutionError as error:
        pytest.fail(str(error), pytrace=False)
    counts = _execution_counts(executed)
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not every code cell ran: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_executed_in_order(path):
    counts = _execution_counts(nbformat.read(path, as_version=4))
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: code cells must be stored executed top to bottom (execution counts 1, 2, ...), got "
        f"{counts}; store it with `python tests/test_notebooks.py notebooks/{path.name}`")


def main(paths):
    """Execute each notebook of ``paths`` (default: all) and write it back with its outputs."""
    for path in [pathlib.Path(p).resolve() for p in paths] or NOTEBOOKS:
        nbformat.write(execute(path), path)
        print(f"stored {path.name} with its outputs")


if __name__ == "__main__":
    main(sys.argv[1:])

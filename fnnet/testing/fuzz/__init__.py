"""A fuzzer that drives every public op, loss and layer with hostile inputs.

::

    python -m fnnet.testing.fuzz --cases 50000 --seed 1 --jobs 2     # table of classes + first repro of each
    python -m fnnet.testing.fuzz --case 1:4711                       # one case, in this process

Each case takes one entry of the spec table (``op_specs.py``, ``layer_specs.py``), one mutation
(``mutations.py``: wrong dtypes, byte order, ranks, zero and size-1 dimensions, strides, transposes,
Fortran order, broadcast views, read-only and unaligned buffers, ``np.memmap``/masked/``np.matrix``,
0-d arrays and scalars, lists, NaN/inf/denormal/huge values, None, leaked and mixed tracers) and one
argument, all drawn from ``np.random.default_rng([seed, index])``, and classifies the outcome as exactly
one of ``ok``, ``clean-error`` or a failure (``crash``, ``hang``, ``wrong-forward``, ``wrong-gradient``,
``other-exception``; see ``classify.py``).  References are metamorphic: a mutation that keeps the
meaning must give the canonical call's forward and gradient bit for bit; value mutations are compared
with a NumPy float64 reference per op (``oracle.py``).  Cases run in forked subprocesses with a timeout
(``runner.py``).  PyTorch is not needed.

The coverage test (``tests/fuzz``) fails when a public op or layer has no spec: add one line to the table.
"""

from .cases import Case, case, pairs, run_case
from .runner import report, run

__all__ = ["Case", "case", "pairs", "run_case", "run", "report"]

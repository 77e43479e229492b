"""Time the recurrent sequence ops: ``python tests/tools/time_recurrent.py``.

The forward and the backward of ``fnnet.ops.gru_sequence`` and ``lstm_sequence`` (the primitives' own
functions, no tape) at the ``gru`` workload's shapes (batch 32, 32 steps, hidden 128, float32), and at batch
256, and over one step at batch 32 (a cell stepped in Python); interleaved, 100 rounds; prints the median of each with the caller's thread count.  Run it in a
worktree of an older commit (``PYTHONPATH``) to compare.  A developer tool; not part of the test suite.

``--cells`` times instead a cell stepped in a Python loop, as users write it: ``fnnet.grad`` of a loss over
16 steps of ``GRUCell`` / ``LSTMCell.apply`` (batch 32, input 64, hidden 128, float32), eager.
"""

from __future__ import annotations

import numpy as np

import sys

import fnnet
from fnnet import layers as L
from fnnet import ops
from fnnet.ops import recurrent as R
from _interleave import interleaved_seconds  # tests/tools: the script's own folder


def _calls(batch, steps=32, hidden=128):
    rng = np.random.default_rng(0)
    calls = {}
    for name, gates, fwd, bwd in (("gru", 3, R._gru_sequence_fwd, R._gru_sequence_bwd),
                                  ("lstm", 4, R._lstm_sequence_fwd, R._lstm_sequence_bwd)):
        x_proj = rng.standard_normal((batch, steps, gates * hidden)).astype(np.float32)
        states = [rng.standard_normal((batch, hidden)).astype(np.float32) for _ in range(gates - 2)]
        w = (rng.standard_normal((gates * hidden, hidden)) / hidden ** 0.5).astype(np.float32)
        b = rng.standard_normal(gates * hidden).astype(np.float32)
        g = rng.standard_normal((batch, steps, hidden)).astype(np.float32)
        _, res = fwd(x_proj, *states, w, b)
        calls[f"{name} {batch}x{steps}x{hidden} forward"] = lambda f=fwd, a=(x_proj, *states, w, b): f(*a)
        calls[f"{name} {batch}x{steps}x{hidden} backward"] = lambda f=bwd, r=res, g=g: f(r, g)
    return calls


def _cell_loops(batch=32, steps=16, inputs=64, hidden=128):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((batch, inputs)).astype(np.float32) for _ in range(steps)]
    calls = {}
    for cell in (L.GRUCell(hidden), L.LSTMCell(hidden)):
        params = cell.init(fnnet.random.key(0), (None, inputs))

        def loss(p, cell=cell):
            state, total = None, 0.0
            for x in xs:
                state = cell.apply(p, x, state)
                h = state[0] if isinstance(state, tuple) else state
                total = total + ops.sum(h * h)
            return total

        calls[f"{type(cell).__name__} loop of {steps} steps, grad"] = lambda f=fnnet.grad(loss), p=params: f(p)
    return calls


def main() -> None:
    if "--cells" in sys.argv:
        calls = _cell_loops()
    else:
        calls = {**_calls(32), **_calls(256), **_calls(32, steps=1)}
    seconds = interleaved_seconds(calls, 100)
    for name, values in seconds.items():
        print(f"{name:32s} {np.median(values) * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()

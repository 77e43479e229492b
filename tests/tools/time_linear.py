"""Time the dense kernels at the benchmark workloads' shapes: ``python tests/tools/time_linear.py``.

For each (rows, in, out) of a linear layer in ``tiny``, ``mlp``, ``cnn``, ``gru`` and ``attention``
(float32; ``--half``: the float16 kernels ``linear_fwd_half`` and ``linear_bwd_half``), times the forward
(bias and ReLU fused) and the backward (all three cotangents) as a training step calls them: right after the weight was rewritten in place by both threads, as the
optimizer's update leaves it (``--warm``: without that rewrite).  Interleaved over the shapes, 200
rounds; prints the median of each.  Compare two trees by running it in each (``PYTHONPATH=<tree>``).  A
developer tool; not part of the test suite.
"""

from __future__ import annotations

import argparse

import numpy as np
from numba import njit, prange

from fnnet import kernels as K
from fnnet.kernels import dense_half as KH
from _interleave import interleaved_seconds  # tests/tools: the script's own folder

SHAPES = {  # workload: its layers' (rows, in, out)
    "tiny": [(32, 64, 64), (32, 64, 10)],
    "mlp": [(128, 784, 256), (128, 256, 256), (128, 256, 10)],
    "cnn": [(64, 1600, 128), (64, 128, 10)],
    "gru": [(32, 32, 384), (32, 128, 384)],
    "attention": [(2048, 128, 384), (2048, 128, 512), (2048, 512, 128)],
}


@njit(parallel=True, cache=False)
def _rewrite(w):
    """Write every element of ``w`` again, in place, half of them per thread (what an optimizer's update does
    to a weight)."""
    flat = w.reshape(-1)
    half = flat.size // 2
    for part in prange(2):
        lo = part * half
        hi = flat.size if part else half
        for i in range(lo, hi):
            flat[i] = flat[i] + 0  # (float16 weights are rewritten as their uint16 bits)


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--warm", action="store_true", help="do not rewrite the weight before each call")
    p.add_argument("--half", action="store_true", help="the float16 kernels")
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    cases = []
    for workload, shapes in SHAPES.items():
        for n, k, m in shapes:
            x, w, g = (rng.standard_normal(s).astype(np.float32) for s in ((n, k), (k, m), (n, m)))
            b = rng.standard_normal(m).astype(np.float32)
            if args.half:  # the kernels read half bits as uint16
                x, w, g, b = (a.astype(np.float16).view(np.uint16) for a in (x, w, g, b))
                y = KH.linear_fwd_half(x, w, b, True, True)
                forward = lambda x=x, w=w, b=b: KH.linear_fwd_half(x, w, b, True, True)
                backward = lambda x=x, w=w, g=g, y=y: KH.linear_bwd_half(x, w, g, y, True, True, True, True)
            else:
                forward = lambda x=x, w=w, b=b: K.linear_fwd(x, w, b, True, True)
                backward = lambda x=x, w=w, g=g: K.linear_bwd(x, w, g, True, True, True)
            cases.append((f"{workload} {n}x{k} by {m} forward", w, forward))
            cases.append((f"{workload} {n}x{k} by {m} backward", w, backward))
    weights = {name: w for name, w, _ in cases}
    for w in weights.values():
        _rewrite(w)
    seconds = interleaved_seconds({name: call for name, _, call in cases}, args.rounds,
                                  None if args.warm else lambda name: _rewrite(weights[name]))
    for name, values in seconds.items():
        print(f"{name:40s} {np.median(values) * 1e3:8.4f} ms")


if __name__ == "__main__":
    main()

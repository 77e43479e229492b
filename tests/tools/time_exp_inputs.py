"""Time ``exp`` (``fnnet.kernels.exp_fwd``, one thread) on 1M float32 copies of one value each:
``python tests/tools/time_exp_inputs.py``.

An exponential that underflows into the denormals costs a microcode assist per element, so the time
depends on the input's value; this prints the best of 7 repeats of 20 calls for ordinary values, ``-inf``
(a masked attention score), and values whose exponential is denormal or rounds to 0.  A developer tool;
not part of the test suite.
"""

from __future__ import annotations

import timeit

import numpy as np

from fnnet.kernels import elementwise
from fnnet.kernels._jit import swap_threads

INPUTS = {
    "standard normal": np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32),
    "-80 (normal result)": np.full(1_000_000, -80.0, np.float32),
    "-95 (denormal result)": np.full(1_000_000, -95.0, np.float32),
    "-200 (rounds to 0)": np.full(1_000_000, -200.0, np.float32),
    "-inf": np.full(1_000_000, -np.inf, np.float32),
}


def main() -> None:
    swap_threads(1)
    for name, x in INPUTS.items():
        elementwise.exp_fwd(x)
        best = min(timeit.repeat(lambda: elementwise.exp_fwd(x), number=20, repeat=7)) / 20
        print(f"{name:24s} {best * 1e3:.3f} ms")


if __name__ == "__main__":
    main()

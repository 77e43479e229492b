"""Time the attention kernels at the ``attention`` benchmark's shapes: ``python tests/tools/time_attention.py``.

128 slices (batch 32 x 4 heads) of 64 causal queries and keys, head dim 32, float32: the forward, the
fused backward (one task per slice, each score tile computed once) and the split backward (``dq`` and
``dk``/``dv`` kernels, each recomputing the tiles), interleaved, 60 rounds; prints the median and the
fastest call of each.  A developer tool; not part of the test suite.
"""

from __future__ import annotations

import numpy as np

from fnnet.kernels import attention as KA
from fnnet.ops.attention import _kernel_args, _prepare_mask
from _interleave import interleaved_seconds  # tests/tools: the script's own folder

SLICES, LENGTH, DIM = 128, 64, 32


def main() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((SLICES, LENGTH, DIM)).astype(np.float32) for _ in range(3))
    bias, mask_index = _prepare_mask(None, q.shape, k.shape, q.dtype)
    extra = _kernel_args(q, bias, mask_index, True, DIM ** -0.5, 0.0, 0)
    out, lse = KA.attention_fwd(q, k, v, *extra)
    g = rng.standard_normal(out.shape).astype(np.float32)
    delta = np.einsum("bld,bld->bl", g, out, dtype=np.float64)
    calls = {
        "forward": lambda: KA.attention_fwd(q, k, v, *extra),
        "fused backward": lambda: KA.attention_bwd(q, k, v, g, lse, delta, *extra),
        "split backward": lambda: (KA.attention_bwd_query(q, k, v, g, lse, delta, *extra),
                                   KA.attention_bwd_key_value(q, k, v, g, lse, delta, *extra)),
    }
    for name, values in interleaved_seconds(calls, 60).items():
        print(f"{name:16s} median {np.median(values) * 1e3:.2f} ms, fastest {min(values) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()

"""Dropout kernel: apply a keep-mask with inverted scaling (used by the forward and, on ``g``, the backward).

Shapes: ``x (n,)`` flat, C-contiguous float32/float64; ``mask (n,)`` uint8 (1 = keep, 0 = drop).
"""

import numpy as np
from numba import prange

from ._jit import kernel

__all__ = ["dropout_apply"]


@kernel
def dropout_apply(x, mask, scale):
    """``out[i] = x[i] * scale`` where ``mask[i]`` is set, else ``x[i] * 0`` (so NaN/inf stay NaN, as in
    NumPy and PyTorch, instead of being hidden by the drop)."""
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = x[i] * (scale if mask[i] else 0.0)
    return out

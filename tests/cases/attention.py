"""scaled_dot_product_attention against torch.nn.functional.scaled_dot_product_attention (float64).

Masks are closed over (not differentiated); float masks take the queries' dtype so the float32 check runs."""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _torch_sdpa(mask=None, causal=False, scale=None):
    def ref(q, k, v):
        import torch

        attn_mask = None if mask is None else torch.tensor(mask)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal,
                                                                scale=scale)
    return ref


def _fnnet_sdpa(mask=None, causal=False, scale=None):
    def fn(q, k, v):
        m = mask if mask is None or mask.dtype == np.bool_ else mask.astype(q.dtype)
        return ops.scaled_dot_product_attention(q, k, v, mask=m, causal=causal, scale=scale)
    return fn


def _bool_mask(shape, seed):
    keep = np.random.default_rng(seed).random(shape) > 0.4
    keep[..., 0] = True  # every row sees a key (fully masked rows are tested in tests/test_attention.py)
    return keep


_KV = (2, 3, 9, 4)
# (id, q shape, k shape, v last dim, options)
_SETTINGS = [
    ("self", (2, 3, 9, 4), _KV, 4, {}),
    ("cross-L-ne-S-odd", (2, 3, 5, 4), _KV, 3, {}),
    ("causal", (2, 3, 9, 4), _KV, 5, {"causal": True}),
    ("causal-L-ne-S", (1, 2, 6, 3), (1, 2, 4, 3), 2, {"causal": True}),
    ("bool-mask-LS", (2, 3, 7, 4), _KV, 4, {"mask": _bool_mask((7, 9), 1)}),
    ("bool-key-padding", (2, 3, 7, 4), _KV, 4, {"mask": _bool_mask((2, 1, 1, 9), 2)}),
    ("additive-mask-per-head", (2, 3, 7, 4), _KV, 4, {"mask": rand(3, 7, 9, seed=3)}),
    ("batch1-3d", (1, 1, 4), (1, 3, 4), 2, {}),
    ("no-batch-2d-scale", (5, 6), (7, 6), 3, {"scale": 0.3}),
    ("long-blocks", (1, 1, 70, 3), (1, 1, 130, 3), 2, {"causal": True}),
]

CASES = [
    OpCase(f"sdpa-{name}", _fnnet_sdpa(**opts),
           (rand(*qs, seed=10), rand(*ks, seed=11), rand(*ks[:-1], ev, seed=12)),
           ("scaled_dot_product_attention",), torch_ref=_torch_sdpa(**opts))
    for name, qs, ks, ev, opts in _SETTINGS
]

"""``scaled_dot_product_attention``: one fused primitive over the kernels in ``fnnet.kernels.attention``.

The forward keeps one tile of scores at a time and saves only ``q``, ``k``, ``v``, the output and the row
log-sum-exp (``O(L)`` per head beyond the inputs, instead of the ``(L, S)`` weights a composition of
``matmul`` and ``softmax`` keeps).  The VJP recomputes the scores tile by tile:

    p = softmax(s),  s = scale * q k^T + mask;   dv = p'^T g,   dp = g v^T * keep / (1 - rate)
    ds = p * (dp - rowsum(g * out)),   dq = scale * ds k,   dk = scale * ds^T q

where ``p'`` is ``p`` after dropout.  The mask gets no gradient.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels import attention as K
from ..autodiff import primitive
from ._validate import as_number, check_array, check_float, check_same_dtype, contiguous, value

__all__ = ["scaled_dot_product_attention"]

_OP = "scaled_dot_product_attention"
_KEY_CALL = f"{_OP}(q, k, v, dropout=0.1, key=fnnet.random.key(0))"


def _flat(x):
    """``(B, n, d)`` C-contiguous view of ``(..., n, d)``."""
    return contiguous(x).reshape(-1, x.shape[-2], x.shape[-1])


def _kernel_args(q, bias, mask_index, causal, scale, dropout, seed):
    drop = dropout > 0.0
    has_mask = bias.ndim == 3
    bias3 = bias if has_mask else np.zeros((1, 1, 1), q.dtype)
    threshold = int(round(dropout * (1 << 24)))
    inv_keep = 1.0 / (1.0 - dropout) if drop else 1.0
    return (bias3.astype(q.dtype, copy=False), mask_index, has_mask, causal, scale, drop, np.uint64(seed),
            threshold, inv_keep)


def _sdpa_fwd(q, k, v, *, bias, mask_index, causal, scale, dropout, seed):
    extra = _kernel_args(q, bias, mask_index, causal, scale, dropout, seed)
    out, lse = K.attention_fwd(_flat(q), _flat(k), _flat(v), *extra)
    out = out.reshape(*q.shape[:-1], v.shape[-1])
    return out, (q, k, v, out, lse)


def _sdpa_bwd(res, g, *, bias, mask_index, causal, scale, dropout, seed):
    q, k, v, out, lse = res
    extra = _kernel_args(q, bias, mask_index, causal, scale, dropout, seed)
    g3, out3 = _flat(g), _flat(out)
    delta = np.einsum("bld,bld->bl", g3, out3, dtype=np.float64)
    arrays = (_flat(q), _flat(k), _flat(v), g3, lse, delta)
    if arrays[0].shape[0] >= K.FUSED_SLICES:  # one task per slice: each score tile computed once
        dq, dk, dv = K.attention_bwd(*arrays, *extra)
    else:  # few slices: tasks per row block and per key block, so that every thread gets work
        dq = K.attention_bwd_query(*arrays, *extra)
        dk, dv = K.attention_bwd_key_value(*arrays, *extra)
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)


# The mask travels as a parameter, not an input: it is not differentiated, and its -inf entries are no
# overflow for fnnet.check_finite to report.
_sdpa = primitive(_OP, _sdpa_fwd, _sdpa_bwd, argnames=("q", "k", "v"))


def scaled_dot_product_attention(q, k, v, mask=None, causal=False, dropout=0.0, key=None, scale=None):
    """``softmax(q @ k^T * scale + mask) @ v`` in one fused kernel, with PyTorch's semantics.

    Memory: the forward never holds more than a ``(64, 64)`` tile of scores per task and keeps only the
    per-row log-sum-exp for the backward, which recomputes the scores (FlashAttention's scheme: Dao et
    al., 2022).  Deterministic for any thread count.

    Args:
        q: ``(..., L, E)`` queries.
        k: ``(..., S, E)`` keys, the same leading axes as ``q``.
        v: ``(..., S, Ev)`` values.
        mask: None; a bool array (True = attend) or a float array added to the scores (``-inf`` hides),
            broadcastable to ``(..., L, S)``.  Not differentiated.
        causal: hide key ``j > i`` from query ``i`` (top-left aligned when ``L != S``, as PyTorch); may be
            combined with ``mask``.
        dropout: probability of dropping each attention weight, in ``[0, 1)``; needs ``key``.
        key: ``(2,)`` uint32 key from ``fnnet.random``; the same key drops the same weights (the backward
            regenerates them from it).
        scale: factor on the scores; default ``1 / sqrt(E)``.

    Returns:
        ``(..., L, Ev)`` in ``q``'s dtype.  A query row whose keys are all masked gets output 0 and zero
        gradients (PyTorch 2.13 returns zeros there too).  NaN propagates as in ``softmax(s) @ v``: a NaN
        (or ``+inf``) score makes its row's output and gradients NaN.

    Raises:
        TypeError: non-float or mismatched dtypes, a float mask of another dtype, a bad key.
        ValueError: fewer than 2 axes, leading axes or head dims that differ, a sequence length, head dim or
            value dim of 0, a mask
            that does not broadcast, ``dropout`` outside ``[0, 1)`` or without a key.

    Example::

        q = k = v = np.random.randn(2, 4, 16, 8)            # (batch, heads, L, E)
        y = fnnet.ops.scaled_dot_product_attention(q, k, v, causal=True)
    """
    q, k, v = (check_float(_OP, name, a) for name, a in (("q", q), ("k", k), ("v", v)))
    check_same_dtype(_OP, q=q, k=k, v=v)
    qs, ks, vs = _check_shapes(value(q).shape, value(k).shape, value(v).shape)
    bias, mask_index = _prepare_mask(mask, qs, ks, value(q).dtype)
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"{_OP}: causal expected a bool, got {causal!r}")
    scale = 1.0 / math.sqrt(qs[-1]) if scale is None else as_number(_OP, "scale", scale, "a float")
    return _sdpa(q, k, v, bias=bias, mask_index=mask_index, causal=bool(causal), scale=scale,
                 dropout=_check_dropout(dropout, key), seed=_seed(key))


def _check_shapes(qs, ks, vs):
    for name, s in (("q", qs), ("k", ks), ("v", vs)):
        if len(s) < 2:
            raise ValueError(f"{_OP}: {name} must be (..., length, dim) with at least 2 axes, got shape {s}")
    if not qs[:-2] == ks[:-2] == vs[:-2]:
        raise ValueError(f"{_OP}: q, k and v must share their leading (batch, head) axes, got q {qs}, k {ks}, "
                         f"v {vs}; broadcast them explicitly first")
    if qs[-1] != ks[-1]:
        raise ValueError(f"{_OP}: q and k must have the same head dim (last axis), got q {qs} and k {ks}")
    if ks[-2] != vs[-2]:
        raise ValueError(f"{_OP}: k and v must have the same sequence length (axis -2), got k {ks} and v {vs}")
    if qs[-2] == 0 or ks[-2] == 0:
        raise ValueError(f"{_OP}: sequence lengths must be at least 1, got L={qs[-2]} (q {qs}) and S={ks[-2]} "
                         f"(k {ks})")
    if qs[-1] == 0:
        raise ValueError(f"{_OP}: the head dim (last axis of q and k) must be at least 1, got q {qs}")
    if vs[-1] == 0:
        raise ValueError(f"{_OP}: the value dim (last axis of v) must be at least 1, got v {vs}")
    return qs, ks, vs


def _prepare_mask(mask, qs, ks, dtype):
    """``(bias (Bm, Lm, S) in dtype, mask_index (B,) int64)``; a 0-d placeholder bias without a mask."""
    batch = math.prod(qs[:-2])
    if mask is None:
        return np.zeros((), dtype), np.zeros(batch, np.int64)
    mask = check_array(_OP, "mask", mask)
    if not isinstance(mask, np.ndarray) or mask.dtype.kind not in "bf":
        raise TypeError(f"{_OP}: mask must be a bool array (True = attend) or a float array added to the scores, "
                        f"got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.dtype.kind == "f" and mask.dtype != dtype:
        raise TypeError(f"{_OP}: a float mask must have q's dtype {dtype}, got {mask.dtype}; cast it with "
                        f"mask.astype(np.{dtype})")
    full = (*qs[:-2], qs[-2], ks[-2])
    try:
        shape = np.broadcast_shapes(mask.shape, full)
    except ValueError:
        shape = None
    if shape != full:
        raise ValueError(f"{_OP}: mask of shape {mask.shape} does not broadcast to (..., L, S) = {full}; give it "
                         "shape (L, S), (batch, 1, 1, S) for key padding, or any shape broadcastable to that")
    bias = np.where(mask, 0.0, -np.inf).astype(dtype) if mask.dtype == np.bool_ else mask
    bias = bias.reshape((1,) * (len(full) - bias.ndim) + bias.shape)
    lead = bias.shape[:-2]
    rows = qs[-2] if bias.shape[-2] > 1 else 1
    bias = np.ascontiguousarray(np.broadcast_to(bias, (*lead, rows, ks[-2]))).reshape(-1, rows, ks[-2])
    index = np.broadcast_to(np.arange(math.prod(lead)).reshape(lead), qs[:-2]).reshape(batch)
    return bias, np.ascontiguousarray(index, dtype=np.int64)


def _check_dropout(dropout, key):
    rate = as_number(_OP, "dropout", dropout, "a float in [0, 1) (the probability of dropping a weight)")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{_OP}: dropout is the probability of dropping a weight and must be in [0, 1), got {rate}")
    if rate > 0.0 and key is None:
        raise ValueError(f"{_OP}: dropout={rate} needs a random key; call {_KEY_CALL} (split a fresh key per step)")
    if key is not None and not (isinstance(key, np.ndarray) and key.dtype == np.uint32 and key.shape == (2,)):
        got = f"shape {key.shape} dtype {key.dtype}" if isinstance(key, np.ndarray) else repr(key)
        raise TypeError(f"{_OP}: key must be a (2,) uint32 array, got {got}; call {_KEY_CALL}")
    return rate


def _seed(key):
    """The 64-bit dropout seed from the key's two words (0 without a key)."""
    if key is None:
        return 0
    return (int(key[0]) << 32) | int(key[1])

"""Fused scaled dot-product attention: forward with an online softmax, backward that recomputes the scores.

Arrays (validated and C-contiguous, one float dtype): ``q (B, L, E)``, ``k (B, S, E)``, ``v (B, S, Ev)``
where ``B`` is batch times heads flattened.  The optional additive mask is ``bias (Bm, Lm, S)`` with
``Lm`` 1 or ``L``; ``mask_index (B,)`` int64 says which of its ``Bm`` slices each ``b`` reads (the caller
resolves the broadcast).  ``causal`` hides key ``j > i`` (top-left aligned, as PyTorch).

Forward: one task per ``(b, row block of _ROWS rows)``, in ``prange``.  A task walks the key blocks in
order, keeps only a ``(_ROWS, _COLS)`` score tile, the running row maximum and sum, and an output
accumulator; it saves only the row log-sum-exp ``lse (B, L)`` (float64).  A row whose every key is masked
gets output 0 and ``lse = -inf`` (PyTorch 2.13 also returns zeros there).  A NaN score (or a ``+inf`` one,
whose ``exp(s - max)`` is NaN) makes its whole row NaN, output and ``lse`` alike, as ``softmax(s) @ v``
does; the backward reads the NaN ``lse`` and gives that row NaN gradients.

Backward, two ways with the same bits (the caller picks by shape, :data:`FUSED_SLICES`):
- split: ``dq`` by tasks over ``(b, row block)``, ``dk``/``dv`` by tasks over ``(b, key block)``; each
  recomputes its score tiles from ``q``, ``k`` and ``lse``, so every tile is computed twice;
- fused (:func:`attention_bwd`): one task per ``b`` walks the row blocks in order and, in each, the key
  blocks in order, computing each tile once for all three gradients.  ``dq`` of a row block sums over key
  blocks in ascending order and ``dk``/``dv`` of a key block over row blocks in ascending order, as in the
  split kernels, with the same BLAS calls: the same bits, with fewer tasks to share between threads.
Every output element is written by exactly one task with a fixed summation order, so results do not depend
on the thread count (no atomics).

Dropout on the attention weights: element ``(b, i, j)`` is kept when a hash of ``(seed, b, i, j)`` (a
splitmix64-style mixer, own to this file) is at least ``rate * 2**24`` in its top 24 bits; the backward
regenerates the same decisions instead of storing them.  Matrix products use BLAS (:func:`.blas.gemm`) on tiles.
"""

import math

import numpy as np
from numba import prange

from . import _vmath as vm
from ._jit import helper, kernel
from .blas import gemm, matmul
from .softmax import row_max

__all__ = ["attention_fwd", "attention_bwd", "attention_bwd_query", "attention_bwd_key_value", "FUSED_SLICES"]

_ROWS = 64
_COLS = 64  # equal to _ROWS: the causal key range of a row block is then a whole number of key blocks
#: The fused backward (one task per slice ``b``) serves inputs with at least this many slices (batch times
#: heads), enough for every thread to get work; fewer, longer slices take the split kernels.
FUSED_SLICES = 8
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@helper(inline=True)
def _keep(seed, b, i, j, length, keys, threshold):
    """True when attention weight ``(b, i, j)`` survives dropout (a pure function of its arguments)."""
    x = seed ^ (np.uint64((b * length + i) * keys + j) * _GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    x = x ^ (x >> np.uint64(31))
    return np.int64(x >> np.uint64(40)) >= threshold


@helper(inline=True)
def _nan_max(a, b):
    """``max(a, b)``, NaN when either is NaN (Python's ``max`` would drop a NaN ``b``)."""
    return b if b != b or b > a else a


@helper
def _lane_sum(row):
    """The float64 sum of ``row``, in eight interleaved partial sums added pairwise at the end (a single
    sum waits on each addition: 4 cycles an element)."""
    n = row.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    j = 0
    while j + 8 <= n:
        s0 += row[j]
        s1 += row[j + 1]
        s2 += row[j + 2]
        s3 += row[j + 3]
        s4 += row[j + 4]
        s5 += row[j + 5]
        s6 += row[j + 6]
        s7 += row[j + 7]
        j += 8
    for t in range(n - j):
        s0 += row[j + t]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@helper
def _scores(q, k, bias, mask_index, has_mask, causal, scale, b, i0, i1, c0, c1):
    """The score tile ``scale * q[b, i0:i1] @ k[b, c0:c1].T`` plus the mask (``-inf`` where hidden)."""
    s = matmul(q[b, i0:i1], k[b, c0:c1].T)
    lm = bias.shape[1]
    for r in range(i1 - i0):
        i = i0 + r
        seen = _visible(causal, i, c0, c1)
        for c in range(seen):
            val = s[r, c] * scale
            if has_mask:
                val += bias[mask_index[b], i if lm > 1 else 0, c0 + c]
            s[r, c] = val
        for c in range(seen, c1 - c0):
            s[r, c] = -np.inf
    return s


@helper
def _visible(causal, i, c0, c1):
    """How many leading keys of the tile ``c0:c1`` query ``i`` may see (the causal mask hides the rest:
    their scores are ``-inf`` and their probabilities 0, so the row loops stop there)."""
    return max(0, min(c1, i + 1) - c0) if causal else c1 - c0


@helper
def _probabilities(s, lse, b, i0, causal, drop, seed, length, keys, c0, threshold, inv_keep):
    """``(p, p_dropped)``: ``exp(s - lse)`` per row (0 for a fully masked row) and its dropped, rescaled copy."""
    p = s  # the score tile is not needed afterwards: exponentiate it in place
    for r in range(s.shape[0]):
        m = lse[b, i0 + r]
        if m == -np.inf:
            p[r, :] = 0.0
        else:
            _exp_shifted(p, r, m)
    if not drop:
        return p, p
    pd = np.empty_like(s)
    for r in range(s.shape[0]):
        for c in range(s.shape[1]):
            keep = _keep(seed, b, i0 + r, c0 + c, length, keys, threshold)
            pd[r, c] = p[r, c] * inv_keep if keep else 0.0
    return p, pd


@helper
def _exp_shifted(s, r, shift):
    """``s[r, c] = exp(s[r, c] - shift)`` along the whole row ``r``, with the vectorised ``_vmath.exp`` (libm's
    scalar ``exp`` here made the exponentials most of the attention kernels' time).  Keys the causal mask
    hides hold ``-inf`` and get ``exp(-inf - shift)``: 0, or NaN in a NaN row.  Walking the whole row, not
    only its visible keys, gives every row the same trip count, all of it in full vectors: a causal tile's
    rows see 1 to 64 keys, and their leftover elements took the scalar loop."""
    for c in range(s.shape[1]):
        s[r, c] = vm.exp(s[r, c] - shift)


@helper
def _key_limit(causal, i1, keys):
    """One past the last key any of rows ``< i1`` may see."""
    return min(keys, i1) if causal else keys


@kernel
def attention_fwd(q, k, v, bias, mask_index, has_mask, causal, scale, drop, seed, threshold, inv_keep):
    """Returns ``(out (B, L, Ev), lse (B, L) float64)``."""
    B, L, _ = q.shape
    S, Ev = v.shape[1], v.shape[2]
    out = np.zeros((B, L, Ev), dtype=q.dtype)
    lse = np.empty((B, L), dtype=np.float64)
    blocks = (L + _ROWS - 1) // _ROWS
    for task in prange(B * blocks):
        b = task // blocks
        i0 = (task % blocks) * _ROWS
        i1 = min(L, i0 + _ROWS)
        rows = i1 - i0
        m = np.full(rows, -np.inf)
        total = np.zeros(rows)
        acc = np.zeros((rows, Ev), dtype=q.dtype)
        for c0 in range(0, _key_limit(causal, i1, S), _COLS):
            c1 = min(S, c0 + _COLS)
            s = _scores(q, k, bias, mask_index, has_mask, causal, scale, b, i0, i1, c0, c1)
            for r in range(rows):
                seen = _visible(causal, i0 + r, c0, c1)
                new_m = _nan_max(m[r], row_max(s[r], seen))
                if new_m == -np.inf:
                    s[r, :] = 0.0
                    continue
                alpha = math.exp(m[r] - new_m)
                _exp_shifted(s, r, new_m)
                row_sum = _lane_sum(s[r])
                if drop:
                    for c in range(c1 - c0):
                        keep = _keep(seed, b, i0 + r, c0 + c, L, S, threshold)
                        s[r, c] = s[r, c] * inv_keep if keep else 0.0
                total[r] = total[r] * alpha + row_sum
                m[r] = new_m
                for e in range(Ev):
                    acc[r, e] *= alpha
            gemm(s, v[b, c0:c1], acc, 1.0, 1.0)
        for r in range(rows):
            if total[r] == 0.0:
                lse[b, i0 + r] = -np.inf
                continue
            lse[b, i0 + r] = m[r] + math.log(total[r])
            inv = 1.0 / total[r]
            for e in range(Ev):
                out[b, i0 + r, e] = acc[r, e] * inv
    return out, lse


@helper
def _score_gradient(p, pd, dp, delta, b, i0):
    """``ds = p * (dp * pd / p - delta)`` written into ``dp``: the softmax VJP through the dropout."""
    for r in range(p.shape[0]):
        d = delta[b, i0 + r]
        for c in range(p.shape[1]):
            kept = pd[r, c] / p[r, c] if p[r, c] != 0.0 else 0.0
            dp[r, c] = p[r, c] * (dp[r, c] * kept - d)
    return dp


@helper
def _tile_gradients(q, k, v, g, lse, delta, bias, mask_index, has_mask, causal, scale, drop, seed, threshold,
                    inv_keep, b, i0, i1, c0, c1, dq, dk, dv, want_q, want_kv):
    """Add the score tile ``(b, i0:i1, c0:c1)``'s share of the gradients: into ``dq[b, i0:i1]`` when
    ``want_q``, into ``dk[b, c0:c1]`` and ``dv[b, c0:c1]`` when ``want_kv`` (arrays not wanted are not
    touched).  Every backward kernel goes through here, so a tile adds the same bits in each."""
    s = _scores(q, k, bias, mask_index, has_mask, causal, scale, b, i0, i1, c0, c1)
    p, pd = _probabilities(s, lse, b, i0, causal, drop, seed, q.shape[1], k.shape[1], c0, threshold, inv_keep)
    if want_kv:
        gemm(pd.T, g[b, i0:i1], dv[b, c0:c1], 1.0, 1.0)
    ds = _score_gradient(p, pd, matmul(g[b, i0:i1], v[b, c0:c1].T), delta, b, i0)
    if want_q:
        gemm(ds, k[b, c0:c1], dq[b, i0:i1], scale, 1.0)
    if want_kv:
        gemm(ds.T, q[b, i0:i1], dk[b, c0:c1], scale, 1.0)


@kernel
def attention_bwd_query(q, k, v, g, lse, delta, bias, mask_index, has_mask, causal, scale, drop, seed,
                        threshold, inv_keep):
    """``dq (B, L, E)``; ``g (B, L, Ev)`` the output cotangent, ``delta (B, L)`` = rowsum(g * out)."""
    B, L, _ = q.shape
    S = k.shape[1]
    dq = np.zeros_like(q)
    blocks = (L + _ROWS - 1) // _ROWS
    for task in prange(B * blocks):
        b = task // blocks
        i0 = (task % blocks) * _ROWS
        i1 = min(L, i0 + _ROWS)
        for c0 in range(0, _key_limit(causal, i1, S), _COLS):
            _tile_gradients(q, k, v, g, lse, delta, bias, mask_index, has_mask, causal, scale, drop, seed,
                            threshold, inv_keep, b, i0, i1, c0, min(S, c0 + _COLS), dq, q, v, True, False)
    return dq


@kernel
def attention_bwd_key_value(q, k, v, g, lse, delta, bias, mask_index, has_mask, causal, scale, drop, seed,
                            threshold, inv_keep):
    """``(dk (B, S, E), dv (B, S, Ev))``; arguments as :func:`attention_bwd_query`."""
    B, L, _ = q.shape
    S = k.shape[1]
    dk = np.zeros_like(k)
    dv = np.zeros_like(v)
    blocks = (S + _COLS - 1) // _COLS
    for task in prange(B * blocks):
        b = task // blocks
        c0 = (task % blocks) * _COLS
        c1 = min(S, c0 + _COLS)
        first = (c0 // _ROWS) * _ROWS if causal else 0
        for i0 in range(first, L, _ROWS):
            _tile_gradients(q, k, v, g, lse, delta, bias, mask_index, has_mask, causal, scale, drop, seed,
                            threshold, inv_keep, b, i0, min(L, i0 + _ROWS), c0, c1, k, dk, dv, False, True)
    return dk, dv


@kernel
def attention_bwd(q, k, v, g, lse, delta, bias, mask_index, has_mask, causal, scale, drop, seed, threshold,
                  inv_keep):
    """``(dq, dk, dv)``, each score tile computed once; arguments and results (bits included) as
    :func:`attention_bwd_query` and :func:`attention_bwd_key_value`."""
    B, L, _ = q.shape
    S = k.shape[1]
    dq = np.zeros_like(q)
    dk = np.zeros_like(k)
    dv = np.zeros_like(v)
    for b in prange(B):
        for i0 in range(0, L, _ROWS):
            i1 = min(L, i0 + _ROWS)
            for c0 in range(0, _key_limit(causal, i1, S), _COLS):
                _tile_gradients(q, k, v, g, lse, delta, bias, mask_index, has_mask, causal, scale, drop, seed,
                                threshold, inv_keep, b, i0, i1, c0, min(S, c0 + _COLS), dq, dk, dv, True, True)
    return dq, dk, dv

"""The op table: one entry per public op of ``fnnet.ops`` and ``fnnet.losses`` (variants add rows).

Each row: ``OpSpec(name, fn, args, ref)``.  ``fn`` receives the arrays described by ``args`` in order;
``ref`` is the same computation in NumPy float64, written the way NumPy and PyTorch evaluate it so that
non-finite inputs give NumPy's answer (``relu(nan)`` is nan).  Ops without a ``ref`` are checked by the
metamorphic and float64-consistency oracles only (see ``oracle.py``).
"""

from __future__ import annotations

import math

import numpy as np

from ... import losses, ops
from .specs import KEY, Arg, B, F, I, OpSpec

__all__ = ["OP_SPECS"]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _row_max(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)


def _logsumexp(x, axis=-1, keepdims=False):
    """PyTorch's rule: a row whose maximum is +-inf gives that maximum; an empty row gives -inf."""
    m = _row_max(x, axis)
    with np.errstate(all="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _cross_entropy(logits, labels):
    return -_log_softmax(logits)[np.arange(len(labels)), labels]


def _summary(x):
    finite = x[np.isfinite(x)]
    n = finite.size
    mean = finite.sum() / n if n else math.nan
    var = max((finite * finite).sum() / n - mean * mean, 0.0) if n else math.nan
    return {"mean": mean, "std": math.sqrt(var), "min": finite.min() if n else math.nan,
            "max": finite.max() if n else math.nan, "zero_fraction": np.mean(x == 0) if x.size else math.nan,
            "nan_count": int(np.isnan(x).sum()), "inf_count": int(np.isinf(x).sum()), "size": x.size}


def _group_norm(x, gamma, beta, groups=2, eps=1e-5):
    grouped = x.reshape(x.shape[0], groups, -1)
    mean, var = grouped.mean(-1, keepdims=True), grouped.var(-1, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    return y * gamma.reshape(per_channel) + beta.reshape(per_channel)


def _chunk(x, chunks):
    """``torch.chunk`` along axis 0: pieces of ``ceil(n / chunks)``; an empty axis gives ``chunks`` pieces."""
    n = x.shape[0]
    if n == 0:
        return [x] * chunks
    size = -(-n // chunks)
    return [x[i:i + size] for i in range(0, n, size)]


def _attention(q, k, v, mask=None):
    """PyTorch's rules: a boolean mask adds -inf (so a NaN score stays NaN), a query row whose keys are all
    masked gives zeros."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + np.where(mask, 0.0, -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    p = np.exp(scores - np.where(np.isneginf(m), 0.0, m))
    total = np.sum(p, axis=-1, keepdims=True)
    return (p / np.where(total == 0, 1.0, total)) @ v


def _noop(g):
    return None


_X = F(3, 4)
_CONV_X = F(2, 3, 5, 5)
_IMG = F(2, 3, 6, 5)
_INDEX = Arg((5,), "int", False, high=3, optional=True)  # None is a valid index too (a new axis)
_MASK = Arg((3, 4), "bool", False, optional=True)
_BIAS5 = F(5, optional=True)

_UNARY = [
    ("abs", ops.abs, np.abs, _X),
    ("negative", ops.negative, np.negative, _X),
    ("exp", ops.exp, np.exp, _X),
    ("log", ops.log, np.log, F(3, 4, domain="positive")),
    ("sqrt", ops.sqrt, np.sqrt, F(3, 4, domain="positive")),
    ("relu", ops.relu, lambda x: np.maximum(x, 0.0), _X),
    ("sigmoid", ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), _X),
    ("tanh", ops.tanh, np.tanh, _X),
    ("softplus", ops.softplus, lambda x: np.logaddexp(0.0, x), _X),
    ("gelu", ops.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), _X),
    ("erf", ops.erf, _erf, _X),
    ("gelu[tanh]", lambda x: ops.gelu(x, approximate=True), _gelu_tanh, _X),
    ("leaky_relu", lambda x: ops.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), _X),
    ("elu", lambda x: ops.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(np.minimum(x, 0))), _X),
    ("clip", lambda x: ops.clip(x, -0.5, 0.8), lambda x: np.clip(x, -0.5, 0.8), _X),
    ("gradient_probe", lambda x: ops.gradient_probe(x, _noop), lambda x: x, _X),
]

_BINARY = [
    ("add", ops.add, np.add), ("subtract", ops.subtract, np.subtract), ("multiply", ops.multiply, np.multiply),
    ("maximum", ops.maximum, np.maximum), ("minimum", ops.minimum, np.minimum),
]

OP_SPECS = [OpSpec(name, fn, (arg,), ref) for name, fn, ref, arg in _UNARY]
OP_SPECS += [OpSpec(name, fn, (F(3, 4), F(4)), ref) for name, fn, ref in _BINARY]
OP_SPECS += [OpSpec(f"{name}[scalar]", fn, (F(3, 4), F()), ref) for name, fn, ref in _BINARY[:3]]
OP_SPECS += [
    OpSpec("divide", ops.divide, (F(3, 4), F(3, 4, domain="positive")), np.divide),
    OpSpec("power", ops.power, (F(3, 4, domain="positive"), F(3, 4)), np.power),
    OpSpec("where", ops.where, (B(3, 4), F(3, 4), F(4)), np.where),
    OpSpec("matmul", ops.matmul, (F(4, 3), F(3, 5)), np.matmul),
    OpSpec("matmul[batched]", ops.matmul, (F(2, 4, 3), F(2, 3, 5)), np.matmul),
    OpSpec("matmul[vector]", ops.matmul, (F(3), F(3, 5)), np.matmul),
    OpSpec("linear", ops.linear, (F(4, 3), F(3, 5), F(5, optional=True)), lambda x, w, b: x @ w + b),
    OpSpec("linear[relu]", lambda x, w, b: ops.linear(x, w, b, activation="relu"), (F(2, 4, 3), F(3, 5), _BIAS5),
           lambda x, w, b: np.maximum(x @ w + b, 0.0)),
    OpSpec("sum", ops.sum, (F(3, 4, 2),), np.sum),
    OpSpec("sum[axis]", lambda x: ops.sum(x, axis=(0, 2), keepdims=True), (F(3, 4, 2),),
           lambda x: np.sum(x, axis=(0, 2), keepdims=True)),
    OpSpec("mean", lambda x: ops.mean(x, axis=1), (F(3, 4, 2),), lambda x: np.mean(x, axis=1)),
    OpSpec("max", lambda x: ops.max(x, axis=-1), (F(3, 4),), lambda x: np.max(x, axis=-1)),
    OpSpec("max[all]", ops.max, (F(3, 4, 2),), np.max),
    OpSpec("softmax", ops.softmax, (F(3, 5),), _softmax),
    OpSpec("softmax[axis0]", lambda x: ops.softmax(x, axis=0), (F(3, 5),), lambda x: _softmax(x, 0)),
    OpSpec("log_softmax", ops.log_softmax, (F(3, 5),), _log_softmax),
    OpSpec("logsumexp", ops.logsumexp, (F(3, 5),), _logsumexp),
    OpSpec("logsumexp[axis0]", lambda x: ops.logsumexp(x, axis=0, keepdims=True), (F(3, 5),),
           lambda x: _logsumexp(x, 0, True)),
    OpSpec("reshape", lambda x: ops.reshape(x, (4, 3)), (_X,), lambda x: np.reshape(x, (4, 3))),
    OpSpec("transpose", ops.transpose, (F(2, 3, 4),), np.transpose),
    OpSpec("transpose[axes]", lambda x: ops.transpose(x, (1, 0, 2)), (F(2, 3, 4),),
           lambda x: np.transpose(x, (1, 0, 2))),
    OpSpec("getitem", lambda x: ops.getitem(x, (slice(1, None), slice(None, None, -2))), (_X,), lambda x: x[1:, ::-2]),
    OpSpec("getitem[int]", lambda x: ops.getitem(x, 1), (_X,), lambda x: x[1]),
    OpSpec("getitem[scalar]", lambda x: ops.getitem(x, (1, -2)), (_X,), lambda x: x[1, -2]),
    OpSpec("getitem[array]", lambda x, i: ops.getitem(x, i), (_X, _INDEX), lambda x, i: x[i]),
    OpSpec("getitem[mask]", lambda x, m: ops.getitem(x, m), (_X, _MASK), lambda x, m: x[m]),
    OpSpec("take", lambda x, i: ops.take(x, i, axis=1), (_X, I(2, 3, high=4)), lambda x, i: np.take(x, i, axis=1)),
    OpSpec("concatenate", lambda a, b: ops.concatenate([a, b], axis=1), (F(2, 3), F(2, 2)),
           lambda a, b: np.concatenate([a, b], axis=1)),
    OpSpec("split", lambda x: ops.split(x, [1, 3], axis=1), (_X,), lambda x: np.split(x, [1, 3], axis=1)),
    OpSpec("chunk", lambda x: ops.chunk(x, 2), (_X,), lambda x: _chunk(x, 2)),
    OpSpec("gru_sequence", ops.gru_sequence, (F(2, 3, 12), F(2, 4), F(12, 4), F(12))),
    OpSpec("lstm_sequence", ops.lstm_sequence, (F(2, 3, 16), F(2, 4), F(2, 4), F(16, 4), F(16))),
    OpSpec("einsum", lambda a, b: ops.einsum("bij,bkj->bik", a, b), (F(2, 3, 4), F(2, 5, 4)),
           lambda a, b: np.einsum("bij,bkj->bik", a, b)),
    OpSpec("einsum[sum]", lambda a: ops.einsum("ijk->k", a), (F(2, 3, 4),), lambda a: np.einsum("ijk->k", a)),
    OpSpec("stack", lambda a, b: ops.stack((a, b), axis=1), (F(2, 3), F(2, 3)), lambda a, b: np.stack((a, b), axis=1)),
    OpSpec("conv2d", ops.conv2d, (_CONV_X, F(4, 3, 3, 3), F(4, optional=True))),
    OpSpec("conv2d[s2p1g]", lambda x, w: ops.conv2d(x, w, stride=2, padding=1, groups=3, activation="relu"),
           (F(2, 3, 5, 5), F(6, 1, 3, 3))),
    OpSpec("max_pool2d", lambda x: ops.max_pool2d(x, 2), (_IMG,)),
    OpSpec("max_pool2d[k3s2p1]", lambda x: ops.max_pool2d(x, 3, 2, 1), (_IMG,)),
    OpSpec("avg_pool2d", lambda x: ops.avg_pool2d(x, 3, 2, 1, count_include_pad=False), (_IMG,)),
    OpSpec("global_avg_pool2d", ops.global_avg_pool2d, (_IMG,), lambda x: np.mean(x, axis=(2, 3))),
    OpSpec("batch_norm", lambda x, g, b, m, v: ops.batch_norm(x, g, b, m, v, train=True),
           (F(4, 3, 2, 2), F(3, optional=True), F(3, optional=True), F(3, diff=False),
            F(3, domain="positive", diff=False))),
    OpSpec("batch_norm[eval]", lambda x, g, b, m, v: ops.batch_norm(x, g, b, m, v, train=False),
           (F(4, 3), F(3, optional=True), F(3, optional=True), F(3), F(3, domain="positive"))),
    OpSpec("layer_norm", lambda x, g, b: ops.layer_norm(x, g, b), (F(3, 5), F(5, optional=True), F(5, optional=True)),
           lambda x, g, b: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b),
    OpSpec("group_norm", lambda x, g, b: ops.group_norm(x, 2, g, b), (F(2, 4, 3, 3), F(4, optional=True),
                                                                        F(4, optional=True)), _group_norm),
    OpSpec("rms_norm", lambda x, g: ops.rms_norm(x, g, eps=1e-6), (F(3, 5), F(5, optional=True)),
           lambda x, g: x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6) * g),
    OpSpec("conv1d", lambda x, w, b: ops.conv1d(x, w, b, padding=1), (F(2, 3, 7), F(4, 3, 3), F(4, optional=True))),
    OpSpec("conv_transpose2d", lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=2, padding=1),
           (F(2, 3, 4, 4), F(3, 2, 3, 3), F(2, optional=True))),
    OpSpec("max_pool1d", lambda x: ops.max_pool1d(x, 3, 2, 1), (F(2, 3, 7),)),
    OpSpec("avg_pool1d", lambda x: ops.avg_pool1d(x, 2, ceil_mode=True), (F(2, 3, 7),)),
    OpSpec("pad", lambda x: ops.pad(x, ((1, 2), 1)), (F(2, 3, 4),), lambda x: np.pad(x, ((0, 0), (1, 2), (1, 1)))),
    OpSpec("pad[reflect]", lambda x: ops.pad(x, 1, mode="reflect"), (F(2, 3, 4),),
           lambda x: np.pad(x, ((0, 0), (0, 0), (1, 1)), mode="reflect")),
    OpSpec("scaled_dot_product_attention", ops.scaled_dot_product_attention, (F(2, 3, 4), F(2, 5, 4), F(2, 5, 3)),
           _attention),
    OpSpec("scaled_dot_product_attention[mask]", lambda q, k, v, m: ops.scaled_dot_product_attention(q, k, v, m),
           (F(2, 3, 4), F(2, 5, 4), F(2, 5, 3), Arg((3, 5), "bool", False, optional=True)), _attention),
    OpSpec("scaled_dot_product_attention[causal-dropout]",
           lambda q, k, v, key: ops.scaled_dot_product_attention(q, k, v, causal=True, dropout=0.3, key=key),
           (F(1, 2, 4, 4), F(1, 2, 6, 4), F(1, 2, 6, 4), KEY)),
    OpSpec("dropout", lambda x, key: ops.dropout(x, key, 0.5), (F(3, 4), KEY)),
    OpSpec("channel_dropout", lambda x, key: ops.channel_dropout(x, key, 0.5), (F(2, 3, 4, 4), KEY)),
    OpSpec("embedding", ops.embedding, (I(4, 5, high=7), F(7, 3)), lambda i, t: t[i]),
    OpSpec("summarize", ops.summarize, (F(3, 4),), _summary, differentiable=False),
    OpSpec("losses.softmax_cross_entropy", losses.softmax_cross_entropy, (F(4, 5), I(4, high=5)),
           lambda x, y: np.mean(_cross_entropy(x, y))),
    OpSpec("losses.softmax_cross_entropy[none]", lambda x, y: losses.softmax_cross_entropy(x, y, "none"),
           (F(4, 5), I(4, high=5)), _cross_entropy),
    OpSpec("losses.softmax_cross_entropy_with_probs", losses.softmax_cross_entropy_with_probs,
           (F(4, 5), F(4, 5, domain="unit")), lambda x, t: np.mean(-np.sum(t * _log_softmax(x), axis=-1))),
    OpSpec("losses.mse", losses.mse, (F(3, 4), F(3, 4)), lambda p, t: np.mean((p - t) ** 2)),
    OpSpec("losses.binary_cross_entropy_with_logits", lambda x, t: losses.binary_cross_entropy_with_logits(x, t, "sum"),
           (F(3, 4), F(3, 4, domain="unit")),
           lambda x, t: np.sum(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))),
    OpSpec("losses.accuracy", losses.accuracy, (F(4, 5), I(4, high=5)),
           lambda x, y: np.mean(np.argmax(x, axis=1) == y), differentiable=False),
]

"""Per-op benchmarks: forward, and forward + backward, for fnnet and PyTorch on the same shapes (and a
NumPy forward reference where NumPy has the op; see :mod:`fnnet.bench.pointwise`)."""

from __future__ import annotations

import numpy as np

from . import pointwise
from .timing import median_ms

LAYER_OPS = ("linear", "conv2d", "max_pool2d", "avg_pool2d", "batch_norm", "softmax_cross_entropy", "embedding",
             "attention")
OPS = (*LAYER_OPS, *pointwise.CASES)
NUMPY_OPS = pointwise.NUMPY_REFERENCE
_LABELS = {
    "linear": "linear (128x784 → 256)", "conv2d": "conv2d (64x32x14x14, 64 filters 3x3, pad 1)",
    "max_pool2d": "max_pool2d (64x32x28x28, 2x2)", "avg_pool2d": "avg_pool2d (64x32x28x28, 2x2)",
    "batch_norm": "batch_norm (64x32x14x14, training)", "softmax_cross_entropy": "softmax cross-entropy (512x1000)",
    "embedding": "embedding (64x32 of 10000x128)",
    "attention": "causal attention (32x4 heads x 64 x 32)",
}


def label(name):
    """The op row's name in tables, with its shape."""
    return _LABELS[name] if name in _LABELS else pointwise.label(name)


def _inputs(name):
    if name in pointwise.CASES:
        return pointwise.inputs(name)
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    if name == "linear":
        return {"x": f(128, 784), "w": f(784, 256) * 0.05, "b": f(256)}
    if name == "conv2d":
        return {"x": f(64, 32, 14, 14), "w": f(64, 32, 3, 3) * 0.05, "b": f(64)}
    if name in ("max_pool2d", "avg_pool2d"):
        return {"x": f(64, 32, 28, 28)}
    if name == "batch_norm":
        return {"x": f(64, 32, 14, 14), "g": f(32), "b": f(32)}
    if name == "softmax_cross_entropy":
        return {"x": f(512, 1000), "y": rng.integers(0, 1000, 512)}
    if name == "embedding":
        return {"i": rng.integers(0, 10000, (64, 32)), "w": f(10000, 128)}
    if name == "attention":  # the attention workload's shapes: batch 32, 4 heads, context 64, width 128
        return {"q": f(32, 4, 64, 32), "k": f(32, 4, 64, 32), "v": f(32, 4, 64, 32)}
    raise KeyError(name)


def _fnnet_fn(name, d):
    import fnnet

    if name in pointwise.CASES:
        return pointwise.fnnet_fn(name, d)
    ops = fnnet.ops
    if name == "linear":
        return lambda x, w, b: ops.linear(x, w, b), ("x", "w", "b")
    if name == "conv2d":
        return lambda x, w, b: ops.conv2d(x, w, b, padding=1), ("x", "w", "b")
    if name == "max_pool2d":
        return lambda x: ops.max_pool2d(x, 2), ("x",)
    if name == "avg_pool2d":
        return lambda x: ops.avg_pool2d(x, 2), ("x",)
    if name == "batch_norm":
        mean, var = np.zeros(32, np.float32), np.ones(32, np.float32)
        return lambda x, g, b: ops.batch_norm(x, g, b, mean, var, train=True)[0], ("x", "g", "b")
    if name == "softmax_cross_entropy":
        return lambda x: fnnet.losses.softmax_cross_entropy(x, d["y"]), ("x",)
    if name == "embedding":
        return lambda w: ops.embedding(d["i"], w), ("w",)
    if name == "attention":
        return lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, causal=True), ("q", "k", "v")
    raise KeyError(name)


#: Calls before timing an op: ops run eagerly (no jit plan and its thread trial to wait out).
OP_WARMUP = 12


def fnnet_op(name, repeats, min_time, warmup=OP_WARMUP):
    import fnnet

    d = _inputs(name)
    fn, argnames = _fnnet_fn(name, d)
    args = [d[a] for a in argnames]
    out = fn(*args)
    u = np.ones_like(out)

    def fwd_bwd():
        _, vjp_fn = fnnet.vjp(fn, *args)
        vjp_fn(u)

    return {"fwd_ms": median_ms(lambda: fn(*args), warmup=warmup, repeats=repeats, min_time=min_time),
            "fwd_bwd_ms": median_ms(fwd_bwd, warmup=warmup, repeats=repeats, min_time=min_time)}


def _torch_fn(name, d):
    import torch
    import torch.nn.functional as F

    if name in pointwise.CASES:
        return pointwise.torch_fn(name, d)
    if name == "linear":
        d["w"] = d["w"].T.contiguous()
        return (lambda x, w, b: F.linear(x, w, b)), ("x", "w", "b")
    if name == "conv2d":
        return (lambda x, w, b: F.conv2d(x, w, b, padding=1)), ("x", "w", "b")
    if name == "max_pool2d":
        return (lambda x: F.max_pool2d(x, 2)), ("x",)
    if name == "avg_pool2d":
        return (lambda x: F.avg_pool2d(x, 2)), ("x",)
    if name == "batch_norm":
        mean, var = torch.zeros(32), torch.ones(32)
        return (lambda x, g, b: F.batch_norm(x, mean, var, g, b, training=True)), ("x", "g", "b")
    if name == "softmax_cross_entropy":
        return (lambda x: F.cross_entropy(x, d["y"])), ("x",)
    if name == "embedding":
        return (lambda w: F.embedding(d["i"], w)), ("w",)
    if name == "attention":
        return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)), ("q", "k", "v")
    raise KeyError(name)


def torch_op(name, repeats, min_time, warmup=OP_WARMUP):
    import torch

    d = {k: torch.from_numpy(v) for k, v in _inputs(name).items()}
    fn, argnames = _torch_fn(name, d)
    args = [d[a].clone().requires_grad_(True) for a in argnames]
    with torch.no_grad():
        out = fn(*args)
    u = torch.ones_like(out)

    def fwd():
        with torch.no_grad():
            fn(*args)

    def fwd_bwd():
        for a in args:
            a.grad = None
        fn(*args).backward(u)

    return {"fwd_ms": median_ms(fwd, warmup=warmup, repeats=repeats, min_time=min_time),
            "fwd_bwd_ms": median_ms(fwd_bwd, warmup=warmup, repeats=repeats, min_time=min_time)}


def numpy_op(name, repeats, min_time, warmup=OP_WARMUP):
    """The NumPy forward reference (there is no backward to time)."""
    d = _inputs(name)
    fn, argnames = pointwise.numpy_fn(name, d)
    args = [d[a] for a in argnames]
    return {"fwd_ms": median_ms(lambda: fn(*args), warmup=warmup, repeats=repeats, min_time=min_time),
            "fwd_bwd_ms": None}


OP_BENCHES = {"fnnet": fnnet_op, "torch": torch_op, "numpy": numpy_op}

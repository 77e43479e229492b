"""Per-op benchmark rows for activations, softmax and LayerNorm on large float32 inputs.

Each row is ``"<op>@<shape>"``: element-wise ops on 1M elements as a vector (``1M``) and as a
``(32, 64, 512)`` batch of sequences; row-wise ops (over the last axis) on ``(1000, 1000)`` and
``(32, 64, 512)``.  ``fnnet_fn``, ``torch_fn`` and ``numpy_fn`` return ``(fn, argnames)``: the forward of
the row on the inputs named (every named input is differentiated in forward + backward).  NumPy is a
forward-only reference for ``exp``, ``tanh`` and ``sigmoid`` (its float32 ufuncs; the sigmoid as
``1 / (1 + exp(-x))`` in four in-place ufunc passes, NumPy having no sigmoid ufunc).
"""

from __future__ import annotations

import numpy as np

ELEMENTWISE = ("exp", "tanh", "sigmoid", "gelu", "gelu_tanh")
ROWWISE = ("softmax", "log_softmax", "layer_norm")
SHAPES = {"1M": (1_000_000,), "1000x1000": (1000, 1000), "32x64x512": (32, 64, 512)}
CASES = tuple([f"{op}@{s}" for op in ELEMENTWISE for s in ("1M", "32x64x512")]
              + [f"{op}@{s}" for op in ROWWISE for s in ("1000x1000", "32x64x512")])
NUMPY_REFERENCE = tuple(c for c in CASES if c.split("@")[0] in ("exp", "tanh", "sigmoid"))
LABELS = {"gelu": "gelu exact", "gelu_tanh": "gelu tanh"}


def label(case):
    """``'gelu tanh (32x64x512)'``: the row's name in tables."""
    op, shape = case.split("@")
    return f"{LABELS.get(op, op)} ({shape})"


def inputs(case):
    op, shape = case.split("@")
    rng = np.random.default_rng(0)
    d = {"x": rng.standard_normal(SHAPES[shape]).astype(np.float32)}
    if op == "layer_norm":
        width = SHAPES[shape][-1]
        d["g"] = (1 + 0.1 * rng.standard_normal(width)).astype(np.float32)
        d["b"] = (0.1 * rng.standard_normal(width)).astype(np.float32)
    return d


def fnnet_fn(case, d):
    import fnnet

    ops, op = fnnet.ops, case.split("@")[0]
    if op == "layer_norm":
        return (lambda x, g, b: ops.layer_norm(x, g, b)), ("x", "g", "b")
    if op in ("gelu", "gelu_tanh"):
        approximate = "tanh" if op == "gelu_tanh" else "none"
        return (lambda x: ops.gelu(x, approximate=approximate)), ("x",)
    fn = getattr(ops, op)
    return (lambda x: fn(x, axis=-1)) if op in ROWWISE else fn, ("x",)


def torch_fn(case, d):
    import torch
    import torch.nn.functional as F

    op = case.split("@")[0]
    if op == "layer_norm":
        return (lambda x, g, b: F.layer_norm(x, x.shape[-1:], g, b)), ("x", "g", "b")
    if op in ("gelu", "gelu_tanh"):
        approximate = "tanh" if op == "gelu_tanh" else "none"
        return (lambda x: F.gelu(x, approximate=approximate)), ("x",)
    if op in ROWWISE:
        fn = getattr(F, op)
        return (lambda x: fn(x, dim=-1)), ("x",)
    return getattr(torch, op), ("x",)


def _numpy_sigmoid(x):
    y = np.negative(x)
    np.exp(y, out=y)
    y += 1
    return np.reciprocal(y, out=y)


def numpy_fn(case, d):
    op = case.split("@")[0]
    if case not in NUMPY_REFERENCE:
        raise KeyError(f"no NumPy reference for op row {case!r}; NumPy rows: {NUMPY_REFERENCE}")
    return {"exp": np.exp, "tanh": np.tanh, "sigmoid": _numpy_sigmoid}[op], ("x",)

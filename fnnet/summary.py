"""Model inspection without allocating parameters: ``eval_shape`` and ``summary``."""

from __future__ import annotations

import math

import numpy as np

from . import init as initializers
from . import layers as L
from . import tree

__all__ = ["eval_shape", "summary", "layer_rows"]


def eval_shape(fn, *args, **kwargs):
    """Run ``fn`` with initializers in abstract mode: every array an ``fnnet.init`` initializer would
    create comes back as a :class:`fnnet.init.ShapeDtype` (shape and dtype), nothing is drawn or allocated.

    Example::

        shapes = fnnet.eval_shape(model.init, fnnet.random.key(0), (None, 784))
        n_params = sum(s.size for s in fnnet.tree.leaves(shapes))
    """
    with initializers.abstract_arrays():
        return fn(*args, **kwargs)


def _numel(shape):
    return math.prod(1 if s is None else s for s in shape)


def _flops(layer, in_shape, out_shape):
    """Forward floating-point operations (a multiply-add counts 2) of one leaf layer."""
    n_out = _numel(out_shape)
    if isinstance(layer, L.Linear):
        return 2 * _numel(in_shape) * layer.out_features + (n_out if layer.use_bias else 0)
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        per_output = 2 * (in_shape[1] // layer.groups) * kh * kw
        return n_out * per_output + (n_out if layer.use_bias else 0)
    if isinstance(layer, (L.MaxPool2D, L.AvgPool2D)):
        return n_out * layer.kernel_size[0] * layer.kernel_size[1]
    if isinstance(layer, L.GlobalAvgPool2D):
        return _numel(in_shape)
    if isinstance(layer, (L.BatchNorm, L.LayerNorm)):
        return 7 * n_out  # mean, variance, normalise, scale and shift
    if isinstance(layer, (L.Softmax, L.LogSoftmax)):
        return 5 * n_out
    if isinstance(layer, (L.Flatten, L.Reshape, L.Identity, L.Embedding)):
        return 0
    return n_out  # elementwise activations, dropout


def _tape_bytes(layer, in_shape, out_shape, itemsize):
    """Bytes of activations the tape keeps for this layer's backward in training (params excluded)."""
    n_in, n_out = _numel(in_shape), _numel(out_shape)
    if isinstance(layer, (L.Linear, L.Conv2D, L.LeakyReLU, L.ELU, L.GELU, L.Softplus)):
        return n_in * itemsize
    if isinstance(layer, (L.ReLU, L.Sigmoid, L.Tanh, L.Softmax, L.LogSoftmax)):
        return n_out * itemsize
    if isinstance(layer, L.MaxPool2D):
        return n_out * 8  # int64 position of each window's maximum
    if isinstance(layer, L.BatchNorm):
        return n_in * itemsize + 2 * in_shape[1] * itemsize  # normalised input, mean and 1/std
    if isinstance(layer, L.LayerNorm):
        return n_in * itemsize + 2 * (n_in // in_shape[-1]) * itemsize
    if isinstance(layer, L.Dropout):
        return n_in if layer.rate > 0 else 0  # one byte of mask per element
    if isinstance(layer, L.Embedding):
        return n_in * 8
    return 0


def _children(layer):
    if isinstance(layer, (L.Sequential, L.Parallel)):
        return list(zip(layer.child_names, layer.layers))
    if isinstance(layer, L.Residual):
        return [("block", layer.block)]
    return None


def layer_rows(model, in_shape, dtype=np.float32, prefix=""):
    """One dict per leaf layer: path, type, in/out shapes, params, param bytes, flops, tape bytes."""
    rows = []
    children = _children(model)
    if children is None:
        out = model.out_shape(in_shape)
        params = eval_shape(model.init, np.zeros(2, np.uint32), in_shape, dtype)
        leaves = tree.leaves(params)
        rows.append({
            "path": prefix or "(model)", "type": type(model).__name__, "in_shape": in_shape, "out_shape": out,
            "params": sum(s.size for s in leaves), "param_bytes": sum(s.nbytes for s in leaves),
            "flops": _flops(model, in_shape, out),
            "tape_bytes": _tape_bytes(model, in_shape, out, np.dtype(dtype).itemsize),
        })
        return rows
    if isinstance(model, L.Parallel):
        for (name, child), shape in zip(children, in_shape):
            rows += layer_rows(child, shape, dtype, f"{prefix}{name}/" if prefix else f"{name}/")
    else:
        shape = in_shape
        for name, child in children:
            path = f"{prefix}{name}"
            rows += layer_rows(child, shape, dtype, path + "/")
            shape = child.out_shape(shape)
    for r in rows:
        r["path"] = r["path"].rstrip("/")
    return rows


def _fmt_bytes(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def summary(model, in_shape, dtype=np.float32, *, print_fn=print):
    """Print (and return) a per-layer table: path, type, output shape, parameter count and bytes,
    forward FLOPs and the activation bytes the tape keeps for the backward, with totals.

    Shape inference only: no parameter is allocated.  A ``None`` batch entry counts as 1 (per example).
    FLOPs count a multiply-add as 2; normalisation layers are estimated at 7 per element.

    Returns:
        ``{"rows": [...], "total": {"params", "param_bytes", "flops", "tape_bytes"}}``.
    """
    rows = layer_rows(model, tuple(in_shape), dtype)
    total = {k: sum(r[k] for r in rows) for k in ("params", "param_bytes", "flops", "tape_bytes")}
    if print_fn is not None:
        header = f"{'path':<22}{'type':<16}{'output shape':<22}{'params':>12}{'param mem':>12}{'FLOPs':>14}{'tape':>12}"
        lines = [header, "-" * len(header)]
        for r in rows:
            lines.append(f"{r['path']:<22}{r['type']:<16}{str(r['out_shape']):<22}{r['params']:>12,}"
                         f"{_fmt_bytes(r['param_bytes']):>12}{r['flops']:>14,}{_fmt_bytes(r['tape_bytes']):>12}")
        lines.append("-" * len(header))
        lines.append(f"{'total':<60}{total['params']:>12,}{_fmt_bytes(total['param_bytes']):>12}"
                     f"{total['flops']:>14,}{_fmt_bytes(total['tape_bytes']):>12}")
        print_fn("\n".join(lines))
    return {"rows": rows, "total": total}

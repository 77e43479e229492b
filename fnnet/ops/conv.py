"""2-D convolution (NCHW, PyTorch semantics) and its shape arithmetic.

``conv2d`` validates everything in Python, then calls the kernels in :mod:`fnnet.kernels.conv`
(per-sample im2col + BLAS; see that module for the scheme and the measurements behind it).
``conv_output_size`` and ``conv2d_output_shape`` compute sizes without touching data, for layer shape
inference.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import check_float, check_same_dtype, contiguous, value

__all__ = ["conv2d", "conv_output_size", "conv2d_output_shape"]


# ------------------------------------------------------------------------------- argument parsing


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _pair(op: str, name: str, v, *, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (h, w), each >= ``minimum``."""
    if _is_int(v):
        hw = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(e) for e in v):
        hw = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{op}: {name} expected an int or a pair of ints (h, w), got {v!r}")
    if min(hw) < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {what}, got {v!r}")
    return hw


def _same_split(total: int) -> tuple[int, int]:
    """'same' padding of ``total`` pixels: the odd pixel goes after (bottom/right), like PyTorch and TF."""
    before = total // 2
    return before, total - before


def _padding4(op: str, padding, kh: int, kw: int, stride, dilation) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from an int, an (h, w) pair, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise ValueError(
                    f"{op}: padding='same' needs stride 1, got stride={tuple(stride)}; pass explicit padding "
                    "for strided convolutions"
                )
            top, bottom = _same_split(dilation[0] * (kh - 1))
            left, right = _same_split(dilation[1] * (kw - 1))
            return top, bottom, left, right
        raise ValueError(f"{op}: padding expected an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    ph, pw = _pair(op, "padding", padding, minimum=0)
    return ph, ph, pw, pw


def conv_output_size(size: int, k: int, stride: int = 1, padding=0, dilation: int = 1) -> int:
    """Output length of a convolution (or pooling) along one axis, PyTorch's floor formula.

    ``out = floor((size + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1``

    Args:
        size: input length (>= 1).
        k: kernel length (>= 1).
        stride: step (>= 1).
        padding: an int (added on both sides), a pair ``(before, after)``, ``"valid"`` (0) or ``"same"``
            (``dilation*(k-1)`` in total, the odd pixel after; requires ``stride == 1``).
        dilation: spacing of the kernel taps (>= 1).

    Returns:
        The output length (>= 1).

    Raises:
        ValueError: non-positive sizes, or a kernel extent larger than the padded input.
    """
    op = "conv_output_size"
    for name, v, lo in (("size", size, 1), ("k", k, 1), ("stride", stride, 1), ("dilation", dilation, 1)):
        if not _is_int(v):
            raise TypeError(f"{op}: {name} expected an int, got {v!r}")
        if v < lo:
            raise ValueError(f"{op}: {name} must be >= {lo}, got {v}")
    if padding == "same":
        if stride != 1:
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
        before, after = _same_split(dilation * (k - 1))
    elif padding == "valid":
        before = after = 0
    elif _is_int(padding):
        before = after = int(padding)
    elif isinstance(padding, (tuple, list)) and len(padding) == 2 and all(_is_int(p) for p in padding):
        before, after = int(padding[0]), int(padding[1])
    else:
        raise ValueError(f"{op}: padding expected an int, a (before, after) pair, 'same' or 'valid', got {padding!r}")
    if before < 0 or after < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    extent = dilation * (k - 1) + 1
    padded = size + before + after
    if extent > padded:
        raise ValueError(
            f"{op}: the kernel extent {extent} (k={k}, dilation={dilation}) is larger than the padded input "
            f"{padded} (size {size} + padding {before}+{after})"
        )
    return (padded - extent) // stride + 1


def _geometry(op, x_shape, w_shape, stride, padding, dilation, groups):
    """Validate shapes and hyperparameters; return (out_shape, (sh, sw), (top, bottom, left, right), (dh, dw))."""
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(x_shape) != 4:
        hint = "; add a batch axis with x[None]" if len(x_shape) == 3 else ""
        raise ValueError(f"{op}: x must have 4 dimensions (N, C, H, W), got shape {x_shape}{hint}")
    if len(w_shape) != 4:
        raise ValueError(f"{op}: weight must have 4 dimensions (out_ch, in_ch/groups, kh, kw), got shape {w_shape}")
    if not _is_int(groups):
        raise TypeError(f"{op}: groups expected an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be positive, got {groups}")
    sh, sw = _pair(op, "stride", stride, minimum=1)
    dh, dw = _pair(op, "dilation", dilation, minimum=1)
    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    if min(o, cg, kh, kw) < 1:
        raise ValueError(f"{op}: weight dimensions must be positive, got weight.shape={w_shape}")
    if c is not None and c % groups:
        raise ValueError(f"{op}: in_channels {c} (x.shape={x_shape}) is not divisible by groups={groups}")
    if o % groups:
        raise ValueError(f"{op}: out_channels {o} (weight.shape={w_shape}) is not divisible by groups={groups}")
    if c is not None and c // groups != cg:
        raise ValueError(
            f"{op}: x has {c} channels, so weight.shape[1] must be in_ch/groups = {c}/{groups} = {c // groups}; "
            f"got x.shape={x_shape}, weight.shape={w_shape} (weight.shape[1] = {cg} implies {cg * groups} "
            f"input channels); check the channel count or groups"
        )
    top, bottom, left, right = _padding4(op, padding, kh, kw, (sh, sw), (dh, dw))
    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if (h is not None and ext_h > h + top + bottom) or (w is not None and ext_w > w + left + right):
        raise ValueError(
            f"{op}: the kernel ({kh}x{kw}, dilation {dh}x{dw}, extent {ext_h}x{ext_w}) is larger than the padded "
            f"input ({h}x{w} plus padding {top}+{bottom} rows, {left}+{right} columns = "
            f"{None if h is None else h + top + bottom}x{None if w is None else w + left + right}); "
            "use a larger input, more padding or a smaller kernel"
        )
    oh = None if h is None else (h + top + bottom - ext_h) // sh + 1
    ow = None if w is None else (w + left + right - ext_w) // sw + 1
    return (n, o, oh, ow), (sh, sw), (top, bottom, left, right), (dh, dw)


def conv2d_output_shape(x_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1) -> tuple:
    """The shape ``conv2d`` would return, computed without data (any of N, H, W may be None).

    Args:
        x_shape: ``(N, C, H, W)``.
        weight_shape: ``(out_ch, in_ch/groups, kh, kw)``.
        stride, padding, dilation, groups: as for :func:`conv2d`.

    Returns:
        ``(N, out_ch, out_h, out_w)``.

    Raises:
        the same TypeError/ValueError as :func:`conv2d` for bad shapes or hyperparameters.
    """
    return _geometry("conv2d_output_shape", x_shape, weight_shape, stride, padding, dilation, groups)[0]


# ------------------------------------------------------------------------------- the primitive


def _conv2d_fwd(x, weight, bias, *, stride, pad_top, pad_left, dilation, out_hw, relu=False):
    x = contiguous(x)
    w = contiguous(weight)
    o, cg, kh, kw = w.shape
    groups = x.shape[1] // cg
    w3 = w.reshape(groups, o // groups, cg * kh * kw)
    has_bias = bias is not None
    b = contiguous(bias) if has_bias else np.zeros(0, x.dtype)
    y = K.conv2d_fwd(x, w3, b, has_bias, relu, stride[0], stride[1], pad_top, pad_left, dilation[0], dilation[1],
                     kh, kw, out_hw[0], out_hw[1])
    return y, (x, w3, w.shape, has_bias, y if relu else None)


def _conv2d_bwd(res, g, *, needs, stride, pad_top, pad_left, dilation, out_hw, relu=False):
    x, w3, w_shape, has_bias, y = res
    g = contiguous(g)
    if relu:  # the fused ReLU's backward: zero where the output was clipped
        g = K.relu_bwd(y.reshape(-1), g.reshape(-1)).reshape(g.shape)
    kh, kw = w_shape[2], w_shape[3]
    geometry = (stride[0], stride[1], pad_top, pad_left, dilation[0], dilation[1], kh, kw)
    # The input gradient is skipped when x is not traced (a network's first layer sees the data).
    gx = K.conv2d_bwd_input(g, w3, x.shape[2], x.shape[3], *geometry) if needs[0] else None
    gw, gb = K.conv2d_bwd_weight(x, g, w3.shape[0], *geometry, has_bias)
    return gx, gw.reshape(w_shape), (gb if has_bias else None)


_conv2d = primitive("conv2d", _conv2d_fwd, _conv2d_bwd, argnames=("x", "weight", "bias"), input_mask=True)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None):
    """2-D cross-correlation over NCHW images, like ``torch.nn.functional.conv2d``.

    ``y[n, o, i, j] = bias[o] + sum_{c, a, b} weight[o, c, a, b] *
    xpad[n, g*C/groups + c, i*sh + a*dh, j*sw + b*dw]`` where ``g = o // (out_ch/groups)``.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.
        weight: ``(out_ch, C/groups, kh, kw)``, the dtype of ``x``.
        bias: ``(out_ch,)`` or None.
        stride: int or ``(sh, sw)``, positive.
        padding: int or ``(ph, pw)`` zeros added on both sides; ``"valid"`` (no padding); or ``"same"``
            (output size = input size; stride 1 only).  When the total ``dilation*(k-1)`` is odd, "same"
            puts the extra row/column at the bottom/right, as PyTorch and TensorFlow do.
        dilation: int or ``(dh, dw)``, positive.
        groups: positive int dividing both C and out_ch; ``groups == C`` is a depthwise convolution.
        activation: None or ``"relu"``, applied in the same kernel pass as the bias (forward and backward).

    Returns:
        ``(N, out_ch, out_h, out_w)`` with ``out_h = conv_output_size(H, kh, sh, padding, dh)``.

    Raises:
        TypeError: non-float or mismatched dtypes, or non-int hyperparameters.
        ValueError: wrong ranks, channel mismatch (shows x.shape, weight.shape and in_ch/groups), groups not
        dividing the channels, non-positive stride/dilation, negative padding, 'same' with stride > 1, or a
        kernel larger than the padded input.
    """
    op = "conv2d"
    check_float(op, "x", x)
    check_float(op, "weight", weight)
    if bias is not None:
        check_float(op, "bias", bias)
    check_same_dtype(op, x=x, weight=weight, bias=bias)
    xs, ws = value(x).shape, value(weight).shape
    out_shape, st, (top, _, left, _), dil = _geometry(op, xs, ws, stride, padding, dilation, groups)
    if bias is not None and value(bias).shape != (ws[0],):
        raise ValueError(f"{op}: bias must have shape ({ws[0]},) (out_ch of weight {ws}), got {value(bias).shape}")
    if min(xs) == 0:
        raise ValueError(f"{op}: x must not be empty, got shape {xs}")
    if activation not in (None, "relu"):
        raise ValueError(f"conv2d: activation must be None or 'relu', got {activation!r}")
    return _conv2d(x, weight, bias, stride=st, pad_top=top, pad_left=left, dilation=dil, out_hw=out_shape[2:],
                   relu=activation == "relu")

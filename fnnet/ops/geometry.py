"""Window geometry of convolutions and pooling, for any number of spatial axes, with PyTorch's rules.

The one place that knows how ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``ceil_mode`` and
``output_padding`` turn an input shape into an output shape.  The ops (``conv1d``, ``conv2d``,
``conv_transpose2d``, the pools) and the layers' ``out_shape`` both call it, so the shape a layer predicts is
the shape its op returns, and a bad argument gets the same message from either.  Sizes may be ``None``
(unknown) for shape inference; they stay ``None``.

Rules (per spatial axis, ``d*(k-1) + 1`` is the kernel's extent):

- convolution and pooling: ``out = floor((size + before + after - d*(k-1) - 1) / s) + 1``; with ``ceil_mode``
  the division rounds up, but a last window that would start in the right padding is dropped;
- ``padding='same'`` (stride 1 only) pads ``d*(k-1)`` in total, the odd pixel after (bottom/right), as
  PyTorch does for even kernels; ``'valid'`` pads nothing;
- transposed convolution: ``out = (size - 1)*s - before - after + d*(k-1) + output_padding + 1``, with
  ``output_padding < max(s, d)``;
- pooling padding is at most half the kernel, so every window holds a real pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "Window", "is_int", "int_tuple", "shape_entries", "check_rank", "conv_window", "pool_window", "output_sizes",
    "transposed_window", "transposed_output_sizes", "conv_shape", "conv_transpose_shape", "pool_shape",
]

_LETTERS = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
_TUPLE_WORD = {1: "1-tuple", 2: "pair", 3: "triple"}


class Window(NamedTuple):
    """A validated window, one entry per spatial axis: kernel size, stride, dilation and the
    ``(before, after)`` padding."""

    kernel: tuple
    stride: tuple
    dilation: tuple
    padding: tuple

    @property
    def before(self) -> tuple:
        """The padding before each axis (top/left): the offset of the first window."""
        return tuple(b for b, _ in self.padding)


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _letters(ndim):
    return _LETTERS.get(ndim, tuple(f"d{i}" for i in range(ndim)))


def _axis_name(ndim, i):
    return _NAMES.get(ndim, tuple(f"axis {i}" for i in range(ndim)))[i]


def _x(values):
    """``(3, 4)`` as ``3x4`` (how messages show per-axis sizes; an unknown size shows as ``?``)."""
    return "x".join("?" if v is None else str(v) for v in values)


def int_tuple(where: str, name: str, value, ndim: int, minimum: int = 1) -> tuple:
    """``value`` (an int, or a sequence of ``ndim`` ints) as a tuple of ``ndim`` ints, each >= ``minimum``.

    Raises:
        TypeError: not an int or a sequence of ``ndim`` ints.  ValueError: an entry below ``minimum``.
    """
    if is_int(value):
        out = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(is_int(v) for v in value):
        out = tuple(int(v) for v in value)
    else:
        word = _TUPLE_WORD.get(ndim, f"{ndim}-tuple")
        raise TypeError(f"{where}: {name} expected an int or a {word} of ints ({', '.join(_letters(ndim))}), "
                        f"got {value!r}")
    if min(out) < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{where}: {name} must be {what}, got {value!r}")
    return out


def shape_entries(where: str, shape) -> tuple:
    """``shape`` as a tuple whose entries are non-negative ints or None (an unknown size)."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: x_shape expected a tuple (N, C, *spatial), got {shape!r}") from None
    for s in shape:
        if s is not None and not is_int(s):
            raise TypeError(f"{where}: x_shape entries must be ints or None, got {shape}")
        if s is not None and s < 0:
            raise ValueError(f"{where}: x_shape entries must be non-negative (sizes), got {shape}")
    return tuple(None if s is None else int(s) for s in shape)


def check_rank(where: str, shape: tuple, ndim: int, name: str = "x") -> None:
    """Raise unless ``shape`` is ``(N, C, *spatial)`` with ``ndim`` spatial axes."""
    if len(shape) != ndim + 2:
        axes = ", ".join(("N", "C") + _letters(ndim))
        hint = "; add a batch axis with x[None]" if len(shape) == ndim + 1 and name == "x" else ""
        raise ValueError(f"{where}: {name} must have {ndim + 2} dimensions ({axes}), got shape {shape}{hint}")


# ------------------------------------------------------------------------------------------ windows


def _side_pair(entry):
    """One axis's padding as ``(before, after)`` from an int or a pair of ints; None if malformed."""
    if is_int(entry):
        return int(entry), int(entry)
    if isinstance(entry, (tuple, list)) and len(entry) == 2 and all(is_int(v) for v in entry):
        return int(entry[0]), int(entry[1])
    return None


def _explicit_padding(where, padding, ndim):
    """An int, or per axis an int (both sides) or a ``(before, after)`` pair -> ``((before, after), ...)``."""
    entries = (padding,) * ndim if is_int(padding) else padding
    pairs = [None]
    if isinstance(entries, (tuple, list)) and len(entries) == ndim:
        pairs = [_side_pair(e) for e in entries]
    if None in pairs:
        word = _TUPLE_WORD.get(ndim, f"{ndim}-tuple")
        raise TypeError(
            f"{where}: padding expected an int, a {word} of ints ({', '.join(_letters(ndim))}) or of (before, "
            f"after) pairs, 'same' or 'valid', got {padding!r}"
        )
    if any(min(p) < 0 for p in pairs):
        raise ValueError(f"{where}: padding must be non-negative, got {padding!r}")
    return tuple(pairs)


def _resolve_padding(where, padding, kernel, stride, dilation):
    ndim = len(kernel)
    if not isinstance(padding, str):
        return _explicit_padding(where, padding, ndim)
    if padding == "valid":
        return ((0, 0),) * ndim
    if padding != "same":
        raise ValueError(f"{where}: padding expected an int, a tuple of ints, 'same' or 'valid', got {padding!r}")
    if any(s != 1 for s in stride):
        raise ValueError(f"{where}: padding='same' needs stride 1, got stride={stride}; pass explicit padding "
                         "for strided convolutions")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)  # the odd pixel after, like PyTorch


def conv_window(where: str, kernel, stride, padding, dilation) -> Window:
    """Validate a convolution's hyperparameters; ``kernel`` is one positive int per spatial axis.

    ``padding``: an int, per axis an int or a ``(before, after)`` pair, ``'valid'`` or ``'same'``.
    """
    kernel = tuple(int(k) for k in kernel)
    ndim = len(kernel)
    stride = int_tuple(where, "stride", stride, ndim)
    dilation = int_tuple(where, "dilation", dilation, ndim)
    return Window(kernel, stride, dilation, _resolve_padding(where, padding, kernel, stride, dilation))


def pool_window(where: str, ndim: int, kernel_size, stride=None, padding=0, dilation=1) -> Window:
    """Validate a pooling's hyperparameters (``stride=None`` means ``kernel_size``; padding is symmetric and
    at most half the kernel, as in PyTorch)."""
    kernel = int_tuple(where, "kernel_size", kernel_size, ndim)
    stride = kernel if stride is None else int_tuple(where, "stride", stride, ndim)
    pads = int_tuple(where, "padding", padding, ndim, minimum=0)
    dilation = int_tuple(where, "dilation", dilation, ndim)
    if any(2 * p > k for p, k in zip(pads, kernel)):
        raise ValueError(
            f"{where}: padding should be at most half of the kernel size, got padding={pads} for "
            f"kernel_size={kernel}; use padding <= {tuple(k // 2 for k in kernel)}"
        )
    return Window(kernel, stride, dilation, tuple((p, p) for p in pads))


# ------------------------------------------------------------------------------------------ sizes


def _too_small(where, sizes, window, axis):
    """The error for a window that does not fit the padded input along ``axis``."""
    ndim = len(window.kernel)
    extents = [d * (k - 1) + 1 for k, d in zip(window.kernel, window.dilation)]
    kernel = _x(window.kernel)
    if any(d != 1 for d in window.dilation):
        kernel += f", dilation {_x(window.dilation)}: extent {_x(extents)}"
    padded = [None if s is None else s + b + a for s, (b, a) in zip(sizes, window.padding)]
    pads = ", ".join(f"{b}+{a}" for b, a in window.padding)
    return ValueError(
        f"{where}: the kernel ({kernel}) is larger than the padded input ({_x(sizes)} plus padding {pads} = "
        f"{_x(padded)}): along the {_axis_name(ndim, axis)} the kernel spans {extents[axis]} pixels but the "
        f"padded input has only {padded[axis]}; use a larger input, more padding or a smaller kernel"
    )


def output_sizes(where: str, sizes, window: Window, ceil_mode: bool = False) -> tuple:
    """Output size along each spatial axis (None stays None).

    Raises:
        ValueError: a window that does not fit the padded input (no output position along an axis).
    """
    out = []
    for size, k, s, d, (before, after) in zip(sizes, *window[:3], window.padding):
        if size is None:
            out.append(None)
            continue
        span = size + before + after - d * (k - 1) - 1
        n = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and n > 0 and (n - 1) * s >= size + before:
            n -= 1  # the last window would start in the right padding
        out.append(n)
    for axis, n in enumerate(out):
        if n is not None and n < 1:
            raise _too_small(where, tuple(sizes), window, axis)
    return tuple(out)


def transposed_window(where: str, kernel, stride, padding, dilation, output_padding) -> tuple:
    """``(window, output_padding)`` of a transposed convolution: ``padding`` as for :func:`conv_window` but
    not ``'same'``, ``output_padding`` one int per axis below ``max(stride, dilation)``."""
    if padding == "same":
        raise ValueError(f"{where}: padding='same' is not defined for transposed convolutions; pass an int or "
                         "a tuple of ints")
    window = conv_window(where, kernel, stride, padding, dilation)
    extra = int_tuple(where, "output_padding", output_padding, len(window.kernel), minimum=0)
    if any(e >= max(s, d) for e, s, d in zip(extra, window.stride, window.dilation)):
        raise ValueError(
            f"{where}: output_padding must be smaller than stride or dilation along each axis, got "
            f"output_padding={extra}, stride={window.stride}, dilation={window.dilation}"
        )
    return window, extra


def transposed_output_sizes(where: str, sizes, window: Window, output_padding: tuple) -> tuple:
    """Output size of a transposed convolution along each spatial axis (None stays None).

    Raises:
        ValueError: an output size below 1 (too much padding).
    """
    ndim = len(window.kernel)
    out = []
    for axis, (size, k, s, d, (before, after), e) in enumerate(
            zip(sizes, *window[:3], window.padding, output_padding)):
        n = None if size is None else (size - 1) * s - before - after + d * (k - 1) + e + 1
        if n is not None and n < 1:
            raise ValueError(
                f"{where}: the output would have {n} pixels along the {_axis_name(ndim, axis)} "
                f"(({size} - 1)*{s} - padding {before}+{after} + {d}*({k} - 1) + {e} + 1); use less padding"
            )
        out.append(n)
    return tuple(out)


# ------------------------------------------------------------------------------------------ whole shapes


def _check_groups(where, groups):
    if not is_int(groups):
        raise TypeError(f"{where}: groups expected an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{where}: groups must be positive, got {groups}")


def _check_weight(where, w_shape, ndim, layout):
    if len(w_shape) != ndim + 2:
        raise ValueError(f"{where}: weight must have {ndim + 2} dimensions {layout}, got shape {w_shape}")
    if any(s is not None and s < 1 for s in w_shape):
        raise ValueError(f"{where}: weight dimensions must be positive, got weight.shape={w_shape}")


def conv_shape(where: str, ndim: int, x_shape, w_shape, stride, padding, dilation, groups) -> tuple:
    """``(out_shape, window)`` of a convolution of ``x (N, C, *spatial)`` with ``weight (O, C/groups,
    *kernel)``; ``C`` (and ``weight.shape[1]``) may be None.

    Raises:
        TypeError/ValueError: wrong ranks, channels that do not match or do not divide by ``groups``, bad
        hyperparameters, or a kernel larger than the padded input.
    """
    x_shape, w_shape = shape_entries(where, x_shape), tuple(w_shape)
    check_rank(where, x_shape, ndim)
    _check_weight(where, w_shape, ndim, f"(out_ch, in_ch/groups, {', '.join('k' + a for a in _letters(ndim))})")
    _check_groups(where, groups)
    c, (o, cg) = x_shape[1], w_shape[:2]
    if c is not None and c % groups:
        raise ValueError(f"{where}: in_channels {c} (x.shape={x_shape}) is not divisible by groups={groups}")
    if o % groups:
        raise ValueError(f"{where}: out_channels {o} (weight.shape={w_shape}) is not divisible by groups={groups}")
    if c is not None and cg is not None and c // groups != cg:
        raise ValueError(
            f"{where}: x has {c} channels, so weight.shape[1] must be in_ch/groups = {c}/{groups} = {c // groups}; "
            f"got x.shape={x_shape}, weight.shape={w_shape} (weight.shape[1] = {cg} implies {cg * groups} "
            f"input channels); check the channel count or groups"
        )
    window = conv_window(where, w_shape[2:], stride, padding, dilation)
    return (x_shape[0], o, *output_sizes(where, x_shape[2:], window)), window


def conv_transpose_shape(where: str, ndim: int, x_shape, w_shape, stride, padding, output_padding, dilation,
                         groups) -> tuple:
    """``(out_shape, window)`` of a transposed convolution of ``x (N, C, *spatial)`` with ``weight (C,
    O/groups, *kernel)`` (PyTorch's layout); ``padding`` is an int, per-axis ints or pairs, or ``'valid'``.

    Raises:
        TypeError/ValueError: as :func:`conv_shape`, plus a bad ``output_padding`` or an empty output.
    """
    x_shape, w_shape = shape_entries(where, x_shape), tuple(w_shape)
    check_rank(where, x_shape, ndim)
    _check_weight(where, w_shape, ndim, f"(in_ch, out_ch/groups, {', '.join('k' + a for a in _letters(ndim))})")
    _check_groups(where, groups)
    c = x_shape[1]
    if w_shape[0] is not None and w_shape[0] % groups:
        raise ValueError(f"{where}: in_channels {w_shape[0]} (weight.shape={w_shape}) is not divisible by "
                         f"groups={groups}")
    if c is not None and w_shape[0] is not None and c != w_shape[0]:
        raise ValueError(
            f"{where}: x has {c} channels but weight.shape[0] = {w_shape[0]} (the layout is (in_ch, "
            f"out_ch/groups, *kernel)); got x.shape={x_shape}, weight.shape={w_shape}"
        )
    window, extra = transposed_window(where, w_shape[2:], stride, padding, dilation, output_padding)
    out = transposed_output_sizes(where, x_shape[2:], window, extra)
    return (x_shape[0], w_shape[1] * groups, *out), window


def pool_shape(where: str, ndim: int, x_shape, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode=False) -> tuple:
    """``(out_shape, window)`` of a max or average pooling of ``x (N, C, *spatial)``.

    Raises:
        TypeError/ValueError: wrong rank, bad hyperparameters, padding above half the kernel, or a window
        that does not fit the padded input.
    """
    x_shape = shape_entries(where, x_shape)
    check_rank(where, x_shape, ndim)
    window = pool_window(where, ndim, kernel_size, stride, padding, dilation)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{where}: ceil_mode expected a bool, got {ceil_mode!r}")
    return (*x_shape[:2], *output_sizes(where, x_shape[2:], window, bool(ceil_mode))), window

"""Normalisation layers: ``BatchNorm`` (running statistics as state), ``LayerNorm``, ``RMSNorm``, ``GroupNorm``
and ``InstanceNorm``, each matching its ``torch.nn`` namesake."""

from __future__ import annotations

import numbers

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .base import Layer, TorchParam, as_shape, check_input, check_param, check_params, numel, positive_int, register

__all__ = ["BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]


def _probability(instance, attribute, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be in [0, 1], got {value!r}")


def _positive(instance, attribute, value):
    if not value > 0:
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be > 0, got {value!r}")


def _positive_or_none(instance, attribute, value):
    if value is not None:
        _positive(instance, attribute, value)


def _as_normalized_shape(value):
    """An int or a list (from a config) as a tuple; None and anything else unchanged (the validator reports)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),)
    return tuple(value) if isinstance(value, list) else value


def _normalized_shape(instance, attribute, value):
    if value is None:
        return
    if not (isinstance(value, tuple) and value and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{type(instance).__name__}: normalized_shape must be None (the last axis), a positive int "
                         f"or a non-empty tuple of positive ints, got {value!r}")


def _affine_params(key, shape, dtype, weight=True, bias=True):
    """``{"weight": ones(shape), "bias": zeros(shape)}``, each present when asked for."""
    params = {}
    if weight:
        params["weight"] = initializers.ones(key, shape, dtype)
    if bias:
        params["bias"] = initializers.zeros(key, shape, dtype)
    return params


def _affine(where, params, names, ndim):
    """``(weight, bias)`` from ``params`` after checking it holds exactly ``names`` with ``ndim`` axes each;
    None for a param the layer does not have."""
    check_params(where, params, names)
    weight, bias = (check_param(where, params, n, ndim) if n in names else None for n in ("weight", "bias"))
    return weight, bias


def _channels(where, in_shape, min_ndim=2):
    """The known channel count ``C`` of an ``(N, C, *spatial)`` shape with at least ``min_ndim`` axes."""
    shape = as_shape(in_shape, where)
    if len(shape) < min_ndim or shape[1] is None:
        spatial = "*spatial" if min_ndim == 2 else "L or H, W..."
        raise ValueError(f"{where}: expected an input (N, C, {spatial}) with at least {min_ndim} axes and a known "
                         f"C, got shape {shape}")
    return shape[1]


def _norm_flops(in_shape):
    return 7 * numel(in_shape)  # mean, variance, normalise, scale and shift (an estimate)


def _norm_tape_bytes(in_shape, dtype, n_statistics):
    """x plus two saved statistics (mean, 1/std) per normalised group, ``n_statistics`` groups in all."""
    return (numel(in_shape) + 2 * n_statistics) * np.dtype(dtype).itemsize


def _affine_layout(shape, weight=True, bias=True):
    """``TorchParam`` entries of an elementwise ``weight``/``bias`` pair of the given fnnet shape."""
    return tuple(TorchParam(name, shape=shape) for name, present in (("weight", weight), ("bias", bias)) if present)


@register
@attrs.frozen
class BatchNorm(Layer):
    """Batch normalisation over the channel axis 1 of ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` inputs, like
    ``torch.nn.BatchNorm1d``/``BatchNorm2d``.

    Training (``train=True``) normalises with the batch mean and biased variance, and returns running
    statistics updated PyTorch's way: ``new = (1 - momentum) * old + momentum * batch`` with the *unbiased*
    batch variance.  Evaluation uses the running statistics.

    Args:
        momentum: weight of the current batch in the running statistics.
        eps: added to the variance.
        affine: learn a per-channel scale ``weight`` (init 1) and shift ``bias`` (init 0).
        track_running_stats: False keeps no statistics: the batch statistics are used in training *and*
            evaluation, the layer has no state and ``apply`` needs none (PyTorch's ``track_running_stats=False``).

    Params: ``{"weight": (C,), "bias": (C,)}`` (``{}`` without ``affine``).
    State: ``{"mean": (C,), "var": (C,)}``, initialised to 0 and 1 (``{}`` without ``track_running_stats``).
    The state is required when tracked::

        state = model.init_state(in_shape)
        y, state = model.apply(params, x, state=state, train=True)
    """

    momentum: float = attrs.field(default=0.1, validator=_probability)
    eps: float = attrs.field(default=1e-5, validator=_positive)
    affine: bool = True
    track_running_stats: bool = True

    compile_cost = 3
    no_decay_params = ("weight", "bias")  # the scale and shift: weight decay would pull the scale to 0

    @property
    def has_state(self):
        return self.track_running_stats

    def out_shape(self, in_shape):
        _channels("BatchNorm", in_shape)
        return as_shape(in_shape)

    def flops(self, in_shape):
        return _norm_flops(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return _norm_tape_bytes(in_shape, dtype, in_shape[1])

    def torch_layout(self):
        layout = _affine_layout(("channels",), self.affine, self.affine)
        if not self.track_running_stats:
            return layout
        return layout + (TorchParam("running_mean", "state", "mean", ("channels",)),
                         TorchParam("running_var", "state", "var", ("channels",)),
                         TorchParam("num_batches_tracked", "ignored"))

    def init(self, key, in_shape, dtype=np.float32):
        c = _channels("BatchNorm.init", in_shape)
        return _affine_params(key, (c,), dtype) if self.affine else {}

    def init_state(self, in_shape, dtype=np.float32):
        c = _channels("BatchNorm.init_state", in_shape)
        if not self.track_running_stats:
            return {}
        return {"mean": np.zeros(c, dtype), "var": np.ones(c, dtype)}

    def apply(self, params, x, *, state=None, key=None, train=False):
        weight, bias = _affine("BatchNorm", params, ("weight", "bias") if self.affine else (), 1)
        check_input(self, x)
        if not self.track_running_stats:  # batch statistics in training and evaluation alike
            y = ops.batch_norm(x, weight, bias, None, None, train=True, eps=self.eps)[0]
            return y if state is None else (y, state)
        if state is None:
            raise ValueError(
                "BatchNorm: running statistics are state and must be passed in: "
                "y, state = model.apply(params, x, state=state, train=...) with state = model.init_state(in_shape)"
            )
        check_params("BatchNorm (state)", state, ("mean", "var"))
        y, mean, var = ops.batch_norm(x, weight, bias, state["mean"], state["var"],
                                      train=train, momentum=self.momentum, eps=self.eps)
        return y, {"mean": mean, "var": var}


@attrs.frozen
class _TrailingNorm(Layer):
    """Shared shape handling of LayerNorm and RMSNorm: normalise over the trailing ``normalized_shape`` axes."""

    def _trailing(self, where, in_shape):
        """The normalised trailing shape of ``in_shape``; raises unless it matches ``normalized_shape``."""
        shape = as_shape(in_shape, where)
        expected = self.normalized_shape
        k = 1 if expected is None else len(expected)
        trailing = shape[len(shape) - k:]
        if len(shape) < k or None in trailing or (expected is not None and trailing != expected):
            want = f"(..., {', '.join(map(str, expected))})" if expected else "(..., F) with a known F"
            raise ValueError(f"{where}: expected input {want} (normalized_shape={expected}), got shape {shape}; "
                             "normalized_shape names the trailing axes that are normalised together")
        return trailing

    compile_cost = 2
    no_decay_params = ("weight", "bias")  # the scale and shift
    _statistics_per_row = 2  # mean and 1/std

    def out_shape(self, in_shape):
        self._trailing(type(self).__name__, in_shape)
        return as_shape(in_shape)

    def flops(self, in_shape):
        return _norm_flops(in_shape)

    def tape_bytes(self, in_shape, dtype):
        rows = numel(in_shape) // max(numel(self._trailing(type(self).__name__, in_shape)), 1)
        return _norm_tape_bytes(in_shape, dtype, 0) + self._statistics_per_row * rows * np.dtype(dtype).itemsize

    def torch_layout(self):
        names = self._param_names()
        return _affine_layout(self.normalized_shape or ("features",), "weight" in names, "bias" in names)

    def _checked(self, params, x):
        """``(len(normalized_shape), weight, bias)`` after checking ``params`` and ``x``'s trailing axes."""
        name = type(self).__name__
        k = len(self._trailing(name, x.shape))
        return (k, *_affine(name, params, tuple(self._param_names()), k))


@register
@attrs.frozen
class LayerNorm(_TrailingNorm):
    """Normalise over the trailing ``normalized_shape`` axes together, like ``torch.nn.LayerNorm``::

        y = (x - mean) / sqrt(var + eps) * weight + bias        # biased variance over the normalised axes

    Args:
        normalized_shape: int or tuple: the trailing axes normalised together (PyTorch's argument); None (the
            default) normalises the last axis, whatever its size.
        eps: added to the variance.
        affine: learn an elementwise ``weight`` (init 1) and ``bias`` (init 0): PyTorch's ``elementwise_affine``.
        use_bias: with ``affine``, learn the ``bias`` too (PyTorch's ``bias``).

    Params: ``{"weight": S, "bias": S}`` with ``S = normalized_shape`` (``{}`` without ``affine``).
    Shapes: ``(..., *S) -> (..., *S)``.

    Example::

        ln = LayerNorm((4, 5))                    # torch.nn.LayerNorm((4, 5))
        params = ln.init(fnnet.random.key(0), (None, 3, 4, 5))
        y = ln.apply(params, x)                   # each x[n, i] (4, 5) normalised to mean 0, variance 1

    Reference: Ba, Kiros, Hinton, "Layer Normalization", 2016.
    """

    normalized_shape: tuple | None = attrs.field(default=None, converter=_as_normalized_shape,
                                                 validator=_normalized_shape)
    eps: float = attrs.field(default=1e-5, validator=_positive)
    affine: bool = True
    use_bias: bool = True

    def _param_names(self):
        return ("weight", "bias") if self.affine and self.use_bias else ("weight",) if self.affine else ()

    def init(self, key, in_shape, dtype=np.float32):
        trailing = self._trailing("LayerNorm.init", in_shape)
        return _affine_params(key, trailing, dtype, self.affine, self.affine and self.use_bias)

    def forward(self, params, x, *, key=None, train=False):
        k, weight, bias = self._checked(params, x)
        return ops.layer_norm(x, weight, bias, eps=self.eps, normalized_ndim=k)


@register
@attrs.frozen
class RMSNorm(_TrailingNorm):
    """Root-mean-square normalisation over the trailing ``normalized_shape`` axes, like ``torch.nn.RMSNorm``::

        y = x / sqrt(mean(x**2) + eps) * weight                 # mean over the normalised axes; no centring

    Args:
        normalized_shape: int or tuple of the trailing axes normalised together; None: the last axis.
        eps: added to the mean square; None (the default, as PyTorch) uses ``np.finfo(x.dtype).eps`` of the
            input's dtype (float16 inputs included).
        affine: learn an elementwise ``weight`` (init 1): PyTorch's ``elementwise_affine``.

    Params: ``{"weight": S}`` with ``S = normalized_shape`` (``{}`` without ``affine``).
    Shapes: ``(..., *S) -> (..., *S)``.

    Example::

        norm = RMSNorm(512)                       # torch.nn.RMSNorm(512)
        params = norm.init(fnnet.random.key(0), (None, 128, 512))

    Reference: Zhang and Sennrich, "Root Mean Square Layer Normalization", 2019.
    """

    normalized_shape: tuple | None = attrs.field(default=None, converter=_as_normalized_shape,
                                                 validator=_normalized_shape)
    eps: float | None = attrs.field(default=None, validator=_positive_or_none)
    affine: bool = True
    _statistics_per_row = 1  # 1/rms

    def _param_names(self):
        return ("weight",) if self.affine else ()

    def init(self, key, in_shape, dtype=np.float32):
        trailing = self._trailing("RMSNorm.init", in_shape)
        return _affine_params(key, trailing, dtype, self.affine, False)

    def forward(self, params, x, *, key=None, train=False):
        k, weight, _ = self._checked(params, x)
        return ops.rms_norm(x, weight, eps=self.eps, normalized_ndim=k)


@attrs.frozen
class _GroupedNorm(Layer):
    """Shared by GroupNorm and InstanceNorm: ``(N, C, *spatial)`` inputs normalised in groups of channels
    (``_groups(C)`` of them) by ``ops.group_norm``, with a per-channel ``weight``/``bias``."""

    no_decay_params = ("weight", "bias")  # the scale and shift

    def out_shape(self, in_shape):
        self._check(type(self).__name__, in_shape)
        return as_shape(in_shape)

    def flops(self, in_shape):
        return _norm_flops(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return _norm_tape_bytes(in_shape, dtype, numel(in_shape[:1]) * self._groups(in_shape[1]))

    def torch_layout(self):
        return _affine_layout(("channels",), self.affine, self.affine)

    def init(self, key, in_shape, dtype=np.float32):
        c = self._check(f"{type(self).__name__}.init", in_shape)
        return _affine_params(key, (c,), dtype) if self.affine else {}

    def forward(self, params, x, *, key=None, train=False):
        name = type(self).__name__
        weight, bias = _affine(name, params, ("weight", "bias") if self.affine else (), 1)
        groups = self._groups(self._check(name, x.shape))
        return ops.group_norm(x, groups, weight, bias, eps=self.eps)


@register
@attrs.frozen
class GroupNorm(_GroupedNorm):
    """Group normalisation, like ``torch.nn.GroupNorm``: the ``C`` channels are split into ``num_groups`` groups
    of adjacent channels, each sample's group is normalised over its channels and positions, then a
    per-channel ``weight``/``bias`` is applied.  Independent of the batch size; the same in training and
    evaluation.

    Args:
        num_groups: must divide the channel count ``C`` (inferred from the input, unlike PyTorch's
            ``num_channels``).  ``num_groups = C`` is instance norm, ``1`` normalises over ``(C, *spatial)``.
        eps: added to the variance.
        affine: learn a per-channel ``weight`` (init 1) and ``bias`` (init 0).

    Params: ``{"weight": (C,), "bias": (C,)}`` (``{}`` without ``affine``).
    Shapes: ``(N, C, *spatial) -> (N, C, *spatial)``.

    Example::

        gn = GroupNorm(8)                         # torch.nn.GroupNorm(8, 64)
        params = gn.init(fnnet.random.key(0), (None, 64, 32, 32))

    Reference: Wu and He, "Group Normalization", 2018.
    """

    num_groups: int = attrs.field(validator=positive_int)
    eps: float = attrs.field(default=1e-5, validator=_positive)
    affine: bool = True

    def _groups(self, channels):
        return self.num_groups

    def _check(self, where, in_shape):
        c = _channels(where, in_shape)
        if c % self.num_groups:
            raise ValueError(f"{where}: the {c} input channels are not divisible by num_groups={self.num_groups}; "
                             f"choose num_groups dividing {c}")
        return c


@register
@attrs.frozen
class InstanceNorm(_GroupedNorm):
    """Instance normalisation, like ``torch.nn.InstanceNorm1d``/``InstanceNorm2d`` with their defaults: each
    sample's channel is normalised over its spatial positions (``GroupNorm`` with one group per channel).

    Args:
        eps: added to the variance.
        affine: learn a per-channel ``weight`` (init 1) and ``bias`` (init 0); False by default, as in PyTorch.

    PyTorch's ``track_running_stats=True`` (running statistics for evaluation) is not supported: like
    PyTorch's default, the statistics of each instance are used in training and evaluation.

    Params: ``{"weight": (C,), "bias": (C,)}`` with ``affine``, else ``{}``.
    Shapes: ``(N, C, L) -> (N, C, L)``, ``(N, C, H, W) -> (N, C, H, W)`` (any number of spatial axes).

    Reference: Ulyanov, Vedaldi, Lempitsky, "Instance Normalization", 2016.
    """

    eps: float = attrs.field(default=1e-5, validator=_positive)
    affine: bool = False

    def _groups(self, channels):
        return channels

    def _check(self, where, in_shape):
        c = _channels(where, in_shape, min_ndim=3)
        shape = as_shape(in_shape)
        if None not in shape[2:] and numel(shape[2:]) == 1:
            raise ValueError(f"{where}: expected more than 1 spatial element per channel, got shape {shape}; "
                             "instance norm of a single value is always 0")
        return c

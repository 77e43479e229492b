"""``MultiHeadAttention`` and the positional embeddings (``LearnedPositionalEmbedding``,
``SinusoidalPositionalEmbedding``).  Sequences are batch-first: ``(N, L, E)``."""

from __future__ import annotations

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .. import random as fnrandom
from ..ops._validate import check_float, check_same_dtype
from .base import (Layer, TorchParam, as_shape, check_input, check_param, check_params, numel, positive_int,
                   register)

__all__ = ["MultiHeadAttention", "LearnedPositionalEmbedding", "SinusoidalPositionalEmbedding"]


def _optional_positive(instance, attribute, value):
    if value is not None:
        positive_int(instance, attribute, value)


def _rate(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{type(instance).__name__}: {attribute.name} is the probability of dropping and must be "
                         f"a float in [0, 1), got {value!r}")


def _sequence_shape(where, in_shape):
    shape = as_shape(in_shape, where)
    if len(shape) != 3 or shape[-1] is None:
        raise ValueError(f"{where}: input must be (N, L, E) with a known E, got shape {shape}")
    return shape


@register
@attrs.frozen
class MultiHeadAttention(Layer):
    """Multi-head attention like ``torch.nn.MultiheadAttention(batch_first=True)``::

        q = x Wq + bq,  k = kv Wk + bk,  v = kv Wv + bv       (split into num_heads heads of E / num_heads)
        y = concat_h(scaled_dot_product_attention(q_h, k_h, v_h)) Wo + bo

    Args:
        embed_dim: ``E``, the query and output width; divisible by ``num_heads``.
        num_heads: number of heads.
        dropout: probability of dropping an attention weight in training (needs ``key``).
        bias: learn the projection biases.
        kdim, vdim: widths of the keys and values input (default ``E``); when either differs, the
            projections are separate params, as in PyTorch.
        causal: hide key ``j > i`` from query ``i`` by default (``apply``'s ``causal`` overrides it).

    Params (fnnet's ``(in, out)`` layout, the transpose of PyTorch's): ``in_proj_weight (E, 3E)`` (or
    ``q_proj_weight (E, E)``, ``k_proj_weight (kdim, E)``, ``v_proj_weight (vdim, E)``), ``in_proj_bias
    (3E,)``, ``out_proj_weight (E, E)``, ``out_proj_bias (E,)``; ``fnnet.io.load_torch_state_dict`` loads them
    from ``nn.MultiheadAttention``'s state dict.

    Shapes: ``x (N, L, E)``, ``key_value (N, S, kdim)`` (``x`` itself when None: self-attention) ``-> (N, L, E)``.

    Example::

        mha = MultiHeadAttention(64, 4)
        params = mha.init(fnnet.random.key(0), (None, 10, 64))
        y = mha.apply(params, x, causal=True)                 # x (N, 10, 64)

    Reference: Vaswani et al., "Attention Is All You Need", 2017.
    """

    embed_dim: int = attrs.field(validator=positive_int)
    num_heads: int = attrs.field(validator=positive_int)
    dropout: float = attrs.field(default=0.0, validator=_rate)
    bias: bool = True
    kdim: int | None = attrs.field(default=None, validator=_optional_positive)
    vdim: int | None = attrs.field(default=None, validator=_optional_positive)
    causal: bool = False

    def __attrs_post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim ({self.embed_dim}) must be divisible by num_heads "
                             f"({self.num_heads})")

    @property
    def _separate(self):
        return (self.kdim or self.embed_dim) != self.embed_dim or (self.vdim or self.embed_dim) != self.embed_dim

    def _weight_shapes(self):
        e = self.embed_dim
        if self._separate:
            return {"q_proj_weight": (e, e), "k_proj_weight": (self.kdim or e, e), "v_proj_weight": (self.vdim or e, e)}
        return {"in_proj_weight": (e, 3 * e)}

    def init(self, key, in_shape, dtype=np.float32):
        self.out_shape(in_shape)
        keys = fnrandom.split(key, 4)
        params = {name: initializers.glorot_uniform(k, shape, dtype)
                  for (name, shape), k in zip(self._weight_shapes().items(), keys)}
        params["out_proj_weight"] = initializers.glorot_uniform(keys[3], (self.embed_dim, self.embed_dim), dtype)
        if self.bias:
            params["in_proj_bias"] = np.zeros(3 * self.embed_dim, dtype)
            params["out_proj_bias"] = np.zeros(self.embed_dim, dtype)
        return params

    def out_shape(self, in_shape):
        shape = _sequence_shape("MultiHeadAttention", in_shape)
        if shape[-1] != self.embed_dim:
            raise ValueError(f"MultiHeadAttention: input must be (N, L, {self.embed_dim}) (embed_dim), got {shape}")
        return shape

    def apply(self, params, x, key_value=None, *, mask=None, key_padding_mask=None, causal=None, state=None,
              key=None, train=False):
        """Attend from ``x (N, L, E)`` to ``key_value (N, S, kdim)`` (``x`` when None).

        Args:
            mask: bool (True = attend) or float (added to the scores), broadcastable to ``(N, heads, L, S)``;
                a 3-D ``(N * heads, L, S)`` mask is read as PyTorch's.
            key_padding_mask: ``(N, S)`` bool, **True marks padding** (ignored keys), PyTorch's convention.
            causal: hide key ``j > i`` from query ``i``; None: the layer's ``causal``.
            key, train: dropout of the attention weights when ``train`` and ``dropout > 0``.

        Returns ``(N, L, E)`` (``(y, state)`` when ``state`` is passed).
        """
        params = self._checked_params(params)
        check_input(self, x)
        self.out_shape(tuple(x.shape))
        kv = x if key_value is None else key_value
        self._check_key_value(x, kv)
        q, k, v = self._project(params, x, kv)
        mask = self._combined_mask(mask, key_padding_mask, x.shape[0], x.shape[1], kv.shape[1], x.dtype)
        rate = self.dropout if train else 0.0
        if rate > 0.0 and key is None:
            raise ValueError("MultiHeadAttention: a random key is needed in training with dropout > 0; call "
                             "mha.apply(params, x, key=fnnet.random.key(step), train=True)")
        causal = self.causal if causal is None else causal
        o = ops.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal, dropout=rate,
                                             key=key if rate > 0.0 else None)
        o = ops.reshape(ops.transpose(o, (0, 2, 1, 3)), (x.shape[0], x.shape[1], self.embed_dim))
        y = ops.linear(o, params["out_proj_weight"], params["out_proj_bias"] if self.bias else None)
        return y if state is None else (y, state)

    def _check_key_value(self, x, kv):
        check_input(self, kv)
        width = self.kdim or self.embed_dim
        if kv.ndim != 3 or kv.shape[0] != x.shape[0] or kv.shape[-1] != width:
            raise ValueError(f"MultiHeadAttention: key_value must be (N, S, kdim) = ({x.shape[0]}, S, {width}), "
                             f"got shape {tuple(kv.shape)}")
        if (self.vdim or self.embed_dim) != width:
            raise ValueError(f"MultiHeadAttention: kdim ({self.kdim}) and vdim ({self.vdim}) differ, but one "
                             "key_value array feeds both; use equal kdim and vdim")

    def _param_names(self):
        return (*self._weight_shapes(), "out_proj_weight") + (("in_proj_bias", "out_proj_bias") if self.bias else ())

    def _checked_params(self, params):
        """``params`` with every leaf checked to be an array of the right rank (a None bias included)."""
        names = self._param_names()
        check_params("MultiHeadAttention", params, names)
        return {name: check_param("MultiHeadAttention", params, name, 1 if name.endswith("bias") else 2)
                for name in names}

    def _project(self, params, x, kv):
        if self._separate:
            weights = [params[n] for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight")]
        else:
            weights = ops.chunk(params["in_proj_weight"], 3, axis=1)
        biases = ops.chunk(params["in_proj_bias"], 3) if self.bias else (None,) * 3
        return tuple(self._heads(ops.linear(a, w, b)) for a, w, b in zip((x, kv, kv), weights, biases))

    def _heads(self, y):
        """``(N, L, E) -> (N, heads, L, E / heads)``."""
        n, length, _ = y.shape
        return ops.transpose(ops.reshape(y, (n, length, self.num_heads, -1)), (0, 2, 1, 3))

    def _combined_mask(self, mask, key_padding_mask, n, length, keys, dtype):
        if mask is not None and np.ndim(mask) == 3 and np.shape(mask)[0] == n * self.num_heads:
            mask = np.reshape(mask, (n, self.num_heads) + np.shape(mask)[1:])
        if key_padding_mask is None:
            return mask
        padding = np.asarray(key_padding_mask)
        if padding.dtype != np.bool_ or padding.shape != (n, keys):
            raise ValueError(f"MultiHeadAttention: key_padding_mask must be a bool (N, S) = ({n}, {keys}) array "
                             f"(True marks padding), got {padding.dtype} {padding.shape}")
        attend = ~padding[:, None, None, :]
        if mask is None:
            return attend
        if np.asarray(mask).dtype == np.bool_:
            return np.logical_and(mask, attend)
        return np.where(attend, mask, -np.inf).astype(dtype)

    def flops(self, in_shape):
        n, length, e = in_shape
        tokens = (n or 1) * length
        return 2 * tokens * e * 4 * e + 4 * tokens * length * e

    def tape_bytes(self, in_shape, dtype):
        return 6 * numel(in_shape) * np.dtype(dtype).itemsize  # x, q, k, v, attention output, its projection

    def torch_layout(self):
        e = self.embed_dim
        entries = [TorchParam(name, shape=shape, transpose=True) for name, shape in self._weight_shapes().items()]
        entries.append(TorchParam("out_proj.weight", name="out_proj_weight", shape=(e, e), transpose=True))
        if self.bias:
            entries += [TorchParam("in_proj_bias", shape=(3 * e,)),
                        TorchParam("out_proj.bias", name="out_proj_bias", shape=(e,))]
        return tuple(entries)

    no_decay_params = ("in_proj_bias", "out_proj_bias")


def _check_length(where, length, max_len):
    if length is not None and max_len is not None and length > max_len:
        raise ValueError(f"{where}: sequence length {length} exceeds max_len={max_len}; make max_len larger")


@register
@attrs.frozen
class LearnedPositionalEmbedding(Layer):
    """Adds a learned vector per position: ``y[n, t] = x[n, t] + weight[t]``.

    Args:
        max_len: the longest sequence.
        w_init: initializer of ``weight``, default normal with std 0.02 (GPT-2's).

    Params: ``{"weight": (max_len, E)}``.  Shapes: ``(N, L, E) -> (N, L, E)`` with ``L <= max_len``.
    """

    max_len: int = attrs.field(validator=positive_int)
    w_init: initializers.Initializer = initializers.Normal(0.02)

    def init(self, key, in_shape, dtype=np.float32):
        shape = self.out_shape(in_shape)
        return {"weight": self.w_init(key, (self.max_len, shape[-1]), dtype)}

    def out_shape(self, in_shape):
        shape = _sequence_shape("LearnedPositionalEmbedding", in_shape)
        _check_length("LearnedPositionalEmbedding", shape[1], self.max_len)
        return shape

    def forward(self, params, x, *, key=None, train=False):
        check_params("LearnedPositionalEmbedding", params, ("weight",))
        w = check_float("LearnedPositionalEmbedding", "params['weight']",
                        check_param("LearnedPositionalEmbedding", params, "weight", 2, "(max_len, E)"))
        x = check_float("LearnedPositionalEmbedding", "x", x)
        check_same_dtype("LearnedPositionalEmbedding", x=x, weight=w)
        if x.ndim != 3 or x.shape[-1] != w.shape[-1]:
            raise ValueError(f"LearnedPositionalEmbedding: input must be (N, L, {w.shape[-1]}) (the width of "
                             f"params['weight'] {w.shape}), got shape {tuple(x.shape)}")
        _check_length("LearnedPositionalEmbedding", x.shape[1], w.shape[0])
        return ops.add(x, w[: x.shape[1]])

    def flops(self, in_shape):
        return numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return 0

    no_decay_params = ("weight",)


def sinusoidal_table(length, dim, dtype=np.float64):
    """The ``(length, dim)`` table ``[sin(t w_0), cos(t w_0), sin(t w_1), ...]`` interleaved, ``w_i =
    10000 ** (-2i / dim)`` (Vaswani et al. 2017)."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    freqs = np.exp(-np.log(10000.0) * np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(positions * freqs)
    table[:, 1::2] = np.cos(positions * freqs[: dim // 2])
    return table.astype(dtype)


@register
@attrs.frozen
class SinusoidalPositionalEmbedding(Layer):
    """Adds the fixed sin/cos table: ``y[n, t, 2i] = x[n, t, 2i] + sin(t / 10000**(2i/E))`` and
    ``y[n, t, 2i+1] = x[n, t, 2i+1] + cos(t / 10000**(2i/E))``.  No params.

    Args:
        max_len: optional bound on the sequence length (None: any).

    Shapes: ``(N, L, E) -> (N, L, E)``.  Reference: Vaswani et al., "Attention Is All You Need", 2017.
    """

    max_len: int | None = attrs.field(default=None, validator=_optional_positive)

    def out_shape(self, in_shape):
        shape = _sequence_shape("SinusoidalPositionalEmbedding", in_shape)
        _check_length("SinusoidalPositionalEmbedding", shape[1], self.max_len)
        return shape

    def forward(self, params, x, *, key=None, train=False):
        x = check_float("SinusoidalPositionalEmbedding", "x", x)
        self.out_shape(tuple(x.shape))
        return x + sinusoidal_table(x.shape[1], x.shape[2], x.dtype)

    def flops(self, in_shape):
        return numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return 0

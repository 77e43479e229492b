"""``TransformerEncoderBlock``: self-attention and a GELU MLP with residuals, pre- or post-LayerNorm; with
``causal=True`` it is the decoder-only (GPT) block."""

from __future__ import annotations

import attrs
import numpy as np

from .. import ops
from .. import random as fnrandom
from .attention import MultiHeadAttention, _rate, _sequence_shape
from .base import Layer, check_input, check_params, child_errors, numel, positive_int, register
from .dense import Linear
from .norm import LayerNorm

__all__ = ["TransformerEncoderBlock"]

_CHILDREN = ("self_attn", "linear1", "linear2", "norm1", "norm2")


@register
@attrs.frozen
class TransformerEncoderBlock(Layer):
    """A transformer block like ``torch.nn.TransformerEncoderLayer(batch_first=True, activation="gelu")``::

        norm_first:  x = x + drop(attn(norm1(x)));  x = x + drop(linear2(drop(gelu(linear1(norm2(x))))))
        otherwise:   x = norm1(x + drop(attn(x)));  x = norm2(x + drop(linear2(drop(gelu(linear1(x))))))

    Args:
        embed_dim: ``E``, the width of the sequence.
        num_heads: attention heads (divide ``E``).
        mlp_dim: hidden width of the MLP (PyTorch's ``dim_feedforward``).
        dropout: probability of dropping, for the attention weights and the three dropout sites.
        norm_first: pre-LN (default, as GPT-2) or post-LN (the original transformer, PyTorch's default).
        causal: hide later positions: a decoder-only block.
        eps: LayerNorm's epsilon.

    Params: ``{"self_attn", "linear1", "linear2", "norm1", "norm2"}`` (children, PyTorch's names, so
    ``fnnet.io.load_torch_state_dict`` loads ``TransformerEncoderLayer``'s state dict).

    Shapes: ``(N, L, E) -> (N, L, E)``.  ``apply`` also takes ``mask``/``key_padding_mask`` as
    :meth:`MultiHeadAttention.apply`.

    Example::

        block = TransformerEncoderBlock(128, 4, 512, causal=True)     # a GPT block
        params = block.init(fnnet.random.key(0), (None, 64, 128))
    """

    embed_dim: int = attrs.field(validator=positive_int)
    num_heads: int = attrs.field(validator=positive_int)
    mlp_dim: int = attrs.field(validator=positive_int)
    dropout: float = attrs.field(default=0.0, validator=_rate)
    norm_first: bool = True
    causal: bool = False
    eps: float = 1e-5

    def __attrs_post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"TransformerEncoderBlock: embed_dim ({self.embed_dim}) must be divisible by "
                             f"num_heads ({self.num_heads})")

    def children(self):
        e = self.embed_dim
        layers = (MultiHeadAttention(e, self.num_heads, self.dropout), Linear(self.mlp_dim), Linear(e),
                  LayerNorm(eps=self.eps), LayerNorm(eps=self.eps))
        return tuple(zip(_CHILDREN, layers))

    def child_in_shapes(self, in_shape):
        shape = self.out_shape(in_shape)
        return (shape, shape, (*shape[:-1], self.mlp_dim), shape, shape)

    def init(self, key, in_shape, dtype=np.float32):
        keys = fnrandom.split(key, len(_CHILDREN))
        params = {}
        for (name, layer), shape, k in zip(self.children(), self.child_in_shapes(in_shape), keys):
            with child_errors(name, layer):
                params[name] = layer.init(k, shape, dtype)
        return params

    def out_shape(self, in_shape):
        shape = _sequence_shape("TransformerEncoderBlock", in_shape)
        if shape[-1] != self.embed_dim:
            raise ValueError(f"TransformerEncoderBlock: input must be (N, L, {self.embed_dim}) (embed_dim), "
                             f"got {shape}")
        return shape

    def apply(self, params, x, *, mask=None, key_padding_mask=None, state=None, key=None, train=False):
        check_params("TransformerEncoderBlock", params, _CHILDREN)
        check_input(self, x)
        self.out_shape(tuple(x.shape))
        layers = dict(self.children())
        active = train and self.dropout > 0.0
        if active and key is None:
            raise ValueError("TransformerEncoderBlock: a random key is needed in training with dropout > 0; call "
                             "block.apply(params, x, key=fnnet.random.key(step), train=True)")
        keys = fnrandom.split(key, 4) if active else (None,) * 4

        def drop(y, k):
            return ops.dropout(y, k, self.dropout) if active else y

        def attend(h):
            y = layers["self_attn"].apply(params["self_attn"], h, mask=mask, key_padding_mask=key_padding_mask,
                                          causal=self.causal, key=keys[0], train=train)
            return drop(y, keys[1])

        def mlp(h):
            h = ops.gelu(layers["linear1"].apply(params["linear1"], h))
            return drop(layers["linear2"].apply(params["linear2"], drop(h, keys[2])), keys[3])

        norm1, norm2 = (lambda h, n=n: layers[n].apply(params[n], h) for n in ("norm1", "norm2"))
        if self.norm_first:
            x = x + attend(norm1(x))
            y = x + mlp(norm2(x))
        else:
            x = norm1(x + attend(x))
            y = norm2(x + mlp(x))
        return y if state is None else (y, state)

    def flops(self, in_shape):
        total = 0
        for (_, layer), shape in zip(self.children(), self.child_in_shapes(in_shape)):
            total += layer.flops(shape)
        return total + 8 * numel(in_shape) * self.mlp_dim // self.embed_dim + 2 * numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        total = 0
        for (_, layer), shape in zip(self.children(), self.child_in_shapes(in_shape)):
            total += layer.tape_bytes(shape, dtype) or 0
        return total + 2 * numel(in_shape) * self.mlp_dim // self.embed_dim * np.dtype(dtype).itemsize

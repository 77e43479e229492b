"""PyTorch twins of the attention layers for the layer table (``tests/layer_cases.py``): torch modules whose
``forward(x)`` takes one tensor, as the table calls them."""

from __future__ import annotations

import math


def multihead_attention(embed_dim, num_heads, bias=True, causal=False):
    """``nn.MultiheadAttention(batch_first=True)`` applied as self-attention, optionally causal."""
    import torch

    class SelfAttention(torch.nn.MultiheadAttention):
        def forward(self, x):
            mask = _causal_mask(x.shape[1]) if causal else None
            return super().forward(x, x, x, attn_mask=mask, need_weights=False, is_causal=causal)[0]

    return SelfAttention(embed_dim, num_heads, bias=bias, batch_first=True)


def encoder_block(embed_dim, num_heads, mlp_dim, norm_first=True, causal=False):
    """``nn.TransformerEncoderLayer(batch_first=True, activation="gelu", dropout=0)``, optionally causal."""
    import torch

    class Block(torch.nn.TransformerEncoderLayer):
        def forward(self, x):
            mask = _causal_mask(x.shape[1]) if causal else None
            return super().forward(x, src_mask=mask, is_causal=causal)

    return Block(embed_dim, num_heads, mlp_dim, dropout=0.0, activation="gelu", batch_first=True,
                 norm_first=norm_first)


def learned_positions(max_len, dim):
    """``x + weight[:L]`` with a ``(max_len, dim)`` parameter called ``weight``."""
    import torch

    class Positions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(max_len, dim))

        def forward(self, x):
            return x + self.weight[: x.shape[1]]

    return Positions()


def sinusoidal_positions():
    """``x`` plus the sin/cos table, built with torch from its definition."""
    import torch

    class Positions(torch.nn.Module):
        def forward(self, x):
            length, dim = x.shape[1], x.shape[2]
            pos = torch.arange(length, dtype=torch.float64)[:, None]
            freqs = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
            table = torch.zeros(length, dim, dtype=torch.float64)
            table[:, 0::2] = torch.sin(pos * freqs)
            table[:, 1::2] = torch.cos(pos * freqs[: dim // 2])
            return x + table

    return Positions()


def _causal_mask(length):
    import torch

    return torch.nn.Transformer.generate_square_subsequent_mask(length, dtype=torch.float64)

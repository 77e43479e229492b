"""The layer table: every registered layer with configurations, its PyTorch twin and how to copy weights.

``tests/test_layers.py`` runs forward, input-gradient and parameter-gradient comparisons against PyTorch
(float64) for every row with a torch twin, ``out_shape`` checks for every row, and fails when a registered
layer has no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import fnnet
import fnnet.layers as L


@dataclass
class LayerCase:
    id: str
    layer: object
    in_shape: tuple
    torch: Callable | None = None       # () -> torch.nn.Module (float64)
    train: bool = False
    int_input: int = 0                  # > 0: integer indices in [0, int_input)
    stateful: bool = False


def _nn():
    import torch
    return torch.nn


def _seq(*mods):
    return _nn().Sequential(*mods)


def _channel_mask(rate, in_shape):
    """A torch module applying the channel mask ``Dropout2D`` draws with the tests' key (random.key(0))."""
    import torch

    keep = fnnet.random.bernoulli(fnnet.random.key(0), in_shape[:2] + (1,) * (len(in_shape) - 2), 1.0 - rate)
    scale = torch.tensor(keep.astype(np.float64) / (1.0 - rate))

    class ChannelMask(torch.nn.Module):
        def forward(self, x):
            return x * scale

    return ChannelMask()


def _recurrent(kind, input_size, hidden_size, last=False, reverse=False):
    """``nn.GRU``/``nn.LSTM`` (batch first) returning one tensor as ``fnnet.layers.RNN`` does: the output
    sequence or its last step; ``reverse`` runs it on the time-flipped input and flips the outputs back."""
    base = getattr(_nn(), kind)

    class Twin(base):
        def forward(self, x):
            out = super().forward(x.flip(1) if reverse else x)[0]
            if last:
                return out[:, -1]
            return out.flip(1) if reverse else out

    return Twin(input_size, hidden_size, batch_first=True)


def _lstm_cell_sum(input_size, hidden_size):
    """``nn.LSTMCell`` followed by ``h' + c'`` (the twin of ``Sequential([LSTMCell(H), FanInSum()])``)."""
    import torch

    class SumPair(torch.nn.Module):
        def forward(self, pair):
            return pair[0] + pair[1]

    return _seq(_nn().LSTMCell(input_size, hidden_size), SumPair())


CASES = [
    LayerCase("Linear", L.Linear(5), (4, 3), lambda: _nn().Linear(3, 5)),
    LayerCase("Linear-nobias-3d", L.Linear(2, use_bias=False), (2, 3, 4), lambda: _nn().Linear(4, 2, bias=False)),
    LayerCase("Linear-batch1", L.Linear(1), (1, 3), lambda: _nn().Linear(3, 1)),
    LayerCase("Conv2D", L.Conv2D(4, 3), (2, 3, 7, 6), lambda: _nn().Conv2d(3, 4, 3)),
    LayerCase("Conv2D-s2p1", L.Conv2D(4, 3, stride=2, padding=1), (2, 3, 7, 7), lambda: _nn().Conv2d(3, 4, 3, 2, 1)),
    LayerCase("Conv2D-same-dil2", L.Conv2D(2, (3, 2), padding="same", dilation=2), (1, 2, 6, 7),
              lambda: _nn().Conv2d(2, 2, (3, 2), padding="same", dilation=2)),
    LayerCase("Conv2D-groups2", L.Conv2D(4, 3, padding=1, groups=2), (2, 4, 5, 5),
              lambda: _nn().Conv2d(4, 4, 3, padding=1, groups=2)),
    LayerCase("Conv2D-depthwise-nobias", L.Conv2D(3, 3, groups=3, use_bias=False), (2, 3, 5, 4),
              lambda: _nn().Conv2d(3, 3, 3, groups=3, bias=False)),
    LayerCase("Conv2D-1x1-batch1", L.Conv2D(3, 1), (1, 2, 3, 3), lambda: _nn().Conv2d(2, 3, 1)),
    LayerCase("MaxPool2D", L.MaxPool2D(2), (2, 3, 6, 5), lambda: _nn().MaxPool2d(2)),
    LayerCase("MaxPool2D-k3s2p1", L.MaxPool2D(3, 2, 1), (2, 2, 7, 7), lambda: _nn().MaxPool2d(3, 2, 1)),
    LayerCase("AvgPool2D", L.AvgPool2D(2), (2, 3, 6, 5), lambda: _nn().AvgPool2d(2)),
    LayerCase("AvgPool2D-pad", L.AvgPool2D(3, 2, 1), (2, 2, 7, 7), lambda: _nn().AvgPool2d(3, 2, 1)),
    LayerCase("AvgPool2D-pad-exclude", L.AvgPool2D(3, 2, 1, count_include_pad=False), (1, 2, 6, 6),
              lambda: _nn().AvgPool2d(3, 2, 1, count_include_pad=False)),
    LayerCase("GlobalAvgPool2D", L.GlobalAvgPool2D(), (2, 3, 4, 5),
              lambda: _seq(_nn().AdaptiveAvgPool2d(1), _nn().Flatten())),
    LayerCase("MaxPool2D-dil2-ceil", L.MaxPool2D(3, 2, 1, 2, ceil_mode=True), (2, 2, 8, 7),
              lambda: _nn().MaxPool2d(3, 2, 1, 2, ceil_mode=True)),
    LayerCase("AvgPool2D-ceil", L.AvgPool2D(3, 2, 1, ceil_mode=True), (2, 2, 6, 7),
              lambda: _nn().AvgPool2d(3, 2, 1, ceil_mode=True)),
    LayerCase("MaxPool1D", L.MaxPool1D(2), (2, 3, 7), lambda: _nn().MaxPool1d(2)),
    LayerCase("MaxPool1D-k3s2p1d2-ceil-batch1", L.MaxPool1D(3, 2, 1, 2, ceil_mode=True), (1, 2, 10),
              lambda: _nn().MaxPool1d(3, 2, 1, 2, ceil_mode=True)),
    LayerCase("AvgPool1D", L.AvgPool1D(3), (2, 3, 8), lambda: _nn().AvgPool1d(3)),
    LayerCase("AvgPool1D-pad-exclude-ceil-batch1", L.AvgPool1D(4, 3, 2, count_include_pad=False, ceil_mode=True),
              (1, 2, 9), lambda: _nn().AvgPool1d(4, 3, 2, ceil_mode=True, count_include_pad=False)),
    LayerCase("Conv1D", L.Conv1D(4, 3), (2, 3, 9), lambda: _nn().Conv1d(3, 4, 3)),
    LayerCase("Conv1D-s2p2d2-groups3", L.Conv1D(6, 3, stride=2, padding=2, dilation=2, groups=3), (2, 3, 10),
              lambda: _nn().Conv1d(3, 6, 3, 2, 2, 2, 3)),
    LayerCase("Conv1D-same-even-nobias-batch1", L.Conv1D(2, 4, padding="same", use_bias=False), (1, 3, 7),
              lambda: _nn().Conv1d(3, 2, 4, padding="same", bias=False)),
    LayerCase("Conv1D-reflect", L.Conv1D(3, 3, padding=2, padding_mode="reflect"), (2, 2, 6),
              lambda: _nn().Conv1d(2, 3, 3, padding=2, padding_mode="reflect")),
    LayerCase("Conv1D-circular-same-even", L.Conv1D(3, 4, padding="same", padding_mode="circular"), (2, 2, 5),
              lambda: _nn().Conv1d(2, 3, 4, padding="same", padding_mode="circular")),
    LayerCase("Conv2D-reflect-s2", L.Conv2D(4, 3, stride=2, padding=1, padding_mode="reflect"), (2, 3, 7, 6),
              lambda: _nn().Conv2d(3, 4, 3, 2, 1, padding_mode="reflect")),
    LayerCase("Conv2D-replicate-dil", L.Conv2D(2, (3, 2), padding=(2, 1), dilation=(1, 2), padding_mode="replicate"),
              (1, 2, 5, 6),
              lambda: _nn().Conv2d(2, 2, (3, 2), padding=(2, 1), dilation=(1, 2), padding_mode="replicate")),
    LayerCase("Conv2D-circular-same-groups2", L.Conv2D(4, 3, padding="same", groups=2, padding_mode="circular"),
              (2, 4, 5, 5), lambda: _nn().Conv2d(4, 4, 3, padding="same", groups=2, padding_mode="circular")),
    LayerCase("ConvTranspose2D", L.ConvTranspose2D(4, 3), (2, 3, 5, 4), lambda: _nn().ConvTranspose2d(3, 4, 3)),
    LayerCase("ConvTranspose2D-s2p1op1", L.ConvTranspose2D(2, 3, stride=2, padding=1, output_padding=1), (2, 3, 4, 5),
              lambda: _nn().ConvTranspose2d(3, 2, 3, 2, 1, 1)),
    LayerCase("ConvTranspose2D-groups2-dil-nobias-batch1",
              L.ConvTranspose2D(4, (2, 3), stride=(1, 2), padding=(0, 1), groups=2, use_bias=False, dilation=(2, 1)),
              (1, 4, 3, 5), lambda: _nn().ConvTranspose2d(4, 4, (2, 3), (1, 2), (0, 1), 0, 2, False, (2, 1))),
    LayerCase("ConvTranspose2D-k4s2p1", L.ConvTranspose2D(3, 4, stride=2, padding=1), (2, 2, 3, 3),
              lambda: _nn().ConvTranspose2d(2, 3, 4, 2, 1)),
    LayerCase("ReLU", L.ReLU(), (3, 4), lambda: _nn().ReLU()),
    LayerCase("LeakyReLU", L.LeakyReLU(0.1), (3, 4), lambda: _nn().LeakyReLU(0.1)),
    LayerCase("ELU", L.ELU(0.5), (3, 4), lambda: _nn().ELU(0.5)),
    LayerCase("GELU", L.GELU(), (3, 4), lambda: _nn().GELU()),
    LayerCase("Sigmoid", L.Sigmoid(), (3, 4), lambda: _nn().Sigmoid()),
    LayerCase("Tanh", L.Tanh(), (3, 4), lambda: _nn().Tanh()),
    LayerCase("Softplus", L.Softplus(), (3, 4), lambda: _nn().Softplus()),
    LayerCase("Softmax", L.Softmax(), (3, 4), lambda: _nn().Softmax(-1)),
    LayerCase("Softmax-axis1", L.Softmax(axis=1), (2, 3, 4), lambda: _nn().Softmax(1)),
    LayerCase("LogSoftmax", L.LogSoftmax(), (3, 4), lambda: _nn().LogSoftmax(-1)),
    LayerCase("Dropout-eval", L.Dropout(0.5), (3, 4), lambda: _nn().Dropout(0.5).eval()),
    LayerCase("Dropout2D-eval", L.Dropout2D(0.5), (2, 3, 4, 4), lambda: _nn().Dropout2d(0.5).eval()),
    LayerCase("Dropout2D-train-4d", L.Dropout2D(0.4), (3, 5, 2, 3), lambda: _channel_mask(0.4, (3, 5, 2, 3)),
              train=True),
    LayerCase("Dropout2D-train-3d-batch1", L.Dropout2D(0.5), (1, 7, 3), lambda: _channel_mask(0.5, (1, 7, 3)),
              train=True),
    LayerCase("BatchNorm-2d-train", L.BatchNorm(), (6, 3), lambda: _nn().BatchNorm1d(3), train=True, stateful=True),
    LayerCase("BatchNorm-4d-train", L.BatchNorm(momentum=0.2), (3, 2, 4, 3), lambda: _nn().BatchNorm2d(2, momentum=0.2),
              train=True, stateful=True),
    LayerCase("BatchNorm-4d-eval", L.BatchNorm(), (3, 2, 4, 3), lambda: _nn().BatchNorm2d(2).eval(), stateful=True),
    LayerCase("BatchNorm-noaffine", L.BatchNorm(affine=False), (5, 3), lambda: _nn().BatchNorm1d(3, affine=False),
              train=True, stateful=True),
    LayerCase("BatchNorm-3d-train", L.BatchNorm(momentum=0.3), (4, 3, 5), lambda: _nn().BatchNorm1d(3, momentum=0.3),
              train=True, stateful=True),
    LayerCase("BatchNorm-3d-eval-batch1", L.BatchNorm(), (1, 3, 5), lambda: _nn().BatchNorm1d(3).eval(), stateful=True),
    LayerCase("BatchNorm-no-running-stats-train", L.BatchNorm(track_running_stats=False), (5, 3, 2, 3),
              lambda: _nn().BatchNorm2d(3, track_running_stats=False), train=True),
    LayerCase("BatchNorm-no-running-stats-eval-3d", L.BatchNorm(eps=1e-3, track_running_stats=False), (2, 3, 5),
              lambda: _nn().BatchNorm1d(3, eps=1e-3, track_running_stats=False).eval()),
    LayerCase("LayerNorm", L.LayerNorm(), (3, 5), lambda: _nn().LayerNorm(5)),
    LayerCase("LayerNorm-3d", L.LayerNorm(eps=1e-3), (2, 3, 4), lambda: _nn().LayerNorm(4, eps=1e-3)),
    LayerCase("LayerNorm-2axes", L.LayerNorm((3, 5)), (2, 4, 3, 5), lambda: _nn().LayerNorm((3, 5))),
    LayerCase("LayerNorm-nobias-batch1", L.LayerNorm(7, use_bias=False), (1, 7),
              lambda: _nn().LayerNorm(7, bias=False)),
    LayerCase("LayerNorm-noaffine-all-axes", L.LayerNorm((2, 3), affine=False), (3, 2, 3),
              lambda: _nn().LayerNorm((2, 3), elementwise_affine=False)),
    LayerCase("RMSNorm", L.RMSNorm(5), (3, 5), lambda: _nn().RMSNorm(5)),
    LayerCase("RMSNorm-2axes-eps", L.RMSNorm((3, 4), eps=1e-3), (2, 5, 3, 4), lambda: _nn().RMSNorm((3, 4), eps=1e-3)),
    LayerCase("RMSNorm-noaffine-batch1", L.RMSNorm(7, affine=False), (1, 7),
              lambda: _nn().RMSNorm(7, elementwise_affine=False)),
    LayerCase("GroupNorm", L.GroupNorm(3), (2, 6, 5, 3), lambda: _nn().GroupNorm(3, 6)),
    LayerCase("GroupNorm-3d-batch1-eps", L.GroupNorm(2, eps=1e-3), (1, 4, 7), lambda: _nn().GroupNorm(2, 4, eps=1e-3)),
    LayerCase("GroupNorm-1group-noaffine-2d", L.GroupNorm(1, affine=False), (3, 5),
              lambda: _nn().GroupNorm(1, 5, affine=False)),
    LayerCase("InstanceNorm-4d", L.InstanceNorm(), (2, 3, 4, 5), lambda: _nn().InstanceNorm2d(3)),
    LayerCase("InstanceNorm-3d-affine-batch1", L.InstanceNorm(eps=1e-3, affine=True), (1, 3, 7),
              lambda: _nn().InstanceNorm1d(3, eps=1e-3, affine=True)),
    LayerCase("Embedding", L.Embedding(7, 3), (4, 5), lambda: _nn().Embedding(7, 3), int_input=7),
    LayerCase("Embedding-padding", L.Embedding(7, 3, padding_idx=2), (4, 5),
              lambda: _nn().Embedding(7, 3, padding_idx=2), int_input=7),
    LayerCase("Embedding-padding-negative-batch1", L.Embedding(5, 4, padding_idx=-1), (1, 9),
              lambda: _nn().Embedding(5, 4, padding_idx=-1), int_input=5),
    LayerCase("Flatten", L.Flatten(), (2, 3, 4, 2), lambda: _nn().Flatten()),
    LayerCase("Reshape", L.Reshape((4, -1)), (2, 3, 4), lambda: _seq(_nn().Flatten(), _nn().Unflatten(1, (4, 3)))),
    LayerCase("Identity", L.Identity(), (2, 3), lambda: _nn().Identity()),
    LayerCase("Sequential", L.Sequential([L.Linear(4), L.Tanh(), L.Linear(2)]), (3, 5),
              lambda: _seq(_nn().Linear(5, 4), _nn().Tanh(), _nn().Linear(4, 2))),
    LayerCase("Sequential-cnn", L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2),
                                              L.Flatten(), L.Linear(3)]), (2, 2, 6, 6),
              lambda: _seq(_nn().Conv2d(2, 4, 3, padding=1), _nn().BatchNorm2d(4), _nn().ReLU(), _nn().MaxPool2d(2),
                           _nn().Flatten(), _nn().Linear(36, 3)), train=True, stateful=True),
    LayerCase("Residual", L.Residual(L.Sequential([L.Linear(4), L.Tanh()])), (3, 4)),
    LayerCase("Parallel+FanOut+FanInSum", L.Sequential([L.FanOut(2), L.Parallel([L.Linear(3), L.Linear(3)]),
                                                        L.FanInSum()]), (2, 4)),
    LayerCase("FanInConcat", L.Sequential([L.FanOut(2), L.Parallel([L.Conv2D(2, 1), L.Conv2D(3, 3, padding=1)]),
                                           L.FanInConcat(axis=1)]), (2, 2, 4, 4)),
    LayerCase("Remat-ReLU", L.Remat(L.ReLU()), (3, 4), lambda: _nn().ReLU()),  # numerically the wrapped layer
    LayerCase("Remat-cnn-train", L.Remat(L.Sequential([L.Conv2D(3, 3, padding=1), L.BatchNorm(), L.ReLU(),
                                                       L.MaxPool2D(2), L.Flatten(), L.Remat(L.Linear(2))])),
              (2, 2, 4, 4), train=True, stateful=True),
    LayerCase("GRUCell", L.GRUCell(5), (4, 3), lambda: _nn().GRUCell(3, 5)),
    LayerCase("LSTMCell+FanInSum-batch1", L.Sequential([L.LSTMCell(4), L.FanInSum()]), (1, 3),
              lambda: _lstm_cell_sum(3, 4)),
    LayerCase("RNN-GRU", L.RNN(L.GRUCell(4)), (2, 5, 3), lambda: _recurrent("GRU", 3, 4)),
    LayerCase("RNN-GRU-last-T1", L.RNN(L.GRUCell(3), return_sequences=False), (3, 1, 2),
              lambda: _recurrent("GRU", 2, 3, last=True)),
    LayerCase("RNN-GRU-reverse-batch1", L.RNN(L.GRUCell(3), reverse=True), (1, 4, 5),
              lambda: _recurrent("GRU", 5, 3, reverse=True)),
    LayerCase("RNN-LSTM", L.RNN(L.LSTMCell(3)), (2, 4, 5), lambda: _recurrent("LSTM", 5, 3)),
    LayerCase("RNN-LSTM-last-reverse", L.RNN(L.LSTMCell(5), return_sequences=False, reverse=True), (3, 6, 2),
              lambda: _recurrent("LSTM", 2, 5, last=True, reverse=True)),
]


from . import attention_twins as _att  # noqa: E402  (the attention layers' PyTorch twins)

CASES += [
    LayerCase("MultiHeadAttention", L.MultiHeadAttention(8, 2), (2, 5, 8), lambda: _att.multihead_attention(8, 2)),
    LayerCase("MultiHeadAttention-causal-nobias-batch1", L.MultiHeadAttention(6, 3, bias=False, causal=True), (1, 7, 6),
              lambda: _att.multihead_attention(6, 3, bias=False, causal=True)),
    LayerCase("TransformerEncoderBlock", L.TransformerEncoderBlock(8, 2, 12), (2, 5, 8),
              lambda: _att.encoder_block(8, 2, 12)),
    LayerCase("TransformerEncoderBlock-postLN", L.TransformerEncoderBlock(8, 4, 6, norm_first=False), (2, 3, 8),
              lambda: _att.encoder_block(8, 4, 6, norm_first=False)),
    LayerCase("TransformerEncoderBlock-decoder-causal", L.TransformerEncoderBlock(8, 2, 16, causal=True),
              (2, 6, 8), lambda: _att.encoder_block(8, 2, 16, causal=True)),
    LayerCase("LearnedPositionalEmbedding", L.LearnedPositionalEmbedding(9), (2, 6, 4),
              lambda: _att.learned_positions(9, 4)),
    LayerCase("SinusoidalPositionalEmbedding", L.SinusoidalPositionalEmbedding(), (2, 7, 5),
              lambda: _att.sinusoidal_positions()),
]


def covered_layer_names():
    return {type(layer).__name__ for case in CASES for _, layer, _ in L.walk(case.layer)}


def example_input(case, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    if case.int_input:
        return rng.integers(0, case.int_input, size=case.in_shape)
    x = rng.standard_normal(case.in_shape).astype(dtype)
    return x

"""The layer table: every registered layer class with a valid input shape (containers with small children).

Adding a layer is one line: ``LayerSpec(name, Layer(...), in_shape)``; ``train=True`` runs it in training
mode, ``key=True`` passes a fixed key, ``int_input=n`` feeds integer indices in ``[0, n)``.
"""

from __future__ import annotations

from ... import layers as L
from .specs import LayerSpec

__all__ = ["LAYER_SPECS"]

_ACTIVATIONS = [L.ReLU(), L.LeakyReLU(0.1), L.ELU(0.5), L.GELU(), L.GELU(approximate=True), L.Sigmoid(), L.Tanh(),
                L.Softplus(), L.Softmax(), L.Softmax(axis=0), L.LogSoftmax(), L.Identity()]

_INCEPTION = L.Sequential([L.FanOut(2), L.Parallel([L.Conv2D(2, 1), L.Conv2D(3, 3, padding=1)]), L.FanInConcat(axis=1)])

LAYER_SPECS = [LayerSpec(repr(layer), layer, (3, 4)) for layer in _ACTIVATIONS]
LAYER_SPECS += [
    LayerSpec("Linear", L.Linear(5), (4, 3)),
    LayerSpec("Linear[nobias-3d]", L.Linear(2, use_bias=False), (2, 3, 4)),
    LayerSpec("Conv2D", L.Conv2D(4, 3), (2, 3, 6, 5)),
    LayerSpec("Conv2D[s2-same-groups]", L.Conv2D(4, 3, stride=2, padding=1, groups=2), (2, 4, 5, 5)),
    LayerSpec("Conv2D[same-dilated]", L.Conv2D(2, (3, 2), padding="same", dilation=2, use_bias=False), (1, 2, 6, 7)),
    LayerSpec("Conv1D", L.Conv1D(4, 3, padding=1, padding_mode="reflect"), (2, 3, 7)),
    LayerSpec("ConvTranspose2D", L.ConvTranspose2D(2, 3, stride=2, output_padding=1), (2, 3, 4, 4)),
    LayerSpec("MaxPool1D", L.MaxPool1D(3, 2, 1), (2, 3, 7)),
    LayerSpec("AvgPool1D", L.AvgPool1D(2, ceil_mode=True), (2, 3, 7)),
    LayerSpec("MaxPool2D", L.MaxPool2D(2), (2, 3, 6, 5)),
    LayerSpec("MaxPool2D[k3s2p1]", L.MaxPool2D(3, 2, 1), (2, 2, 7, 7)),
    LayerSpec("AvgPool2D", L.AvgPool2D(2), (2, 3, 6, 5)),
    LayerSpec("AvgPool2D[exclude-pad]", L.AvgPool2D(3, 2, 1, count_include_pad=False), (1, 2, 6, 6)),
    LayerSpec("GlobalAvgPool2D", L.GlobalAvgPool2D(), (2, 3, 4, 5)),
    LayerSpec("Dropout[train]", L.Dropout(0.5), (3, 4), train=True, key=True),
    LayerSpec("Dropout[eval]", L.Dropout(0.5), (3, 4)),
    LayerSpec("Dropout2D[train]", L.Dropout2D(0.5), (2, 3, 4, 4), train=True, key=True),
    LayerSpec("BatchNorm[train]", L.BatchNorm(), (6, 3), train=True),
    LayerSpec("BatchNorm[4d-eval]", L.BatchNorm(momentum=0.2), (3, 2, 4, 3)),
    LayerSpec("BatchNorm[noaffine-train]", L.BatchNorm(affine=False), (2, 3, 2, 2), train=True),
    LayerSpec("BatchNorm[no-running-stats]", L.BatchNorm(track_running_stats=False), (3, 2, 5), train=True),
    LayerSpec("GroupNorm", L.GroupNorm(2), (2, 4, 3, 3)),
    LayerSpec("InstanceNorm", L.InstanceNorm(affine=True), (2, 3, 4, 4)),
    LayerSpec("RMSNorm", L.RMSNorm(), (3, 5)),
    LayerSpec("LayerNorm", L.LayerNorm(), (3, 5)),
    LayerSpec("LayerNorm[noaffine-3d]", L.LayerNorm(eps=1e-3, affine=False), (2, 3, 4)),
    LayerSpec("Embedding", L.Embedding(7, 3), (4, 5), int_input=7),
    LayerSpec("Embedding[padding_idx]", L.Embedding(7, 3, padding_idx=0), (4, 5), int_input=7),
    LayerSpec("Flatten", L.Flatten(), (2, 3, 4, 2)),
    LayerSpec("Reshape", L.Reshape((4, -1)), (2, 3, 4)),
    LayerSpec("Sequential[mlp-fused]", L.Sequential([L.Linear(4), L.ReLU(), L.Linear(2)]), (3, 5)),
    LayerSpec("Sequential[cnn]", L.Sequential([L.Conv2D(3, 3, padding=1), L.ReLU(), L.BatchNorm(), L.MaxPool2D(2),
                                               L.Flatten(), L.Linear(3)]), (2, 2, 4, 4), train=True),
    LayerSpec("Residual", L.Residual(L.Sequential([L.Linear(4), L.Tanh()])), (3, 4)),
    LayerSpec("FanOut", L.FanOut(2), (2, 3)),
    LayerSpec("Parallel", L.Parallel([L.Linear(3), L.ReLU()], names=("dense", "act")), ((2, 4), (2, 3))),
    LayerSpec("FanInSum", L.FanInSum(), ((2, 3), (2, 3))),
    LayerSpec("FanInConcat", L.FanInConcat(axis=1), ((2, 3), (2, 2))),
    LayerSpec("Sequential[inception]", _INCEPTION, (2, 2, 4, 4)),
    LayerSpec("Remat[ReLU]", L.Remat(L.ReLU()), (3, 4)),
    LayerSpec("Remat[cnn-train]", L.Remat(L.Sequential([L.Conv2D(3, 3, padding=1), L.BatchNorm(), L.ReLU(),
                                                        L.Flatten(), L.Dropout(0.3), L.Remat(L.Linear(2))])),
              (2, 2, 3, 3), train=True, key=True),
]
LAYER_SPECS += [
    LayerSpec("MultiHeadAttention", L.MultiHeadAttention(4, 2), (2, 3, 4)),
    LayerSpec("TransformerEncoderBlock", L.TransformerEncoderBlock(4, 2, 8, dropout=0.1), (2, 3, 4), train=True,
              key=True),
    LayerSpec("TransformerEncoderBlock[post-norm-causal]", L.TransformerEncoderBlock(4, 2, 8, norm_first=False,
                                                                                     causal=True), (2, 3, 4)),
    LayerSpec("LearnedPositionalEmbedding", L.LearnedPositionalEmbedding(6), (2, 4, 3)),
    LayerSpec("SinusoidalPositionalEmbedding", L.SinusoidalPositionalEmbedding(), (2, 4, 6)),
    LayerSpec("GRUCell", L.GRUCell(3), (2, 4)),
    LayerSpec("LSTMCell", L.LSTMCell(3), (2, 4)),
    LayerSpec("RNN[GRU]", L.RNN(L.GRUCell(3)), (2, 4, 3)),
    LayerSpec("RNN[LSTM-last-reverse]", L.RNN(L.LSTMCell(3), return_sequences=False, reverse=True), (2, 4, 3)),
]

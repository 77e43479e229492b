"""Layers: frozen ``attrs`` specs with pure ``init`` / ``init_state`` / ``out_shape`` / ``apply``.

See :mod:`fnnet.layers.base` for the protocol, the registry and configs.
"""

from .attention import LearnedPositionalEmbedding, MultiHeadAttention, SinusoidalPositionalEmbedding
from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .base import Layer, TorchParam, from_config, get, register, registered_layers, to_config
from .combinators import FanInConcat, FanInSum, FanOut, Parallel, Residual, Sequential
from .conv import Conv2D
from .conv import Conv1D
from .conv_transpose import ConvTranspose2D
from .dense import Linear
from .dropout import Dropout, Dropout2D
from .embedding import Embedding
from .norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .pool import AvgPool1D, MaxPool1D
from .recording import ActivationRecorder, record_activations
from .recurrent import GRUCell, LSTMCell, RNN
from .remat import Remat
from .shape import Flatten, Identity, Reshape
from .transformer import TransformerEncoderBlock
from .walking import LayerVisit, decay_mask, param_labels, walk

__all__ = [
    "AvgPool2D", "BatchNorm", "Conv2D", "Dropout", "Embedding", "GlobalAvgPool2D", "LayerNorm", "MaxPool2D",
    "ELU", "FanInConcat", "FanInSum", "FanOut", "Flatten", "GELU", "Identity", "Layer", "LeakyReLU", "Linear",
    "LogSoftmax", "Parallel", "ReLU", "Remat", "Reshape", "Residual", "Sequential", "Sigmoid", "Softmax", "Softplus",
    "Tanh", "ActivationRecorder", "record_activations", "from_config", "get", "register", "registered_layers", "to_config",
]
__all__ += ["Dropout2D", "GroupNorm", "InstanceNorm", "RMSNorm"]
__all__ += ["LayerVisit", "TorchParam", "walk"]
__all__ += ["decay_mask", "param_labels"]
__all__ += ["AvgPool1D", "Conv1D", "ConvTranspose2D", "MaxPool1D"]
__all__ += ["GRUCell", "LSTMCell", "RNN"]
__all__ += ["LearnedPositionalEmbedding", "MultiHeadAttention", "SinusoidalPositionalEmbedding", "TransformerEncoderBlock"]

"""Layers: frozen ``attrs`` specs with pure ``init`` / ``init_state`` / ``out_shape`` / ``apply``.

See :mod:`fnnet.layers.base` for the protocol, the registry and configs.
"""

from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .base import Layer, from_config, get, register, registered_layers, to_config
from .combinators import FanInConcat, FanInSum, FanOut, Parallel, Residual, Sequential
from .conv import Conv2D
from .dense import Linear
from .dropout import Dropout
from .embedding import Embedding
from .norm import BatchNorm, LayerNorm
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .recording import ActivationRecorder, record_activations
from .remat import Remat
from .shape import Flatten, Identity, Reshape

__all__ = [
    "AvgPool2D", "BatchNorm", "Conv2D", "Dropout", "Embedding", "GlobalAvgPool2D", "LayerNorm", "MaxPool2D",
    "ELU", "FanInConcat", "FanInSum", "FanOut", "Flatten", "GELU", "Identity", "Layer", "LeakyReLU", "Linear",
    "LogSoftmax", "Parallel", "ReLU", "Remat", "Reshape", "Residual", "Sequential", "Sigmoid", "Softmax", "Softplus",
    "Tanh", "ActivationRecorder", "record_activations", "from_config", "get", "register", "registered_layers", "to_config",
]

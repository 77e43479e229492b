"""Layers: frozen ``attrs`` specs with pure ``init`` / ``init_state`` / ``out_shape`` / ``apply``.

See :mod:`fnnet.layers.base` for the protocol, the registry and configs.
"""

from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .base import Layer, from_config, get, register, registered_layers, to_config
from .combinators import FanInConcat, FanInSum, FanOut, Parallel, Residual, Sequential
from .dense import Linear
from .shape import Flatten, Identity, Reshape

__all__ = [
    "ELU", "FanInConcat", "FanInSum", "FanOut", "Flatten", "GELU", "Identity", "Layer", "LeakyReLU", "Linear",
    "LogSoftmax", "Parallel", "ReLU", "Reshape", "Residual", "Sequential", "Sigmoid", "Softmax", "Softplus",
    "Tanh", "from_config", "get", "register", "registered_layers", "to_config",
]

"""Differentiable ops: validated Python functions over Numba kernels, one module per family.

Every op accepts numpy arrays or tracers, checks dtypes and shapes before any kernel runs, and under
``fnnet.grad`` records one tape entry.  Outside ``grad`` it records nothing.
"""

from . import _operators
from .arithmetic import add, divide, maximum, minimum, multiply, power, subtract, where
from .elementwise import (
    abs, clip, elu, erf, exp, gelu, leaky_relu, log, negative, relu, sigmoid, softplus, sqrt, tanh,
)
from .indexing import concatenate, getitem, stack, take
from .linalg import linear, matmul
from .reduce import max, mean, sum  # noqa: A004  (numpy's names)
from .shape import reshape, transpose
from .stats import gradient_probe, summarize
from .softmax import log_softmax, logsumexp, softmax
from .conv import conv2d, conv2d_output_shape, conv_output_size
from .conv import conv1d
from .conv_transpose import conv_transpose2d
from .pad import pad
from .dropout import channel_dropout, dropout
from .embedding import embedding
from .norm import batch_norm, group_norm, layer_norm, rms_norm
from .pool import avg_pool2d, global_avg_pool2d, max_pool2d, pool2d_output_shape
from .pool import avg_pool1d, max_pool1d
from .split import chunk, split
from .einsum import einsum
from .attention import scaled_dot_product_attention
from .recurrent import gru_sequence, lstm_sequence
# for layers, which import ops but not autodiff
from ..autodiff.transforms import checkpoint, in_recomputation, stop_gradient  # noqa: F401

_operators.install()

__all__ = [
    "abs", "add", "clip", "divide", "elu", "exp", "gelu", "leaky_relu", "linear", "log", "matmul",
    "maximum", "minimum", "multiply", "negative", "power", "relu", "reshape", "sigmoid", "softplus",
    "sqrt", "subtract", "tanh", "transpose", "where",
]
__all__ += ["concatenate", "getitem", "log_softmax", "logsumexp", "max", "mean", "softmax", "stack", "sum", "take"]
__all__ += ["avg_pool2d", "batch_norm", "conv2d", "conv2d_output_shape", "conv_output_size", "dropout",
            "embedding", "global_avg_pool2d", "layer_norm", "max_pool2d", "pool2d_output_shape"]
__all__ += ["gradient_probe", "summarize"]
__all__ += ["channel_dropout", "group_norm", "rms_norm"]
__all__ += ["avg_pool1d", "conv1d", "conv_transpose2d", "max_pool1d", "pad"]
__all__ += ["erf"]
__all__ += ["chunk", "einsum", "split"]
__all__ += ["scaled_dot_product_attention"]
__all__ += ["gru_sequence", "lstm_sequence"]

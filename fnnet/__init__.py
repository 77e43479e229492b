"""fnnet: functional neural-network layers with Numba-compiled kernels.

    import fnnet
    key = fnnet.random.key(0)
    params = model.init(key, (None, 784))
    grads = fnnet.grad(loss)(params, x, y)
"""

from . import init, random, tree  # noqa: F401  (numpy-only foundations)
from . import kernels  # noqa: F401  (sets up the threading layer before anything runs)
from . import autodiff, ops  # noqa: F401
from .autodiff import (  # noqa: F401
    checkpoint, grad, primitive, stop_gradient, value_and_grad, vjp,
)
from . import testing  # noqa: F401
from . import losses  # noqa: F401
from . import optim, io, datasets  # noqa: F401

__version__ = "0.1.0"

"""fnnet: functional neural-network layers with Numba-compiled kernels.

    import fnnet
    from fnnet.layers import Sequential, Linear, ReLU

    model = Sequential([Linear(128), ReLU(), Linear(10)])
    params = model.init(fnnet.random.key(0), (None, 784))
    grads = fnnet.grad(loss)(params, x, y)

Packages: ``tree``, ``random``, ``init`` (foundations); ``kernels`` (Numba); ``autodiff`` (tracing);
``ops``, ``losses``; ``layers``; ``optim``; ``io``, ``datasets``, ``train``; ``testing``; ``bench``.
"""

from . import init, random, tree  # noqa: F401  (foundations: trees, keys and draws, initializers)
from . import kernels  # noqa: F401  (sets up the threading layer before anything runs)
from . import autodiff, ops  # noqa: F401
from .autodiff import (  # noqa: F401
    check_finite, checkpoint, grad, last_tape_stats, primitive, stop_gradient, value_and_grad, vjp,
)
from . import losses  # noqa: F401
from . import layers  # noqa: F401
from . import optim, io, datasets  # noqa: F401
from . import precision, testing, train  # noqa: F401
from .summary import eval_shape, summary  # noqa: F401
from .precompile import precompile  # noqa: F401
from .vmap import per_example_grads, vmap  # noqa: F401
from .jit import jit  # noqa: F401  (the function; its package stays importable as fnnet.jit.*)

# The functions importable from ``fnnet`` itself; the subpackages (``fnnet.layers``, ``fnnet.ops``, ...) hold
# the rest of the API.
__all__ = [
    "check_finite", "checkpoint", "eval_shape", "grad", "jit", "last_tape_stats", "per_example_grads", "precompile",
    "primitive", "stop_gradient", "summary", "value_and_grad", "vjp", "vmap",
]

__version__ = "0.1.0"

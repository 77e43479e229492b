"""``precompile``: compile the kernels a function or a model needs before the real work starts.

Numba compiles each kernel on its first call, once per signature (argument dtypes, ranks, layouts), never
per shape, and caches the machine code on disk (``fnnet/kernels/_jit.py``).  ``precompile`` makes that
happen up front, in parallel worker processes where it can:

- ``precompile(fn, *example_args, **example_kwargs)`` for any callable (a loss, a train step,
  ``grad(loss)``): see ``_function.py``.
- ``precompile(model, in_shape, ...)`` for a layer: see ``_layers.py``.
- ``python -m fnnet.precompile`` warms the cache for every built-in layer and op: see ``__main__.py``.

Importing this package registers the compile progress line (``_progress.py``).
"""

from __future__ import annotations

import os

from .. import kernels
from ..layers import Layer
from . import _progress
from ._function import PrecompileReport, check_call, precompile_function
from ._layers import _leaf_layers, exercise, precompile_layers  # noqa: F401  (_leaf_layers: tests)

__all__ = ["precompile", "PrecompileReport"]

_progress.install()


def precompile(fn, *example_args, workers=None, **example_kwargs):
    """Compile (or load from the disk cache) every kernel ``fn`` calls, before the real work starts.

    ``fn`` runs once on the example arguments (shapes may be small: kernels compile per dtype and rank,
    not per shape) while every kernel signature it calls is recorded into a signature log.  When that log
    exists from an earlier run and some of its signatures are missing from the cache (a new cache folder,
    an upgraded fnnet), worker processes compile them in parallel first; ``fn`` then loads them.

    Example::

        step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, optimizer)
        fnnet.precompile(step, params, state, opt_state, x[:32], y[:32], fnnet.random.key(1))

    Args:
        fn: any callable, or a Layer for the layer form ``precompile(model, in_shape, *, dtype=float32,
            num_classes=None, optimizer=None)``, which exercises each leaf layer's forward and backward
            on a batch of two and returns the number of leaf layers.
        *example_args: the positional arguments ``fn`` is called with; its result is discarded.
        workers: processes compiling in parallel (default: the number of CPUs, used only when the logged
            compile times say they finish sooner, since each first imports fnnet; 1 when the disk cache is
            off, since compiled code could not be shared back).  Taken by precompile, never passed on.
        **example_kwargs: the keyword arguments ``fn`` is called with.

    Returns:
        A :class:`PrecompileReport` (kernels reached, compiled in workers, compiled here, loaded, seconds,
        log path).

    Raises:
        TypeError: ``fn`` is not callable, or the example arguments do not fit its signature.  Whatever
            ``fn`` raises on the example arguments propagates, with a note saying precompile called it.
    """
    forced = workers is not None
    if workers is None:
        workers = os.cpu_count() or 1
    if not kernels.CACHE_ENABLED:
        workers = 1
    if isinstance(fn, Layer):
        return precompile_layers(fn, *example_args, workers=workers, **example_kwargs)
    check_call(fn, example_args, example_kwargs)
    return precompile_function(fn, example_args, example_kwargs, workers=workers, forced=forced,
                               cache_enabled=kernels.CACHE_ENABLED)

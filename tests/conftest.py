"""Fixtures shared by several test files."""

import numba
import numpy as np
import pytest

from fnnet import kernels as K


@pytest.fixture
def kernel_inputs(monkeypatch):
    """Records ``(kernel name, aligned, native byte order)`` for every array a kernel receives during the
    test, so a test can assert that validation handed the kernels plain arrays."""
    seen = []
    for name, kernel in list(vars(K).items()):
        if isinstance(kernel, numba.core.registry.CPUDispatcher):
            def spy(*args, _kernel=kernel, _name=name):
                seen.extend((_name, a.flags.aligned, a.dtype.isnative) for a in args if isinstance(a, np.ndarray))
                return _kernel(*args)
            monkeypatch.setattr(K, name, spy)
    return seen


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


def pytest_collection_modifyitems(config, items):
    """Run the fuzzer last: it drives every kernel in many dtypes and layouts from forked worker processes,
    so with a cold Numba cache it compiles far less once the other tests have filled the on-disk cache."""
    items.sort(key=lambda item: item.path.parent.name == "fuzz")  # stable: the rest keep their order

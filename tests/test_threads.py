"""Thread-safe gradient accumulation: threads computing gradients at once give the serial sum exactly."""

import numpy as np
import pytest

import fnnet
import fnnet.layers as L


def _setup():
    model = L.Sequential([L.Linear(64), L.ReLU(), L.Linear(64), L.ReLU(), L.Linear(10)])
    params = model.init(fnnet.random.key(0), (None, 32))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 32)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    grad_fn = fnnet.grad(lambda p, b: fnnet.losses.softmax_cross_entropy(model.apply(p, b[0]), b[1]))
    return params, batches, grad_fn


def test_threaded_accumulation_equals_serial_bitwise_every_time():
    params, batches, grad_fn = _setup()
    serial = fnnet.optim.accumulate_gradients(grad_fn, params, batches)
    for threads in (2, 3, 4, 8):
        for _ in range(5):
            threaded = fnnet.optim.accumulate_gradients(grad_fn, params, batches, threads=threads)
            for a, b in zip(fnnet.tree.leaves(serial), fnnet.tree.leaves(threaded)):
                np.testing.assert_array_equal(a, b)


def test_accumulation_is_independent_of_arrival_order():
    params, batches, grad_fn = _setup()
    import random
    import time

    def slow_grad(p, b, delays=[]):
        time.sleep(random.random() * 0.01)  # threads finish in a random order
        return grad_fn(p, b)

    serial = fnnet.optim.accumulate_gradients(grad_fn, params, batches)
    threaded = fnnet.optim.accumulate_gradients(slow_grad, params, batches, threads=4)
    for a, b in zip(fnnet.tree.leaves(serial), fnnet.tree.leaves(threaded)):
        np.testing.assert_array_equal(a, b)


def test_bad_thread_count():
    params, batches, grad_fn = _setup()
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        fnnet.optim.accumulate_gradients(grad_fn, params, batches, threads=0)

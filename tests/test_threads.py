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


def test_overlapping_check_finite_blocks_in_two_threads_stay_in_their_threads():
    """enter A, enter B, exit A, exit B: afterwards no thread has the check on, and while B's block is
    open a third thread outside any block is never checked."""
    import threading

    bad = np.array([np.nan, 1.0])
    order = [threading.Event() for _ in range(4)]
    seen = {}

    def run_a():
        with fnnet.check_finite():
            order[0].set()
            order[1].wait(10)
            seen["a_inside"] = _raises(bad)
        order[2].set()

    def run_b():
        order[0].wait(10)
        with fnnet.check_finite():
            order[1].set()
            order[2].wait(10)
            seen["outsider_during_b"] = _in_thread(lambda: _raises(bad))
            seen["b_inside"] = _raises(bad)
        order[3].set()

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert order[3].is_set()
    assert seen == {"a_inside": True, "outsider_during_b": False, "b_inside": True}
    assert not _raises(bad) and not _in_thread(lambda: _raises(bad))
    grads = [fnnet.grad(lambda x: fnnet.ops.sum(fnnet.ops.multiply(x, x)))(bad) for _ in range(100)]
    assert all(np.isnan(g[0]) for g in grads)


def _raises(x) -> bool:
    try:
        fnnet.grad(lambda v: fnnet.ops.sum(fnnet.ops.multiply(v, v)))(x)
    except ValueError:
        return True
    return False


def _in_thread(fn):
    import threading

    box = []
    t = threading.Thread(target=lambda: box.append(fn()))
    t.start()
    t.join(20)
    return box[0]


def test_last_tape_stats_belongs_to_the_calling_thread():
    small = np.ones(10)
    big = np.ones(100_000)
    square = lambda x: fnnet.ops.sum(fnnet.ops.multiply(x, x))  # noqa: E731
    fnnet.grad(square)(small)
    mine = fnnet.last_tape_stats()["peak_residual_bytes"]
    other = _in_thread(lambda: (fnnet.grad(square)(big), fnnet.last_tape_stats())[1])
    assert other["peak_residual_bytes"] > mine
    assert fnnet.last_tape_stats()["peak_residual_bytes"] == mine
    assert _in_thread(fnnet.last_tape_stats) == {"peak_residual_bytes": 0}

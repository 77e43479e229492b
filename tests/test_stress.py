"""Long-running stress test, kept out of CI (`python -m pytest -m stress tests/test_stress.py`).

8 Python threads run mixed work (a CNN's `grad` with BatchNorm and Dropout, an MLP's `value_and_grad`, Adam
and SGD updates, `check_finite` blocks) for `FNNET_STRESS_SECONDS` (default 600) and compare every result
bitwise with the same work computed serially beforehand; resident memory must stay flat.
"""

import os
import resource
import threading
import time

import numpy as np
import pytest

import fnnet
import fnnet.layers as L

pytestmark = pytest.mark.stress

SECONDS = float(os.environ.get("FNNET_STRESS_SECONDS", "600"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _jobs():
    """Named jobs: each returns a flat list of arrays that must be the same bits on every run."""
    rng = np.random.default_rng(0)
    cnn = L.Sequential([L.Conv2D(8, 3, padding=1), L.BatchNorm(), L.ReLU(), L.Dropout(0.2), L.Flatten(), L.Linear(10)])
    cnn_params = cnn.init(fnnet.random.key(1), (None, 1, 8, 8))
    cnn_state = cnn.init_state((None, 1, 8, 8))
    images = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    mlp = L.Sequential([L.Linear(64), L.ReLU(), L.Linear(10)])
    mlp_params = mlp.init(fnnet.random.key(2), (None, 32))
    rows = rng.standard_normal((64, 32)).astype(np.float32)
    targets = rng.integers(0, 10, 64)
    adam, sgd = fnnet.optim.adam(1e-3), fnnet.optim.sgd(0.1, momentum=0.9)

    def cnn_loss(p, s, key):
        out, s = cnn.apply(p, images, state=s, key=key, train=True)
        return fnnet.losses.softmax_cross_entropy(out, labels), s

    def cnn_job(i):
        (loss, state), g = fnnet.value_and_grad(cnn_loss, has_aux=True)(cnn_params, cnn_state, fnnet.random.key(i))
        updates, _ = adam.update(g, adam.init(cnn_params), cnn_params)
        return [np.asarray(loss), *fnnet.tree.leaves(state), *fnnet.tree.leaves(updates)]

    def mlp_job(i):
        params, opt_state = mlp_params, sgd.init(mlp_params)
        for step in range(3):
            with fnnet.check_finite(step % 2 == 0):
                g = fnnet.grad(lambda p: fnnet.losses.softmax_cross_entropy(mlp.apply(p, rows + i), targets))(params)
            updates, opt_state = sgd.update(g, opt_state, params)
            params = fnnet.optim.apply_updates(params, updates)
        return fnnet.tree.leaves(params)

    return [cnn_job, mlp_job]


def test_eight_threads_mixed_work_is_bitwise_serial_and_memory_flat():
    jobs = _jobs()
    cases = [(j, i) for j in range(len(jobs)) for i in range(6)]
    expected = {case: jobs[case[0]](case[1]) for case in cases}
    failures, counts, rss = [], [0] * 8, []
    deadline = time.monotonic() + SECONDS

    def worker(t):
        n = t
        while time.monotonic() < deadline and not failures:
            case = cases[n % len(cases)]
            got = jobs[case[0]](case[1])
            if any(a.tobytes() != b.tobytes() for a, b in zip(got, expected[case])):
                failures.append(f"thread {t}, job {case}: result differs from the serial run")
            n += 7
            counts[t] += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        rss.append(_rss_mb())
        time.sleep(1.0)
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert min(counts) > 0
    warm = rss[len(rss) // 5:] or rss  # after the first fifth, allocator pools are warm
    assert max(warm) - min(warm) < max(64.0, 0.2 * min(warm)), f"RSS grew from {min(warm):.0f} to {max(warm):.0f} MB"

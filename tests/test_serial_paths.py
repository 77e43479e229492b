"""Kernels that run small work serially (below ``SERIAL_WORK`` elements) give bitwise what their parallel
path gives: each element (row) is computed the same way whichever path runs it."""

import re

import numba
import numpy as np
import pytest
from numba import prange

from fnnet import kernels as K
from fnnet.kernels import optim as KO
from fnnet.kernels._jit import _PRANGE_ONLY, SERIAL_WORK

RNG = np.random.default_rng(11)
BIG = SERIAL_WORK + 4099  # parallel path
SMALL = SERIAL_WORK - 1   # serial path, a prefix of the big input


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["relu_fwd", "sigmoid_fwd", "tanh_fwd"])
def test_unary_activation_serial_path_matches_parallel_path(name, dtype):
    x = (RNG.standard_normal(BIG) * 4).astype(dtype)
    x[:4] = [np.nan, np.inf, -np.inf, 0.0]
    kernel = getattr(K, name)
    assert kernel(x[:SMALL].copy()).tobytes() == kernel(x)[:SMALL].tobytes()


@pytest.mark.parametrize("name", ["relu_bwd", "sigmoid_bwd", "tanh_bwd"])
def test_unary_activation_backward_serial_path_matches_parallel_path(name):
    y, g = RNG.standard_normal((2, BIG)).astype(np.float32)
    kernel = getattr(K, name)
    assert kernel(y[:SMALL].copy(), g[:SMALL].copy()).tobytes() == kernel(y, g)[:SMALL].tobytes()


def _step_outputs(kernel, arrays, scalars, flags, n):
    ins = [a[:n].copy() for a in arrays]
    outs = [np.empty(n, np.float32) for _ in range(flags[0])]
    kernel(*ins, *outs, *scalars, *flags[1:])
    return [o.tobytes() for o in outs]


STEPS = {
    "scale_and_decay_step": (KO.scale_and_decay_step, 2, (np.float32(-0.1), np.float32(0.01)), (1, True)),
    "momentum_step": (KO.momentum_step, 3, (np.float32(-0.1), np.float32(0.9), np.float32(0.01)), (2, True, True)),
    "adam_step": (KO.adam_step, 4, tuple(np.float32(v) for v in (-1e-3, 0.9, 0.999, 1e-8, 0.1, 0.002, 0.01)),
                  (3, True)),
    "rmsprop_step": (KO.rmsprop_step, 5, tuple(np.float32(v) for v in (-1e-3, 0.99, 1e-8, 0.5)), (4, True, True, True)),
    "adagrad_step": (KO.adagrad_step, 3, (np.float32(-0.1), np.float32(1e-10)), (2, True)),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_optimizer_step_serial_path_matches_parallel_path(name):
    kernel, num_in, scalars, flags = STEPS[name]
    arrays = [np.abs(RNG.standard_normal(BIG)).astype(np.float32) for _ in range(num_in)]
    big = _step_outputs(kernel, arrays, scalars, flags, BIG)
    small = _step_outputs(kernel, arrays, scalars, flags, SMALL)
    assert [s for s in small] == [b[:SMALL * 4] for b in big]


def test_cross_entropy_serial_rows_match_parallel_rows():
    classes = 10
    rows = BIG // classes + 1
    x = RNG.standard_normal((rows, classes)).astype(np.float32)
    labels = RNG.integers(0, classes, rows)
    few = SMALL // classes
    losses, _, probs = K.softmax_cross_entropy_fwd(x, labels)
    losses_s, _, probs_s = K.softmax_cross_entropy_fwd(x[:few].copy(), labels[:few].copy())
    assert losses_s.tobytes() == losses[:few].tobytes() and probs_s.tobytes() == probs[:few].tobytes()
    g = RNG.standard_normal(rows).astype(np.float32)
    grad = K.softmax_cross_entropy_bwd(probs, labels, g, 1, np.float32(0.5))
    grad_s = K.softmax_cross_entropy_bwd(probs[:few].copy(), labels[:few].copy(), g[:few].copy(), 1, np.float32(0.5))
    assert grad_s.tobytes() == grad[:few].tobytes()


def test_linear_forward_single_block_in_the_calling_thread_matches_the_parallel_blocks():
    from fnnet.kernels.dense import ROW_BLOCK, _blocks
    x = RNG.standard_normal((2 * ROW_BLOCK, 300)).astype(np.float32)
    w = RNG.standard_normal((300, 40)).astype(np.float32)
    b = RNG.standard_normal(40).astype(np.float32)
    assert _blocks(2 * ROW_BLOCK, 300, 40)[:2] == (False, 2) and _blocks(ROW_BLOCK, 300, 40)[1] == 1
    one_block = K.linear_fwd(x[:ROW_BLOCK].copy(), w, b, True, True)
    assert one_block.tobytes() == K.linear_fwd(x, w, b, True, True)[:ROW_BLOCK].tobytes()


def _zeros_then_prange(x):
    out = np.zeros(x.size)  # an allocation: a parallel loop of its own if Numba's "numpy" option were on
    for i in prange(x.size):
        out[i] = 2.0 * x[i]
    return out


def test_parallel_options_stay_prange_only_in_every_compile():
    """Numba pops a dict of parallel options at each compile; fnnet's options must reach every kernel (a
    shared dict reached only the first, and the others launched threads for each ``np.zeros``)."""
    compiled = [numba.njit(parallel=_PRANGE_ONLY)(_zeros_then_prange) for _ in range(3)]
    x = np.arange(5.0)
    for fn in compiled:
        assert fn(x).tolist() == (2 * x).tolist()
    for fn in compiled:
        ir = "".join(fn.inspect_llvm().values())
        assert len(set(re.findall(r"__numba_parfor_gufunc_0x[0-9a-f]+", ir))) == 1  # the prange loop only
    assert not _PRANGE_ONLY.numpy and _PRANGE_ONLY.prange

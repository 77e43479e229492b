"""The 2x2, stride-2 average pooling kernels give the general loop's bits (the op table checks both against
PyTorch; these check the fast path bitwise, special values included)."""

import numpy as np
import pytest

import fnnet.kernels as K


def _special_planes(dtype, shape=(3, 4, 9, 7)):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x[0, 0, :2, :2] = -0.0  # the first window: all negative zeros
    tiny, big = np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max
    width = min(6, shape[3])
    x[0, 1, 0, :width] = [np.nan, 1.0, np.inf, -np.inf, big, big][:width]  # NaN, inf - inf, huge sums
    x[0, 1, 1, :width] = [1.0, 1.0, 1.0, 1.0, big, 1.0][:width]
    x[0, 2, :2, :2] = tiny  # denormals
    return x


def _windows_in_order(x, oh, ow):
    """The general loop's arithmetic in NumPy float64: 0.0 + the four taps row by row, then / 4."""
    x = x.astype(np.float64)
    s = np.zeros(x.shape[:2] + (oh, ow))
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(2):
            for j in range(2):
                s = s + x[:, :, i:2 * oh:2, j:2 * ow:2]
    return s / 4.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_2x2_forward_is_the_general_loops_sum_bitwise(dtype):
    x = _special_planes(dtype)
    oh, ow = x.shape[2] // 2, x.shape[3] // 2
    y = K.avg_pool2d_fwd(x, 2, 2, 2, 2, 0, 0, oh, ow, True)
    np.testing.assert_array_equal(y, K.avg_pool_2x2_fwd(x, oh, ow))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(y, _windows_in_order(x, oh, ow).astype(dtype))
    assert y[0, 0, 0, 0] == 0 and not np.signbit(y[0, 0, 0, 0])  # 0.0 + -0.0 is +0.0, as in the general loop
    assert np.isnan(y[0, 1, 0, 0]) and np.isnan(y[0, 1, 0, 1])  # NaN, and inf + -inf
    # Ceil mode on the odd plane adds a clipped last window per axis, which takes the general loop: the
    # windows the two share must agree bit for bit.
    general = K.avg_pool2d_fwd(x, 2, 2, 2, 2, 0, 0, oh + 1, ow + 1, True)
    np.testing.assert_array_equal(general[:, :, :oh, :ow], y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_2x2_backward_is_the_general_loops_share_bitwise(dtype):
    x = _special_planes(dtype)
    H, W = x.shape[2], x.shape[3]
    g = _special_planes(dtype, (3, 4, H // 2, W // 2))
    gx = K.avg_pool2d_bwd(g, H, W, 2, 2, 2, 2, 0, 0, True)
    np.testing.assert_array_equal(gx, K.avg_pool_2x2_bwd(g, H, W))
    expected = np.zeros(x.shape, dtype)
    for i in range(2):
        for j in range(2):
            expected[:, :, i:2 * (H // 2):2, j:2 * (W // 2):2] = (0.0 + g.astype(np.float64) / 4.0).astype(dtype)
    np.testing.assert_array_equal(gx, expected)
    # the last row and column, which no window covers, stay zero
    assert not gx[:, :, -1, :].any() and not gx[:, :, :, -1].any()

"""Window geometry (``fnnet.ops.geometry``) against PyTorch: the output shapes of the convolution and pooling
ops with 1 and 2 spatial axes (stride, padding, dilation, ``ceil_mode``, ``output_padding``), errors exactly
where PyTorch refuses, layers' ``out_shape`` agreeing with their ops, and the messages of the new ops."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fnnet
import fnnet.layers as L
import fnnet.ops as ops
from fnnet.autodiff import vjp

F = torch.nn.functional
KEY = fnnet.random.key(0)


def randn(*shape):
    return np.random.default_rng(0).standard_normal(shape)


def _torch_shape(fn):
    try:
        return tuple(fn().shape)
    except RuntimeError:
        return None  # PyTorch refuses: so must fnnet, with a ValueError


def _same_shape_or_both_refuse(expected, fn):
    if expected is None:
        with pytest.raises(ValueError):
            fn()
        return None
    y = fn()
    assert y.shape == expected
    return y


@settings(max_examples=60, deadline=None)
@given(ndim=st.sampled_from([1, 2]), size=st.integers(1, 9), k=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 2), d=st.integers(1, 3), ceil=st.booleans(), kind=st.sampled_from(["max", "avg"]))
def test_pool_shapes_match_torch(ndim, size, k, s, p, d, ceil, kind):
    x = randn(2, 3, *([size, size + 1][:ndim]))
    if kind == "max":
        fn, tfn = getattr(ops, f"max_pool{ndim}d"), getattr(F, f"max_pool{ndim}d")
        run, trun = (lambda: fn(x, k, s, p, d, ceil)), (lambda: tfn(torch.tensor(x), k, s, p, d, ceil))
        layer = getattr(L, f"MaxPool{ndim}D")
        make = lambda: layer(k, s, p, d, ceil_mode=ceil)  # noqa: E731
    else:
        fn, tfn = getattr(ops, f"avg_pool{ndim}d"), getattr(F, f"avg_pool{ndim}d")
        run, trun = (lambda: fn(x, k, s, p, ceil_mode=ceil)), (lambda: tfn(torch.tensor(x), k, s, p, ceil))
        layer = getattr(L, f"AvgPool{ndim}D")
        make = lambda: layer(k, s, p, ceil_mode=ceil)  # noqa: E731
    expected = _torch_shape(trun)
    _same_shape_or_both_refuse(expected, run)
    if expected is not None:
        assert make().out_shape((None, *x.shape[1:])) == (None, *expected[1:])


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 8), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 3), d=st.integers(1, 3),
       op=st.integers(0, 2), groups=st.sampled_from([1, 2]))
def test_conv_transpose2d_shapes_match_torch(size, k, s, p, d, op, groups):
    x, w = randn(1, 2, size, size + 2), randn(2, 3, k, k + 1)
    kwargs = dict(stride=s, padding=p, output_padding=op, dilation=d, groups=groups)
    expected = _torch_shape(lambda: F.conv_transpose2d(torch.tensor(x), torch.tensor(w), **kwargs))
    _same_shape_or_both_refuse(expected, lambda: ops.conv_transpose2d(x, w, **kwargs))
    if expected is not None:
        layer = L.ConvTranspose2D(3 * groups, (k, k + 1), s, p, op, groups, dilation=d)
        assert layer.out_shape((None, 2, size, size + 2)) == (None, *expected[1:])


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 9), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 3),
       padding=st.sampled_from([0, 1, 3, "same", "valid"]))
def test_conv1d_shapes_match_torch(size, k, s, d, padding):
    x, w = randn(2, 4, size), randn(3, 2, k)
    kwargs = dict(stride=s, padding=padding, dilation=d, groups=2)
    expected = _torch_shape(lambda: F.conv1d(torch.tensor(x), torch.tensor(w), **kwargs))
    _same_shape_or_both_refuse(expected, lambda: ops.conv1d(x, w, **kwargs))


def test_asymmetric_padding_pairs_equal_explicit_zero_padding():
    x, w = randn(2, 3, 5, 6), randn(4, 3, 3, 2)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 0), (1, 3)))
    np.testing.assert_allclose(ops.conv2d(x, w, padding=((2, 0), (1, 3))), ops.conv2d(padded, w), rtol=1e-12)
    x1, w1 = randn(2, 3, 7), randn(4, 3, 3)
    np.testing.assert_allclose(ops.conv1d(x1, w1, padding=((0, 2),)),
                               ops.conv1d(np.pad(x1, ((0, 0), (0, 0), (0, 2))), w1), rtol=1e-12)
    assert L.Conv2D(4, (3, 2), padding=((2, 0), (1, 3))).out_shape((2, 3, 5, 6)) == (2, 4, 5, 9)


def test_max_pool_window_without_a_real_tap_gives_minus_inf_and_no_gradient_like_torch():
    x = randn(1, 1, 2)
    y, f = vjp(lambda a: ops.max_pool1d(a, 2, 1, 1, dilation=3), x)  # taps at -1 and 2: both padding
    assert y.shape == (1, 1, 1) and y[0, 0, 0] == -np.inf == F.max_pool1d(torch.tensor(x), 2, 1, 1, 3).item()
    np.testing.assert_array_equal(f(np.ones_like(y))[0], np.zeros_like(x))


def test_layer_out_shape_and_apply_share_the_messages():
    with pytest.raises(ValueError, match=r"Conv1D: the kernel \(5\) is larger than the padded input \(3 plus padding "
                                         r"0\+0 = 3\): along the length the kernel spans 5 pixels"):
        L.Conv1D(2, 5).out_shape((1, 1, 3))
    layer = L.Conv1D(2, 5)
    params = layer.init(KEY, (1, 1, 9))
    with pytest.raises(ValueError, match=r"conv1d: the kernel \(5\) is larger than the padded input \(3 plus"):
        layer.apply(params, np.ones((1, 1, 3), np.float32))
    with pytest.raises(ValueError, match=r"1 \(MaxPool1D\): the kernel \(4, dilation 2: extent 7\) is larger"):
        L.Sequential([L.Conv1D(2, 3), L.MaxPool1D(4, dilation=2)]).init(KEY, (1, 1, 7))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: ops.pad(randn(1, 2, 3), ((1, 3),), "reflect"), ValueError,
     r"reflect padding must be smaller than the axis it pads, got padding \(1, 3\) for axis 2 of size 3"),
    (lambda: ops.pad(randn(1, 2, 3), ((4, 0),), "circular"), ValueError, r"circular padding can be at most the size"),
    (lambda: ops.pad(randn(1, 2, 0), 1, "replicate"), ValueError, r"replicate padding needs a non-empty axis"),
    (lambda: ops.pad(randn(1, 2, 3), 1, "mirror"), ValueError, r"mode must be one of \('zeros', 'reflect'"),
    (lambda: ops.pad(randn(1, 2, 3), ((1, -1),)), ValueError, r"padding must be non-negative"),
    (lambda: ops.pad(randn(1, 2, 3), ((1, 2, 3),)), TypeError, r"a \(before, after\) pair of ints, got \(1, 2, 3\)"),
    (lambda: ops.pad(randn(3), ((1, 1), (1, 1))), TypeError, r"at most 1 entries"),
    (lambda: ops.conv_transpose2d(randn(1, 2, 3, 3), randn(2, 2, 3, 3), padding="same"), ValueError,
     r"padding='same' is not defined for transposed convolutions"),
    (lambda: ops.conv_transpose2d(randn(1, 2, 3, 3), randn(2, 2, 3, 3), stride=2, output_padding=2), ValueError,
     r"output_padding must be smaller than stride or dilation.*got output_padding=\(2, 2\), stride=\(2, 2\)"),
    (lambda: ops.conv_transpose2d(randn(1, 3, 3, 3), randn(2, 2, 3, 3)), ValueError,
     r"x has 3 channels but weight.shape\[0\] = 2 \(the layout is \(in_ch, out_ch/groups"),
    (lambda: ops.conv_transpose2d(randn(1, 2, 3, 3), randn(2, 2, 3, 3), randn(3)), ValueError,
     r"bias must have shape \(2,\)"),
    (lambda: ops.conv_transpose2d(randn(1, 2, 1, 1), randn(2, 2, 1, 1), padding=1), ValueError,
     r"the output would have -1 pixels along the height"),
    (lambda: ops.conv1d(randn(3, 5), randn(2, 3, 3)), ValueError, r"3 dimensions \(N, C, L\).*x\[None\]"),
    (lambda: ops.conv1d(randn(1, 3, 5), randn(2, 3, 3, 3)), ValueError, r"weight must have 3 dimensions"),
    (lambda: ops.conv1d(randn(1, 3, 5), randn(2, 3, 3), stride=(1, 1)), TypeError,
     r"stride expected an int or a 1-tuple of ints \(L\)"),
    (lambda: ops.max_pool1d(randn(1, 3, 5), 2, ceil_mode=1), TypeError, r"ceil_mode expected a bool, got 1"),
    (lambda: ops.max_pool2d(randn(1, 3, 5, 5), 2, dilation=0), ValueError, r"dilation must be positive"),
    (lambda: ops.avg_pool1d(randn(1, 3, 5), 3, padding=2), ValueError, r"at most half of the kernel size"),
    (lambda: L.ConvTranspose2D(2, 3, stride=2, output_padding=2), ValueError,
     r"ConvTranspose2D: output_padding must be smaller"),
    (lambda: L.ConvTranspose2D(3, 3, groups=2), ValueError, r"out_channels=3 must be divisible by groups=2"),
    (lambda: L.Conv1D(2, 3, padding_mode="mirror"), ValueError, r"Conv1D: padding_mode must be one of"),
    (lambda: L.Conv1D(2, 3, padding=(1, 1)), TypeError, r"Conv1D: padding expected .* got \(1, 1\)"),
    (lambda: L.MaxPool1D(2, ceil_mode="yes"), TypeError, r"MaxPool1D: ceil_mode expected a bool"),
    (lambda: L.AvgPool2D(2, padding=(0, 2)), ValueError, r"AvgPool2D: padding should be at most half"),
])
def test_errors_name_the_op_and_the_fix(call, exc, match):
    with pytest.raises(exc, match=match):
        call()

"""GroupNorm / InstanceNorm / RMSNorm / LayerNorm(normalized_shape) / BatchNorm options, Embedding(padding_idx)
and Dropout2D: the behaviour the layer and op tables cannot express (statistics of random masks, initial
values, errors naming the layer, PyTorch defaults).  Values and gradients are compared with PyTorch in
tests/layer_cases.py and tests/cases/*.py."""

import json

import numpy as np
import pytest
import torch

import fnnet
import fnnet.layers as L
import fnnet.ops as ops
from fnnet.autodiff import vjp
from fnnet.testing import assert_close

KEY = fnnet.random.key(0)
rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------------------------ Dropout2D


@pytest.mark.parametrize("shape", [(64, 100, 3, 2), (64, 100, 5)])
def test_dropout2d_drops_whole_channels_at_the_rate_and_scales_survivors(shape):
    rate = 0.3
    x = np.ones(shape, np.float32) + np.arange(shape[-1], dtype=np.float32)  # distinct values in a channel
    y = L.Dropout2D(rate).apply({}, x, key=KEY, train=True)
    assert y.shape == x.shape and y.dtype == np.float32
    per_channel = y.reshape(shape[0], shape[1], -1)
    dropped = np.all(per_channel == 0, axis=2)
    kept = np.all(per_channel != 0, axis=2)
    assert np.all(dropped | kept), "every channel is either dropped whole or kept whole"
    np.testing.assert_allclose(per_channel[kept], (x.reshape(per_channel.shape) / (1 - rate))[kept], rtol=1e-6)
    assert abs(dropped.mean() - rate) < 0.02  # 6400 channels: 5 standard deviations is 0.029


def test_dropout2d_same_key_same_mask_and_eval_is_identity():
    layer = L.Dropout2D(0.5)
    x = randn(4, 16, 3, 3)
    a = layer.apply({}, x, key=KEY, train=True)
    np.testing.assert_array_equal(a, layer.apply({}, x, key=KEY, train=True))
    assert not np.array_equal(a, layer.apply({}, x, key=fnnet.random.key(1), train=True))
    assert layer.apply({}, x) is x
    assert L.Dropout2D(0.0).apply({}, x, train=True) is x


def test_dropout2d_gradient_uses_the_forward_mask():
    x, u = randn(3, 8, 2, 2), randn(3, 8, 2, 2)
    y, back = vjp(lambda v: ops.channel_dropout(v, KEY, 0.25), x)
    (gx,) = back(u)
    mask = y / x  # 0 or 1/(1 - rate), per channel
    np.testing.assert_allclose(gx, u * mask, rtol=1e-12)


def test_dropout2d_and_channel_dropout_errors_name_the_layer_or_op():
    layer = L.Dropout2D(0.5)
    with pytest.raises(ValueError, match=r"Dropout2D: a random key is needed .*key=fnnet.random.key\(seed\)"):
        layer.apply({}, np.ones((2, 3, 4)), train=True)
    with pytest.raises(ValueError, match=r"Dropout2D: expected an input \(N, C, H, W\) or \(N, C, L\), got shape "
                                         r"\(2, 3\); use Dropout"):
        layer.apply({}, np.ones((2, 3)), key=KEY, train=True)
    with pytest.raises(ValueError, match=r"Dropout2D: expected .*got shape \(2, 3\)"):
        layer.out_shape((2, 3))
    with pytest.raises(ValueError, match=r"Dropout2D: rate is the probability of dropping .* got 1.0"):
        L.Dropout2D(1.0)
    with pytest.raises(ValueError, match=r"channel_dropout: x must be \(N, C, \*spatial\) .* got shape \(4, 5\)"):
        ops.channel_dropout(np.ones((4, 5)), KEY, 0.5)
    with pytest.raises(ValueError, match=r"channel_dropout\(x, key=fnnet.random.key\(0\), rate=0.5\)"):
        ops.channel_dropout(np.ones((4, 5, 2)), None, 0.5)


# ------------------------------------------------------------------------------------------ Embedding


def test_embedding_padding_row_is_initialised_to_zeros_and_negative_index_wraps():
    params = L.Embedding(6, 4, padding_idx=2).init(KEY, (None, 3))
    np.testing.assert_array_equal(params["weight"][2], 0.0)
    assert np.all(np.delete(params["weight"], 2, axis=0) != 0)
    last = L.Embedding(6, 4, padding_idx=-1).init(KEY, (None, 3))["weight"]
    np.testing.assert_array_equal(last[5], 0.0)
    np.testing.assert_array_equal(last[:5], L.Embedding(6, 4).init(KEY, (None, 3))["weight"][:5])
    shapes = fnnet.eval_shape(L.Embedding(6, 4, padding_idx=0).init, KEY, (None, 3))
    assert tuple(shapes["weight"].shape) == (6, 4)


@pytest.mark.parametrize("padding_idx, row", [(3, 3), (-2, 3)])
def test_embedding_padding_row_is_looked_up_but_gets_no_gradient_like_torch(padding_idx, row):
    layer = L.Embedding(5, 3, padding_idx=padding_idx)
    table = randn(5, 3)  # a trained (non-zero) padding row is still returned
    idx = np.array([[3, 1, 3], [0, 3, 4]])
    u = randn(2, 3, 3)
    y, back = vjp(lambda t: layer.apply({"weight": t}, idx), table)
    (g,) = back(u)
    np.testing.assert_array_equal(y[0, 0], table[row])
    np.testing.assert_array_equal(g[row], 0.0)
    tt = torch.tensor(table, requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(idx), tt, padding_idx=padding_idx).backward(torch.tensor(u))
    assert_close(g, tt.grad, rtol=1e-12, atol=0)


def test_embedding_padding_idx_errors_name_the_layer_and_op():
    with pytest.raises(ValueError, match=r"Embedding: padding_idx must be None or an int in \[-4, 3\].* got 4"):
        L.Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match=r"Embedding: padding_idx .* got -5"):
        L.Embedding(4, 2, padding_idx=-5)
    with pytest.raises(ValueError, match=r"Embedding: padding_idx .* got 1.0"):
        L.Embedding(4, 2, padding_idx=1.0)
    table = randn(4, 2)
    with pytest.raises(ValueError, match=r"embedding: padding_idx=7 is out of range for a table of 4 rows"):
        ops.embedding(np.array([0]), table, padding_idx=7)
    with pytest.raises(TypeError, match=r"embedding: padding_idx expected None or an int, got True"):
        ops.embedding(np.array([0]), table, padding_idx=True)


# ------------------------------------------------------------------------------------------ GroupNorm, InstanceNorm


def test_group_norm_channel_errors_name_the_layer_and_its_path():
    with pytest.raises(ValueError, match=r"GroupNorm.init: the 6 input channels are not divisible by num_groups=4"):
        L.GroupNorm(4).init(KEY, (None, 6, 3, 3))
    with pytest.raises(ValueError, match=r"GroupNorm: the 6 input channels are not divisible by num_groups=4"):
        L.GroupNorm(4).apply({"weight": np.ones(6), "bias": np.zeros(6)}, randn(2, 6, 3))
    model = L.Sequential([L.Conv2D(6, 1), L.GroupNorm(4)])
    with pytest.raises(ValueError, match=r"1 \(GroupNorm\): the 6 input channels are not divisible by num_groups=4"):
        model.out_shape((None, 2, 5, 5))
    with pytest.raises(ValueError, match=r"GroupNorm: num_groups must be a positive int, got 0"):
        L.GroupNorm(0)
    with pytest.raises(ValueError, match=r"GroupNorm: expected an input \(N, C, \*spatial\) .* got shape \(5,\)"):
        L.GroupNorm(1).out_shape((5,))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: ops.group_norm(randn(2, 6, 3), 4, None, None), ValueError, "6 channels of x.shape=.* not divisible by num"),
    (lambda: ops.group_norm(randn(2, 6, 3), 0, None, None), ValueError, "not divisible by num_groups=0"),
    (lambda: ops.group_norm(randn(2, 6, 3), 2.0, None, None), TypeError, "num_groups expected a positive int"),
    (lambda: ops.group_norm(randn(6), 2, None, None), ValueError, r"\(N, C, \*spatial\) with at least 2 dimensions"),
    (lambda: ops.group_norm(randn(2, 6), 2, randn(3), None), ValueError, r"gamma must have shape \(6,\)"),
    (lambda: ops.group_norm(randn(2, 6), 2, None, randn(6, dtype=np.float32)), TypeError, "x is float64 but beta"),
    (lambda: ops.group_norm(randn(2, 6), 2, None, None, eps=0.0), ValueError, "eps must be in"),
])
def test_group_norm_op_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_instance_norm_has_pytorch_defaults_and_clear_errors():
    layer = L.InstanceNorm()
    assert layer.affine is False and not layer.has_state
    assert layer.init(KEY, (None, 3, 8)) == {} and layer.init_state((None, 3, 8)) == {}
    x = randn(2, 3, 4, 5)
    assert_close(layer.apply({}, x), torch.nn.InstanceNorm2d(3)(torch.tensor(x)), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"InstanceNorm: expected an input \(N, C, L or H, W...\) .* got shape \(4, 3\)"):
        layer.out_shape((4, 3))
    with pytest.raises(ValueError, match=r"InstanceNorm: expected more than 1 spatial element per channel"):
        layer.apply({}, randn(2, 3, 1, 1))


# ------------------------------------------------------------------------------------------ LayerNorm, RMSNorm


def test_layer_norm_normalized_shape_forms_and_errors():
    assert L.LayerNorm(5).normalized_shape == (5,)
    assert L.LayerNorm([3, 4]).normalized_shape == (3, 4)
    params = L.LayerNorm((3, 4)).init(KEY, (None, 2, 3, 4))
    assert params["weight"].shape == params["bias"].shape == (3, 4)
    assert set(L.LayerNorm(4, use_bias=False).init(KEY, (None, 4))) == {"weight"}
    assert L.LayerNorm(4, affine=False).init(KEY, (None, 4)) == {}
    with pytest.raises(ValueError, match=r"LayerNorm.init: expected input \(\.\.\., 3, 4\) \(normalized_shape=\(3, 4\)\), "
                                         r"got shape \(None, 2, 4\)"):
        L.LayerNorm((3, 4)).init(KEY, (None, 2, 4))
    with pytest.raises(ValueError, match=r"LayerNorm: expected input \(\.\.\., 5\) .* got shape \(2, 4\)"):
        L.LayerNorm(5).apply({"weight": np.ones(5), "bias": np.zeros(5)}, randn(2, 4))
    for bad in (0, (), (2, -1), "4", 1.5):
        with pytest.raises(ValueError, match=r"LayerNorm: normalized_shape must be None \(the last axis\), a positive"):
            L.LayerNorm(bad)


def test_layer_norm_op_normalized_ndim_errors():
    with pytest.raises(ValueError, match=r"layer_norm: gamma must have shape \(3, 4\) \(the last 2 axes of x.shape="):
        ops.layer_norm(randn(2, 3, 4), randn(4), None, normalized_ndim=2)
    with pytest.raises(ValueError, match=r"normalized_ndim must be in \[1, x.ndim=3\], got 4"):
        ops.layer_norm(randn(2, 3, 4), None, None, normalized_ndim=4)
    with pytest.raises(TypeError, match="normalized_ndim expected an int"):
        ops.rms_norm(randn(2, 3, 4), None, normalized_ndim=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_norm_default_eps_is_the_dtype_epsilon_like_torch(dtype):
    x = (randn(3, 6) * 1e-4).astype(dtype)  # mean square ~1e-8: comparable to float32's epsilon 1.2e-7
    y = L.RMSNorm(6).apply({"weight": np.ones(6, dtype)}, x)
    expected = torch.nn.RMSNorm(6).to(torch.float64 if dtype == np.float64 else torch.float32)(torch.tensor(x))
    assert_close(y, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=0)
    eps = np.finfo(dtype).eps
    ms = (x.astype(np.float64) ** 2).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(y, x / np.sqrt(ms + eps), rtol=1e-5)
    if dtype == np.float32:  # the check above is sensitive to the epsilon used
        assert not np.allclose(y, x / np.sqrt(ms + 1e-6), rtol=1e-3)


def test_rms_norm_errors_and_config_round_trip():
    with pytest.raises(ValueError, match=r"RMSNorm: eps must be > 0, got 0.0"):
        L.RMSNorm(4, eps=0.0)
    with pytest.raises(ValueError, match=r"RMSNorm.init: expected input \(\.\.\., 4\)"):
        L.RMSNorm(4).init(KEY, (None, 5))
    model = L.Sequential([L.RMSNorm((2, 3)), L.LayerNorm((2, 3), use_bias=False), L.GroupNorm(2), L.InstanceNorm(),
                          L.BatchNorm(track_running_stats=False), L.Dropout2D(0.1), L.Embedding(4, 2, padding_idx=-1)])
    assert L.from_config(json.loads(json.dumps(L.to_config(model)))) == model


@pytest.mark.parametrize("make, args", [
    (lambda x, g, b: ops.group_norm(x, 2, g, b), "gb"),
    (lambda x, g, b: ops.rms_norm(x, g), "g"),
])
def test_new_norms_take_float16_as_storage(make, args):
    x32, g32, b32 = randn(2, 4, 3).astype(np.float32), np.full(3 if args == "g" else 4, 1.5, np.float32), None
    if args == "gb":
        b32 = np.full(4, 0.5, np.float32)
    y16 = make(x32.astype(np.float16), g32.astype(np.float16), None if b32 is None else b32.astype(np.float16))
    y32 = make(x32.astype(np.float16).astype(np.float32), g32, b32)
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=2e-3, atol=2e-3)


# ------------------------------------------------------------------------------------------ BatchNorm options


def test_batch_norm_without_running_stats_has_no_state_and_uses_batch_statistics_in_eval():
    layer = L.BatchNorm(track_running_stats=False)
    assert not layer.has_state and layer.init_state((None, 3, 5)) == {}
    params = layer.init(KEY, (None, 3, 5), np.float64)
    x = randn(4, 3, 5) * 3 + 2
    y_eval = layer.apply(params, x)
    np.testing.assert_array_equal(y_eval, layer.apply(params, x, train=True))
    np.testing.assert_allclose(y_eval.mean(axis=(0, 2)), 0.0, atol=1e-12)
    model = L.Sequential([L.Conv2D(3, 1), L.BatchNorm(track_running_stats=False), L.ReLU()])
    assert not model.has_state
    y = model.apply(model.init(KEY, (None, 2, 4, 4)), np.ones((2, 2, 4, 4), np.float32))  # no state needed
    assert y.shape == (2, 3, 4, 4)


def test_batch_norm_on_ncl_tracks_running_stats_like_batchnorm1d():
    layer = L.BatchNorm(momentum=0.2)
    shape = (6, 3, 7)
    params = layer.init(KEY, shape, np.float64)
    state = layer.init_state(shape, np.float64)
    module = torch.nn.BatchNorm1d(3, momentum=0.2).double()
    for step in range(3):
        x = randn(*shape) * (step + 1) + step
        y, state = layer.apply(params, x, state=state, train=True)
        assert_close(y, module(torch.tensor(x)), rtol=1e-10, atol=1e-12)
    assert_close(state["mean"], module.running_mean, rtol=1e-12)
    assert_close(state["var"], module.running_var, rtol=1e-12)
    with pytest.raises(ValueError, match=r"BatchNorm: expected an input \(N, C, \*spatial\) .* got shape \(5,\)"):
        layer.out_shape((5,))


# ------------------------------------------------------------------------------------------ porting a torch model


def test_a_torch_model_with_the_new_layers_ports_through_load_torch_state_dict():
    torch.manual_seed(0)
    nn = torch.nn
    tmodel = nn.Sequential(nn.GroupNorm(3, 6), nn.InstanceNorm1d(6, affine=True),
                           nn.BatchNorm1d(6, track_running_stats=False), nn.Dropout1d(0.3), nn.Flatten(),
                           nn.Unflatten(1, (6, 5)), nn.LayerNorm((6, 5), bias=False), nn.RMSNorm(5)).double()
    with torch.no_grad():
        for p in tmodel.parameters():
            p.uniform_(0.5, 1.5)
    tmodel.eval()
    model = L.Sequential([L.GroupNorm(3), L.InstanceNorm(affine=True),
                          L.BatchNorm(track_running_stats=False), L.Dropout2D(0.3), L.Flatten(), L.Reshape((6, 5)),
                          L.LayerNorm((6, 5), use_bias=False), L.RMSNorm(5)])
    params, state = fnnet.io.load_torch_state_dict(model, tmodel.state_dict())
    x = randn(4, 6, 5)
    assert_close(model.apply(params, x), tmodel(torch.tensor(x)), rtol=1e-10, atol=1e-12)
    temb = nn.Embedding(6, 3, padding_idx=-2)
    emb = L.Embedding(6, 3, padding_idx=-2)
    emb_params, _ = fnnet.io.load_torch_state_dict(emb, temb.state_dict())
    np.testing.assert_array_equal(emb_params["weight"][4], 0.0)

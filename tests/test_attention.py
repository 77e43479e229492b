"""Attention beyond the op and layer tables: fully masked rows, dropout, tape memory, determinism across
thread counts, bad input, MultiHeadAttention (cross attention, padding masks, torch import),
TransformerEncoderBlock import, and the positional embeddings."""

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
import fnnet.ops as ops
from fnnet.testing import assert_close, check_grads
from tests.thread_counts import on_one_thread_and_on_all

sdpa = ops.scaled_dot_product_attention
KEY = fnnet.random.key(0)


def _qkv(q_shape, k_shape, ev, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    v_shape = (*k_shape[:-1], ev)
    return tuple(rng.standard_normal(s).astype(dtype) for s in (q_shape, k_shape, v_shape))


def _loss_grads(fn, q, k, v, seed=3):
    y = fn(q, k, v)
    u = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    return fnnet.grad(lambda a, b, c: ops.sum(fn(a, b, c) * u), argnums=(0, 1, 2))(q, k, v)


# ------------------------------------------------------------------------------------ fully masked rows


def test_fully_masked_row_gives_zeros_and_zero_gradients_like_torch():
    torch = pytest.importorskip("torch")
    q, k, v = _qkv((2, 4, 3), (2, 5, 3), 2)
    mask = np.ones((4, 5), bool)
    mask[1] = False
    y = sdpa(q, k, v, mask=mask)
    ty = torch.nn.functional.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v),
                                                          attn_mask=torch.tensor(mask))
    assert np.isfinite(y).all()
    assert_close(y, ty, rtol=1e-12, atol=1e-14)
    assert np.all(y[:, 1] == 0.0)
    gq, gk, gv = _loss_grads(lambda a, b, c: sdpa(a, b, c, mask=mask), q, k, v)
    assert np.all(gq[:, 1] == 0.0) and all(np.isfinite(g).all() for g in (gq, gk, gv))
    additive = np.where(mask, 0.0, -np.inf)
    assert np.array_equal(sdpa(q, k, v, mask=additive), y)


def test_fully_masked_row_under_causal_and_padding_stays_finite():
    q, k, v = _qkv((1, 2, 6, 4), (1, 2, 6, 4), 4)
    mask = np.zeros((1, 1, 1, 6), bool)  # every key is padding
    y = sdpa(q, k, v, mask=mask, causal=True)
    assert np.array_equal(y, np.zeros_like(y))


def _composed_softmax_attention(q, k, v, mask):
    """``softmax(q k^T / sqrt(E) + mask) @ v`` in NumPy, zeros for fully masked rows (PyTorch's math backend)."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]) + np.where(mask, 0.0, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    p = np.exp(s - np.where(np.isneginf(m), 0.0, m))
    return p / np.where(p.sum(-1, keepdims=True) == 0, 1.0, p.sum(-1, keepdims=True)) @ v


def test_nan_score_makes_its_row_nan_forward_and_backward():
    q, k, v = _qkv((2, 4, 3), (2, 70, 3), 2)  # 70 keys: two key blocks in the kernel
    q[1, 2, 0] = np.nan
    mask = np.ones((4, 70), bool)
    mask[0] = False  # a fully masked row keeps its documented zeros
    y = sdpa(q, k, v, mask=mask)
    np.testing.assert_allclose(y, _composed_softmax_attention(q, k, v, mask), rtol=1e-12, atol=1e-14)
    assert np.isnan(y[1, 2]).all() and np.all(y[:, 0] == 0.0)
    gq, gk, gv = _loss_grads(lambda a, b, c: sdpa(a, b, c, mask=mask), q, k, v)
    assert np.isnan(gq[1, 2]).all() and np.isfinite(np.delete(gq[1], 2, axis=0)).all()
    assert np.isnan(gk[1]).all() and np.isnan(gv[1]).all() and np.isfinite(gk[0]).all()
    k[0, 66, 1] = np.nan  # a NaN key in the second block: every query row of that batch entry
    assert np.isnan(sdpa(q, k, v)[0]).all()


def test_nan_input_row_reaches_mha_and_block_outputs():
    x = np.random.default_rng(1).standard_normal((2, 5, 8))
    x[1, 3, 4] = np.nan
    for layer in (L.MultiHeadAttention(8, 2), L.TransformerEncoderBlock(8, 2, 16, norm_first=False)):
        y = layer.apply(layer.init(KEY, (None, 5, 8), np.float64), x)
        assert np.isnan(y[1]).all() and np.isfinite(y[0]).all(), type(layer).__name__


def test_masks_with_minus_inf_pass_check_finite():
    q, k, v = _qkv((1, 5, 3), (1, 5, 3), 2)
    additive = np.triu(np.full((5, 5), -np.inf), 1)  # torch's generate_square_subsequent_mask
    with fnnet.check_finite():
        y = sdpa(q, k, v, mask=additive)
        gq = fnnet.grad(lambda a: ops.sum(sdpa(a, k, v, mask=np.isfinite(additive))))(q)
    assert_close(y, sdpa(q, k, v, causal=True), rtol=1e-12, atol=1e-15)
    assert np.isfinite(gq).all()


# ---------------------------------------------------------------------------------------------- dropout


def test_dropout_drops_weights_with_the_key_and_rescales_the_rest():
    rate, n = 0.3, 96
    q, k, _ = _qkv((2, n, 8), (2, n, 8), 1, seed=1)
    eye = np.broadcast_to(np.eye(n), (2, n, n)).copy()  # v = identity: the output is the weights matrix
    weights = sdpa(q, k, eye)
    dropped = sdpa(q, k, eye, dropout=rate, key=KEY)
    assert np.array_equal(dropped, sdpa(q, k, eye, dropout=rate, key=KEY))
    assert not np.array_equal(dropped, sdpa(q, k, eye, dropout=rate, key=fnnet.random.key(1)))
    kept = dropped != 0.0
    assert abs(1.0 - kept.mean() - rate) < 0.02
    assert_close(dropped[kept], weights[kept] / (1.0 - rate), rtol=1e-12, atol=0)


def test_dropout_gradients_use_the_same_mask():
    q, k, v = _qkv((1, 2, 70, 3), (1, 2, 67, 3), 2, seed=2)
    check_grads(lambda a, b, c: sdpa(a, b, c, causal=True, dropout=0.4, key=KEY), (q, k, v))


# ---------------------------------------------------------------------------------- memory, determinism


def _composed(q, k, v):
    scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * float(1.0 / np.sqrt(q.shape[-1]))
    return ops.matmul(ops.softmax(scores, axis=-1), v)


def test_tape_memory_at_context_512_is_4x_below_the_composition():
    q, k, v = _qkv((1, 2, 512, 16), (1, 2, 512, 16), 16, dtype=np.float32)
    fused_grads = _loss_grads(sdpa, q, k, v)
    fused = fnnet.last_tape_stats()["peak_residual_bytes"]
    composed_grads = _loss_grads(_composed, q, k, v)
    composed = fnnet.last_tape_stats()["peak_residual_bytes"]
    assert composed >= 4 * fused, (fused, composed)
    for a, b in zip(fused_grads, composed_grads):
        assert_close(a, b, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("heads", [2, 4])  # 4 slices take the split backward, 8 the fused one
def test_same_bits_for_any_thread_count(heads):
    q, k, v = _qkv((2, heads, 150, 8), (2, heads, 140, 8), 8, seed=4, dtype=np.float32)
    mask = np.random.default_rng(0).random((150, 140)) > 0.2

    def run():
        fn = lambda a, b, c: sdpa(a, b, c, mask=mask, causal=True, dropout=0.2, key=KEY)  # noqa: E731
        return (fn(q, k, v), *_loss_grads(fn, q, k, v))

    single, multi = on_one_thread_and_on_all(run)
    for a, b in zip(single, multi):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("lengths, options", [
    ((64, 64), dict(causal=True)),
    ((150, 140), dict(causal=True, mask=True, dropout=0.2)),
    ((70, 200), dict(mask=True)),
    ((200, 70), dict(causal=True, dropout=0.3)),
])
def test_fused_backward_gives_the_split_kernels_bits(lengths, options):
    """The one-task-per-slice backward (used from FUSED_SLICES slices up) against the split kernels."""
    from fnnet.kernels import attention as KA
    from fnnet.ops.attention import _kernel_args, _prepare_mask

    L, S = lengths
    q, k, v = _qkv((KA.FUSED_SLICES, L, 16), (KA.FUSED_SLICES, S, 16), 8, seed=5, dtype=np.float32)
    mask = np.random.default_rng(1).random((L, S)) > 0.3 if options.get("mask") else None
    bias, mask_index = _prepare_mask(mask, q.shape, k.shape, q.dtype)
    extra = _kernel_args(q, bias, mask_index, options.get("causal", False), 0.25, options.get("dropout", 0.0), 7)
    out, lse = KA.attention_fwd(q, k, v, *extra)
    g = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    delta = np.einsum("bld,bld->bl", g, out, dtype=np.float64)
    fused = KA.attention_bwd(q, k, v, g, lse, delta, *extra)
    split = (KA.attention_bwd_query(q, k, v, g, lse, delta, *extra),
             *KA.attention_bwd_key_value(q, k, v, g, lse, delta, *extra))
    for a, b in zip(fused, split):
        assert np.array_equal(a, b)
    assert np.abs(fused[1]).max() > 0  # gradients flowed


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mask=np.ones((3, 5), bool)), ValueError, r"mask of shape \(3, 5\) does not broadcast"),
    (dict(mask=np.ones((4, 5), np.int64)), TypeError, "mask must be a bool array"),
    (dict(mask=np.zeros((4, 5), np.float32)), TypeError, "float mask must have q's dtype"),
    (dict(dropout=0.1), ValueError, "dropout=0.1 needs a random key"),
    (dict(dropout=1.0, key=KEY), ValueError, r"dropout .* must be in \[0, 1\)"),
    (dict(dropout=0.1, key=np.zeros(2, np.int64)), TypeError, r"key must be a \(2,\) uint32"),
    (dict(causal=1), TypeError, "causal expected a bool"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    q, k, v = _qkv((2, 4, 3), (2, 5, 3), 2)
    with pytest.raises(error, match=match):
        sdpa(q, k, v, **kwargs)


@pytest.mark.parametrize("shapes, error, match", [
    (((2, 0, 3), (2, 5, 3), (2, 5, 2)), ValueError, "sequence lengths must be at least 1, got L=0"),
    (((2, 4, 3), (2, 0, 3), (2, 0, 2)), ValueError, "S=0"),
    (((2, 4, 3), (2, 5, 4), (2, 5, 2)), ValueError, "same head dim"),
    (((2, 4, 3), (2, 5, 3), (2, 6, 2)), ValueError, "k and v must have the same sequence length"),
    (((2, 4, 3), (3, 5, 3), (3, 5, 2)), ValueError, "share their leading"),
    (((3,), (5, 3), (5, 2)), ValueError, "q must be"),
    (((2, 4, 3), (2, 5, 3), (2, 5, 0)), ValueError, r"value dim \(last axis of v\) must be at least 1"),
])
def test_bad_shapes_are_named(shapes, error, match):
    q, k, v = (np.zeros(s) for s in shapes)
    with pytest.raises(error, match=match):
        sdpa(q, k, v)


def test_non_float_and_mixed_dtypes_are_rejected():
    q, k, v = _qkv((2, 4, 3), (2, 5, 3), 2)
    with pytest.raises(TypeError, match="scaled_dot_product_attention: q must be a float"):
        sdpa(q.astype(np.int64), k, v)
    with pytest.raises(TypeError, match="never promotes"):
        sdpa(q.astype(np.float32), k, v)


# ------------------------------------------------------------------------------------ MultiHeadAttention


def _torch_mha(layer, params, **kwargs):
    import torch

    module = torch.nn.MultiheadAttention(layer.embed_dim, layer.num_heads, bias=layer.bias, batch_first=True,
                                         kdim=layer.kdim, vdim=layer.vdim, **kwargs).double()
    state = {}
    for entry in layer.torch_layout():
        value = params[entry.name]
        state[entry.torch_name] = torch.tensor(value.T if entry.transpose else value)
    module.load_state_dict(state)
    return module


@pytest.mark.parametrize("kdim", [None, 5])
def test_mha_cross_attention_with_padding_and_causal_masks_matches_torch(kdim):
    torch = pytest.importorskip("torch")
    layer = L.MultiHeadAttention(8, 2, kdim=kdim, vdim=kdim)
    params = fnnet.tree.map(lambda p: p + 0.2, layer.init(KEY, (None, 6, 8), np.float64))
    module = _torch_mha(layer, params)
    rng = np.random.default_rng(0)
    x, kv = rng.standard_normal((3, 6, 8)), rng.standard_normal((3, 7, kdim or 8))
    padding = np.zeros((3, 7), bool)
    padding[1, 4:] = True
    causal = np.triu(np.ones((6, 7), bool), 1)  # torch: True = not allowed
    tx, tkv = torch.tensor(x, requires_grad=True), torch.tensor(kv, requires_grad=True)
    ty = module(tx, tkv, tkv, key_padding_mask=torch.tensor(padding), attn_mask=torch.tensor(causal),
                need_weights=False)[0]
    u = rng.standard_normal(ty.shape)
    (ty * torch.tensor(u)).sum().backward()

    def loss(p, a, b):
        return ops.sum(layer.apply(p, a, b, key_padding_mask=padding, causal=True) * u)

    y = layer.apply(params, x, kv, key_padding_mask=padding, causal=True)
    assert_close(y, ty, rtol=1e-9, atol=1e-12)
    gp, gx, gkv = fnnet.grad(loss, argnums=(0, 1, 2))(params, x, kv)
    assert_close(gx, tx.grad, rtol=1e-9, atol=1e-12)
    assert_close(gkv, tkv.grad, rtol=1e-9, atol=1e-12)
    named = dict(module.named_parameters())
    for entry in layer.torch_layout():
        tg = named[entry.torch_name].grad.numpy()
        assert_close(gp[entry.name], tg.T if entry.transpose else tg, rtol=1e-9, atol=1e-12)


def test_mha_float_mask_per_head_and_dropout_key():
    layer = L.MultiHeadAttention(6, 3, dropout=0.5)
    params = layer.init(KEY, (None, 4, 6))
    x = np.random.default_rng(1).standard_normal((2, 4, 6)).astype(np.float32)
    per_head = np.zeros((2 * 3, 4, 4), np.float32)  # torch's (N * heads, L, S) layout
    assert_close(layer.apply(params, x, mask=per_head), layer.apply(params, x), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="MultiHeadAttention: a random key is needed"):
        layer.apply(params, x, train=True)
    y1 = layer.apply(params, x, key=KEY, train=True)
    assert np.array_equal(y1, layer.apply(params, x, key=KEY, train=True))
    with pytest.raises(ValueError, match="key_padding_mask must be a bool"):
        layer.apply(params, x, key_padding_mask=np.zeros((2, 5), bool))
    with pytest.raises(ValueError, match=r"key_value must be \(N, S, kdim\) = \(2, S, 6\)"):
        layer.apply(params, x, np.zeros((2, 3, 5), np.float32))


@pytest.mark.parametrize("make, match", [
    (lambda: L.MultiHeadAttention(6, 4), r"MultiHeadAttention: embed_dim \(6\) must be divisible by num_heads"),
    (lambda: L.MultiHeadAttention(0, 1), "embed_dim must be a positive int"),
    (lambda: L.MultiHeadAttention(4, 1, dropout=1.0), r"dropout is the probability of dropping .* \[0, 1\)"),
    (lambda: L.TransformerEncoderBlock(8, 3, 4), r"TransformerEncoderBlock: embed_dim \(8\) must be divisible"),
    (lambda: L.LearnedPositionalEmbedding(0), "max_len must be a positive int"),
    (lambda: L.SinusoidalPositionalEmbedding(-1), "max_len must be a positive int"),
])
def test_bad_hyperparameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_layer_input_shapes_are_checked():
    block = L.TransformerEncoderBlock(8, 2, 4)
    params = block.init(KEY, (None, 3, 8))
    with pytest.raises(ValueError, match=r"TransformerEncoderBlock: input must be \(N, L, 8\)"):
        block.apply(params, np.zeros((2, 3, 6), np.float32))
    with pytest.raises(TypeError, match="MultiHeadAttention: x expected a numpy array"):
        L.MultiHeadAttention(8, 2).apply(params["self_attn"], [[1.0]])


@pytest.mark.parametrize("path, match", [
    (("in_proj_bias",), r"MultiHeadAttention: params\['in_proj_bias'\] expected a float array with 1 axis"),
    (("out_proj_bias",), r"MultiHeadAttention: params\['out_proj_bias'\] expected"),
    (("in_proj_weight",), r"MultiHeadAttention: params\['in_proj_weight'\] expected a float array with 2 axes"),
])
def test_mha_with_bias_rejects_a_none_param(path, match):
    mha = L.MultiHeadAttention(8, 2)
    params = mha.init(KEY, (None, 3, 8))
    params[path[0]] = None
    x = np.zeros((2, 3, 8), np.float32)
    with pytest.raises(TypeError, match=match):
        mha.apply(params, x)
    block = L.TransformerEncoderBlock(8, 2, 4)
    params = block.init(KEY, (None, 3, 8))
    params["self_attn"][path[0]] = None
    with pytest.raises(TypeError, match=match):
        block.apply(params, x)


def test_load_torch_state_dict_for_mha_and_block():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    block = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=True).double().eval()
    x = np.random.default_rng(2).standard_normal((2, 5, 8))
    params, _ = fnnet.io.load_torch_state_dict(L.MultiHeadAttention(8, 2), mha.state_dict())
    expected = mha(torch.tensor(x), torch.tensor(x), torch.tensor(x), need_weights=False)[0]
    assert_close(L.MultiHeadAttention(8, 2).apply(params, x), expected, rtol=1e-9, atol=1e-12)
    fn_block = L.TransformerEncoderBlock(8, 2, 16)
    params, _ = fnnet.io.load_torch_state_dict(fn_block, block.state_dict())
    padding = np.zeros((2, 5), bool)
    padding[0, 3:] = True
    with torch.no_grad():
        expected = block(torch.tensor(x), src_key_padding_mask=torch.tensor(padding))
    y = fn_block.apply(params, x, key_padding_mask=padding)
    assert_close(y[1], expected[1], rtol=1e-9, atol=1e-12)
    assert_close(y[0, :3], expected[0, :3], rtol=1e-9, atol=1e-12)  # torch's fast path may zero padded rows


def test_block_summary_and_training_dropout():
    block = L.TransformerEncoderBlock(16, 4, 32, dropout=0.1, causal=True)
    model = L.Sequential([L.SinusoidalPositionalEmbedding(), block])
    rows = fnnet.summary(model, (None, 12, 16), print_fn=lambda *a: None)
    assert rows is not None
    params = model.init(KEY, (None, 12, 16))
    x = np.random.default_rng(3).standard_normal((2, 12, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="random key is needed"):
        model.apply(params, x, train=True)
    grads = fnnet.grad(lambda p: ops.sum(model.apply(p, x, key=KEY, train=True) ** 2))(params)
    assert all(np.isfinite(g).all() for g in fnnet.tree.leaves(grads))
    y = model.apply(params, x)
    x2 = x.copy()
    x2[:, 6:] += 1.0  # causal: later positions do not change earlier outputs
    assert_close(model.apply(params, x2)[:, :6], y[:, :6], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------- positional embeddings


def test_sinusoidal_table_values():
    x = np.zeros((1, 3, 5))
    y = L.SinusoidalPositionalEmbedding().apply({}, x)
    assert_close(y[0, 0], [0.0, 1.0, 0.0, 1.0, 0.0], rtol=0, atol=1e-15)
    assert_close(y[0, 2, :2], [np.sin(2.0), np.cos(2.0)], rtol=1e-14, atol=0)
    assert_close(y[0, 1, 2:4], [np.sin(10000 ** -0.4), np.cos(10000 ** -0.4)], rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="exceeds max_len=2"):
        L.SinusoidalPositionalEmbedding(max_len=2).apply({}, x)


def test_learned_positions_add_the_first_rows_and_check_length():
    layer = L.LearnedPositionalEmbedding(6)
    params = layer.init(KEY, (None, 4, 3))
    assert params["weight"].shape == (6, 3)
    x = np.ones((2, 4, 3), np.float32)
    assert_close(layer.apply(params, x), x + params["weight"][:4], rtol=0, atol=0)
    with pytest.raises(ValueError, match="sequence length 7 exceeds max_len=6"):
        layer.apply(params, np.ones((2, 7, 3), np.float32))
    assert L.decay_mask(layer, params) == {"weight": False}


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex64, object])
def test_positional_embeddings_reject_non_float_input(dtype):
    x = np.ones((2, 3, 4), dtype)
    with pytest.raises(TypeError, match="SinusoidalPositionalEmbedding: x must be a float16, float32 or float64"):
        L.SinusoidalPositionalEmbedding().apply({}, x)
    layer = L.LearnedPositionalEmbedding(5)
    with pytest.raises(TypeError, match="LearnedPositionalEmbedding: x must be a float16, float32 or float64"):
        layer.apply(layer.init(KEY, (None, 3, 4)), x)


@pytest.mark.parametrize("weight, error, match", [
    (np.float32(0.5), TypeError, r"params\['weight'\] expected a float array with 2 axes \(max_len, E\), got float32"),
    (np.zeros((), np.float32), ValueError, r"params\['weight'\] expected .*, got shape \(\)"),
    (np.zeros(4, np.float32), ValueError, r"params\[.weight.\] expected .*, got shape \(4,\)"),
    (np.asmatrix(np.zeros((5, 4), np.float32)), TypeError, r"params\['weight'\] is an np.matrix"),
    ([[0.0] * 4] * 5, TypeError, r"params\[.weight.\] expected .*, got list"),
    (np.zeros((5, 4), np.int64), TypeError, r"params\['weight'\] must be a float16, float32 or float64"),
    (np.zeros((5, 4), np.float64), TypeError, "x is float32 but weight is float64; fnnet never promotes"),
])
def test_learned_positions_reject_bad_weights(weight, error, match):
    with pytest.raises(error, match=f"LearnedPositionalEmbedding: {match}"):
        L.LearnedPositionalEmbedding(5).apply({"weight": weight}, np.ones((2, 3, 4), np.float32))

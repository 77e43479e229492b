"""GRUCell, LSTMCell and RNN beyond the layer table: initial states and explicit cell states against PyTorch
(float64, forward and every gradient), loading nn.GRU/nn.LSTM/nn.GRUCell state dicts, and bad input."""

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
import fnnet.ops as ops
from fnnet.io import load_torch_state_dict
from fnnet.testing import assert_close
from tests.thread_counts import on_one_thread_and_on_all

torch = pytest.importorskip("torch")

KEY = fnnet.random.key(0)
TOL = dict(rtol=1e-7, atol=1e-10)


def _normal(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _torch_pair(kind, input_size, hidden_size, reverse=False):
    """A float64 ``nn.GRU``/``nn.LSTM`` and the fnnet ``RNN`` with the params loaded from its state dict."""
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(input_size, hidden_size, batch_first=True).double()
    cell = L.GRUCell(hidden_size) if kind == "GRU" else L.LSTMCell(hidden_size)
    layer = L.RNN(cell, reverse=reverse)
    params, _ = load_torch_state_dict(layer, module.state_dict())
    return module, layer, params


def _as_torch(tree_of_arrays):
    return tuple(torch.tensor(a, requires_grad=True) for a in tree_of_arrays)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_with_initial_state_matches_torch_forward_and_all_gradients(kind, reverse):
    n, t, features, hidden = 3, 5, 4, 6
    module, layer, params = _torch_pair(kind, features, hidden, reverse)
    x = _normal((n, t, features), 1)
    h0 = tuple(_normal((n, hidden), s) for s in (2, 3)[: 1 if kind == "GRU" else 2])
    u = _normal((n, t, hidden), 4)

    def loss(p, xv, init):
        y = layer.apply(p, xv, initial_state=init[0] if kind == "GRU" else init)
        return ops.sum(y * u)

    grads = fnnet.grad(loss, argnums=(0, 1, 2))(params, x, h0)
    tx, th = _as_torch((x[:, ::-1].copy() if reverse else x,)), _as_torch(h0)
    init = th[0][None] if kind == "GRU" else (th[0][None], th[1][None])
    out = module(tx[0], init)[0]
    (out * torch.tensor(u[:, ::-1].copy() if reverse else u)).sum().backward()
    y = layer.apply(params, x, initial_state=h0[0] if kind == "GRU" else h0)
    assert_close(y, (out.flip(1) if reverse else out).detach(), **TOL, what=f"{kind} forward")
    dx = tx[0].grad.flip(1) if reverse else tx[0].grad
    assert_close(grads[1], dx, **TOL, what=f"{kind} d/dx")
    for g, tg in zip(grads[2], th):
        assert_close(g, tg.grad, **TOL, what=f"{kind} d/dinitial_state")
    named = dict(module.named_parameters())
    for name, g in grads[0].items():
        assert_close(g, named[name + "_l0"].grad, **TOL, what=f"{kind} d/d{name}")


@pytest.mark.parametrize("kind", ["GRUCell", "LSTMCell"])
def test_cell_with_explicit_state_matches_torch(kind):
    torch.manual_seed(1)
    module = getattr(torch.nn, kind)(3, 4).double()
    cell = getattr(L, kind)(4)
    params, _ = load_torch_state_dict(cell, module.state_dict())
    x = _normal((2, 3), 5)
    hidden = tuple(_normal((2, 4), s) for s in (6, 7)[: 1 if kind == "GRUCell" else 2])
    tx, th = _as_torch((x,)), _as_torch(hidden)
    out = module(tx[0], th[0] if kind == "GRUCell" else th)
    outs = (out,) if kind == "GRUCell" else out
    sum(o.sum() * (i + 1) for i, o in enumerate(outs)).backward()

    def loss(p, xv, hv):
        y = cell.apply(p, xv, hv[0] if kind == "GRUCell" else hv)
        ys = (y,) if kind == "GRUCell" else y
        return sum(ops.sum(o) * (i + 1) for i, o in enumerate(ys))

    y = cell.apply(params, x, hidden[0] if kind == "GRUCell" else hidden)
    for mine, theirs in zip((y,) if kind == "GRUCell" else y, outs):
        assert_close(mine, theirs.detach(), **TOL, what=f"{kind} forward")
    gp, gx, gh = fnnet.grad(loss, argnums=(0, 1, 2))(params, x, hidden)
    assert_close(gx, tx[0].grad, **TOL, what=f"{kind} d/dx")
    for g, tg in zip(gh, th):
        assert_close(g, tg.grad, **TOL, what=f"{kind} d/dhidden")
    named = dict(module.named_parameters())
    for name, g in gp.items():
        assert_close(g, named[name].grad, **TOL, what=f"{kind} d/d{name}")


def test_rnn_loads_torch_state_dict_with_a_template_and_rejects_a_two_layer_gru():
    module = torch.nn.GRU(3, 4, batch_first=True)
    layer = L.RNN(L.GRUCell(4))
    template = layer.init(KEY, (None, 7, 3))
    params, _ = load_torch_state_dict(layer, module.state_dict(), params=template)
    assert sorted(params) == ["bias_hh", "bias_ih", "weight_hh", "weight_ih"]
    assert params["weight_ih"].shape == (12, 3) and params["weight_ih"].dtype == np.float32
    np.testing.assert_array_equal(params["weight_hh"], module.weight_hh_l0.detach().numpy())
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['weight_ih_l1'"):
        load_torch_state_dict(layer, torch.nn.GRU(3, 4, num_layers=2).state_dict())
    with pytest.raises(ValueError, match=r"'weight_ih_l0' has shape \(16, 3\) but the RNN layer expects \(12, input_size\)"):
        load_torch_state_dict(layer, torch.nn.LSTM(3, 4).state_dict())


def test_rnn_walks_as_one_leaf_with_flops_of_every_step_and_undecayed_biases():
    layer = L.RNN(L.LSTMCell(8), return_sequences=False)
    assert [type(v.layer).__name__ for v in L.walk(layer)] == ["RNN"]
    assert layer.flops((2, 5, 3)) == 5 * layer.cell.flops((2, 3))
    assert layer.tape_bytes((2, 5, 3), np.float32) == 5 * 2 * (3 + 6 * 8) * 4  # x, h, c and 4 gates per step
    gru = L.RNN(L.GRUCell(8))
    assert gru.tape_bytes((2, 5, 3), np.float64) == 5 * 2 * (3 + 5 * 8) * 8  # x, states and 4 gates per step
    model = L.Sequential([layer, L.Linear(2)])
    params = model.init(KEY, (None, 5, 3))
    mask = L.decay_mask(model, params)
    assert mask["0"] == {"weight_ih": True, "weight_hh": True, "bias_ih": False, "bias_hh": False}
    assert model.apply(params, np.zeros((4, 5, 3), np.float32)).shape == (4, 2)


def test_rnn_of_one_step_is_one_cell_step():
    cell = L.GRUCell(3)
    params = cell.init(KEY, (None, 2), np.float64)
    x = _normal((4, 1, 2), 8)
    h0 = _normal((4, 3), 9)
    step = cell.apply(params, x[:, 0], h0)
    last = L.RNN(cell, return_sequences=False).apply(params, x, initial_state=h0)
    assert_close(last, step, rtol=1e-14, atol=1e-15, what="fused T=1 vs one cell step")
    assert_close(L.RNN(cell, reverse=True).apply(params, x, initial_state=h0)[:, 0], step, rtol=1e-14, atol=1e-15,
                 what="fused reverse T=1 vs one cell step")


@pytest.mark.parametrize("kind", ["GRUCell", "LSTMCell"])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_sequence_equals_the_composed_steps_forward_and_gradients(kind, reverse):
    cell = getattr(L, kind)(5)
    params = cell.init(KEY, (None, 3), np.float64)
    x, u = _normal((4, 6, 3), 10), _normal((4, 6, 5), 12)
    h0 = _normal((4, 5), 11) if kind == "GRUCell" else (_normal((4, 5), 11), _normal((4, 5), 13))
    composed = super(type(cell), cell).sequence  # the cell-step loop every cell inherits

    def loss(run):
        return lambda p, xv, hv: ops.sum(run(p, xv, hv, reverse) * u)

    fused_grads = fnnet.grad(loss(cell.sequence), argnums=(0, 1, 2))(params, x, h0)
    composed_grads = fnnet.grad(loss(composed), argnums=(0, 1, 2))(params, x, h0)
    assert_close(cell.sequence(params, x, h0, reverse), composed(params, x, h0, reverse), rtol=1e-12, atol=1e-14,
                 what="fused forward")
    for path, a, b in zip(fnnet.tree.paths(fused_grads), fnnet.tree.leaves(fused_grads),
                          fnnet.tree.leaves(composed_grads)):
        assert_close(a, b, rtol=1e-12, atol=1e-14, what=f"fused gradient {path}")


@pytest.mark.parametrize("kind", ["GRUCell", "LSTMCell"])
def test_cell_apply_through_the_fused_op_equals_the_composed_step(kind):
    """``apply`` steps through ``gru_sequence`` / ``lstm_sequence(return_cell=True)``; the cell's ``step`` is the
    element-wise definition.  Two steps chained, so the cell state's cotangent flows through the fused op."""
    cell = getattr(L, kind)(5)
    params = cell.init(KEY, (None, 3), np.float64)
    x1, x2 = _normal((4, 3), 20), _normal((4, 3), 21)
    h0 = _normal((4, 5), 22) if kind == "GRUCell" else (_normal((4, 5), 22), _normal((4, 5), 23))
    weights = [_normal((4, 5), 24 + i) for i in range(2)]

    def composed(p, xv, hv):
        return cell.step(ops.linear(xv, ops.transpose(p["weight_ih"]), p["bias_ih"]), hv,
                         ops.transpose(p["weight_hh"]), p["bias_hh"])

    def loss(run):
        def f(p, h):
            out = run(p, x2, run(p, x1, h))
            outs = out if isinstance(out, tuple) else (out,)
            return sum(ops.sum(o * w) for o, w in zip(outs, weights))
        return f

    fused_out, composed_out = cell.apply(params, x1, h0), composed(params, x1, h0)
    for a, b in zip(fnnet.tree.leaves(fused_out), fnnet.tree.leaves(composed_out)):
        assert_close(a, b, rtol=1e-13, atol=1e-14, what=f"{kind} one step")
    fused = fnnet.grad(loss(cell.apply), argnums=(0, 1))(params, h0)
    reference = fnnet.grad(loss(composed), argnums=(0, 1))(params, h0)
    for path, a, b in zip(fnnet.tree.paths(fused), fnnet.tree.leaves(fused), fnnet.tree.leaves(reference)):
        assert_close(a, b, rtol=1e-12, atol=1e-14, what=f"{kind} gradient {path}")


BAD_INPUTS = [
    (L.RNN(L.GRUCell(3)), (2, 0, 4), {}, ValueError, r"RNN: the sequence is empty .*time axis 1 has size 0"),
    (L.RNN(L.GRUCell(3)), (2, 4), {}, ValueError, r"RNN: expected input \(batch, time, input_size\), got shape \(2, 4\)"),
    (L.RNN(L.GRUCell(3)), (2, 5, 6), {}, ValueError,
     r"RNN: params\['weight_ih'\] must have shape \(9, 6\) .*got \(9, 4\)"),
    (L.RNN(L.GRUCell(3)), (2, 5, 4), {"initial_state": np.zeros((3, 3))}, ValueError,
     r"RNN: initial_state must have shape \(2, 3\) \(batch, hidden_size\), got \(3, 3\)"),
    (L.RNN(L.GRUCell(3)), (2, 5, 4), {"initial_state": np.zeros((2, 3), np.float32)}, TypeError,
     r"RNN: initial_state has dtype float32 but the input has dtype float64"),
    (L.RNN(L.LSTMCell(3)), (2, 5, 4), {"initial_state": np.zeros((2, 3))}, TypeError,
     r"RNN: initial_state expected a pair \(h, c\)"),
    (L.RNN(L.LSTMCell(3)), (2, 5, 4), {"initial_state": (np.zeros((2, 3)), np.zeros((2, 4)))}, ValueError,
     r"RNN: initial_state\[1\] \(c\) must have shape \(2, 3\)"),
    (L.GRUCell(3), (2, 5, 4), {}, ValueError, r"GRUCell: expected input \(batch, input_size\), got shape \(2, 5, 4\)"),
]


@pytest.mark.parametrize("layer, x_shape, kwargs, error, match", BAD_INPUTS)
def test_bad_input_names_the_layer_and_shapes(layer, x_shape, kwargs, error, match):
    in_shape = (None, 5, 4) if isinstance(layer, L.RNN) else (None, 4)
    params = layer.init(KEY, in_shape, np.float64)
    with pytest.raises(error, match=match):
        layer.apply(params, np.zeros(x_shape), **kwargs)


def test_bad_input_inside_a_model_carries_the_path_and_bad_hyperparameters_fail_early():
    model = L.Sequential([L.RNN(L.GRUCell(3))])
    params = model.init(KEY, (None, 5, 4))
    with pytest.raises(ValueError, match=r"^0 \(RNN\): the sequence is empty"):
        model.apply(params, np.zeros((2, 0, 4), np.float32))
    with pytest.raises(ValueError, match=r"GRUCell: hidden_size must be a positive int, got 0"):
        L.GRUCell(0)
    with pytest.raises(TypeError, match=r"RNN: cell must be a GRUCell or an LSTMCell, got Linear"):
        L.RNN(L.Linear(3))


def _gru_args(n=2, steps=3, hidden=4, dtype=np.float64):
    return [np.zeros((n, steps, 3 * hidden), dtype), np.zeros((n, hidden), dtype),
            np.zeros((3 * hidden, hidden), dtype), np.zeros(3 * hidden, dtype)]


def test_lstm_sequence_bad_input():
    n, steps, hidden = 2, 3, 4
    args = [np.zeros((n, steps, 4 * hidden)), np.zeros((n, hidden)), np.zeros((n, hidden + 1)),
            np.zeros((4 * hidden, hidden)), np.zeros(4 * hidden)]
    with pytest.raises(ValueError, match=r"lstm_sequence: c0 must have shape \(2, 4\) \(batch, H\), got \(2, 5\)"):
        ops.lstm_sequence(*args)
    args[2], args[3] = np.zeros((n, hidden)), np.zeros((3 * hidden, hidden))
    with pytest.raises(ValueError, match=r"lstm_sequence: weight_hh must have shape \(4H, H\), got \(12, 4\)"):
        ops.lstm_sequence(*args)


@pytest.mark.parametrize("index, bad, error, match", [
    (0, np.zeros((2, 0, 12)), ValueError, r"gru_sequence: x_proj must have shape \(batch, time >= 1, 12\) .*got \(2, 0, 12\)"),
    (0, np.zeros((2, 3, 9)), ValueError, r"gru_sequence: x_proj must have shape .*got \(2, 3, 9\)"),
    (1, np.zeros((3, 4)), ValueError, r"gru_sequence: h0 must have shape \(2, 4\) \(batch, H\), got \(3, 4\)"),
    (2, np.zeros((12, 3)), ValueError, r"gru_sequence: weight_hh must have shape \(3H, H\), got \(12, 3\)"),
    (3, np.zeros(4), ValueError, r"gru_sequence: bias_hh must have shape \(12,\), got \(4,\)"),
    (1, np.zeros((2, 4), np.float32), TypeError, r"gru_sequence: x_proj is float64 but h0 is float32"),
    (2, np.zeros((12, 4), np.int64), TypeError, r"gru_sequence: weight_hh"),
])
def test_gru_sequence_bad_input(index, bad, error, match):
    args = _gru_args()
    args[index] = bad
    with pytest.raises(error, match=match):
        ops.gru_sequence(*args)


@pytest.mark.parametrize("cell", [L.GRUCell(3), L.LSTMCell(3)], ids=["GRU", "LSTM"])
def test_empty_batch_gives_empty_outputs_and_zero_weight_gradients(cell):
    layer = L.RNN(cell)
    params = layer.init(KEY, (None, 4, 2), np.float64)
    x = np.zeros((0, 4, 2))
    assert layer.apply(params, x).shape == (0, 4, 3)
    grads = fnnet.grad(lambda p: ops.sum(layer.apply(p, x)))(params)
    assert all(not np.any(g) for g in fnnet.tree.leaves(grads))


def _lstm_with_cell(*args, reverse=False):
    hs, c = ops.lstm_sequence(*args, reverse=reverse, return_cell=True)
    return ops.concatenate([hs, ops.reshape(c, (c.shape[0], 1, c.shape[1]))], axis=1)


@pytest.mark.parametrize("op, gates", [(ops.gru_sequence, 3), (ops.lstm_sequence, 4), (_lstm_with_cell, 4)],
                         ids=["GRU", "LSTM", "LSTM-return-cell"])
@pytest.mark.parametrize("reverse, steps", [(False, 6), (True, 6), (False, 1)])
def test_sequence_ops_give_the_same_bits_for_any_thread_count(op, gates, reverse, steps):
    """40 rows are three row blocks (16, 16, 8), which run on different threads when there are several; one
    step multiplies through the transposed weight's view, several through a transposed copy."""
    rng = np.random.default_rng(5)
    n, hidden = 40, 24
    x_proj = rng.standard_normal((n, steps, gates * hidden)).astype(np.float32)
    states = [rng.standard_normal((n, hidden)).astype(np.float32) for _ in range(gates - 2)]
    w = (rng.standard_normal((gates * hidden, hidden)) / hidden ** 0.5).astype(np.float32)
    b = rng.standard_normal(gates * hidden).astype(np.float32)
    g = rng.standard_normal((n, steps + (op is _lstm_with_cell), hidden)).astype(np.float32)

    def run():
        out, vjp = fnnet.vjp(lambda *a: op(*a, reverse=reverse), x_proj, *states, w, b)
        return (out, *vjp(g))

    single, multi = on_one_thread_and_on_all(run)
    assert len(single) == len(multi) == gates + 2  # the states and the cotangent of every input
    for a, b in zip(single, multi):
        assert a.dtype == np.float32 and np.array_equal(a, b)

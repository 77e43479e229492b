"""precompile exercises every kernel a model needs, in worker processes too."""

import sys

import numpy as np

import fnnet
import fnnet.layers as L
from fnnet.precompile import _leaf_layers


def _model():
    return L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2), L.Dropout(0.1),
                         L.Residual(L.Sequential([L.Conv2D(4, 1), L.Tanh()])), L.Flatten(), L.Linear(3)])


def test_leaf_layers_in_order_with_shapes():
    leaves = _leaf_layers(_model(), (None, 2, 6, 6))
    names = [type(layer).__name__ for layer, _ in leaves]
    assert names == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D", "Dropout", "Conv2D", "Tanh", "Flatten", "Linear"]
    assert leaves[-1][1] == (None, 36)


def _remat_model():
    """``_model()`` with its blocks wrapped in Remat: a container, a Residual and a single layer."""
    return L.Sequential([L.Remat(L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU()])), L.MaxPool2D(2),
                         L.Dropout(0.1), L.Remat(L.Residual(L.Sequential([L.Conv2D(4, 1), L.Tanh()]))), L.Flatten(),
                         L.Remat(L.Linear(3))])


def test_leaf_layers_see_through_remat():
    plain = [(type(layer).__name__, shape) for layer, shape in _leaf_layers(_model(), (None, 2, 6, 6))]
    wrapped = [(type(layer).__name__, shape) for layer, shape in _leaf_layers(_remat_model(), (None, 2, 6, 6))]
    assert wrapped == plain


def _compiled_signatures():
    """{kernel: the signatures its Numba dispatcher has compiled or loaded} over every fnnet kernel module."""
    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("fnnet.kernels"):
            for attr, obj in vars(module).items():
                if hasattr(obj, "signatures") and hasattr(obj, "py_func"):
                    found[f"{name}.{attr}"] = set(map(str, obj.signatures))
    return found


def test_precompile_of_a_remat_model_leaves_nothing_for_training_to_compile():
    model, opt = _remat_model(), fnnet.optim.adam(1e-3)
    assert fnnet.precompile(model, (None, 2, 6, 6), num_classes=3, optimizer=opt, workers=1) == 9
    before = _compiled_signatures()
    params = model.init(fnnet.random.key(0), (None, 2, 6, 6))
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    x = np.random.default_rng(0).standard_normal((4, 2, 6, 6)).astype(np.float32)
    step(params, model.init_state((None, 2, 6, 6)), opt.init(params), x, np.zeros(4, np.int64), fnnet.random.key(1))
    after = _compiled_signatures()
    new = {k: v - before.get(k, set()) for k, v in after.items() if v - before.get(k, set())}
    assert not new, f"kernels compiled by the first training step, missed by precompile: {new}"


def test_precompile_serial_and_with_workers_then_training_runs():
    model = _model()
    opt = fnnet.optim.adam(1e-3)
    for workers in (1, 2):
        n = fnnet.precompile(model, (None, 2, 6, 6), num_classes=3, optimizer=opt, workers=workers)
        assert n == 9
    params = model.init(fnnet.random.key(0), (None, 2, 6, 6))
    state = model.init_state((None, 2, 6, 6))
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    x = np.zeros((4, 2, 6, 6), np.float32)
    step(params, state, opt.init(params), x, np.zeros(4, np.int64), fnnet.random.key(1))


def test_precompile_float64_and_example_array():
    model = L.Sequential([L.Linear(3), L.GELU()])
    assert fnnet.precompile(model, np.zeros((5, 4)), dtype=np.float64, workers=1) == 2


def test_precompile_feeds_indices_to_a_model_starting_with_embedding():
    model = L.Sequential([L.Remat(L.Embedding(5, 3)), L.Flatten(), L.Linear(2)])
    assert fnnet.precompile(model, (None, 4), workers=1) == 3

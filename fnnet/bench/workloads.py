"""The benchmark workloads, one builder per (framework, workload), each returning a zero-argument
``step()`` that runs one full training step (forward, backward, update) on fixed data.

Every framework gets the same shapes, batch sizes, initial-value distributions and optimizer (plain SGD here;
the sequence workloads ``attention``, ``gru`` and ``charlm``, with Adam/AdamW, live in :mod:`fnnet.bench.sequence`).
"""

from __future__ import annotations

import numpy as np

from . import sequence

LR = 0.01
SHAPES = {
    "mlp": {"batch": 128, "in": (784,), "hidden": (256, 256), "classes": 10},
    "tiny": {"batch": 32, "in": (64,), "hidden": (64,), "classes": 10},
    "cnn": {"batch": 64, "in": (1, 28, 28), "classes": 10},
}


def data(workload, batch=None, seed=0):
    spec = SHAPES[workload]
    n = batch or spec["batch"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *spec["in"])).astype(np.float32)
    y = rng.integers(0, spec["classes"], size=n).astype(np.int64)
    return x, y


# ----------------------------------------------------------------------------------------------- fnnet
def fnnet_model(workload):
    import fnnet.layers as L

    spec = SHAPES[workload]
    if workload == "cnn":
        return L.Sequential([
            L.Conv2D(32, 3), L.ReLU(), L.MaxPool2D(2), L.Conv2D(64, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
            L.Linear(128), L.ReLU(), L.Linear(spec["classes"]),
        ])
    layers = []
    for h in spec["hidden"]:
        layers += [L.Linear(h), L.ReLU()]
    return L.Sequential([*layers, L.Linear(spec["classes"])])


def fnnet_step(workload, batch=None, jit=True):
    """fnnet's training step: under ``fnnet.jit`` (the row ``fnnet``) or eager (the row ``fnnet_eager``)."""
    import fnnet

    if workload in sequence.STEP_WORKLOADS:
        return sequence.fnnet_step(workload, batch, jit)
    model = fnnet_model(workload)
    x, y = data(workload, batch)
    params = model.init(fnnet.random.key(0), (None, *SHAPES[workload]["in"]))
    opt = fnnet.optim.sgd(LR)
    return train_loop(lambda p, x, y: fnnet.losses.softmax_cross_entropy(model.apply(p, x), y), opt, params, x, y, jit)


def train_loop(loss, opt, params, x, y, jit):
    """``step()`` running one update of ``params`` by ``opt`` on the batch ``x, y`` (state kept inside)."""
    import fnnet

    grad_fn = fnnet.grad(loss)

    def update(p, s, x, y):
        return opt.update_and_apply(grad_fn(p, x, y), s, p)  # the fused step (same bits as update + apply)

    update = fnnet.jit(update) if jit else update
    box = {"params": params, "opt": opt.init(params)}

    def step():
        box["params"], box["opt"] = update(box["params"], box["opt"], x, y)

    return step


def fnnet16_step(workload, batch=None):
    """The same training step in mixed precision: float16 params/activations in the step, float32 master
    params, dynamic loss scaling (``fnnet.precision``)."""
    import fnnet
    import fnnet.precision as precision

    model = fnnet_model(workload)
    x, y = data(workload, batch)
    params = model.init(fnnet.random.key(0), (None, *SHAPES[workload]["in"]))
    step = precision.make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, fnnet.optim.sgd(LR))
    box = {"params": params, "opt": step.init(params)}
    key = fnnet.random.key(1)

    def run():
        box["params"], _, box["opt"], _ = step(box["params"], {}, box["opt"], x, y, key)

    return run


def fnnet32_train_step(workload, batch=None):
    """The float32 counterpart of :func:`fnnet16_step`: ``fnnet.train.make_train_step`` (jitted, with the
    same metrics and a finite check of the loss and gradients, as the mixed-precision step has)."""
    import fnnet

    model = fnnet_model(workload)
    x, y = data(workload, batch)
    params = model.init(fnnet.random.key(0), (None, *SHAPES[workload]["in"]))
    opt = fnnet.optim.sgd(LR)
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    box = {"params": params, "opt": opt.init(params)}
    key = fnnet.random.key(1)

    def run():
        box["params"], _, box["opt"], _ = step(box["params"], {}, box["opt"], x, y, key)

    return run


def _accumulation_step(workload, batch, threads):
    """Gradient of ``batch`` examples as 4 micro-batches, combined by ``fnnet.optim.accumulate_gradients``
    in ``threads`` Python threads (the result is the same bits for any thread count)."""
    import fnnet

    model = fnnet_model(workload)
    x, y = data(workload, batch or 4 * SHAPES[workload]["batch"] // 2)
    params = model.init(fnnet.random.key(0), (None, *SHAPES[workload]["in"]))
    grad_fn = fnnet.grad(lambda p, b: fnnet.losses.softmax_cross_entropy(model.apply(p, b[0]), b[1]))
    size = len(x) // 4
    micro = [(x[i:i + size], y[i:i + size]) for i in range(0, 4 * size, size)]
    return lambda: fnnet.optim.accumulate_gradients(grad_fn, params, micro, threads=threads)


def fnnet_accumulate_serial(workload, batch=None):
    return _accumulation_step(workload, batch, 1)


def fnnet_accumulate_threads(workload, batch=None):
    return _accumulation_step(workload, batch, 2)


# ----------------------------------------------------------------------------------------------- torch
def torch_step(workload, batch=None):
    import torch

    if workload in sequence.STEP_WORKLOADS:
        return sequence.torch_step(workload, batch)
    spec = SHAPES[workload]
    nn = torch.nn
    if workload == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(),
                              nn.Linear(128, spec["classes"]))
    else:
        layers, width = [], spec["in"][0]
        for h in spec["hidden"]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        model = nn.Sequential(*layers, nn.Linear(width, spec["classes"]))
    x, y = (torch.from_numpy(a) for a in data(workload, batch))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


# ----------------------------------------------------------------------------------------------- numpy
def numpy_step(workload, batch=None):
    """A hand-written NumPy MLP step (forward, backward, SGD), the floor for Python-level overhead."""
    if workload == "cnn":
        raise NotImplementedError("no hand-written NumPy CNN peer")
    spec = SHAPES[workload]
    x, y = data(workload, batch)
    rng = np.random.default_rng(0)
    sizes = [spec["in"][0], *spec["hidden"], spec["classes"]]
    ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    n = len(x)
    rows = np.arange(n)

    def step():
        hs = [x]
        for w, b in zip(ws[:-1], bs[:-1]):
            hs.append(np.maximum(hs[-1] @ w + b, 0))
        logits = hs[-1] @ ws[-1] + bs[-1]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[rows, y] -= 1
        g = p / n
        for i in range(len(ws) - 1, -1, -1):
            gw = hs[i].T @ g
            gb = g.sum(axis=0)
            if i:
                g = (g @ ws[i].T) * (hs[i] > 0)
            ws[i] -= LR * gw
            bs[i] -= LR * gb

    return step


# ----------------------------------------------------------------------------------------------- jax
def jax_step(workload, batch=None):
    import jax
    import jax.numpy as jnp

    if workload in sequence.STEP_WORKLOADS:
        return sequence.jax_step(workload, batch)
    if workload == "cnn":
        raise NotImplementedError("JAX CNN peer not written")
    spec = SHAPES[workload]
    x, y = (jnp.asarray(a) for a in data(workload, batch))
    sizes = [spec["in"][0], *spec["hidden"], spec["classes"]]
    rng = np.random.default_rng(0)
    params = [(jnp.asarray((rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)), jnp.zeros(b))
              for a, b in zip(sizes, sizes[1:])]

    def loss(ps):
        h = x
        for w, b in ps[:-1]:
            h = jax.nn.relu(h @ w + b)
        w, b = ps[-1]
        logp = jax.nn.log_softmax(h @ w + b)
        return -jnp.mean(logp[jnp.arange(len(y)), y])

    @jax.jit
    def update(ps):
        g = jax.grad(loss)(ps)
        return jax.tree_util.tree_map(lambda p, gp: p - LR * gp, ps, g)

    box = {"p": params}

    def step():
        box["p"] = update(box["p"])
        jax.block_until_ready(box["p"])

    return step


BUILDERS = {"fnnet": fnnet_step, "fnnet_eager": lambda w, b=None: fnnet_step(w, b, jit=False), "fnnet16": fnnet16_step,
            "fnnet32_train": fnnet32_train_step, "fnnet_accum1": fnnet_accumulate_serial,
            "fnnet_accum2": fnnet_accumulate_threads, "torch": torch_step, "numpy": numpy_step, "jax": jax_step}

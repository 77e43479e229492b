"""The sequence benchmark workloads, fnnet and PyTorch eager on the identical model, data and optimizer; each
builder returns a zero-argument ``step()`` running one training step (forward, backward, update):

- ``attention``: a causal language-model block: token embedding and learned positions, one pre-LayerNorm
  transformer block (4 heads, GELU MLP 4x wide), LayerNorm and a linear head; batch 32, context 64, width
  128, vocabulary 96; cross-entropy on every position; AdamW (weight decay 0.1, none for biases, norm
  scales and positions).
- ``charlm``: the default model and step of ``python -m fnnet.examples.charlm`` (two blocks, the example's
  vocabulary, batch and learning rate; gradients clipped to norm 1, then AdamW as above; the learning-rate
  schedule is left out).
- ``gru``: ``RNN(GRUCell(128))`` over 32 steps of 32 features (PyTorch: ``nn.GRU``), batch 32, a linear head on
  the last state, cross-entropy over 10 classes, Adam.
- ``gru_loop``: the same model and params, with fnnet's ``GRUCell`` called in a Python loop over the 32 steps
  (one recorded ``GRUCell.apply`` per step, what ``fnnet.jit`` replays); PyTorch keeps its fused ``nn.GRU``.

``gru`` and ``gru_loop`` also run against JAX's ``jit`` of the same step (:func:`jax_step`).

The PyTorch twins use the same param names and layouts as ``fnnet.io.load_torch_state_dict`` expects, so a
test can load one model's weights into the other and compare the losses.
"""

from __future__ import annotations

import numpy as np

LR = 1e-3
WEIGHT_DECAY = 0.1
GRU = {"batch": 32, "steps": 32, "in": 32, "hidden": 128, "classes": 10}
ATTENTION = {"batch": 32, "context": 64, "width": 128, "heads": 4, "layers": 1, "vocab": 96, "lr": LR, "clip": None}
WORKLOADS = ("attention", "gru", "charlm")  # each with an identical PyTorch twin
STEP_WORKLOADS = (*WORKLOADS, "gru_loop")  # gru_loop: gru's model and twin, the cell stepped in Python


def lm_spec(workload):
    """The language-model hyperparameters of ``attention`` or ``charlm`` (the example's defaults)."""
    if workload == "attention":
        return ATTENTION
    from fnnet.examples import charlm

    args = charlm.parse_args([])
    vocab = charlm.Vocabulary(charlm.load_text(args.max_chars))
    return {"batch": args.batch, "context": args.context, "width": args.width, "heads": args.heads,
            "layers": args.layers, "vocab": len(vocab), "lr": args.lr, "clip": 1.0}


def data(workload, batch=None, spec=None, seed=0):
    """``(x, y)``: token windows and next tokens ``(batch, context)`` int64, or GRU sequences
    ``(batch, steps, in)`` float32 and labels ``(batch,)`` int64."""
    rng = np.random.default_rng(seed)
    if workload.startswith("gru"):
        n = batch or GRU["batch"]
        x = rng.standard_normal((n, GRU["steps"], GRU["in"])).astype(np.float32)
        return x, rng.integers(0, GRU["classes"], size=n).astype(np.int64)
    spec = spec or lm_spec(workload)
    tokens = rng.integers(0, spec["vocab"], size=(batch or spec["batch"], spec["context"] + 1)).astype(np.int64)
    return tokens[:, :-1], tokens[:, 1:]


# ----------------------------------------------------------------------------------------------- fnnet
def fnnet_model(workload, spec=None):
    import fnnet.layers as L
    from fnnet.examples import charlm

    if workload == "gru":
        return L.Sequential([L.RNN(L.GRUCell(GRU["hidden"]), return_sequences=False), L.Linear(GRU["classes"])])
    spec = spec or lm_spec(workload)
    return charlm.build_model(spec["vocab"], spec["context"], spec["width"], spec["layers"], spec["heads"])


def fnnet_loss(workload):
    """``loss(outputs, y)``: cross-entropy over classes (``gru``) or over every position (the language models)."""
    import fnnet
    from fnnet.examples import charlm

    return fnnet.losses.softmax_cross_entropy if workload == "gru" else charlm.sequence_loss


def fnnet_optimizer(workload, model, params, spec=None):
    import fnnet

    if workload == "gru":
        return fnnet.optim.adam(LR)
    spec = spec or lm_spec(workload)
    adamw = fnnet.optim.adamw(spec["lr"], weight_decay=WEIGHT_DECAY, mask=fnnet.layers.decay_mask(model, params))
    return adamw if spec["clip"] is None else fnnet.optim.chain(fnnet.optim.clip_by_global_norm(spec["clip"]), adamw)


def fnnet_step(workload, batch=None, jit=True):
    import fnnet

    from .workloads import train_loop

    base = "gru" if workload == "gru_loop" else workload
    spec = None if base == "gru" else lm_spec(base)
    model = fnnet_model(base, spec)
    x, y = data(base, batch, spec)
    params = model.init(fnnet.random.key(0), (None, *x.shape[1:]))
    opt = fnnet_optimizer(base, model, params, spec)
    loss_fn = fnnet_loss(base)
    if workload == "gru_loop":
        return train_loop(_unrolled_gru_loss(model, loss_fn), opt, params, x, y, jit)
    return train_loop(lambda p, x, y: loss_fn(model.apply(p, x), y), opt, params, x, y, jit)


def _unrolled_gru_loss(model, loss_fn):
    """``loss(params, x, y)`` of the ``gru`` model with its cell stepped in Python, one ``GRUCell.apply`` per
    time step (the same params; bitwise the same loss as the RNN layer is not promised)."""
    cell, head = model.layers[0].cell, model.layers[1]

    def loss(p, x, y):
        h = np.zeros((x.shape[0], GRU["hidden"]), x.dtype)
        for t in range(x.shape[1]):
            h = cell.apply(p["0"], x[:, t], h)
        return loss_fn(head.apply(p["1"], h), y)

    return loss


# ----------------------------------------------------------------------------------------------- torch
def torch_model(workload, spec=None):
    """The PyTorch twin of :func:`fnnet_model` (fnnet's initial-value distributions for the embeddings)."""
    import torch

    nn = torch.nn
    if workload == "gru":
        return nn.Sequential(_last_state_gru(GRU["in"], GRU["hidden"]), nn.Linear(GRU["hidden"], GRU["classes"]))
    spec = spec or lm_spec(workload)
    v, c, w = spec["vocab"], spec["context"], spec["width"]
    embedding = nn.Embedding(v, w)
    nn.init.normal_(embedding.weight, std=0.02)
    blocks = [_causal_block(w, spec["heads"], c) for _ in range(spec["layers"])]
    return nn.Sequential(embedding, _positions(c, w), *blocks, nn.LayerNorm(w), nn.Linear(w, v))


def torch_loss(outputs, y):
    import torch

    return torch.nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), y.reshape(-1))


def torch_optimizer(workload, model, spec=None):
    """Adam (``gru``) or AdamW decaying every matrix except the positions, as ``fnnet.layers.decay_mask``."""
    import torch

    if workload == "gru":
        return torch.optim.Adam(model.parameters(), lr=LR)
    spec = spec or lm_spec(workload)
    named = list(model.named_parameters())
    decayed = {name for name, p in named if p.ndim >= 2 and name != "1.weight"}  # "1" holds the positions
    decay = [p for name, p in named if name in decayed]
    keep = [p for name, p in named if name not in decayed]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": keep, "weight_decay": 0.0}],
                             lr=spec["lr"])


def torch_step(workload, batch=None):
    import torch

    workload = "gru" if workload == "gru_loop" else workload
    spec = None if workload == "gru" else lm_spec(workload)
    model = torch_model(workload, spec)
    x, y = (torch.from_numpy(a) for a in data(workload, batch, spec))
    opt = torch_optimizer(workload, model, spec)
    clip = None if spec is None else spec["clip"]

    def step():
        opt.zero_grad(set_to_none=True)
        torch_loss(model(x), y).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    return step


def _last_state_gru(features, hidden):
    """``nn.GRU(batch_first=True)`` returning its last hidden state ``(N, hidden)``."""
    import torch

    class LastState(torch.nn.GRU):
        def forward(self, x):
            return super().forward(x)[1][0]

    return LastState(features, hidden, batch_first=True)


def _causal_block(width, heads, context):
    """``nn.TransformerEncoderLayer`` (pre-LN, GELU, no dropout) with the causal mask built once."""
    import torch

    class CausalBlock(torch.nn.TransformerEncoderLayer):
        def __init__(self):
            super().__init__(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                             norm_first=True)
            self.register_buffer("causal_mask", torch.nn.Transformer.generate_square_subsequent_mask(context),
                                 persistent=False)

        def forward(self, x):
            length = x.shape[1]
            return super().forward(x, src_mask=self.causal_mask[:length, :length], is_causal=True)

    return CausalBlock()


def _positions(context, width):
    """``x + weight[:L]`` with a learned ``(context, width)`` ``weight`` drawn from N(0, 0.02)."""
    import torch

    class Positions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(context, width) * 0.02)

        def forward(self, x):
            return x + self.weight[: x.shape[1]]

    return Positions()


# ----------------------------------------------------------------------------------------------- jax
def jax_step(workload, batch=None):
    """JAX's ``jit`` of the ``gru`` step: the same shapes, gate layout (PyTorch's r, z, n), head, loss and
    Adam (written out: lr 1e-3, betas 0.9 and 0.999, eps 1e-8), with the cell stepped by ``lax.scan``
    (``gru``) or unrolled by a Python loop under ``jit`` (``gru_loop``, the same loop as fnnet's)."""
    import jax
    import jax.numpy as jnp

    if workload not in ("gru", "gru_loop"):
        raise NotImplementedError(f"JAX {workload} peer not written")
    hidden, features, classes = GRU["hidden"], GRU["in"], GRU["classes"]
    x, y = (jnp.asarray(a) for a in data("gru", batch))
    rng = np.random.default_rng(0)

    def uniform(*shape, fan):
        return jnp.asarray(rng.uniform(-fan ** -0.5, fan ** -0.5, shape).astype(np.float32))

    params = {"w_ih": uniform(features, 3 * hidden, fan=hidden), "w_hh": uniform(hidden, 3 * hidden, fan=hidden),
              "b_ih": uniform(3 * hidden, fan=hidden), "b_hh": uniform(3 * hidden, fan=hidden),
              "w": uniform(hidden, classes, fan=hidden), "b": uniform(classes, fan=hidden)}

    def cell(p, h, xt):
        x_r, x_z, x_n = jnp.split(xt @ p["w_ih"] + p["b_ih"], 3, axis=1)
        h_r, h_z, h_n = jnp.split(h @ p["w_hh"] + p["b_hh"], 3, axis=1)
        r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h

    def loss(p, x, y):
        h = jnp.zeros((x.shape[0], hidden), x.dtype)
        if workload == "gru_loop":
            for t in range(x.shape[1]):
                h = cell(p, h, x[:, t])
        else:
            h, _ = jax.lax.scan(lambda h, xt: (cell(p, h, xt), None), h, jnp.swapaxes(x, 0, 1))
        logp = jax.nn.log_softmax(h @ p["w"] + p["b"])
        return -jnp.mean(logp[jnp.arange(len(y)), y])

    @jax.jit
    def update(p, m, v, t):
        g = jax.grad(loss)(p, x, y)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
        p = jax.tree_util.tree_map(lambda p, m, v: p - LR * (m / c1) / (jnp.sqrt(v / c2) + 1e-8), p, m, v)
        return p, m, v, t

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    box = {"state": (params, zeros, zeros, jnp.float32(0))}

    def step():
        box["state"] = update(*box["state"])
        jax.block_until_ready(box["state"])

    return step

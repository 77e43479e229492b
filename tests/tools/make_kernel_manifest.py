"""Write fnnet/kernels/manifest.json: the kernel signatures ``python -m fnnet.precompile`` warms.

Records (``fnnet.precompile._signatures.Recorder``) every kernel signature called while exercising:
every fuzz-table layer (``LAYER_SPECS``: forward and backward in training mode, forward in evaluation
mode) in float32 and float16, every fuzz-table op and loss (``OP_SPECS``: forward, and the backward of
the sum of its outputs) in float32, the named optimizers' updates, and a float32 and a mixed-precision
training step.  Run it after adding or changing kernels::

    python tests/tools/make_kernel_manifest.py            # compiles what the cache lacks: minutes when cold

A ``tests/test_precompile.py`` test checks that every entry names an existing kernel and that every
signature reads back; it does not compile them.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import fnnet
import fnnet.layers as L
from fnnet import ops, tree
from fnnet.precompile import exercise
from fnnet.precompile.__main__ import MANIFEST
from fnnet.precompile._signatures import Recorder, format_signature, kernel_name, portable
from fnnet.testing.fuzz.layer_specs import LAYER_SPECS
from fnnet.testing.fuzz.op_specs import OP_SPECS


def _layers(dtype):
    for spec in LAYER_SPECS:
        yield f"{spec.name} {np.dtype(dtype).name}", lambda spec=spec: exercise(spec.layer, spec.in_shape, dtype)


def _sum_of_outputs(out):
    leaves = [leaf for leaf in tree.leaves(out) if getattr(leaf, "dtype", None) is not None
              and np.issubdtype(leaf.dtype, np.floating)]
    total = ops.sum(leaves[0])
    for leaf in leaves[1:]:
        total = total + ops.sum(leaf)
    return total


def _op(spec):
    instance = spec.build(np.random.default_rng(0))
    instance.call(*instance.args)
    positions = instance.diff_positions()
    if not instance.differentiable or not positions:
        return

    def loss(*diff):
        args = list(instance.args)
        for i, value in zip(positions, diff):
            args[i] = value
        return _sum_of_outputs(instance.call(*args))

    fnnet.grad(loss, argnums=tuple(range(len(positions))))(*[instance.args[i] for i in positions])


def _optimizers():
    params = {"w": np.ones((3, 4), np.float32), "b": np.ones(4, np.float32)}
    optim = fnnet.optim
    named = {name: getattr(optim, name)(1e-3) for name in ("sgd", "adam", "adamw", "rmsprop", "adagrad")}
    named["sgd(momentum)"] = optim.sgd(1e-3, momentum=0.9)
    named["chain(clip_by_global_norm, adam)"] = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))
    for name, optimizer in named.items():
        yield f"optim.{name}", lambda o=optimizer: o.update(tree.zeros_like(params), o.init(params), params)


def _fused_attention():
    """The fused attention backward, which takes inputs of ``FUSED_SLICES`` slices or more (the fuzz tables'
    batches are smaller), without and with a mask."""
    from fnnet.kernels.attention import FUSED_SLICES

    q = np.linspace(-1, 1, FUSED_SLICES * 8 * 4, dtype=np.float32).reshape(FUSED_SLICES, 8, 4)
    for mask in (None, np.tril(np.ones((8, 8), bool))):
        fnnet.grad(lambda q, mask=mask: ops.sum(ops.scaled_dot_product_attention(q, q, q, mask=mask)))(q)


def _training_steps():
    model = L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                          L.Dropout(0.25), L.Linear(3)])
    in_shape = (None, 1, 6, 6)
    x, y = np.linspace(-1, 1, 4 * 36, dtype=np.float32).reshape(4, 1, 6, 6), np.arange(4) % 3
    loss_fn, optimizer = fnnet.losses.softmax_cross_entropy, fnnet.optim.adamw(1e-3)

    def float32_step():
        params, state = model.init(fnnet.random.key(0), in_shape), model.init_state(in_shape)
        step = fnnet.train.make_train_step(model, loss_fn, optimizer)
        step(params, state, optimizer.init(params), x, y, fnnet.random.key(1))
        fnnet.train.evaluate(model, params, state, x, y, loss_fn=loss_fn)

    def mixed_precision_step():
        params, state = model.init(fnnet.random.key(0), in_shape), model.init_state(in_shape)
        step = fnnet.precision.make_mixed_precision_train_step(model, loss_fn, optimizer)
        step(params, state, step.init(params), x, y, fnnet.random.key(1))

    yield "train step float32", float32_step
    yield "train step mixed precision", mixed_precision_step


def _jobs():
    yield from _layers(np.float32)
    for spec in OP_SPECS:
        yield f"op {spec.name}", lambda spec=spec: _op(spec)
    yield from _optimizers()
    yield "attention, fused backward", _fused_attention
    yield from _training_steps()
    yield from _layers(np.float16)


def main():
    found, skipped = {}, []
    for name, job in _jobs():
        dtype = "float16" if "float16" in name or "mixed" in name else "float32"
        print(name, flush=True)
        with Recorder() as seen:
            try:
                job()
            except Exception as error:  # a layer without float16 support, say: listed, not fatal
                skipped.append(f"{name}: {type(error).__name__}: {str(error)[:120]}")
                continue
        for dispatcher, argument_types in seen.calls:
            if portable(dispatcher):
                found.setdefault((kernel_name(dispatcher), format_signature(argument_types)), dtype)
    entries = [{"kernel": k, "signature": s, "dtype": d} for (k, s), d in sorted(found.items())]
    about = ("Kernel signatures that `python -m fnnet.precompile` compiles into the cache; written by "
             "tests/tools/make_kernel_manifest.py, do not edit by hand.")
    with open(MANIFEST, "w") as fh:
        json.dump({"about": about, "kernels": entries}, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(entries)} signatures of {len({e['kernel'] for e in entries})} kernels to {MANIFEST}")
    for line in skipped:
        print("skipped", line, file=sys.stderr)


if __name__ == "__main__":
    main()

"""Train a small CNN on handwritten digits: ``python -m fnnet.examples.digits --out runs/digits``.

By default the data are scikit-learn's bundled 8x8 digits (1797 images; no download), split 80/20 into
train and held-out test sets by ``--seed``.  With ``--data FOLDER`` the four MNIST IDX files in FOLDER
(28x28, 60k/10k) are used instead.

The run prints a progress bar per epoch with the running loss and accuracy, then the test accuracy and
the wall time, and writes to ``--out``:

- ``weights.npz``: params, BatchNorm state, optimizer state, model config (``fnnet.io.load`` reads it);
- ``config.json``: the model architecture (``fnnet.layers.from_config`` rebuilds it);
- ``metrics.json`` and ``curves.png``: loss and accuracy per epoch.

Everything random is driven by ``--seed``: two runs with the same seed write identical weights files.

``--dtype float16`` trains in mixed precision (:mod:`fnnet.precision`): float32 master weights, float16
params and activations in each step, dynamic loss scaling; the test set is evaluated in float16 too.  The
weights file holds the float32 master weights and the optimizer state without the loss scale (which goes to
the metadata).

``--distributed`` trains data-parallel on the MPI ranks (``pip install "fnnet[distributed]"``)::

    mpiexec -n 2 python -m fnnet.examples.digits --distributed --out runs/digits-2

Each rank trains on its own slice of every epoch (``fnnet.distributed.shard``) with ``--batch-size``
divided between the ranks, so the global batch and the learning-rate schedule are those of one process.
Only rank 0 prints, evaluates and writes files; the closing line names the number of ranks.  Started
without ``mpiexec``, it runs as a single rank and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import fnnet
import fnnet.distributed as dist
import fnnet.layers as L
import fnnet.precision

from ._outputs import MISSING_MATPLOTLIB, pyplot, save_figure, write_run


def build_model(image_size: int, dropout: float = 0.25):
    """Conv-BN-ReLU blocks with max pooling, then a small classifier head."""
    blocks = [L.Conv2D(32, 3, padding=1), L.BatchNorm(), L.ReLU(),
              L.Conv2D(32, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2)]
    if image_size >= 16:  # MNIST: one more block to keep the head small
        blocks += [L.Conv2D(64, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2)]
    return L.Sequential([*blocks, L.Dropout(dropout), L.Flatten(), L.Linear(128), L.ReLU(), L.Dropout(dropout),
                         L.Linear(10)])


def load_data(args):
    if args.data:
        (x_train, y_train), (x_test, y_test) = fnnet.datasets.load_mnist(args.data)
    else:
        (x_train, y_train), (x_test, y_test) = fnnet.datasets.load_digits(test_fraction=0.2, seed=args.seed)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    return (x_train, y_train), (x_test, y_test)


def _progress(total, desc, enabled):
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or not enabled:
        return None
    return tqdm(total=total, desc=desc, leave=True, file=sys.stdout, dynamic_ncols=True)


def plot_curves(history, path):
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy")
    ax1.legend()
    ax2.plot(epochs, [h["train_accuracy"] for h in history], label="train")
    ax2.plot(epochs, [h["test_accuracy"] for h in history], label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    save_figure(fig, path)


def _start_ranks(args):
    """``(ranks, examples per rank per step)``; with ``--distributed``, starts MPI (a note when alone)."""
    if not args.distributed:
        return 1, args.batch_size
    _, ranks = dist.init()
    if ranks == 1:
        print("note: --distributed without mpiexec (or with -n 1): training as a single process; launch with "
              "`mpiexec -n 2 python -m fnnet.examples.digits --distributed ...` to use 2 ranks", flush=True)
    if args.batch_size % ranks:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the {ranks} ranks (each rank takes "
                         "an equal share of every batch)")
    return ranks, args.batch_size // ranks


def _epoch_data(args, x_train, y_train, epoch_key):
    """This rank's training examples for one epoch (all of them when not distributed)."""
    if not args.distributed:
        return x_train, y_train, True
    idx = dist.shard(epoch_key, len(x_train))
    return x_train[idx], y_train[idx], False


def train(args):
    start = time.perf_counter()
    ranks, rank_batch = _start_ranks(args)
    main_rank = not args.distributed or dist.is_main()
    (x_train, y_train), (x_test, y_test) = load_data(args)
    model = build_model(x_train.shape[-1])
    in_shape = (None, *x_train.shape[1:])
    key = fnnet.random.key(args.seed)
    init_key, loop_key = fnnet.random.split(key)
    params = model.init(init_key, in_shape)
    state = model.init_state(in_shape)
    steps_per_epoch = -(-(len(x_train) // ranks) // rank_batch)
    schedule = fnnet.optim.schedules.cosine_decay(args.lr, args.epochs * steps_per_epoch, alpha=0.05)
    optimizer = fnnet.optim.adamw(schedule, weight_decay=1e-4)
    opt_state = optimizer.init(params)
    loss_fn = fnnet.losses.softmax_cross_entropy
    policy = fnnet.precision.Policy() if args.dtype == "float16" else None
    if policy is None:
        step = fnnet.train.make_train_step(model, loss_fn, optimizer, distributed=args.distributed)
    else:
        step = fnnet.precision.make_mixed_precision_train_step(model, loss_fn, optimizer, policy)
        opt_state = step.init(params)

    def evaluate(params, state):
        if policy is None:
            return fnnet.train.evaluate(model, params, state, x_test, y_test, loss_fn=loss_fn)
        return fnnet.train.evaluate(model, policy.cast_to_compute(params), policy.cast_to_compute(state),
                                    policy.cast_to_compute(x_test), y_test, loss_fn=loss_fn)

    # Compile the step's kernels (one step on the first batch, result discarded) before the progress bar
    # starts, so the bar's rate and ETA measure training, not the first run's compiling.
    fnnet.precompile(step, params, state, opt_state, x_train[:rank_batch], y_train[:rank_batch],
                     fnnet.random.fold_in(loop_key, 0), workers=1 if args.distributed else None)
    history = []
    for epoch in range(1, args.epochs + 1):
        bar = _progress(steps_per_epoch, f"epoch {epoch}/{args.epochs}", main_rank and not args.no_progress)
        seen = {"loss": 0.0, "accuracy": 0.0, "n": 0}

        def on_batch(metrics, bar=bar, seen=seen):
            seen["n"] += 1
            for k in ("loss", "accuracy"):
                seen[k] += (metrics[k] - seen[k]) / seen["n"]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{seen['loss']:.4f}", acc=f"{seen['accuracy']:.3f}")

        epoch_key = fnnet.random.fold_in(loop_key, epoch)
        x_epoch, y_epoch, shuffle = _epoch_data(args, x_train, y_train, epoch_key)
        params, state, opt_state, train_metrics = fnnet.train.run_epoch(
            step, params, state, opt_state, x_epoch, y_epoch, epoch_key, batch_size=rank_batch, shuffle=shuffle,
            progress=on_batch)
        if not main_rank:
            continue
        test_metrics = evaluate(params, state)
        if bar is not None:
            bar.set_postfix(loss=f"{train_metrics['loss']:.4f}", acc=f"{train_metrics['accuracy']:.3f}",
                            test_acc=f"{test_metrics['accuracy']:.3f}")
            bar.close()
        else:
            print(f"epoch {epoch}: train loss {train_metrics['loss']:.4f} acc {train_metrics['accuracy']:.3f}, "
                  f"test acc {test_metrics['accuracy']:.3f}", flush=True)
        history.append({"epoch": epoch, "train_loss": train_metrics["loss"],
                        "train_accuracy": train_metrics["accuracy"], "test_loss": test_metrics["loss"],
                        "test_accuracy": test_metrics["accuracy"]})

    if not main_rank:
        return None
    wall = time.perf_counter() - start
    final = history[-1]["test_accuracy"]
    metadata = {"epochs": args.epochs, "seed": args.seed, "test_accuracy": final, "ranks": ranks}
    if policy is not None:
        metadata.update(dtype=args.dtype, loss_scale=opt_state.loss_scale.value)
        opt_state = opt_state.opt_state
    _write_outputs(args, model, (params, state, opt_state), metadata, history, wall)
    print(f"test accuracy: {final:.4f} ({int(round(final * len(y_test)))}/{len(y_test)})")
    print(f"wall time: {wall:.1f} s")
    print(f"wrote {args.out}/weights.npz, config.json, metrics.json, curves.png")
    if args.distributed:
        print(f"trained data-parallel on {ranks} rank{'s' if ranks > 1 else ''} ({rank_batch} examples per rank per "
              f"step, global batch {rank_batch * ranks})")
    return final


def _write_outputs(args, model, trees, metadata, history, wall):
    """weights.npz, config.json, metrics.json and curves.png in ``args.out`` (rank 0 only)."""
    params, state, opt_state = trees
    metrics = {"history": history, "test_accuracy": metadata["test_accuracy"], "wall_time_s": wall,
               "dtype": args.dtype, "ranks": metadata["ranks"]}
    write_run(args.out, model, params, state=state, opt_state=opt_state, config=fnnet.layers.to_config(model),
              metadata=metadata, metrics=metrics)
    try:
        plot_curves(history, os.path.join(args.out, "curves.png"))
    except ImportError:
        print(MISSING_MATPLOTLIB.format(name="curves.png"))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.examples.digits", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/digits", help="output folder (created)")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (cosine decay)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="folder with MNIST IDX files (train-images-idx3-ubyte, ...) instead of digits")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training examples")
    p.add_argument("--no-progress", action="store_true", help="one line per epoch instead of progress bars")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="float16: mixed precision (float16 params/activations, float32 master weights)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel on the MPI ranks (run under mpiexec; needs fnnet[distributed])")
    args = p.parse_args(argv)
    if args.distributed and args.dtype == "float16":
        p.error("--distributed trains in float32 only; drop --dtype float16")
    return train(args)


if __name__ == "__main__":
    main()

"""Data-parallel training across processes and machines, on MPI (``pip install "fnnet[distributed]"``).

Every rank (process) holds the whole model, trains on its own slice of each batch, and the ranks average
their gradients (and BatchNorm running statistics) before every update, so params stay identical
everywhere.  Launch with ``mpiexec -n 2 python train.py``; started without ``mpiexec``, the same script
runs as a single rank.  ``docs/distributed.md`` covers clusters, threads per rank and the cost model.

    import fnnet, fnnet.distributed as dist

    dist.init()
    step = fnnet.train.make_train_step(model, loss_fn, optimizer, distributed=True)
    for epoch in range(epochs):
        epoch_key = fnnet.random.fold_in(key, epoch)          # the same key on every rank
        idx = dist.shard(epoch_key, len(x))                   # this rank's disjoint slice
        params, state, opt_state, metrics = fnnet.train.run_epoch(
            step, params, state, opt_state, x[idx], y[idx], epoch_key, batch_size=32, shuffle=False)
        if dist.is_main():
            fnnet.io.save("weights.npz", params, state=state, opt_state=opt_state, config=model)

``mpi4py`` is imported by :func:`init` (or the first call that needs MPI), never by ``import fnnet``;
without it those calls raise an ``ImportError`` that names the extra to install.
"""

from ._collectives import allreduce_mean, allreduce_sum, broadcast, check_consistent
from ._comm import barrier, communicator, init, is_main, rank, size
from ._reducer import DataParallel, GradientReducer
from ._sharding import rank_key, shard

__all__ = [
    "init", "rank", "size", "is_main", "barrier", "communicator", "allreduce_sum", "allreduce_mean", "broadcast",
    "check_consistent", "shard", "rank_key", "DataParallel", "GradientReducer",
]

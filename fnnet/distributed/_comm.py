"""The MPI communicator: loading ``mpi4py``, ``init``, the rank queries, ``barrier`` and abort-on-error.

``mpi4py`` is imported on the first call that needs it, never when ``fnnet`` is imported, so fnnet works
without the ``distributed`` extra; only these functions then raise an ``ImportError`` naming the extra.
"""

from __future__ import annotations

import os
import sys
import time

from .. import kernels

__all__ = ["init", "rank", "size", "is_main", "barrier", "communicator"]

INSTALL_HINT = 'pip install "fnnet[distributed]" (it brings mpi4py and the mpich MPI library)'


class _World:
    """The process's MPI state once :func:`init` has run (one per process: MPI itself is per process)."""

    comm = None  # MPI.COMM_WORLD


def import_mpi():
    """``mpi4py.MPI``, or an ImportError that says which extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            f"fnnet.distributed needs mpi4py and an MPI library, which are not installed ({error}); "
            f"{INSTALL_HINT}"
        ) from None
    return MPI


def init(*, abort_on_error: bool = True, share_cores: bool = True):
    """Start MPI (once; later calls return at once) and return ``(rank, size)``.

    Under ``mpiexec -n N`` every process gets its rank ``0 .. N-1``.  Started without ``mpiexec``, MPI runs
    as a single process (``size() == 1``), so the same script works on a laptop and on a cluster.

    Args:
        abort_on_error: when more than one rank runs, an exception that no code catches on one rank aborts
            the whole job (``MPI_Abort``) after printing its traceback, instead of leaving the other ranks
            waiting forever in their next collective.  This replaces ``sys.excepthook`` (the previous hook
            still prints the traceback).
        share_cores: unless ``NUMBA_NUM_THREADS`` is set, the ranks that share a machine split its cores:
            each rank's kernels use ``cores // ranks_on_this_machine`` threads (at least 1).

    Returns:
        ``(rank, size)``.

    Raises:
        ImportError: ``mpi4py`` is not installed (the message names the extra to install).
    """
    if _World.comm is None:
        MPI = import_mpi()
        comm = MPI.COMM_WORLD
        if comm.Get_size() > 1:
            if abort_on_error:
                _abort_on_uncaught(comm)
            if share_cores and "NUMBA_NUM_THREADS" not in os.environ:
                local = comm.Split_type(MPI.COMM_TYPE_SHARED)
                kernels.share_threads(local.Get_size())
                local.Free()
        _World.comm = comm
    return _World.comm.Get_rank(), _World.comm.Get_size()


def _abort_on_uncaught(comm):
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        sys.stderr.write(f"fnnet.distributed: uncaught {kind.__name__} on rank {comm.Get_rank()}: aborting all "
                         f"{comm.Get_size()} ranks\n")
        sys.stderr.flush()
        time.sleep(0.2)  # mpiexec forwards output asynchronously: let the traceback reach the user first
        comm.Abort(1)

    sys.excepthook = hook


def communicator():
    """The world communicator (``mpi4py.MPI.COMM_WORLD``), starting MPI with :func:`init` if needed."""
    if _World.comm is None:
        init()
    return _World.comm


def rank() -> int:
    """This process's rank, ``0 .. size() - 1`` (calls :func:`init` if needed)."""
    return communicator().Get_rank()


def size() -> int:
    """The number of ranks (1 when not launched by ``mpiexec``; calls :func:`init` if needed)."""
    return communicator().Get_size()


def is_main() -> bool:
    """True on rank 0, the rank that prints, writes checkpoints, metrics and plots."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank has called ``barrier``."""
    communicator().Barrier()

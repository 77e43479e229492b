"""Averaging a training step's gradients over the ranks while the backward is still running.

The gradient leaves are grouped into buckets of about ``bucket_bytes`` (PyTorch DDP's design), in the
order the backward finishes them, which the first step observes on rank 0 and sends to every rank.  From
the second step on, ``fnnet.value_and_grad(..., on_gradient=...)`` hands each leaf's gradient over as soon
as it is final; once a bucket is full a non-blocking all-reduce of it starts, and the backward carries on
with earlier layers.  Buckets start strictly in bucket order, because every rank must issue the same
collectives in the same order.  Each later gradient report also tests the oldest pending request, which is
what lets MPICH move the data along (it has no progress thread of its own by default).

Deterministic mode reduces a bucket in two collectives: an all-to-all hands rank ``r`` the ``r``-th chunk
of every rank's bucket, which it sums in rank order, and an all-gather returns the summed chunks to every
rank.  The two phases run on two duplicated communicators, so each keeps its own fixed order.
"""

from __future__ import annotations

import numbers

import attrs
import numpy as np

from .. import tree
from . import _comm
from ._collectives import broadcast, check_consistent
from ._packing import plan_buffers, rank_order_sum

__all__ = ["DataParallel", "GradientReducer"]


def _check_bool(instance, attribute, value):
    if not isinstance(value, bool):
        raise TypeError(f"fnnet.distributed.DataParallel: {attribute.name} must be True or False, got {value!r}")


def _check_bucket_bytes(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"fnnet.distributed.DataParallel: bucket_bytes must be an int >= 1 (bytes), got {value!r}; "
                         "e.g. 1 << 20 for 1 MiB buckets")


@attrs.frozen
class DataParallel:
    """Options of a data-parallel training step: ``make_train_step(..., distributed=DataParallel(...))``
    (``distributed=True`` means ``DataParallel()``).

    Attributes:
        deterministic: sum the ranks' gradients and BatchNorm statistics in rank order, so an N-rank step
            gives the same bits as one process running ``fnnet.optim.accumulate_gradients`` over the N
            micro-batches (see docs/distributed.md).  Otherwise MPI's all-reduce is used (faster for many
            ranks; results agree to float rounding).
        overlap: start reducing each bucket while the backward is still running (else: after it).
        bucket_bytes: a bucket is closed once it holds this many bytes of gradients (default 256 KiB).
            Smaller buckets start earlier but pay the per-message latency more often.
    """

    deterministic: bool = attrs.field(default=False, validator=_check_bool)
    overlap: bool = attrs.field(default=True, validator=_check_bool)
    bucket_bytes: int = attrs.field(default=256 << 10, validator=_check_bucket_bytes)


class GradientReducer:
    """The per-step machinery behind a data-parallel train step (one instance per step function).

    Per step, on every rank: ``begin()``, then the backward with ``on_gradient`` as its hook (or nothing
    when ``overlap`` is off), then ``finish(grads)`` returns the mean gradient tree.  ``setup`` runs once,
    before the first step.
    """

    def __init__(self, options: DataParallel):
        self.options = options
        self.comm = self.gather_comm = None
        self.buffers = self.slot_of = self.treedef = None  # the bucket plan, fixed by the first step
        self.ranks, self.prescale = 1, None
        self.begin()

    def setup(self, params, state, opt_state):
        """Check that every rank holds the same trees, then return rank 0's (one broadcast)."""
        check_consistent(params, "params")
        check_consistent(state, "state")
        world = _comm.communicator()
        self.in_place = _comm.import_mpi().IN_PLACE
        self.comm = world.Dup()
        if self.options.deterministic:
            self.gather_comm = world.Dup()
        return broadcast((params, state, opt_state))

    def begin(self):
        """Start a step: fresh buffers, nothing reported, sent or received yet."""
        self.arrived, self.requests, self.sending, self.missing = [], [], [], []
        self.launched = self.advanced = 0  # buckets started; buckets past their first phase
        for b in self.buffers or ():
            b.allocate()
            self.missing.append(len(b.slots))

    def on_gradient(self, i, g):
        """The backward's hook: leaf ``i``'s gradient ``g`` is final."""
        if self.buffers is None:
            self.arrived.append((i, g))
            return
        k, offset = self.slot_of[i]
        self.buffers[k].put(offset, g, self.prescale)
        self.missing[k] -= 1
        self._launch_ready()
        self._advance(wait=False)

    def finish(self, grads):
        """The mean over the ranks of every rank's ``grads`` (all gradients reported or given here)."""
        leaves, treedef = tree.flatten(grads)
        if self.buffers is None:
            self._plan(leaves, treedef)
        elif treedef != self.treedef:
            raise ValueError(f"fnnet.distributed: the gradient tree changed since the first step ({self.treedef} "
                             f"-> {treedef}); build a new train step for a new model")
        if not self.options.overlap:
            self._put_all(leaves)
        self._launch_ready()
        self._advance(wait=True)
        out = list(leaves)
        for b in self.buffers:
            if self.options.deterministic:
                np.divide(b.data, b.dtype.type(self.ranks), out=b.data)
            for i, view in b.views().items():
                out[i] = view
        return tree.unflatten(treedef, out)

    def _plan(self, leaves, treedef):
        """First step: bucket the float leaves in rank 0's arrival order and reduce them all now."""
        floats = [i for i, x in enumerate(leaves) if isinstance(x, np.ndarray) and x.dtype.kind == "f"]
        order = [i for i, _ in self.arrived] if self.arrived else floats[::-1]
        order = self.comm.bcast(order, root=0)
        self.ranks = self.comm.Get_size()
        self.buffers = plan_buffers(leaves, order, self.ranks, self.options.bucket_bytes)
        self.slot_of = {i: (k, offset) for k, b in enumerate(self.buffers) for i, offset, _, _ in b.slots}
        self.treedef = treedef
        self.prescale = None if self.options.deterministic else 1.0 / self.ranks
        self.begin()
        self._put_all(leaves)

    def _put_all(self, leaves):
        for k, b in enumerate(self.buffers):
            for i, offset, _, _ in b.slots:
                b.put(offset, leaves[i], self.prescale)
            self.missing[k] = 0

    def _launch_ready(self):
        while self.launched < len(self.buffers) and self.missing[self.launched] == 0:
            data = self.buffers[self.launched].data
            if self.options.deterministic:
                chunks = np.empty((self.ranks, data.size // self.ranks), data.dtype)
                self.sending.append(chunks)
                self.requests.append(self.comm.Ialltoall(data, chunks))
            else:
                self.requests.append(self.comm.Iallreduce(self.in_place, data))
            self.launched += 1

    def _advance(self, wait):
        """Move pending buckets along in order; with ``wait``, until all are done."""
        while self.advanced < self.launched:
            request = self.requests[self.advanced]
            if wait:
                request.Wait()
            elif not request.Test():
                return
            if self.options.deterministic:
                self._gather(self.advanced)
            self.advanced += 1
        if wait:
            for request in self.requests:
                request.Wait()

    def _gather(self, k):
        """Deterministic phase two of bucket ``k``: sum its chunks in rank order, all-gather the sums."""
        total = rank_order_sum(self.sending[k])
        self.sending[k] = total  # kept alive until the all-gather is done
        self.requests[k] = self.gather_comm.Iallgather(total, self.buffers[k].data)

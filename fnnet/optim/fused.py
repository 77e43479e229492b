"""The one-pass-per-leaf machinery shared by the fused optimizers of :mod:`fnnet.optim.alias`.

A fused optimizer is described by its state record, the buffer fields of that record it reads and
rewrites, and ``kernels``: the loop that, given the flat leaves, calls one kernel per leaf.  :func:`fused_transformation`
wraps that into a :class:`GradientTransformation` whose ``update`` and ``fused_step`` validate the trees,
flatten them, run the loop and rebuild the trees.

Under ``fnnet.jit`` those tree-level calls are recorded as host steps, and every replay would validate and
flatten the same structures again.  So each also offers a *specialisation* (``fnnet_specialize``): given
the trace's arguments, a function of the flat leaves that runs only the loop (the schedule is still
evaluated at each replay's step count).  The recorder uses it after checking that it gives bitwise the
trace's results.  ``fast(leaves, writable)`` writes the new value of each leaf whose position is in
``writable`` into that leaf's memory: a jit plan passes the params and buffers donated to it
(``donate_argnums``) that nothing reads afterwards.  Structure, shapes and dtypes cannot change between replays of one plan, so nothing it
skips could fail; a ``mask`` is evaluated at trace time.  Donating calls are not specialised: whether a
buffer may be written in place depends on the arrays each call receives.
"""

from __future__ import annotations

from .. import tree
from .base import GradientTransformation, check_state, count_next, float_leaves, matching_leaves
from .donation import LeafOutputs, output_for

__all__ = ["fused_transformation"]


def fused_transformation(where, init, state_type, fields, kernels, *, decay_reads_params=False, prepare=None):
    """The transformation of a fused optimizer.

    Args:
        where: the optimizer's name, for error messages.
        init: ``init(params) -> state_type``.
        state_type: the state record: ``count`` then the buffer fields.
        fields: ``{field: bool}`` for every buffer field of ``state_type`` in order: whether this
            configuration uses it (an unused field holds None).
        kernels: ``kernels(where, count, gs, ps, bufs, outs, extra)``: the per-leaf kernel loop on flat
            lists (``bufs``: ``{field: leaves or None}``, ``outs(i, name)``: the flat output of leaf ``i``).
        decay_reads_params: ``update`` reads the params (weight decay); ``fused_step`` always does.
        prepare: ``prepare(where, params, treedef) -> extra``, per-leaf constants (None: ``extra`` is None).
    """
    pass_ = _LeafPass(where, state_type, fields, kernels, decay_reads_params, prepare)

    def update(grads, state, params=None):
        return pass_.run(where, grads, state, params, False, False)

    def fused_step(grads, state, params, donate):
        return pass_.run(f"{where}.update_and_apply", grads, state, params, True, donate)

    update.fnnet_specialize = lambda grads, state, params=None: pass_.specialize(
        where, (grads, state, params), grads, state, params, False)
    fused_step.fnnet_specialize = lambda grads, state, params, donate: None if donate else pass_.specialize(
        f"{where}.update_and_apply", (grads, state, params, donate), grads, state, params, True)
    return GradientTransformation(init, update, fused_step)


class _LeafPass:
    """One fused optimizer's pass over the leaves: the tree-level call and its flat specialisation."""

    def __init__(self, where, state_type, fields, kernels, decay_reads_params, prepare):
        self.where, self.state_type, self.kernels, self.prepare = where, state_type, kernels, prepare
        self.fields = tuple(fields)
        self.active = tuple(f for f, on in fields.items() if on)
        self.decay_reads_params = decay_reads_params

    def _buffers(self, state):
        return {f: getattr(state, f) if f in self.active else None for f in self.fields}

    def run(self, where, grads, state, params, apply, donate):
        check_state(where, state, self.state_type)
        g_leaves, treedef = float_leaves(where, "grads", grads)
        if apply or self.decay_reads_params:
            if params is None:
                raise ValueError(f"{where}: weight decay needs the current params: call update(grads, opt_state, params)")
            p_leaves = matching_leaves(where, "params", params, treedef, g_leaves)
        else:
            p_leaves = g_leaves  # never read by the kernels
        bufs = {f: None if t is None else matching_leaves(where, f"opt_state.{f}", t, treedef, g_leaves)
                for f, t in self._buffers(state).items()}
        extra = None if self.prepare is None else self.prepare(where, params, treedef)
        outs = LeafOutputs(where, treedef, g_leaves, p_leaves, bufs, apply=apply, donate=donate)
        self.kernels(where, state.count, g_leaves, p_leaves, bufs, outs, extra)
        trees = outs.trees()
        return trees["out"], self.state_type(count_next(state.count), *(trees.get(f) for f in self.fields))

    def specialize(self, where, args, grads, state, params, apply):
        """``fast(leaves) -> array leaves of the result`` for ``leaves = tree.leaves((args, {}))`` of any call
        with this call's structure, shapes and dtypes; None when the leaves do not lie as expected."""
        leaves = tree.leaves((args, {}))
        g_leaves, treedef = tree.flatten(grads)
        n = len(g_leaves)
        buffers = self._buffers(state)
        expected = [*g_leaves, state.count, *(x for f in self.fields for x in tree.leaves(buffers[f]))]
        reads_params = apply or self.decay_reads_params
        p_at = len(expected)
        if reads_params:
            expected += tree.leaves(params)
        if len(leaves) < len(expected) or any(a is not b for a, b in zip(leaves, expected)):
            return None
        starts, at = {}, n + 1
        for f in self.active:
            starts[f] = at
            at += n
        extra = None if self.prepare is None else self.prepare(where, params, treedef)
        shapes = [x.shape for x in g_leaves]
        kernels, active, fields = self.kernels, self.active, self.fields

        sources = {"out": p_at if apply else 0, **starts}  # where the leaves each output replaces start

        def fast(leaves, writable=()):
            gs = leaves[:n]
            ps = leaves[p_at:p_at + n] if reads_params else gs
            bufs = {f: leaves[starts[f]:starts[f] + n] if f in active else None for f in fields}
            outs = LeafOutputs(where, treedef, gs, ps, bufs, apply=apply, donate=False)
            for name, start in sources.items() if writable else ():  # donated to jit: written in place
                for i in range(n):
                    if start + i in writable:
                        outs.flat[name][i] = output_for(leaves[start + i], True)
            count = leaves[n]
            kernels(where, count, gs, ps, bufs, outs, extra)
            out = [o.reshape(s) for o, s in zip(outs.flat["out"], shapes)]
            out.append(count_next(count))
            for f in active:
                out += [o.reshape(s) for o, s in zip(outs.flat[f], shapes)]
            return out

        fast.sources = tuple(range(p_at, p_at + n)) if apply else ()
        fast.sources += tuple(range(starts[active[0]], starts[active[0]] + n * len(active))) if active else ()
        return fast

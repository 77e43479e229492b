"""Function transformations: ``grad``, ``value_and_grad``, ``vjp``, ``checkpoint`` and ``stop_gradient``."""

from __future__ import annotations

import functools
import threading

import numpy as np

from .. import tree
from . import recording
from .arrays import plain_array
from .batching import Batched, scope_size
from .primitive import Primitive, _check_tapes
from .tape import Tape, Tracer, value_of

__all__ = ["grad", "value_and_grad", "vjp", "stop_gradient", "checkpoint", "last_tape_stats", "in_recomputation"]

_FLOATS = (np.float16, np.float32, np.float64)


def _is_float_array(x) -> bool:
    """A float16/32/64 ndarray, subclasses (``np.memmap``) included."""
    return isinstance(x, np.ndarray) and x.dtype.type in _FLOATS


def _trace_leaves(tape, leaves, where="grad"):
    """Wrap every float leaf in a tracer; return (new leaves, positions of the wrapped ones).

    Float arrays are traced as plain arrays (``arrays.plain_array``: ``np.memmap`` through its ndarray view,
    big-endian or unaligned data as a native copy); Python and numpy float scalars as 0-d arrays.

    Raises:
        TypeError: a masked array or ``np.matrix`` leaf (``where`` names the transformation).
    """
    wrapped = []
    positions = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, (float, np.floating)):
            leaf = np.asarray(leaf)
        if _is_float_array(leaf):
            leaf = plain_array(where, f"leaf {i} of a differentiated argument (in fnnet.tree.paths order)", leaf)
            wrapped.append(Tracer(leaf, tape, tape.new_node()))
            positions.append(i)
        elif type(leaf) is Tracer and tape.jit is not None and leaf.dtype.type in _FLOATS:  # a fnnet.jit input
            wrapped.append(Tracer(leaf.value, tape, tape.new_node()))
            tape.slots[wrapped[-1].node] = tape.jit.slot_of(leaf)
            positions.append(i)
        elif type(leaf) is Batched and leaf.dtype.type in _FLOATS:  # under fnnet.vmap, vmapped by its in_axes
            wrapped.append(Tracer(leaf, tape, tape.new_node()))
            positions.append(i)
        else:
            wrapped.append(leaf)
    return wrapped, positions


def _leaf_gradient(g, value, recorder=None):
    """The gradient returned for a traced leaf: its cotangent ``g`` (zeros when None) in the leaf's dtype."""
    if recorder is not None:
        from .recorded_backward import leaf_gradient
        return leaf_gradient(recorder, g, value)
    if g is None:
        return np.zeros_like(value)
    return g.astype(value.dtype) if g.dtype != value.dtype else g


def _gradient_leaves(original, wrapped, cotangents):
    """Gradients for one argument's leaves, shaped and typed like the originals (under ``fnnet.vmap``, a
    gradient that reached a leaf is ``Batched``: one per example)."""
    out = []
    for leaf, w in zip(original, wrapped):
        if type(w) is Tracer and w.tape.batch_size:
            g = cotangents.get(w.node)
            out.append(np.zeros(w.value.shape, w.value.dtype) if g is None else Batched(_leaf_gradient(g, w.value)))
        elif type(w) is Tracer:
            g = _leaf_gradient(cotangents.get(w.node), w.value, w.tape.jit)
            out.append(type(leaf)(g) if isinstance(leaf, (float, np.floating)) else g)
        elif isinstance(leaf, np.ndarray) or type(leaf) is Tracer:
            out.append(np.zeros(leaf.shape, leaf.dtype))
        elif type(leaf) is Batched:
            out.append(np.zeros(leaf.shape, leaf.dtype))
        else:
            out.append(leaf)
    return out


def _normalize_argnums(argnums, nargs, where):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -nargs <= n < nargs:
            raise ValueError(
                f"{where}: argnums={argnums!r} does not index the {nargs} positional argument(s) the "
                "function was called with"
            )
    return single, tuple(n % nargs for n in nums)


_last_stats = threading.local()


def last_tape_stats() -> dict:
    """Memory held by the most recent tape of the calling thread: ``{"peak_residual_bytes": int}``
    (0 before this thread's first ``grad``/``vjp`` call; other threads' tapes never show here).

    The peak is the largest total size of the residual arrays the tape held at once (an upper bound:
    an array saved by two ops counts twice).  Use it to compare a model with and without checkpointing.
    """
    return {"peak_residual_bytes": getattr(_last_stats, "peak_residual_bytes", 0)}


def _notifying_backward(tape, seeds, wrapped, on_gradient):
    """``tape.backward(seeds)`` that calls ``on_gradient(i, g)`` as soon as the gradient of traced leaf ``i``
    of ``wrapped`` is final (those no entry used: after the walk), and returns those same arrays."""
    index = {w.node: i for i, w in enumerate(wrapped) if type(w) is Tracer}
    final = {}

    def report(node, g):
        final[node] = g = _leaf_gradient(g, wrapped[index[node]].value)
        on_gradient(index[node], g)

    cotangents = tape.backward(seeds, watch=index, on_final=report)
    for node in index:
        if node not in final:
            report(node, cotangents.get(node))
    cotangents.update(final)
    return cotangents


def value_and_grad(f, argnums=0, has_aux=False, *, on_gradient=None):
    """Return a function computing ``f``'s value and its gradient w.r.t. the arguments ``argnums``.

    Args:
        f: a function returning a scalar (shape ``()``) float array, or ``(scalar, aux)`` with ``has_aux``.
        argnums: which positional argument(s) to differentiate; an int or a tuple of ints.
        has_aux: ``f`` returns ``(loss, aux)``; aux is returned untouched (tracers in it become values).
        on_gradient: optional ``on_gradient(i, g)``, called during the backward once for each float leaf
            of the differentiated argument(s) (``i`` indexes ``fnnet.tree.leaves`` of that argument, or of
            the tuple of arguments when ``argnums`` is a tuple) as soon as no later op can change its
            gradient ``g`` (leaves that got no gradient: at the end, with zeros).  ``g`` is the array
            returned in ``grads`` (a float scalar leaf gets it as a 0-d array); do not modify it.
            ``fnnet.distributed`` uses this to start sending a layer's gradients while earlier layers are
            still being differentiated.

    Returns:
        ``g(*args, **kwargs) -> (value, grads)`` or ``((value, aux), grads)``.  ``grads`` has the tree
        structure and dtypes of the differentiated argument (a tuple of them when ``argnums`` is a tuple).
        Leaves that did not influence the output get zeros; non-float leaves are returned as zeros too.

    Raises:
        TypeError: ``f`` does not return a float scalar.

    Example::

        loss = lambda w, x: fnnet.ops.sum((x @ w) ** 2)
        value, dw = fnnet.value_and_grad(loss)(np.ones((3, 2)), np.ones((4, 3)))
    """
    where = f"value_and_grad({getattr(f, '__name__', 'f')})"

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        single, nums = _normalize_argnums(argnums, len(args), where)
        tape = Tape(scope_size())
        recorder = recording.current()
        if recorder is not None:  # traced by fnnet.jit
            tape.jit, tape.slots = recorder, {}
        args = list(args)
        traced = {}
        for n in nums:
            leaves, treedef = tree.flatten(args[n])
            wrapped, _ = _trace_leaves(tape, leaves, where)
            traced[n] = (leaves, wrapped, treedef)
            args[n] = tree.unflatten(treedef, wrapped)
        try:
            out = f(*args, **kwargs)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError(f"{where}: has_aux=True needs f to return (loss, aux), got {type(out).__name__}")
                out, aux = out
            _check_scalar_output(out, where)
            seeds = {}
            if type(out) is Tracer and out.tape is tape:
                seeds[out.node] = np.ones(tape.cotangent_shape(out.value.shape), dtype=out.value.dtype)
            if on_gradient is None:
                cotangents = tape.backward(seeds)
            else:
                wrapped = [w for n in nums for w in traced[n][1]]
                cotangents = _notifying_backward(tape, seeds, wrapped, on_gradient)
        finally:
            tape.active = False
            _last_stats.peak_residual_bytes = tape.peak_residual_bytes
        grads = tuple(
            tree.unflatten(treedef, _gradient_leaves(leaves, wrapped, cotangents))
            for leaves, wrapped, treedef in (traced[n] for n in nums)
        )
        grads = grads[0] if single else grads
        if recorder is not None:
            value, aux = recorder.export(out), tree.map(recorder.export, aux) if has_aux else None
            return ((value, aux), grads) if has_aux else (value, grads)
        value = value_of(out)
        if has_aux:
            return (value, _strip(aux)), grads
        return value, grads

    return wrapper


def grad(f, argnums=0, has_aux=False):
    """Return a function computing the gradient of scalar-valued ``f``; see :func:`value_and_grad`.

    Example::

        df = fnnet.grad(lambda x: fnnet.ops.sum(fnnet.ops.tanh(x)))
        df(np.zeros(3))   # -> [1., 1., 1.]
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        (value_aux, grads) = vg(*args, **kwargs)
        if has_aux:
            return grads, value_aux[1]
        return grads

    return wrapper


def _check_scalar_output(out, where):
    value = value_of(out)
    if not isinstance(value, (np.ndarray, np.generic, Batched)) or value.dtype.type not in _FLOATS:
        raise TypeError(
            f"{where}: f must return a float scalar array, got {type(value).__name__}"
            f"{'' if not hasattr(value, 'dtype') else ' of dtype ' + str(value.dtype)}; "
            "return e.g. fnnet.ops.mean(loss_per_example)"
        )
    if value.shape != ():
        raise TypeError(
            f"{where}: f must return a scalar (shape ()), got shape {value.shape}; reduce it with "
            "fnnet.ops.sum/mean, or use fnnet.vjp for a non-scalar output"
        )


def _strip(t):
    return tree.map(value_of, t)


def vjp(f, *primals):
    """Run ``f(*primals)`` and return ``(out, vjp_fn)``.

    ``out`` is ``f``'s output (an array or a tree of arrays) with tracers replaced by values.
    ``vjp_fn(cotangents)`` takes cotangents shaped like ``out`` and returns a tuple with one gradient
    per primal, each shaped like that primal.  ``vjp_fn`` may be called several times.
    """
    if recording.current() is not None:
        raise NotImplementedError("fnnet.vjp inside fnnet.jit is not supported yet: use fnnet.grad or "
                                  "value_and_grad there, or call vjp outside the jitted function")
    tape = Tape()
    flat = [tree.flatten(p) for p in primals]
    wrapped_args = []
    wrapped_flat = []
    for leaves, treedef in flat:
        wrapped, _ = _trace_leaves(tape, leaves, "vjp")
        wrapped_flat.append(wrapped)
        wrapped_args.append(tree.unflatten(treedef, wrapped))
    out = f(*wrapped_args)
    out_leaves, out_def = tree.flatten(out)

    def vjp_fn(cotangents):
        ct_leaves, ct_def = tree.flatten(cotangents)
        if ct_def != out_def:
            raise ValueError(f"vjp_fn: cotangents must have the structure of the output {out_def}, got {ct_def}")
        seeds = {}
        for o, ct in zip(out_leaves, ct_leaves):
            if type(o) is Tracer:
                ct = np.asarray(ct, dtype=o.value.dtype)
                if ct.shape != o.value.shape:
                    raise ValueError(
                        f"vjp_fn: a cotangent has shape {ct.shape}, but the output it belongs to has shape "
                        f"{o.value.shape}"
                    )
                seeds[o.node] = seeds[o.node] + ct if o.node in seeds else ct
        cts = tape.backward(seeds, keep=True)
        return tuple(
            tree.unflatten(treedef, _gradient_leaves(leaves, wrapped, cts))
            for (leaves, treedef), wrapped in zip(flat, wrapped_flat)
        )

    return tree.unflatten(out_def, [value_of(o) for o in out_leaves]), vjp_fn


def stop_gradient(x):
    """Return ``x`` (an array or a tree) as plain values: no gradient flows back through it."""
    recorder = recording.current()
    if recorder is not None:  # under fnnet.jit a value stays traced by jit, but leaves grad's tape
        return tree.map(recorder.export, x)
    return tree.map(value_of, x)


def _checkpoint_fwd(*args, **params):  # only reached through _checkpoint_prim's traced path
    raise AssertionError("checkpoint entries are recorded directly")


def _checkpoint_bwd(residuals, gs):
    """Recompute the block under a fresh tape and back-propagate ``gs`` through it.  Only the tape keeps
    what the recomputation made, and its walk releases each entry's residuals once the entry has run, so
    the block's memory is gone before the outer walk reaches the next (earlier) block.  The tape is marked
    as a recomputation, so ``Sequential`` runs its fusable pairs as separate ops (``in_recomputation``)."""
    f, treedef, values, traced_positions, out_positions = residuals
    if type(gs) is not tuple:
        gs = (gs,)
    tape = Tape(recomputation=True)
    nodes = [tape.new_node() for _ in traced_positions]
    leaves = list(values)
    for pos, node in zip(traced_positions, nodes):
        leaves[pos] = Tracer(values[pos], tape, node)
    try:
        seeds = _output_seeds(f, tree.unflatten(treedef, leaves), out_positions, gs)  # outputs not kept here
        cts = tape.backward(seeds)
    finally:
        tape.active = False
    return tuple(cts[node] if node in cts else np.zeros_like(values[pos]) for pos, node in zip(traced_positions, nodes))


def _output_seeds(f, args_kwargs, out_positions, gs) -> dict:
    """Run ``f`` on the traced arguments and return ``{output node: cotangent}`` for its float outputs."""
    args, kwargs = args_kwargs
    out_leaves, _ = tree.flatten(f(*args, **kwargs))
    seeds = {}
    for pos, g in zip(out_positions, gs):
        o = out_leaves[pos]
        if g is not None and type(o) is Tracer:
            seeds[o.node] = seeds[o.node] + g if o.node in seeds else g
    return seeds


_checkpoint_prim = Primitive("checkpoint", _checkpoint_fwd, _checkpoint_bwd, argnames=("inputs",))


def in_recomputation(x) -> bool:
    """True when ``x`` is recorded by the backward's re-run of a ``checkpoint`` block.

    ``Sequential`` runs a layer and its activation as separate ops there instead of one fused op: the
    fused VJP keeps the activation's output and the incoming cotangent until the whole VJP has run, the
    separate ones release them one op earlier, which lowers the peak of the block's backward (the reason
    the block is checkpointed); gradients are bitwise the same."""
    return type(x) is Tracer and x.tape.recomputation


def checkpoint(f):
    """Rematerialise ``f`` in the backward pass instead of keeping its intermediate values.

    Under ``grad``, the wrapped function runs once without recording anything; the tape keeps only its
    inputs.  During the backward it runs ``f`` again on those same inputs (same RNG keys included, so
    dropout masks agree) under a fresh tape and back-propagates through it.  Gradients are identical to
    the un-checkpointed ones; activation memory drops to the block inputs at the cost of one more forward.
    ``f`` must receive every traced value it uses as an argument (not through a closure).

    Example::

        block = fnnet.checkpoint(lambda p, x: model.apply(p, x))
    """

    where = f"checkpoint({getattr(f, '__name__', 'f')})"

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        recorder = recording.current()
        if recorder is not None:  # traced by fnnet.jit
            from .recorded_checkpoint import checkpoint_call
            return checkpoint_call(recorder, _checkpoint_prim, f, where, args, kwargs)
        leaves, treedef = tree.flatten((args, kwargs))
        tape = next((leaf.tape for leaf in leaves if type(leaf) is Tracer), None)
        if tape is None or scope_size():  # under fnnet.vmap: recorded as it runs (same values, more memory)
            return f(*args, **kwargs)
        _check_tapes(where, tape, leaves)  # a leaked tracer: the same error an op raises
        values = [value_of(leaf) for leaf in leaves]
        traced_positions = tuple(i for i, leaf in enumerate(leaves) if type(leaf) is Tracer)
        plain_args, plain_kwargs = tree.unflatten(treedef, values)
        out = f(*plain_args, **plain_kwargs)
        out_leaves, out_def = tree.flatten(out)
        out_positions = tuple(i for i, o in enumerate(out_leaves) if _is_float_array(o))
        if not out_positions:
            return out
        residuals = (f, treedef, values, traced_positions, out_positions)
        parents = tuple(leaves[i].node for i in traced_positions)
        shapes = tuple(values[i].shape for i in traced_positions)
        nbytes = sum(values[i].nbytes for i in traced_positions)
        nodes = tape.record(_checkpoint_prim, residuals, {}, parents, shapes, len(out_positions), nbytes)
        if type(nodes) is int:
            nodes = (nodes,)
        new_leaves = list(out_leaves)
        for pos, node in zip(out_positions, nodes):
            new_leaves[pos] = Tracer(plain_array(where, "an output", out_leaves[pos]), tape, node)
        return tree.unflatten(out_def, new_leaves)

    return wrapped

"""``fnnet.checkpoint`` under ``fnnet.jit``: the block's forward is recorded op by op; its backward is one
step that reruns the block eagerly on the replay's values, exactly as the eager checkpoint does."""

from __future__ import annotations

from .. import tree
from .recording import Recorder, _foreign
from .tape import Tracer

__all__ = ["checkpoint_call"]


def checkpoint_call(recorder: Recorder, prim, f, where: str, args, kwargs):
    """``checkpoint(f)(*args, **kwargs)`` while ``recorder`` traces (``prim`` is the checkpoint entry)."""
    leaves, treedef = tree.flatten((args, kwargs))
    tape = next((leaf.tape for leaf in leaves if type(leaf) is Tracer and leaf.tape is not recorder.root), None)
    if tape is None:  # nothing is differentiated here: the block's ops are recorded as they run
        return f(*args, **kwargs)
    for leaf in leaves:
        if type(leaf) is Tracer and leaf.tape is not recorder.root and (leaf.tape is not tape or not tape.active):
            raise _foreign(where)
    exported = [recorder.export(leaf) for leaf in leaves]
    run_args, run_kwargs = tree.unflatten(treedef, exported)
    out_leaves, out_def = tree.flatten(f(*run_args, **run_kwargs))
    out_positions = tuple(i for i, o in enumerate(out_leaves) if _is_float(o))
    if not out_positions:
        return tree.unflatten(out_def, out_leaves)
    values = [leaf.value if type(leaf) is Tracer else leaf for leaf in leaves]
    traced_positions = tuple(i for i, leaf in enumerate(leaves) if type(leaf) is Tracer and leaf.tape is tape)
    make = _Residuals(f, treedef, traced_positions, out_positions)
    residuals = make(*values)
    res_slot = recorder.new_slot(residuals)
    recorder.step(make, [recorder.slot_of(e) for e in exported], res_slot)
    parents = tuple(leaves[i].node for i in traced_positions)
    shapes = tuple(values[i].shape for i in traced_positions)
    nbytes = sum(values[i].nbytes for i in traced_positions)
    nodes = tape.record(prim, residuals, {}, parents, shapes, len(out_positions), nbytes)
    nodes = (nodes,) if type(nodes) is int else nodes
    recorder.entries[(id(tape), nodes[0])] = (res_slot, {}, ())
    new_leaves = list(out_leaves)
    for pos, node in zip(out_positions, nodes):
        o = out_leaves[pos]
        tape.slots[node] = recorder.slot_of(o)
        new_leaves[pos] = Tracer(o.value if type(o) is Tracer else o, tape, node)
    return tree.unflatten(out_def, new_leaves)


def _is_float(o) -> bool:
    from .transforms import _is_float_array

    return _is_float_array(o.value if type(o) is Tracer else o)


class _Residuals:
    """Step: the checkpoint entry's residuals from the block's input values."""

    __slots__ = ("f", "treedef", "traced_positions", "out_positions")

    def __init__(self, f, treedef, traced_positions, out_positions):
        self.f, self.treedef = f, treedef
        self.traced_positions, self.out_positions = traced_positions, out_positions

    def __call__(self, *values):
        return (self.f, self.treedef, list(values), self.traced_positions, self.out_positions)

"""``Remat``: gradient checkpointing (rematerialisation) as a layer.

``Remat(block)`` computes exactly what ``block`` computes, but under ``fnnet.grad`` the tape keeps only the
block's inputs (its params, ``x``); the backward pass re-runs the block's forward from them, with the same
key (so dropout masks agree), and back-propagates through that recomputation (``fnnet.checkpoint``).
Activation memory inside the block is traded for one extra forward of the block.

Params and state are the wrapped layer's own trees, *not* nested under an extra key::

    Remat(Linear(3)).init(key, (None, 4)) == Linear(3).init(key, (None, 4))     # {"weight", "bias"}

so a checkpointed model and the plain one share params, state, optimizer state and checkpoint files;
wrapping or unwrapping blocks is a change of the model description only.

When does it save memory?  The tape already shares arrays between ops (ReLU saves its output, which is
the next Linear's saved input), so a block saves memory when it holds *several* distinct residual arrays:
a Conv-BatchNorm-ReLU block (conv input, normalised input, ReLU output -> one input), or a group of
several Linear-ReLU pairs (one array per pair -> one per group; with ``n`` layers in groups of about
``sqrt(n)`` the activation memory drops from ``n`` to about ``2 sqrt(n)`` arrays).  Wrapping each single
Linear-ReLU pair keeps one array per pair either way.

``record_activations`` sees through ``Remat``: the same paths and layer types as the plain model, and
gradient statistics too (the recomputation in the backward records under the block's own path).
``fnnet.layers.walk`` does too: ``Remat``'s one child is unnamed and has ``Remat``'s own path, so
``summary``, ``precompile`` and ``fnnet.io.load_torch_state_dict`` treat a checkpointed model like the plain one.
"""

from __future__ import annotations

import contextlib

import attrs
import numpy as np

from .. import ops
from . import recording
from .base import USER_ERRORS, Layer, numel, register
from .walking import is_leaf

__all__ = ["Remat"]


def _check_layer(instance, attribute, value):
    if not (hasattr(value, "init") and hasattr(value, "apply") and hasattr(value, "out_shape")):
        raise TypeError(f"Remat: block must be a layer (needs init/apply/out_shape), got {value!r}")


@contextlib.contextmanager
def _recording_path(recorder, path):
    """Give ``recorder`` the layer path it had when ``Remat.apply`` ran, so the recomputation during the
    backward (when the path stack is empty) records activations and gradients under the right names."""
    if recorder is None or recording.current() is not recorder:
        yield
        return
    with recorder.at_path(path):
        yield


#: how ``fnnet.checkpoint`` names the function Remat checkpoints in its own errors (a leaked tracer)
_CHECKPOINT_PREFIX = "checkpoint(run): "


def _name_wrapped_layer(error, layer):
    """Let a container's error prefix read ``3 (Remat(Linear)): ...`` for an error of a wrapped single layer
    (a wrapped container's errors already carry their own path, e.g. ``3/1 (Linear): ...``); an error of the
    checkpoint itself is returned renamed ``Remat(Linear): ...``, as the layer's own errors read."""
    if getattr(error, "fnnet_path", None) is not None or getattr(error, "fnnet_layer", None) is not None:
        return error
    kind, message = type(layer).__name__, str(error.args[0]) if error.args else str(error)
    renamed = message.startswith(_CHECKPOINT_PREFIX)
    for prefix in (f"{kind}: ", _CHECKPOINT_PREFIX):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if renamed:
        error = type(error)(f"Remat({kind}): {message}")
    error.fnnet_layer, error.fnnet_message = f"Remat({kind})", message
    return error


@register
@attrs.frozen
class Remat(Layer):
    """Checkpoint ``block``: same outputs, params and state; under ``grad`` its intermediate values are
    recomputed in the backward instead of being kept.

    Args:
        block: any layer (a ``Sequential``, a single layer, another ``Remat``).

    Params / state: exactly ``block``'s (no extra nesting).  Shapes: those of ``block``.

    Gradients are bit-for-bit those of the plain model (the backward runs the same kernels on the same
    values); stateful layers return the state of the first forward (the recomputation's state is
    discarded, so running statistics are updated once).  Cost: one more forward of the block per step.

    Example::

        block = lambda: Sequential([Conv2D(32, 3, padding=1), BatchNorm(), ReLU()])
        model = Sequential([Remat(block()), Remat(block()), MaxPool2D(2), Flatten(), Linear(10)])
        params, state = model.init(key, (None, 1, 28, 28)), model.init_state((None, 1, 28, 28))
        # the same params work for the model without Remat
        grads, (state, _) = fnnet.grad(loss, has_aux=True)(params, state, x, y, key)

    Reference: Chen, Xu, Zhang and Guestrin, "Training deep nets with sublinear memory cost" (2016).
    """

    block: Layer = attrs.field(validator=_check_layer)

    rematerializes = True

    @property
    def has_state(self):
        return self.block.has_state

    def children(self):
        return ((None, self.block),)  # not nested: the block's params are Remat's

    def child_in_shapes(self, in_shape):
        return (in_shape,)

    def tape_bytes(self, in_shape, dtype):
        """The block's input, the one activation the checkpoint keeps (the block's own ops keep theirs
        only while it is recomputed in the backward)."""
        return numel(in_shape) * np.dtype(dtype).itemsize

    def init(self, key, in_shape, dtype=np.float32):
        return self.block.init(key, in_shape, dtype)

    def init_state(self, in_shape, dtype=np.float32):
        return self.block.init_state(in_shape, dtype)

    def out_shape(self, in_shape):
        return self.block.out_shape(in_shape)

    def apply(self, params, x, *, state=None, key=None, train=False):
        layer = self.block
        recorder = recording.current()
        path = () if recorder is None else recorder.path

        def run(p, xv, s, k):
            with _recording_path(recorder, path):
                if s is None:
                    return layer.apply(p, xv, key=k, train=train)
                return layer.apply(p, xv, state=s, key=k, train=train)

        try:
            out = ops.checkpoint(run)(params, x, state, key)
        except USER_ERRORS as e:
            named = _name_wrapped_layer(e, layer)
            if named is e:
                raise
            raise named from e
        if state is None:
            y, new_state = out, None
        else:
            y, new_state = out[0], ops.stop_gradient(out[1])  # plain arrays, from the first forward
        if recorder is not None and path and is_leaf(layer):
            # the recorder sees Remat as a container (it has children); record the wrapped layer's
            # output under Remat's path, as the plain model would
            y = recorder.pop(layer, y)
            recorder.push(path[-1])
        return y if state is None else (y, new_state)

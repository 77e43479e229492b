"""Optimizers as pure ``(init, update)`` pairs over trees, optax-style.

    opt = fnnet.optim.adamw(fnnet.optim.schedules.cosine_decay(1e-3, 10_000))
    opt_state = opt.init(params)
    grads = fnnet.grad(loss)(params, x, y)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = fnnet.optim.apply_updates(params, updates)

The common optimizers (:mod:`~fnnet.optim.alias`) run one fused Numba pass per parameter leaf, and
``opt.update_and_apply(grads, opt_state, params, donate=True)`` makes that pass write the new params and
buffers over the old ones (:mod:`~fnnet.optim.donation`); the building blocks
(:mod:`~fnnet.optim.transforms`) compose into custom ones with :func:`chain`, and :mod:`~fnnet.optim.masking`
applies optimizers to part of a tree (``masked``, ``multi_transform``).
"""

from . import schedules
from .alias import AdagradState, AdamState, RmspropState, SgdState, adagrad, adam, adamw, rmsprop, sgd
from .accumulation import accumulate, accumulate_gradients
from .base import EmptyState, GradientTransformation, apply_updates
from .masking import MaskedState, MultiTransformState, masked, multi_transform, set_to_zero
from .transforms import (
    ScaleByAdagradState, ScaleByAdamState, ScaleByRmsState, ScaleByScheduleState, TraceState, add_weight_decay,
    chain, clip_by_global_norm, global_norm, scale, scale_by_adagrad, scale_by_adam, scale_by_learning_rate,
    scale_by_momentum, scale_by_rms, scale_by_schedule, trace,
)

__all__ = [
    "AdagradState", "AdamState", "EmptyState", "GradientTransformation", "RmspropState", "ScaleByAdagradState",
    "ScaleByAdamState", "ScaleByRmsState", "ScaleByScheduleState", "SgdState", "TraceState", "accumulate",
    "accumulate_gradients", "adagrad", "adam", "adamw", "add_weight_decay", "apply_updates", "chain",
    "clip_by_global_norm", "global_norm", "rmsprop", "scale", "scale_by_adagrad", "scale_by_adam",
    "scale_by_learning_rate", "scale_by_momentum", "scale_by_rms", "scale_by_schedule", "schedules", "sgd",
    "trace",
]
__all__ += ["MaskedState", "MultiTransformState", "masked", "multi_transform", "set_to_zero"]

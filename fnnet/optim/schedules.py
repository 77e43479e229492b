"""Learning-rate schedules: pure functions ``step (int >= 0) -> float``.

A schedule holds no counter: the optimizer state does, and evaluates the schedule at the number of
updates already made (0 for the first update), as PyTorch's ``lr_scheduler`` does when it is stepped
once after every optimizer step.  Pass a schedule wherever a learning rate is accepted::

    opt = fnnet.optim.adam(fnnet.optim.schedules.warmup_cosine_decay(0.0, 1e-3, 100, 10_000))
"""

from __future__ import annotations

import math
import numbers

import attrs

from .base import check_hyper

__all__ = ["Schedule", "constant", "step_decay", "exponential_decay", "cosine_decay", "warmup_cosine_decay"]


def _check_step(where, step) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"{where}: step must be an int, got {type(step).__name__} {step!r}")
    if step < 0:
        raise ValueError(f"{where}: step must be >= 0, got {step}")
    return int(step)


def _positive_int(where, name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


@attrs.frozen
class Schedule:
    """A named schedule: ``schedule(step) -> float``; its repr shows the hyperparameters."""

    name: str
    fn: object = attrs.field(repr=False)
    hyper: dict = attrs.field(factory=dict)

    def __call__(self, step) -> float:
        return float(self.fn(_check_step(f"fnnet.optim.schedules.{self.name}", step)))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{self.name}({args})"


def constant(value: float) -> Schedule:
    """``lr(step) = value``.

    Args:
        value: a finite float ``>= 0``.
    """
    value = check_hyper("fnnet.optim.schedules.constant", "value", value)
    return Schedule("constant", lambda step: value, {"value": value})


def step_decay(init: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``lr(step) = init * gamma ** (step // step_size)`` (PyTorch's ``StepLR``).

    Args:
        init: the initial value, ``>= 0``.
        step_size: the number of steps between two decays, ``> 0``.
        gamma: the factor applied at each decay, ``>= 0``.
    """
    where = "fnnet.optim.schedules.step_decay"
    init = check_hyper(where, "init", init)
    step_size = _positive_int(where, "step_size", step_size)
    gamma = check_hyper(where, "gamma", gamma)
    return Schedule("step_decay", lambda step: init * gamma ** (step // step_size),
                    {"init": init, "step_size": step_size, "gamma": gamma})


def exponential_decay(init: float, decay_rate: float, transition_steps: int = 1, staircase: bool = False) -> Schedule:
    """``lr(step) = init * decay_rate ** (step / transition_steps)`` (``floor`` of the exponent when
    ``staircase``).  ``transition_steps=1`` is PyTorch's ``ExponentialLR(gamma=decay_rate)``.

    Args:
        init: the initial value, ``>= 0``.
        decay_rate: the factor per ``transition_steps`` steps, ``> 0``.
        transition_steps: ``> 0``.
        staircase: decay in discrete jumps.
    """
    where = "fnnet.optim.schedules.exponential_decay"
    init = check_hyper(where, "init", init)
    decay_rate = check_hyper(where, "decay_rate", decay_rate, low_open=True)
    transition_steps = _positive_int(where, "transition_steps", transition_steps)
    staircase = bool(staircase)

    def fn(step):
        exponent = step // transition_steps if staircase else step / transition_steps
        return init * decay_rate ** exponent

    return Schedule("exponential_decay", fn, {"init": init, "decay_rate": decay_rate,
                                              "transition_steps": transition_steps, "staircase": staircase})


def cosine_decay(init: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Cosine annealing from ``init`` to ``alpha * init`` over ``decay_steps`` steps, then constant
    (Loshchilov & Hutter, 2017, without restarts).

    ``lr(step) = init * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)``;
    PyTorch's ``CosineAnnealingLR(T_max=decay_steps, eta_min=alpha * init)`` in closed form.

    Args:
        init: the initial value, ``>= 0``.
        decay_steps: ``> 0``.
        alpha: the final value as a fraction of ``init``, in ``[0, 1]``.
    """
    where = "fnnet.optim.schedules.cosine_decay"
    init = check_hyper(where, "init", init)
    decay_steps = _positive_int(where, "decay_steps", decay_steps)
    alpha = check_hyper(where, "alpha", alpha, high=1.0)

    def fn(step):
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
        return init * ((1.0 - alpha) * cosine + alpha)

    return Schedule("cosine_decay", fn, {"init": init, "decay_steps": decay_steps, "alpha": alpha})


def warmup_cosine_decay(init: float, peak: float, warmup_steps: int, decay_steps: int, end: float = 0.0) -> Schedule:
    """Linear warm-up from ``init`` to ``peak`` over ``warmup_steps`` steps, then cosine decay to ``end``.

    ``decay_steps`` counts the whole schedule *including* the warm-up (optax's convention): the cosine part
    lasts ``decay_steps - warmup_steps`` steps, and ``lr(step) = end`` afterwards.

    Args:
        init: the value at step 0, ``>= 0``.
        peak: the value at step ``warmup_steps``, ``>= 0``.
        warmup_steps: ``>= 0``.
        decay_steps: ``> warmup_steps``.
        end: the final value, ``>= 0``.
    """
    where = "fnnet.optim.schedules.warmup_cosine_decay"
    init = check_hyper(where, "init", init)
    peak = check_hyper(where, "peak", peak)
    end = check_hyper(where, "end", end)
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral) or warmup_steps < 0:
        raise ValueError(f"{where}: warmup_steps must be an int >= 0, got {warmup_steps!r}")
    warmup_steps = int(warmup_steps)
    decay_steps = _positive_int(where, "decay_steps", decay_steps)
    if decay_steps <= warmup_steps:
        raise ValueError(f"{where}: decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps}); "
                         "decay_steps counts the whole schedule, warm-up included")
    cosine_steps = decay_steps - warmup_steps

    def fn(step):
        if step < warmup_steps:
            return init + (peak - init) * step / warmup_steps
        t = min(step - warmup_steps, cosine_steps)
        return end + (peak - end) * 0.5 * (1.0 + math.cos(math.pi * t / cosine_steps))

    return Schedule("warmup_cosine_decay", fn, {"init": init, "peak": peak, "warmup_steps": warmup_steps,
                                                "decay_steps": decay_steps, "end": end})

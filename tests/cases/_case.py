from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class OpCase:
    """One row of the op table.

    fn: the fnnet call, taking ``args`` (float64 arrays first, then anything else).
    numpy_ref / torch_ref: the same computation on numpy arrays / torch float64 tensors (None if absent).
    covers: the registered primitive names this row exercises.
    grad_argnums: which args are differentiated (default: every float ndarray argument).
    """

    id: str
    fn: Callable
    args: tuple
    covers: tuple
    numpy_ref: Callable | None = None
    torch_ref: Callable | None = None
    grad_argnums: tuple | None = None
    rtol: float = 1e-6
    atol: float = 1e-9
    grad_rtol: float = 1e-5
    kwargs: dict = field(default_factory=dict)

    def argnums(self):
        if self.grad_argnums is not None:
            return self.grad_argnums
        return tuple(i for i, a in enumerate(self.args) if isinstance(a, np.ndarray) and a.dtype.kind == "f")


def rand(*shape, seed=0, low=None, high=None, positive=False, away_from=None):
    """Deterministic float64 test data; ``away_from`` keeps values at least 0.05 from the given points
    (kinks such as 0 for relu/abs) so central differences stay valid."""
    rng = np.random.default_rng(abs(hash((shape, seed))) % 2**32)
    if low is not None:
        x = rng.uniform(low, high, size=shape)
    else:
        x = rng.standard_normal(shape)
    if positive:
        x = np.abs(x) + 0.5
    if away_from is not None:
        for p in away_from:
            close = np.abs(x - p) < 0.05
            x = np.where(close, x + np.where(x >= p, 0.1, -0.1), x)
    return x

"""Cases: ``(seed, index)`` -> one target, one mutation, one argument, all drawn reproducibly.

Every applicable (target, mutation) pair is listed once, in an order fixed by a constant shuffle (so any
prefix of the list spreads over targets and mutations); case ``index`` takes pair ``index % len(pairs)``
and draws everything else (canonical values, the argument, the mutation's details) from
``np.random.default_rng([seed, index])``.  A case therefore reproduces from its id ``"seed:index"`` alone,
for a given version of the spec table.
"""

from __future__ import annotations

import functools
import importlib
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

from .classify import judge
from .layer_specs import LAYER_SPECS
from .mutations import MUTATIONS
from .op_specs import OP_SPECS

__all__ = ["Case", "targets", "pairs", "case", "run_case"]


def targets(source: str | None = None) -> tuple:
    """The spec table of ops and layers, or, given ``"module:attribute"``, that list of specs instead (the
    fuzzer's own tests use it for deliberately broken ops)."""
    if not source:
        return tuple(OP_SPECS) + tuple(LAYER_SPECS)
    module, _, attribute = source.partition(":")
    return tuple(getattr(importlib.import_module(module), attribute))


@functools.lru_cache(maxsize=4)
def pairs(source: str | None = None) -> tuple:
    """Every applicable ``(target, mutation)`` pair, in a fixed pseudo-random order."""
    found = []
    for spec in targets(source):
        inst = spec.build(np.random.default_rng(0))
        for mutation in MUTATIONS:
            if any(mutation.applies(inst, k) for k in range(len(inst.args))):
                found.append((spec, mutation))
    order = np.random.default_rng(20240601).permutation(len(found))
    return tuple(found[i] for i in order)


@dataclass(frozen=True)
class Case:
    seed: int
    index: int
    spec: object
    mutation: object

    @property
    def id(self) -> str:
        return f"{self.seed}:{self.index}"

    @property
    def repro(self) -> str:
        return f"python -m fnnet.testing.fuzz --case {self.id}"

    def plan(self):
        """``(instance, plan)``: the canonical call and its mutation, drawn from the case's generator."""
        rng = np.random.default_rng([self.seed, self.index])
        inst = self.spec.build(rng)
        eligible = [k for k in range(len(inst.args)) if self.mutation.applies(inst, k)]
        inputs = [k for k in eligible if k < inst.n_inputs]
        if inst.layer is not None and inputs and rng.random() < 0.5:
            eligible = inputs
        k = int(rng.choice(eligible))
        return inst, self.mutation.make(rng, inst, k)


def case(seed: int, index: int, source: str | None = None) -> Case:
    spec, mutation = pairs(source)[index % len(pairs(source))]
    return Case(seed, index, spec, mutation)


def run_case(seed: int, index: int, source: str | None = None) -> dict:
    """Build and judge one case in this process: ``{"index", "id", "target", "mutation", "note", "class",
    "detail"}``.  An exception of the fuzzer itself is reported as ``fuzzer-error`` with its traceback."""
    c = case(seed, index, source)
    result = {"index": index, "id": c.id, "target": c.spec.name, "mutation": c.mutation.name, "note": ""}
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            inst, plan = c.plan()
            result["note"] = f"argument {plan.arg}: {plan.note}" if plan.arg >= 0 else plan.note
            cls, detail = judge(inst, plan, [seed, index])
    except Exception:  # noqa: BLE001
        cls, detail = "fuzzer-error", " | ".join(traceback.format_exc().strip().splitlines()[-6:])
    result["class"], result["detail"] = cls, detail
    return result

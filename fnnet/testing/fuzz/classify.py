"""Judging one case: exactly one class per case.

* ``clean-error``: a TypeError, ValueError or IndexError (subclasses count) whose message names the op, or
  the layer class/path (for a layer, also an op it calls), before its first ``": "``;
* ``ok``: accepted, and forward and gradient equal the reference of the mutation's mode (``mutations.py``);
* failures: ``crash`` and ``hang`` (decided by the runner), ``wrong-forward``, ``wrong-gradient``,
  ``other-exception`` (any other exception, or a clean type whose message does not name the op/layer),
  and ``fuzzer-error`` (the fuzzer itself broke: a bug to fix here, not in the op).
"""

from __future__ import annotations

import os
import re

import numpy as np

from ... import tree
from .oracle import Weights, cast64, close, compare, evaluate, identical, magnitude

__all__ = ["CLASSES", "FAILURES", "CLEAN_TYPES", "judge", "error_class"]

CLEAN_TYPES = (TypeError, ValueError, IndexError)
FAILURES = ("crash", "hang", "wrong-forward", "wrong-gradient", "other-exception", "fuzzer-error")
CLASSES = ("ok", "clean-error") + FAILURES
VALUES_TOL = 1e-3
#: With huge inputs (about 1e6) float32 rounds their products by about 1e6 * 6e-8 relative, and ill-
#: conditioned maths passes that on (a saturated softmax times a huge key: attention's gradients are then
#: off by 1e4 in float32 and about 0 in float64).  So forward values are compared on the scale of the
#: inputs, and gradients for their NaN/inf positions only: what this mutation looks for is overflow.
#: ``fnnet.grad`` may itself refuse a differentiated argument before any op runs (e.g. a masked array).
GRAD_NAMES = ("value_and_grad", "grad")


class Verdict(Exception):
    """Raised inside :func:`judge` to stop at the first finding."""

    def __init__(self, cls, detail):
        super().__init__(cls, detail)
        self.cls, self.detail = cls, detail


def _line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _origin(e) -> str:
    """``file:line`` of the innermost frame of fnnet (outside the fuzzer) that the exception passed."""
    tb, where = e.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename.replace(os.sep, "/")
        if "/fnnet/" in name and "/testing/fuzz/" not in name:
            where = f"{name[name.rindex('/fnnet/') + 1:]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def error_class(inst, e, where) -> tuple:
    message = str(e.args[0]) if e.args else str(e)
    head = message.split(": ", 1)[0] if ": " in message else ""
    names = inst.names + (GRAD_NAMES if "gradient" in where else ())
    named = any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", head) for n in names)
    cls = "clean-error" if isinstance(e, CLEAN_TYPES) and named else "other-exception"
    origin = _origin(e)
    return cls, _line(f"{where}: {type(e).__name__}: {message}" + (f" [at {origin}]" if origin else ""))


def _fail_on_error(inst, run, where):
    if run.error is not None:
        cls, detail = error_class(inst, run.error, f"{where} ({run.phase})")
        raise Verdict(cls if cls == "other-exception" else "wrong-gradient",
                      f"the mutated call was differentiated, but {detail}")


def _check(cls, message, prefix=""):
    if message:
        raise Verdict(cls, _line(prefix + message))


def _compare_grads(got, ref, positions, check):
    for p in positions:
        _check("wrong-gradient", compare([got.grads.get(p)], [ref.grads.get(p)], check, "gradient"),
               f"argument {p}: ")


def _out_dtype(got, dtype):
    for i, (kind, leaf) in enumerate(zip(got.kinds, got.outputs)):
        if kind == "array" and leaf.dtype.kind == "f" and leaf.dtype != dtype:
            raise Verdict("wrong-forward", f"output {i} has dtype {leaf.dtype}, expected {dtype}")


def _float_positions(plan, positions):
    """The positions whose mutated argument is still a float array or a list of floats (grad traces them)."""
    return [p for p in positions
            if isinstance(plan.args[p], (np.ndarray, list)) and np.asarray(plan.args[p]).dtype.kind == "f"]


def _reference(inst, plan, diff, weights):
    """The run the mutated one is compared with, per mode."""
    if plan.mode in ("same", "leak"):
        return evaluate(inst, plan.ref_args or inst.args, diff, weights)
    if plan.mode in ("mixed", "promote"):
        return evaluate(inst, inst.args, inst.diff_positions(), weights)
    return evaluate(inst, plan.ref_args or cast64(inst, plan.args), diff, weights)


def _numpy_reference(inst, plan):
    if inst.ref is None:
        return None
    try:
        with np.errstate(all="ignore"):
            out = inst.ref(*cast64(inst, plan.args))
    except Exception:  # noqa: BLE001  (NumPy rejects the shape: nothing to compare with)
        return None
    return [np.asarray(v) for v in tree.leaves(out)]


def _nan_must_propagate(inst, plan, got, weights):
    """Outputs that depend on the NaN positions (found by moving the canonical values there by +-1000 in
    float64) must be NaN."""
    k = plan.arg
    nan_at = np.isnan(plan.args[k]) & ~np.isnan(inst.args[k])
    base = cast64(inst, inst.args)
    runs = []
    for delta in (0.0, 1e3, -1e3):
        moved = list(base)
        moved[k] = np.where(nan_at, base[k] + delta, base[k])
        runs.append(evaluate(inst, moved, (), weights).outputs)
    if any(r is None for r in runs):
        return
    for i, leaf in enumerate(got.outputs):
        b, up, down = (np.asarray(r[i], dtype=np.float64) for r in runs)
        depends = (up != b) | (down != b)
        silent = depends & ~np.isnan(np.asarray(leaf, dtype=np.float64))
        if silent.any():
            at = tuple(int(j) for j in np.argwhere(silent)[0]) if silent.ndim else ()
            raise Verdict("wrong-forward", f"output {i}: NaN input does not propagate: {int(silent.sum())} "
                                           f"dependent value(s) are not NaN, first at {at}: got {leaf[at]!r}")


def _out_shape(inst, plan, got):
    layer = inst.layer
    if layer is None or plan.arg < 0 or plan.arg >= inst.n_inputs:
        return
    shapes = [np.shape(a) for a in plan.args[:inst.n_inputs]]
    try:
        expected = layer.out_shape(tuple(shapes) if inst.n_inputs > 1 else shapes[0])
    except Exception as e:  # noqa: BLE001
        raise Verdict("wrong-forward", _line(f"apply accepted shapes {shapes} but out_shape raised "
                                             f"{type(e).__name__}: {e}")) from None
    flat = list(expected) if expected and isinstance(expected[0], tuple) else [expected]
    got_shapes = [tuple(np.shape(v)) for v in got.outputs[:len(flat)]]
    if got_shapes != [tuple(s) for s in flat]:
        raise Verdict("wrong-forward", f"out_shape says {flat}, apply returned {got_shapes}")


def _scale(plan, arrays, gradient=False):
    if plan.special != "huge":
        return magnitude(arrays)
    if gradient:
        return np.inf
    return magnitude(arrays) * magnitude(a for a in plan.args if isinstance(a, np.ndarray) and a.dtype.kind == "f")


def _judge_forward(inst, plan, got, ref, weights):
    mode = plan.mode
    if mode in ("same", "leak", "mixed"):
        _check("wrong-forward", compare(got.outputs, ref.outputs, identical))
    elif mode in ("cast", "promote"):
        if plan.out_dtype is not None:
            _out_dtype(got, plan.out_dtype)
        scale = magnitude(ref.outputs)
        _check("wrong-forward", compare(got.outputs, ref.outputs, lambda g, e: close(g, e, plan.tol, scale=scale)),
               "vs fnnet in float64: " if mode == "cast" else "vs the float32 call: ")
    elif mode in ("shape", "values"):
        tol = VALUES_TOL if mode == "values" else plan.tol
        numpy_ref = _numpy_reference(inst, plan)
        free = plan.special in ("inf", "-inf")
        references = [("the NumPy reference", numpy_ref)] if numpy_ref is not None else []
        if numpy_ref is None or mode == "shape":
            references.append(("fnnet in float64", ref.outputs))
        for name, expected in references:
            scale = _scale(plan, expected)
            _check("wrong-forward", compare(got.outputs, expected, lambda g, e: close(g, e, tol, free, scale)),
                   f"vs {name}: ")
        if plan.special == "nan" and numpy_ref is None:
            _nan_must_propagate(inst, plan, got, weights)
        if mode == "shape":
            _out_shape(inst, plan, got)


def _judge_gradient(inst, plan, got, ref, diff):
    if got.grads is None or ref.grads is None:
        return
    if plan.mode in ("same", "leak", "mixed"):
        _compare_grads(got, ref, diff, identical)
        return
    tol = VALUES_TOL if plan.mode == "values" else plan.tol
    positions = _float_positions(plan, diff)
    scale = _scale(plan, [ref.grads.get(p) for p in positions], gradient=True)
    _compare_grads(got, ref, positions, lambda g, e: close(g, e, tol, scale=scale))


def judge(inst, plan, seed) -> tuple:
    """``(class, detail)`` for one mutated call."""
    weights = Weights(seed)
    try:
        if plan.warmup is not None:
            try:
                plan.warmup()
            except Exception as e:  # noqa: BLE001
                return error_class(inst, e, "first call")
        diff = plan.diff if plan.diff is not None else inst.diff_positions()
        got = evaluate(inst, plan.args, diff, weights)
        if got.outputs is None:
            return error_class(inst, got.error, "forward")
        _check("wrong-forward", "returned a traced value outside grad" if "tracer" in got.kinds else None)
        _check("wrong-forward", f"changed its input argument(s) {got.modified} in place" if got.modified else None)
        _check("wrong-forward", f"accepted {plan.note} for argument {plan.arg}" if plan.mode == "reject" else None)
        ref = _reference(inst, plan, diff, weights)
        if ref.outputs is None:
            cls, detail = error_class(inst, ref.error, "reference run")
            raise Verdict("wrong-forward" if cls == "clean-error" else cls,
                          f"accepted, but the equivalent reference call raised: {detail}")
        _judge_forward(inst, plan, got, ref, weights)
        if got.error is not None:
            return error_class(inst, got.error, "gradient")
        _check("wrong-forward", compare(got.traced or [], got.outputs if got.traced else [], identical),
               "forward under grad differs from forward outside grad: ")
        _fail_on_error(inst, ref, "reference gradient")
        _judge_gradient(inst, plan, got, ref, diff)
        return "ok", ""
    except Verdict as v:
        return v.cls, v.detail

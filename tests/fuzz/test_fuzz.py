"""The fuzzer (``fnnet.testing.fuzz``): its coverage of the public API, its own correctness on deliberately
broken ops, and 3,000 cases over every op, loss and layer with zero failures."""

import numpy as np
import pytest

from fnnet import tree
from fnnet.testing.fuzz import runner
from fnnet.testing.fuzz.cases import case, pairs, run_case
from fnnet.testing.fuzz.classify import CLASSES, FAILURES
from fnnet.testing.fuzz.layer_specs import LAYER_SPECS
from fnnet.testing.fuzz.op_specs import OP_SPECS
from fnnet.testing.fuzz.oracle import Weights, cast64, close, compare, evaluate
from fnnet.testing.fuzz.specs import EXCLUDED, public_targets, uncovered

BROKEN = "tests.fuzz.broken_specs:TARGETS"
CI_CASES = max(3000, len(pairs()))  # every (target, mutation) pair at least once


def test_every_public_op_loss_and_layer_has_a_spec():
    missing = uncovered(OP_SPECS, LAYER_SPECS)
    assert not missing, (
        f"no fuzz spec for {missing}: add one line to fnnet/testing/fuzz/op_specs.py (OpSpec(name, fn, args, "
        "numpy_reference)) or layer_specs.py (LayerSpec(name, layer, in_shape)), or an entry with a reason to "
        "EXCLUDED in specs.py")
    assert set(EXCLUDED) <= set(public_targets()), "EXCLUDED names something that is no longer public"


def test_fuzz_every_op_loss_and_layer():
    """At least 3,000 cases (every target x mutation pair once) in 2 worker processes; no failure allowed.

    It runs before the tests below on purpose: on a cold cache its two workers compile the table's kernels
    in parallel (``runner._warm_order``), and the tests below, which call the kernels in this process,
    then load them from the disk cache instead of compiling them on one core.

    On failure the message lists every failing case with its repro command."""
    results = runner.run(range(CI_CASES), seed=0, jobs=2)
    failures = [r for r in results if r["class"] in FAILURES]
    assert not failures, "\n" + runner.report(results, every_failure=True)


@pytest.mark.parametrize("spec", OP_SPECS + LAYER_SPECS, ids=lambda s: s.name)
def test_every_canonical_call_runs_and_matches_its_numpy_reference(spec):
    """The table itself: each canonical call (float32, plain arrays) gives a forward and a gradient, and agrees
    with the spec's NumPy reference; every mutation is judged against this call."""
    inst = spec.build(np.random.default_rng(0))
    run = evaluate(inst, inst.args, inst.diff_positions(), Weights([0]))
    assert run.error is None, f"{spec.name}: {run.phase} raised {run.error!r}"
    if inst.ref is not None:
        ref = [np.asarray(v) for v in tree.leaves(inst.ref(*cast64(inst, inst.args)))]
        difference = compare(run.outputs, ref, lambda g, e: close(g, e, 1e-5))
        assert difference is None, f"{spec.name} vs its NumPy reference: {difference}"


def test_a_case_reproduces_from_its_id():
    first, again = case(7, 123).plan(), case(7, 123).plan()
    assert first[0].target == again[0].target and first[1].note == again[1].note
    for a, b in zip(first[1].args, again[1].args):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert run_case(7, 123)["class"] in CLASSES


def test_each_worker_warms_the_whole_table_from_its_own_end():
    table = tuple(range(10))
    orders = [runner._warm_order(table, slot, 2) for slot in range(2)]
    assert orders == [table, table[::-1]]  # they meet in the middle; after that the other's kernels are cached
    for slots in (1, 3, 4):
        assert all(sorted(runner._warm_order(table, slot, slots)) == list(table) for slot in range(slots))


BROKEN_EXPECTED = [  # (broken target, mutation, the class the fuzzer must give)
    ("nan_relu", "nan", "wrong-forward"),
    ("nan_relu", "float16", "ok"),
    ("nan_relu", "int", "clean-error"),
    ("wrong_vjp", "float64", "wrong-gradient"),
    ("abort", "nan", "crash"),
    ("hang", "inf", "hang"),
    ("unnamed", "float64", "other-exception"),
    ("raw_memory", "fortran", "wrong-forward"),
    ("raw_memory", "strided", "ok"),
]


@pytest.fixture(scope="module")
def broken_results():
    """One worker runs the chosen cases of ``broken_specs``; the hanging one is killed after 5 s."""
    wanted = {(target, mutation) for target, mutation, _ in BROKEN_EXPECTED}
    indices = [i for i, (spec, mutation) in enumerate(pairs(BROKEN)) if (spec.name, mutation.name) in wanted]
    results = runner.run(indices, seed=0, jobs=1, timeout=5.0, source=BROKEN)
    return {(r["target"], r["mutation"]): r for r in results}


@pytest.mark.parametrize("target, mutation, expected", BROKEN_EXPECTED)
def test_the_fuzzer_classifies_deliberately_broken_ops(broken_results, target, mutation, expected):
    got = broken_results[(target, mutation)]
    assert got["class"] == expected, got

"""fnnet.distributed: data-parallel training on MPI.

The MPI tests launch 2 ranks with the ``mpiexec`` that the ``mpich`` wheel installs next to the Python
interpreter (``tests/distributed_worker.py`` holds the scenarios and the shared builders) and compare what
each rank wrote with references computed here in one process.  They are skipped only when mpi4py is not
installed; the backward hook, the sharding arithmetic, the option checks and the missing-extra error are
tested in this process and never skipped.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import fnnet
import fnnet.distributed as dist
import fnnet.layers as L

from . import distributed_worker as worker

HERE = os.path.dirname(os.path.abspath(__file__))
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason='mpi4py is not installed: pip install -e ".[distributed]" '
                               '(the dev extra, which CI installs, includes it)')
TIMEOUT = 180  # seconds per launch: generous for a cold Numba cache, far below a hang


def _mpiexec():
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert found, "mpi4py is installed but no mpiexec was found: pip install mpich (the distributed extra has it)"
    return found


def _env():
    env = dict(os.environ)
    # MPICH's mpiexec runs as root as it is; Open MPI's needs these two (a no-op for MPICH).
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def _command(args, ranks):
    """``mpiexec -n ranks python args...``, or plain ``python args...`` for ``ranks=0`` (no MPI launcher)."""
    return ([_mpiexec(), "-n", str(ranks)] if ranks else []) + [sys.executable, *args]


def _launch(args, ranks=2, timeout=TIMEOUT):
    return subprocess.run(_command(args, ranks), capture_output=True, text=True, timeout=timeout, env=_env(),
                          cwd=HERE)


def _run_worker(scenario, out, ranks=2):
    proc = _launch([os.path.join(HERE, "distributed_worker.py"), scenario, str(out)], ranks)
    assert proc.returncode == 0, f"{scenario} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = []
    for r in range(max(ranks, 1)):
        with np.load(out / f"rank{r}.npz") as npz:
            arrays = dict(npz)
        with open(out / f"rank{r}.json") as fh:
            results.append((arrays, json.load(fh)))
    return results


def _tree_arrays(prefix, t):
    return {f"{prefix}/{p}": np.asarray(x) for p, x in zip(fnnet.tree.paths(t), fnnet.tree.leaves(t))}


def _assert_same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), f"max difference {np.max(np.abs(got.astype(float) - want))}"


def _reference_run(ranks, steps=worker.STEPS):
    """Parameters and states after each step of the one-process reference, as ``{path: array}``."""
    m = worker.model()
    params, state, opt, opt_state = worker.initial(m)
    x, y = worker.batches()
    out = {}
    for t in range(steps):
        params, state, opt_state = worker.reference_step(m, opt, params, state, opt_state, x[t, :ranks],
                                                         y[t, :ranks], worker.step_key(t))
        out.update(_tree_arrays(f"params/{t}", params))
        out.update(_tree_arrays(f"state/{t}", state))
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("collectives")
    return out, _run_worker("collectives", out)


# ------------------------------------------------------------------------------ collectives on 2 ranks
@needs_mpi
@pytest.mark.parametrize("deterministic", [False, True])
def test_allreduce_sum_and_mean_of_float32_float64_float16_trees(two_ranks, deterministic):
    _, ranks = two_ranks
    trees = [worker.tree_for_rank(r) for r in range(2)]
    for arrays, _ in ranks:
        assert int(arrays["size"]) == 2
        for path, a, b in zip(fnnet.tree.paths(trees[0]), fnnet.tree.leaves(trees[0]), fnnet.tree.leaves(trees[1])):
            got_sum = arrays[f"sum/{deterministic}/{path}"]
            assert got_sum.dtype == a.dtype and got_sum.shape == a.shape
            if deterministic or a.dtype.kind != "f":
                _assert_same_bits(got_sum, np.asarray(a + b))
            else:
                np.testing.assert_allclose(got_sum, a + b, rtol=1e-3 if a.dtype == np.float16 else 1e-6)
            if path == "count":
                continue
            got_mean = arrays[f"mean/{deterministic}/{path}"]
            want_mean = fnnet.tree.get(fnnet.optim.accumulate([
                {"x": a.astype(np.float32) if a.dtype == np.float16 else a},
                {"x": b.astype(np.float32) if b.dtype == np.float16 else b}]), "x").astype(a.dtype)
            assert got_mean.dtype == a.dtype
            if deterministic and a.dtype != np.float16:  # accumulate has no float16: compared by value below
                _assert_same_bits(got_mean, want_mean)
            else:
                np.testing.assert_allclose(got_mean, want_mean, rtol=1e-3 if a.dtype == np.float16 else 1e-6)
    for key in ranks[0][0]:
        if key.startswith(("sum/", "mean/")):
            _assert_same_bits(ranks[1][0][key], ranks[0][0][key])  # every rank gets the same bits


@needs_mpi
def test_chunked_packing_gives_the_same_bits_and_kept_results_are_never_reused(two_ranks):
    _, ranks = two_ranks
    for arrays, messages in ranks:
        assert messages["kept_results_intact"]
        for key in arrays:
            if key.startswith(("sum/chunked/", "mean/chunked/")):
                _assert_same_bits(arrays[key], arrays[key.replace("chunked", "False", 1)])


@needs_mpi
def test_deterministic_float16_mean_is_the_rank_order_sum_halved(two_ranks):
    _, ranks = two_ranks
    a, b = (worker.tree_for_rank(r)["nested"][1] for r in range(2))
    want = (a + b) / np.float16(2)
    for arrays, _ in ranks:
        _assert_same_bits(arrays["mean/True/nested/1"], want)


@needs_mpi
def test_broadcast_sends_root_1s_tree_with_namedtuples_and_python_leaves(two_ranks):
    _, ranks = two_ranks
    sent = worker.tree_for_rank(1)
    for arrays, messages in ranks:
        for path, leaf in zip(fnnet.tree.paths(sent), fnnet.tree.leaves(sent)):
            _assert_same_bits(arrays[f"broadcast/{path}"], np.asarray(leaf))
        assert messages["broadcast_rest"] == ["Pair", {"step": 7, "name": "rank1"}]


@needs_mpi
def test_shards_of_the_two_ranks_are_disjoint_slices_of_one_permutation(two_ranks):
    _, ranks = two_ranks
    shards = [arrays["shard"] for arrays, _ in ranks]
    assert [len(s) for s in shards] == [5, 5] and not set(shards[0]) & set(shards[1])
    permutation = fnnet.random.permutation(fnnet.random.key(3), 11)
    np.testing.assert_array_equal(np.concatenate(shards), permutation[:10])


@needs_mpi
@pytest.mark.parametrize("kind, expected", [
    ("shape", r"the leaf '0/bias' is shape \(16,\) dtype float32 on rank 0 but shape \(17,\) dtype float32 on rank 1"),
    ("structure", r"only on rank 1: \['8/bias', '8/weight'\]"),
])
def test_ranks_with_different_params_trees_all_get_a_clear_error(two_ranks, kind, expected):
    _, ranks = two_ranks
    for _, messages in ranks:  # a ValueError on every rank, at the first step, and no hang
        assert f"mismatch_{kind}" in messages
        assert "params trees differ between ranks" in messages[f"mismatch_{kind}"]
        assert re.search(expected, messages[f"mismatch_{kind}"]), messages[f"mismatch_{kind}"]


# ------------------------------------------------------------------------- training steps on 2 ranks
@needs_mpi
@pytest.mark.parametrize("mode", ["det_overlap", "det_serial"])
def test_deterministic_two_rank_steps_equal_accumulate_gradients_bitwise(two_ranks, mode):
    """Dropout (keys fold_in(key, r)) and BatchNorm (states averaged in rank order) included."""
    _, ranks = two_ranks
    reference = _reference_run(2)
    for arrays, _ in ranks:
        for path, want in reference.items():
            _assert_same_bits(arrays[f"{mode}/{path}"], want)


@needs_mpi
@pytest.mark.parametrize("mode, overlap", [("det_overlap", True), ("det_serial", False), ("mpi_overlap", True)])
def test_buckets_leave_while_the_backward_runs(two_ranks, mode, overlap):
    """From the second step on (the first one fixes the buckets), the all-reduce of the last layers'
    buckets has started before the backward reports its last gradient (the first layer's); without overlap
    nothing leaves early."""
    _, ranks = two_ranks
    for arrays, _ in ranks:
        rows = arrays[f"{mode}/sent_during_backward"]
        assert rows[0].tolist() == [0, -1]  # first step: no plan yet
        sent, buckets = rows[1:, 0], rows[1:, 1]
        if overlap:
            assert (buckets > 1).all() and (sent >= 1).all() and (sent < buckets).all(), rows
        else:
            assert (sent == 0).all(), rows


@needs_mpi
def test_mpi_allreduce_steps_agree_to_float_rounding_and_between_ranks(two_ranks):
    _, ranks = two_ranks
    reference = _reference_run(2)
    for path, want in reference.items():
        np.testing.assert_allclose(ranks[0][0][f"mpi_overlap/{path}"], want, rtol=1e-4, atol=1e-6)
        _assert_same_bits(ranks[1][0][f"mpi_overlap/{path}"], ranks[0][0][f"mpi_overlap/{path}"])
    losses = [ranks[0][0][f"mpi_overlap/loss/{t}"] for t in range(worker.STEPS)]
    assert losses == [ranks[1][0][f"mpi_overlap/loss/{t}"] for t in range(worker.STEPS)]


@needs_mpi
def test_a_two_rank_checkpoint_resumes_in_one_process(two_ranks):
    """Rank 0 alone wrote the checkpoint before the last step; one process that loads it and runs the
    reference step over both ranks' batches gets the 2-rank run's last step bit for bit."""
    out, ranks = two_ranks
    assert sorted(os.listdir(out)) == ["ckpt.npz", "rank0.json", "rank0.npz", "rank1.json", "rank1.npz"]
    loaded = fnnet.io.load(out / "ckpt.npz")
    m = fnnet.layers.from_config(loaded.config)
    opt = fnnet.optim.adam(1e-2)
    opt_state = fnnet.io.restore_opt_state(opt.init(loaded.params), loaded.opt_state)
    last = worker.STEPS - 1
    x, y = worker.batches()
    params, state, _ = worker.reference_step(m, opt, loaded.params, loaded.state, opt_state, x[last], y[last],
                                             worker.step_key(last))
    for path, want in {**_tree_arrays(f"params/{last}", params), **_tree_arrays(f"state/{last}", state)}.items():
        _assert_same_bits(ranks[0][0][f"det_overlap/{path}"], want)


# ------------------------------------------------------------------------------------------ faults
@needs_mpi
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_instead_of_hanging(tmp_path, how):
    start = time.monotonic()
    proc = _launch([os.path.join(HERE, "distributed_worker.py"), f"abort-{how}", str(tmp_path)], timeout=TIMEOUT)
    assert proc.returncode != 0
    assert "finished" not in proc.stdout  # rank 0 was stopped in its step, not left waiting
    if how == "raise":
        assert "rank 1 fails on purpose" in proc.stderr
        assert "aborting all 2 ranks" in proc.stderr
    assert time.monotonic() - start < TIMEOUT


# ------------------------------------------------------------------------------------- one process
@needs_mpi
def test_without_mpiexec_init_falls_back_to_one_rank(tmp_path):
    ((arrays, messages),) = _run_worker("single", tmp_path, ranks=0)
    assert int(arrays["rank"]) == 0 and int(arrays["size"]) == 1 and messages["is_main"] is True
    np.testing.assert_array_equal(arrays["shard"], fnnet.random.permutation(fnnet.random.key(3), 11))
    floats = {k: v for k, v in worker.tree_for_rank(0).items() if k != "count"}
    for path, leaf in _tree_arrays("mean", floats).items():
        _assert_same_bits(arrays[path], leaf)
    reference = _reference_run(1)
    for path, want in reference.items():
        _assert_same_bits(arrays[f"det/{path}"], want)


@needs_mpi
def test_digits_example_on_two_ranks_matches_one_process(tmp_path):
    """Both runs at once (most of their time is start-up); the same seed, global batch and schedule."""
    args = ["-m", "fnnet.examples.digits", "--distributed", "--epochs", "3", "--limit", "400", "--no-progress"]
    procs = [subprocess.Popen(_command([*args, "--out", str(tmp_path / name)], ranks), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env(), cwd=HERE)
             for name, ranks in (("two", 2), ("one", 0))]
    two, one = (subprocess.CompletedProcess(p.args, 0, *p.communicate(timeout=TIMEOUT)) for p in procs)
    for proc, popen in zip((two, one), procs):
        assert popen.returncode == 0, proc.stderr[-3000:]
    assert two.stdout.strip().splitlines()[-1].startswith("trained data-parallel on 2 ranks")
    assert two.stdout.count("test accuracy:") == 1  # only rank 0 prints
    assert "note: --distributed without mpiexec" in one.stdout
    accuracy = [json.load(open(tmp_path / run / "metrics.json"))["test_accuracy"] for run in ("two", "one")]
    assert json.load(open(tmp_path / "two" / "metrics.json"))["ranks"] == 2
    assert min(accuracy) > 0.85 and abs(accuracy[0] - accuracy[1]) < 0.05, accuracy


# --------------------------------------------------------------------- no MPI needed: always run
def test_without_mpi4py_init_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` fail
    with pytest.raises(ImportError, match=r'pip install "fnnet\[distributed\]"'):
        dist._comm.import_mpi()


def test_shard_gives_disjoint_equal_slices_for_any_rank_count():
    key = fnnet.random.key(5)
    for size in range(1, 6):
        shards = [dist.shard(key, 23, rank=r, size=size) for r in range(size)]
        assert {len(s) for s in shards} == {23 // size}
        joined = np.concatenate(shards)
        assert len(set(joined.tolist())) == len(joined)
        np.testing.assert_array_equal(joined, fnnet.random.permutation(key, 23)[:len(joined)])
    np.testing.assert_array_equal(dist.shard(None, 7, rank=1, size=2, shuffle=False), [3, 4, 5])


@pytest.mark.parametrize("call, error, match", [
    (lambda: dist.shard(fnnet.random.key(0), 10, rank=2, size=2), ValueError, r"0 <= rank < size, got rank=2"),
    (lambda: dist.shard(fnnet.random.key(0), -1, rank=0, size=1), ValueError, r"n must be an int >= 0, got -1"),
    (lambda: dist.shard(fnnet.random.key(0), 10, rank=0.0, size=1), TypeError, r"rank must be an int"),
    (lambda: dist.DataParallel(bucket_bytes=0), ValueError, r"bucket_bytes must be an int >= 1"),
    (lambda: dist.DataParallel(deterministic=1), TypeError, r"deterministic must be True or False, got 1"),
    (lambda: fnnet.train.make_train_step(L.Linear(2), fnnet.losses.mse, fnnet.optim.sgd(0.1), distributed="yes"),
     TypeError, r"distributed must be False, True or a fnnet.distributed.DataParallel, got 'yes'"),
    (lambda: dist._packing.array_leaves("f", "the tree", {"a": [1.0]}, "f"), TypeError,
     r"f: every leaf of the tree must be a native-endian float numpy array, got a float at 'a/0'"),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- the backward hook behind overlap
def _mlp_loss(model, x, y):
    return lambda p: fnnet.losses.softmax_cross_entropy(model.apply(p, x), y)


def test_on_gradient_reports_each_leaf_once_with_the_returned_array():
    model = L.Sequential([L.Linear(6), L.Tanh(), L.Linear(5), L.Tanh(), L.Linear(3)])
    params = model.init(fnnet.random.key(0), (None, 4))
    x, y = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32), np.arange(7) % 3
    seen = []
    value, grads = fnnet.value_and_grad(_mlp_loss(model, x, y), on_gradient=lambda i, g: seen.append((i, g)))(params)
    plain_value, plain = fnnet.value_and_grad(_mlp_loss(model, x, y))(params)
    leaves = fnnet.tree.leaves(grads)
    assert sorted(i for i, _ in seen) == list(range(len(leaves)))
    assert all(leaves[i] is g for i, g in seen)
    assert value == plain_value
    for a, b in zip(leaves, fnnet.tree.leaves(plain)):
        np.testing.assert_array_equal(a, b)
    paths = fnnet.tree.paths(params)
    reported = [paths[i].split("/")[0] for i, _ in seen]
    assert reported == ["4", "4", "2", "2", "0", "0"]  # last layer first: its bucket can leave early


def test_on_gradient_fires_before_earlier_layers_are_differentiated():
    """A leaf's report comes right after its last use in the backward: the last layer's weight is reported
    before the backward reaches the first block (a checkpoint, so the backward re-runs it and leaves a
    trace), and a weight used by the first block and the last layer only after that block."""
    events = []

    def first_block(w, x):
        events.append("first block runs")
        return fnnet.ops.tanh(fnnet.ops.matmul(x, w))

    def loss(p):
        h = fnnet.checkpoint(first_block)(p["first"] + p["shared"], np.ones((2, 3)))
        return fnnet.ops.sum(fnnet.ops.matmul(h, p["last"] * p["shared"]))

    rng = np.random.default_rng(1)
    params = {name: rng.standard_normal((3, 3)) for name in ("first", "last", "shared")}
    names, at_report = sorted(params), {}

    def report(i, g):
        events.append(names[i])
        at_report[names[i]] = g.copy()  # the value when reported must already be the final one

    _, plain = fnnet.value_and_grad(loss)(params)
    events.clear()
    fnnet.value_and_grad(loss, on_gradient=report)(params)
    for name in names:
        np.testing.assert_array_equal(at_report[name], plain[name])
    assert events[0] == "first block runs" and events.count("first block runs") == 2  # forward, backward
    backward = events[1:]
    assert backward.index("last") < backward.index("first block runs") < backward.index("first")
    assert backward.index("shared") > backward.index("first block runs")


def test_on_gradient_covers_unused_leaves_argnum_tuples_and_checkpoints():
    seen = {}

    def loss(a, b):
        inner = fnnet.checkpoint(lambda u: fnnet.ops.sum(fnnet.ops.tanh(u) * 2.0))
        return inner(a["x"]) + fnnet.ops.sum(b[0] * b[0])

    a = {"x": np.linspace(-1, 1, 4), "unused": np.ones(3, np.float32)}
    b = [np.arange(3.0)]
    value, (ga, gb) = fnnet.value_and_grad(loss, argnums=(0, 1), on_gradient=lambda i, g: seen.setdefault(i, g))(a, b)
    leaves = [*fnnet.tree.leaves(ga), *fnnet.tree.leaves(gb)]
    assert sorted(seen) == [0, 1, 2] and all(seen[i] is leaves[i] for i in seen)
    np.testing.assert_array_equal(seen[0], np.zeros(3, np.float32))  # "unused": zeros, at the end
    assert seen[0].dtype == np.float32 and list(seen)[-1] == 0
    np.testing.assert_allclose(seen[1], 2 * (1 - np.tanh(a["x"]) ** 2))
    np.testing.assert_array_equal(seen[2], 2 * b[0])

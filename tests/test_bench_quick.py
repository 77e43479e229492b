"""Smoke tests of benchmark code paths at tiny sizes (the numbers are meaningless; only the plumbing is)."""

import numpy as np
import pytest

import fnnet
from fnnet.bench import pointwise, remat, sequence, timing
from fnnet.bench.workloads import BUILDERS


def test_remat_quick(capsys):
    mlp = remat.measure(width=16, depth=4, batch=8, repeats=1, block_layers=2)
    cnn = remat.measure_cnn(batch=2, repeats=1)
    for r in (mlp, cnn):
        for mode in ("plain", "remat"):
            row = r[mode]
            assert row["mode"] == mode and row["peak_tape_bytes"] > 0 and row["step_ms"] > 0
            assert row["rss_growth_bytes"] is not None and row["peak_rss_mb"] > 0
        assert r["plain"]["param_bytes"] == r["remat"]["param_bytes"]  # the same params, nested alike
        assert r["tape_ratio"] > 1 and r["time_ratio"] > 0
    assert cnn["activation_tape_ratio"] > 2  # conv activations dwarf the block inputs even at batch 2
    remat.print_table({"mlp": mlp, "cnn": cnn})
    assert "targets:" in capsys.readouterr().out


def test_bench_module_runs_end_to_end_in_quick_mode(tmp_path):
    """`python -m fnnet.bench --quick` runs every workload (numbers meaningless, no timing assertions)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "fnnet.bench", "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["training"]) == {"mlp", "tiny", "cnn", "attention", "gru", "gru_loop", "charlm"}
    assert results["training"]["tiny"]["ratios"]["fnnet_eager"] > 0  # the row fnnet is jitted; eager kept
    assert results["training"]["mlp"]["fnnet"] > 0
    assert results["training"]["charlm"]["ratios"]["torch"] > 0
    assert set(results["ops"]) >= {"linear", "conv2d", "max_pool2d", "batch_norm", "softmax_cross_entropy", "attention"}
    assert results["startup"]["fnnet_warm_s"] > 0
    assert results["memory"]["fnnet_mb"] > 0
    assert "remat" in results and "scaling" in results and "float16" in results
    assert results["threads"]["speedup"] > 0
    assert "== training step" in proc.stdout
    assert results["ops"]["exp@1M"]["numpy"]["fwd_ms"] > 0 and "numpy" not in results["ops"]["softmax@1000x1000"]
    assert results["ops"]["gelu_tanh@32x64x512"]["ratios"]["fwd_bwd_ms"]["torch"] > 0
    assert results["training"]["mlp"]["contamination"]["load_before"] >= 0
    assert "startup" in results["contamination"] and results["machine"]["threading_layer"]
    assert results["command"] == f"python -m fnnet.bench --quick --json {out}" and results["quick"]
    from fnnet.bench import render

    assert "**Smoke run" in render.ops([(str(out), results)])


def _sequence_twins(workload):
    """The fnnet model with the PyTorch twin's initial weights loaded, both optimizers, and a batch of 4."""
    import torch

    torch.manual_seed(0)
    spec = None if workload == "gru" else sequence.lm_spec(workload)
    torch_model, model = sequence.torch_model(workload, spec), sequence.fnnet_model(workload, spec)
    x, y = sequence.data(workload, 4, spec)
    template = model.init(fnnet.random.key(0), (None, *x.shape[1:]))
    params, _ = fnnet.io.load_torch_state_dict(model, torch_model.state_dict(), params=template)
    return (model, params, sequence.fnnet_optimizer(workload, model, params, spec),
            torch_model, sequence.torch_optimizer(workload, torch_model, spec), spec, x, y, template)


@pytest.mark.parametrize("workload", sequence.WORKLOADS)
def test_sequence_workloads_train_the_same_model_as_torch(workload):
    """Same weights -> same loss; one optimizer step moves every well-conditioned weight alike (a gradient
    below 1e-6, e.g. the key bias's, which is zero in exact arithmetic, makes Adam's first step a sign of noise)."""
    import torch

    model, params, opt, torch_model, torch_opt, spec, x, y, template = _sequence_twins(workload)
    loss_fn = sequence.fnnet_loss(workload)
    loss, grads = fnnet.value_and_grad(lambda p: loss_fn(model.apply(p, x), y))(params)
    torch_loss = sequence.torch_loss(torch_model(torch.from_numpy(x)), torch.from_numpy(y))
    np.testing.assert_allclose(float(loss), torch_loss.item(), rtol=1e-5)
    updates, _ = opt.update(grads, opt.init(params), params)
    stepped = fnnet.optim.apply_updates(params, updates)
    torch_loss.backward()
    if spec is not None and spec["clip"] is not None:
        torch.nn.utils.clip_grad_norm_(torch_model.parameters(), spec["clip"])
    torch_opt.step()
    torch_stepped, _ = fnnet.io.load_torch_state_dict(model, torch_model.state_dict(), params=template)
    checked = 0
    for path, a, b, g in zip(fnnet.tree.paths(stepped), fnnet.tree.leaves(stepped), fnnet.tree.leaves(torch_stepped),
                             fnnet.tree.leaves(grads)):
        well = np.abs(g) > 1e-6
        np.testing.assert_allclose(a[well], b[well], atol=1e-6, err_msg=path)
        checked += int(well.sum())
    assert checked > 0.5 * sum(np.size(p) for p in fnnet.tree.leaves(params))


def test_gru_loop_computes_the_gru_workloads_loss():
    model = sequence.fnnet_model("gru")
    x, y = sequence.data("gru", 3)
    params = model.init(fnnet.random.key(0), (None, *x.shape[1:]))
    looped = sequence._unrolled_gru_loss(model, sequence.fnnet_loss("gru"))(params, x, y)
    np.testing.assert_allclose(float(looped), float(sequence.fnnet_loss("gru")(model.apply(params, x), y)), rtol=1e-5)


@pytest.mark.parametrize("workload", sequence.STEP_WORKLOADS)
def test_sequence_workload_steps_time(workload):
    """The benchmark's own step builders, every framework row, timed as the worker times them (batch 2, one
    repeat; the numbers are meaningless)."""
    for framework in ("fnnet", "fnnet_eager", "torch"):
        assert timing.median_ms(BUILDERS[framework](workload, 2), warmup=1, repeats=1, min_time=0.0) > 0


@pytest.mark.parametrize("case", pointwise.CASES)
def test_pointwise_op_rows_compute_the_same_function_in_every_framework(case):
    """Each per-op row times the same maths in fnnet, PyTorch and (where it has the op) NumPy."""
    import torch

    d = pointwise.inputs(case)
    fn, names = pointwise.fnnet_fn(case, d)
    expected = fn(*[d[n] for n in names])
    tfn, tnames = pointwise.torch_fn(case, {k: torch.from_numpy(v) for k, v in d.items()})
    assert tnames == names
    np.testing.assert_allclose(tfn(*[torch.from_numpy(d[n]) for n in names]).numpy(), expected, rtol=1e-4, atol=1e-5)
    if case in pointwise.NUMPY_REFERENCE:
        nfn, nnames = pointwise.numpy_fn(case, d)
        np.testing.assert_allclose(nfn(*[d[n] for n in nnames]), expected, rtol=1e-4, atol=1e-6)

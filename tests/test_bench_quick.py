"""Smoke tests of benchmark code paths at tiny sizes (the numbers are meaningless; only the plumbing is)."""

from fnnet.bench import remat


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
    assert set(results["training"]) == {"mlp", "tiny", "cnn"}
    assert results["training"]["mlp"]["fnnet"] > 0
    assert set(results["ops"]) >= {"linear", "conv2d", "max_pool2d", "batch_norm", "softmax_cross_entropy"}
    assert results["startup"]["fnnet_warm_s"] > 0
    assert results["memory"]["fnnet_mb"] > 0
    assert "remat" in results and "scaling" in results and "float16" in results
    assert results["threads"]["speedup"] > 0
    assert "== training step" in proc.stdout

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

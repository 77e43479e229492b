"""``python -m fnnet.bench --workload memory``'s first-steps table at tiny sizes: the report's structure
only (the numbers are meaningless at these sizes, and nothing here asserts a memory figure)."""

import pytest

from fnnet.bench import memory


def test_first_steps_report_has_every_workload_and_framework(capsys):
    result = memory.run_all(quick=True)["first_steps"]
    assert result["steps"] == 3 and result["quick"] is True
    assert set(result["workloads"]) == set(memory.WORKLOADS)
    for workload, row in result["workloads"].items():
        for framework in memory.FRAMEWORKS:
            r = row[framework]
            assert r["framework"] == framework and r["workload"] == workload
            assert r["sizes"] == memory._spec(workload, quick=True)
            assert len(r["rss_growth_bytes"]) == 3 and all(isinstance(g, int) for g in r["rss_growth_bytes"])
            assert r["peak_growth_bytes"] == max(r["rss_growth_bytes"])
            assert r["param_bytes"] > 0
        assert row["fnnet"]["param_bytes"] == row["torch"]["param_bytes"]  # the same model on both sides
        assert row["fnnet"]["peak_tape_bytes"] > 0 and isinstance(row["fnnet"]["keeps_freed_memory"], bool)
        # Adam's two moments are allocated inside the window; SGD keeps none; both count steps in an int64
        moments = 2 * row["fnnet"]["param_bytes"] if workload == "weight_mlp" else 0
        assert row["fnnet"]["state_bytes"] == moments + 8
        peaks = [row[f]["peak_growth_bytes"] for f in memory.FRAMEWORKS]
        assert row["ratio"] == (peaks[0] / peaks[1] if peaks[1] > 0 else None)
    assert set(result["remat_ratio"]) == set(memory.FRAMEWORKS)
    out = capsys.readouterr().out
    assert "peak RSS growth over the first 3 steps" in out and "remat saving" in out
    for workload in memory.WORKLOADS:
        assert workload in out


def test_one_measurement_rejects_an_unknown_workload(capsys):
    with pytest.raises(SystemExit):
        memory.main(["--run", "fnnet", "cnn"])
    assert "--run takes a framework in ('fnnet', 'torch') and a workload in" in capsys.readouterr().err

"""The generated benchmark blocks of the docs equal what their stored runs render; the rendering and the
contamination guard on synthetic data (no timing is measured here)."""

import copy
import json
import os
import pathlib

import pytest

from fnnet.bench import contamination, measure, render, report
from fnnet.bench.contamination import Snapshot

ROOT = pathlib.Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------ the stored docs
def test_docs_blocks_equal_what_their_stored_runs_render():
    assert report.stale_blocks(ROOT) == [], "run: python -m fnnet.bench.report --write"


def test_docs_have_the_blocks_and_their_runs_are_stored_under_docs_bench():
    names = {file: [name for name, _, _ in report.find_blocks((ROOT / file).read_text())] for file in report.FILES}
    assert names == {"README.md": ["summary"],
                     "docs/performance.md": ["training", "ops", "scaling", "startup", "remat", "float16", "threads"],
                     "docs/distributed.md": ["distributed"]}
    sources = {s for file in report.FILES for _, srcs, _ in report.find_blocks((ROOT / file).read_text()) for s in srcs}
    assert sources and all(s.startswith("docs/bench/") and (ROOT / s).is_file() for s in sources)
    stored = {f"docs/bench/{p.name}" for p in (ROOT / "docs" / "bench").glob("*.json")}
    assert stored == sources, "every run under docs/bench/ is rendered somewhere; delete the ones replaced"


# ------------------------------------------------------------------------------------ synthetic runs
def _evidence(contaminated=False):
    busy = [{"pid": 7, "name": "pytest", "command": "python -m pytest", "cpu_percent": 42.0}] if contaminated else []
    return contamination.evidence(1.0, 2.0, busy, 0.45 if contaminated else 0.0, 0.0, 3.0)


def _run(ratio, quick=False, contaminated=False):
    training = {"fnnet": 10.0 * ratio, "torch": 10.0, "ratios": {"torch": ratio}, "range": {},
                "ratio_range": {"torch": [ratio - 0.1, ratio + 0.1]}, "rounds": 3,
                "contamination": _evidence(contaminated)}
    ops = {"fnnet": {"fwd_ms": 1.0, "fwd_bwd_ms": 3.0}, "torch": {"fwd_ms": 2.0, "fwd_bwd_ms": 3.0},
           "ratios": {"fwd_ms": {"torch": 0.5}, "fwd_bwd_ms": {"torch": 1.0}},
           "ratio_range": {"fwd_ms": {"torch": [0.5, 0.5]}, "fwd_bwd_ms": {"torch": [0.9, 1.1]}},
           "contamination": _evidence()}
    exp = copy.deepcopy(ops)
    exp["numpy"] = {"fwd_ms": 0.25, "fwd_bwd_ms": None}
    exp["ratios"]["fwd_ms"]["numpy"], exp["ratio_range"]["fwd_ms"]["numpy"] = 4.0, [4.0, 4.0]
    return {"machine": {"cpu_model": "Test CPU", "cpus": 2, "usable_cpus": 2, "threads": 2, "python": "3.11",
                        "numpy": "2", "numba": "0.6", "torch": "2.1", "threading_layer": "tbb", "date": "2026-01-01"},
            "command": "python -m fnnet.bench --workload cnn", "quick": quick, "rounds": 3,
            "training": {"cnn": training}, "ops": {"linear": ops, "exp@1M": {**exp, "label": "exp, 1M"}}}


def test_one_run_shows_its_in_run_range_and_its_provenance():
    text = render.training([("docs/bench/a.json", _run(0.5))])
    assert "| `cnn` (Conv32" in text and "| 5.00 | 10.0 | 0.50x (0.40–0.60) |" in text
    assert "range over the 3 interleaved rounds" in text and "`python -m fnnet.bench --workload cnn`" in text
    assert "Test CPU, 2 cores" in text and "report docs/bench/a.json --write" in text
    assert "!" not in text and "Smoke run" not in text


def test_several_runs_show_the_median_and_the_run_to_run_range():
    runs = [(f"r{i}.json", _run(r)) for i, r in enumerate((0.9, 0.5, 0.7))]
    text = render.training(runs)
    assert "| 7.00 | 10.0 | 0.70x (0.50–0.90) |" in text and "median of 3 runs" in text
    line = render.summary(runs)
    assert "\n" not in line and "cnn 0.70x (0.50–0.90)" in line and "median of 3 runs" in line


def test_a_contaminated_row_is_marked_with_its_evidence_and_a_smoke_run_says_so():
    text = render.training([("a.json", _run(0.5, contaminated=True)), ("b.json", _run(0.6, quick=True))])
    assert "| `cnn` (Conv32-ReLU-Pool-Conv64-ReLU-Pool-FC128-FC10, 1x28x28, batch 64, SGD) ! |" in text
    assert "- `cnn` (2026-01-01): load 1.0 -> 2.0, other processes 45% of a core (python -m pytest 42%)" in text
    assert "**Smoke run" in text
    assert "cnn 0.55x (0.50–0.60) !" in render.summary([("a.json", _run(0.5, contaminated=True)),
                                                         ("b.json", _run(0.6))])


def test_ops_table_shows_numpy_only_where_it_has_the_op():
    text = render.ops([("a.json", _run(0.5))])
    assert "| linear (128x784 → 256) | 1.00 | 2.00 | 0.50x | – | – | 3.00 | 3.00 | 1.00x (0.90–1.10) |" in text
    assert "| exp, 1M | 1.00 | 2.00 | 0.50x | 0.250 | 4.00x | 3.00 |" in text


# ------------------------------------------------------------------------------------ the other sections
def _sections_run(scale=1.0, quick=False, contaminated=()):
    """A run holding the scaling, startup, memory, remat, float16 and threads sections, as the bench writes
    them; ``contaminated``: section names (or scaling row names) measured while others used the cores."""
    def mode(name, tape_mb, rss_mb, ms):
        return {"mode": name, "model": "mlp", "peak_tape_bytes": (64 + tape_mb) * 2**20, "param_bytes": 64 * 2**20,
                "rss_growth_bytes": rss_mb * 2**20, "step_ms": ms * scale}

    scaling = {f"{w}/b{b}/t{t}": {"fnnet": b * scale / t, "torch": 1.25 * b / t,
                                  "contamination": _evidence(f"{w}/b{b}/t{t}" in contaminated)}
               for w in ("mlp", "cnn") for b in (1, 8) for t in (1, 2)}
    remat = {"mlp 16x1024, 4/block": {
        "plain": mode("plain", 32, 200, 50.0), "remat": mode("remat", 4, 160, 60.0),
        "sizes": {"width": 1024, "depth": 16, "batch": 256, "block_layers": 4, "repeats": 3},
        "tape_ratio": 96 / 68, "activation_tape_ratio": 8.0, "rss_ratio": 1.25, "time_ratio": 1.2 * scale}}
    run = _run(0.5, quick=quick)
    del run["training"], run["ops"]
    return {**run, "command": "python -m fnnet.bench --workload scaling --workload startup",
            "contamination": {name: _evidence(name in contaminated) for name in ("startup", "memory", "remat")},
            "scaling": scaling, "remat": remat,
            "startup": {"fnnet_cold_s": 42.8, "fnnet_warm_s": 0.98 * scale, "fnnet_cold_precompile_s": 37.6,
                        "torch_s": 2.96},
            "memory": {"fnnet_mb": 204.4 * scale, "torch_mb": 422.0},
            "float16": {"cnn": {"float32_ms": 14.0, "float16_ms": 20.0 * scale, "speed_ratio": 0.7 / scale,
                                "contamination": _evidence("float16" in contaminated)}},
            "threads": {"serial_ms": 5.91, "threads2_ms": 5.06 * scale, "speedup": 1.168 / scale,
                        "contamination": _evidence("threads" in contaminated)}}


def test_scaling_has_one_row_per_workload_and_batch_and_marks_a_disturbed_cell():
    text = render.scaling([("docs/bench/s.json", _sections_run(contaminated=("cnn/b8/t2",)))])
    assert ("| workload | batch | 1 thread: fnnet / PyTorch ms | fnnet / PyTorch | 2 threads: fnnet / PyTorch ms "
            "| fnnet / PyTorch |") in text
    assert "| `mlp` | 8 | 8.00 / 10.0 | 0.80x | 4.00 / 5.00 | 0.80x |" in text
    assert "| `cnn` | 1 | 1.00 / 1.25 | 0.80x | 0.500 / 0.625 | 0.80x |" in text and "| `cnn` ! | 8 |" in text
    assert "- `cnn/b8/t2` (2026-01-01): load 1.0 -> 2.0" in text and "- `cnn/b1" not in text
    assert "one value per run: no range" in text and "interleaved rounds" not in text


def test_scaling_over_runs_shows_the_median_ratio_and_its_range():
    runs = [(f"r{i}.json", _sections_run(scale)) for i, scale in enumerate((1.0, 0.5, 0.75))]
    text = render.scaling(runs)
    assert "| `mlp` | 8 | 6.00 / 10.0 | 0.60x (0.40–0.80) |" in text and "median of 3 runs" in text


def test_scaling_without_pytorch_shows_fnnet_alone():
    run = _sections_run()
    for row in run["scaling"].values():
        row["torch"] = None
    text = render.scaling([("s.json", run)])
    assert "| workload | batch | 1 thread: fnnet ms | 2 threads: fnnet ms |" in text
    assert "| `mlp` | 8 | 8.00 | 4.00 |" in text


def test_startup_table_judges_the_goals_and_marks_a_disturbed_section():
    text = render.startup([("s.json", _sections_run(contaminated=("memory",)))])
    assert ("| fresh process → end of the first CNN training step, warm kernel cache | 0.98 s | 2.96 s "
            "| ≤ 1.0 s: met |") in text
    assert "| same, empty kernel cache | 42.8 s | – | – |" in text
    assert "| same, empty kernel cache, `fnnet.precompile(model, in_shape)` first | 37.6 s | – | – |" in text
    assert "| peak RSS of a CNN training process (batch 64) ! | 204 MB | 422 MB | ≤ 250 MB: met |" in text
    assert "- `memory` (2026-01-01): load 1.0 -> 2.0" in text and "- `startup`" not in text
    slow = render.startup([("a.json", _sections_run()), ("b.json", _sections_run(1.2)), ("c.json", _sections_run(1.3))])
    assert "| 1.18 s (0.98–1.27) | 2.96 s | ≤ 1.0 s: missed |" in slow
    assert "| 245 MB (204–266) | 422 MB | ≤ 250 MB: met |" in slow


def test_a_quick_startup_run_has_only_the_warm_row_and_no_memory_row_without_a_memory_section():
    run = _sections_run(quick=True)
    run["startup"] = {"fnnet_warm_s": 1.5}
    del run["memory"]
    text = render.startup([("q.json", run)])
    assert text.startswith("**Smoke run") and "| 1.50 s | – | ≤ 1.0 s: missed |" in text
    assert "empty kernel cache" not in text and "peak RSS" not in text


def test_remat_table_shows_memory_and_time_plain_vs_remat_and_the_goal():
    text = render.remat([("s.json", _sections_run())])
    assert ("| MLP, 16 x (Linear(1024), ReLU), 4 pairs per block, batch 256 | 32.0 / 4.0 | 8.00x | 200 / 160 | 1.25x "
            "| 50.0 / 60.0 | 1.20x | met |") in text
    assert "goal: ≥ 2.0x less tape at ≤ 1.4x the time" in text and "!" not in text
    worse = render.remat([("a.json", _sections_run(1.0, contaminated=("remat",))), ("b.json", _sections_run(1.5))])
    assert "| 62.5 / 75.0 | 1.50x (1.20–1.80) | missed |" in worse and "batch 256 ! |" in worse
    assert "- `remat` (2026-01-01): load 1.0 -> 2.0" in worse


def test_remat_row_of_the_cnn_is_named_after_its_batch():
    run = _sections_run()
    row = run["remat"]["cnn, conv blocks"] = copy.deepcopy(run["remat"]["mlp 16x1024, 4/block"])
    row["sizes"], row["plain"]["model"] = {"batch": 64, "repeats": 3}, "cnn"
    assert "| CNN (`cnn`), each conv block wrapped, batch 64 | 32.0 / 4.0 |" in render.remat([("s.json", run)])


def test_float16_table_shows_the_speed_of_float16_against_the_goal():
    text = render.float16([("s.json", _sections_run(contaminated=("float16",)))])
    assert ("| `cnn` (Conv32-ReLU-Pool-Conv64-ReLU-Pool-FC128-FC10, 1x28x28, batch 64, SGD) ! | 14.0 | 20.0 | 0.70x "
            "| ≥ 0.9x: missed |") in text
    assert "- `cnn` (2026-01-01): load 1.0 -> 2.0" in text
    faster = render.float16([("a.json", _sections_run(0.5)), ("b.json", _sections_run(0.7))])
    assert "| 14.0 | 12.0 | 1.20x (1.00–1.40) | ≥ 0.9x: met |" in faster


def test_threads_table_shows_the_speed_up_of_two_threads():
    text = render.threads([("s.json", _sections_run())])
    assert ("| `mlp` gradient of 256 examples as 4 micro-batches (`fnnet.optim.accumulate_gradients`) | 5.91 | 5.06 "
            "| 1.17x |") in text
    marked = render.threads([("s.json", _sections_run(contaminated=("threads",)))])
    assert "micro-batches (`fnnet.optim.accumulate_gradients`) ! |" in marked and "- `threads` (2026-01-01)" in marked


@pytest.mark.parametrize("name", ["scaling", "startup", "remat", "float16", "threads"])
def test_every_new_block_renders_from_its_section_and_rerenders_to_itself(tmp_path, name):
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / "docs" / "bench" / "s.json").write_text(json.dumps(_sections_run()))
    text = report.rerender(f"<!-- bench:{name} docs/bench/s.json -->\n<!-- /bench -->\n", tmp_path)
    assert text.count("\n| ") >= 2 and "Rendered by `python -m fnnet.bench.report docs/bench/s.json --write`" in text
    assert report.rerender(text, tmp_path) == text


def test_rerender_rewrites_blocks_and_their_sources_and_check_finds_drift(tmp_path):
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / "docs" / "bench" / "old.json").write_text(json.dumps(_run(0.5)))
    text = "intro\n<!-- bench:summary docs/bench/old.json -->\nhand-edited\n<!-- /bench -->\noutro\n"
    new = report.rerender(text, tmp_path)
    assert new.startswith("intro\n<!-- bench:summary docs/bench/old.json -->\n**Training step time")
    assert new.endswith("<!-- /bench -->\noutro\n") and "cnn 0.50x (0.40–0.60)" in new
    assert report.rerender(new, tmp_path) == new
    newer = report.rerender(new, tmp_path, runs=[("docs/bench/new.json", _run(0.8))])
    assert "<!-- bench:summary docs/bench/new.json -->" in newer and "cnn 0.80x" in newer
    (name, sources, body), = report.find_blocks(newer)
    assert (name, sources) == ("summary", ["docs/bench/new.json"]) and body.endswith(".\n")


def test_stale_blocks_finds_a_hand_edited_number(tmp_path):
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / "docs" / "bench" / "a.json").write_text(json.dumps(_run(0.5)))
    block = "<!-- bench:summary docs/bench/a.json -->\n<!-- /bench -->\n"
    (tmp_path / "README.md").write_text(report.rerender(block, tmp_path))
    for other in report.FILES[1:]:
        (tmp_path / other).write_text("no blocks\n")
    assert report.stale_blocks(tmp_path) == []
    (tmp_path / "README.md").write_text(report.rerender(block, tmp_path).replace("0.50x", "0.45x"))
    assert report.stale_blocks(tmp_path) == [("README.md", "summary")]


def test_render_block_errors_name_the_block_and_the_fix():
    with pytest.raises(ValueError, match="unknown block 'nonesuch'; known blocks"):
        report.render_block("nonesuch", [("a.json", _run(0.5))])
    with pytest.raises(ValueError, match=r"block 'threads' needs runs with a 'threads' section.*--workload threads"):
        report.render_block("threads", [("a.json", _run(0.5))])
    run = _run(0.5)
    del run["ops"]
    with pytest.raises(ValueError, match=r"block 'ops' needs runs with a 'ops' section.*--workload ops"):
        report.render_block("ops", [("a.json", run)])


def test_store_copies_a_run_under_docs_bench_and_never_overwrites_another(tmp_path):
    src = tmp_path / "run.json"
    src.write_text("{}")
    assert report.store(src, tmp_path) == "docs/bench/run.json"
    assert (tmp_path / "docs" / "bench" / "run.json").read_text() == "{}"
    assert report.store(src, tmp_path) == "docs/bench/run.json"  # the same contents: fine
    src.write_text('{"other": 1}')
    with pytest.raises(FileExistsError, match="exists with other contents"):
        report.store(src, tmp_path)


# ------------------------------------------------------------------------------------ contamination
ROOT_PID, CHILD, GRANDCHILD, OTHER, QUIET, NEWCOMER = 100, 101, 102, 200, 201, 202


def _snap(wall, busy, own, procs, steal=0.0, load=1.0):
    return Snapshot(wall=wall, load=load, busy=busy, steal=steal, own=own, procs=procs)


def test_another_busy_process_contaminates_the_row_and_the_bench_own_workers_do_not():
    before = _snap(0.0, 10.0, 1.0, {ROOT_PID: ("python", 1, 1.0), OTHER: ("fuzz", 1, 5.0), QUIET: ("sshd", 1, 2.0)})
    after = _snap(2.0, 14.0, 3.0, {ROOT_PID: ("python", 1, 1.5), CHILD: ("python", ROOT_PID, 3.0),
                                   GRANDCHILD: ("mpiexec", CHILD, 3.0), OTHER: ("fuzz", 1, 6.0),
                                   QUIET: ("sshd", 1, 2.05)})
    record = contamination.compare(before, after, root=ROOT_PID)
    assert record["contaminated"]
    assert [(p["name"], p["cpu_percent"]) for p in record["busy_processes"]] == [("fuzz", 50.0)]
    assert record["other_cpu_percent"] == 100.0  # 4 s busy - 2 s own over 2 s
    assert "(fuzz 50%)" in contamination.describe(record)  # no command line for a made-up pid: its name


def test_a_process_born_in_the_window_counts_in_full_and_a_quiet_machine_is_clean():
    before = _snap(0.0, 10.0, 1.0, {ROOT_PID: ("python", 1, 1.0)})
    after = _snap(1.0, 10.9, 1.9, {ROOT_PID: ("python", 1, 1.9), NEWCOMER: ("pytest", 1, 0.3)})
    assert contamination.compare(before, after, root=ROOT_PID)["busy_processes"][0]["name"] == "pytest"
    clean = contamination.compare(before, _snap(1.0, 10.92, 1.9, {ROOT_PID: ("python", 1, 1.9)}), root=ROOT_PID)
    assert not clean["contaminated"] and clean["busy_processes"] == [] and clean["other_cpu_percent"] == 2.0


def test_unseen_short_processes_and_steal_time_contaminate_the_row():
    before = _snap(0.0, 10.0, 1.0, {})
    assert contamination.compare(before, _snap(1.0, 11.5, 2.0, {}), root=ROOT_PID)["contaminated"]
    stolen = contamination.compare(before, _snap(1.0, 11.0, 2.0, {}, steal=0.2), root=ROOT_PID)
    assert stolen["contaminated"] and stolen["steal_percent"] == 20.0


def test_parse_stat_reads_names_with_spaces_and_parentheses():
    tick = contamination._TICK
    text = f"4242 (Web (Content) x) S 17 4242 4242 0 -1 0 0 0 0 0 {3 * tick} {tick} 0 0 20 0 1 0 1 1 1\n"
    assert contamination.parse_stat(text) == ("Web (Content) x", 17, 4.0)


def test_snapshot_sees_this_process():
    snap = contamination.snapshot()
    assert os.getpid() in snap.procs and snap.load >= 0 and snap.busy > 0 and snap.own > 0


def test_contaminated_rows_lists_rows_and_whole_sections():
    results = {"machine": {"cpus": 2}, "training": {"cnn": {"contamination": _evidence(True)},
                                                    "mlp": {"contamination": _evidence()}},
               "contamination": {"startup": _evidence(True), "memory": _evidence()},
               "threads": {"speedup": 1.1, "contamination": _evidence(True)}}
    found = [(section, name) for section, name, _ in measure.contaminated_rows(results)]
    assert sorted(found) == [("startup", "*"), ("threads", "*"), ("training", "cnn")]


def test_summarize_takes_medians_ranges_and_per_round_ratios():
    times = {"fnnet": [{"ms": 1.0}, {"ms": 3.0}, {"ms": 2.0}], "torch": [{"ms": 2.0}, {"ms": 2.0}, {"ms": 4.0}],
             "numpy": [{"ms": None}, {"ms": None}, {"ms": None}]}
    row = measure.summarize(times, "ms")
    assert row["median"] == {"fnnet": 2.0, "torch": 2.0} and row["range"]["fnnet"] == [1.0, 3.0]
    assert row["ratio"] == {"torch": 0.5} and row["ratio_range"]["torch"] == [0.5, 1.5]


def test_distributed_block_shows_each_tree_size_against_raw_allreduce_and_the_step_table():
    from fnnet.bench import render_distributed

    size = {"params": 10, "fnnet_ms": 2.0, "fnnet_gbs": 1.5, "deterministic_ms": 3.0, "deterministic_gbs": 1.0,
            "raw_ms": 1.9, "raw_gbs": 1.6, "copy_ms": 0.1, "ratio": 2.0 / 1.9}
    step = {"single_ms": 3.0, "overlap_ms": 4.0, "no_overlap_ms": 3.5, "deterministic_ms": 4.5, "local_ms": 2.5,
            "overlap_saving_ms": -0.5}
    run = {"machine": {}, "command": "python -m fnnet.bench --workload distributed", "quick": False,
           "date": "2026-12-01T14:47:00+00:00", "contamination": [],
           "distributed": {"allreduce": {"1000000": dict(size, params=1000000)}, "step": step}}
    text = render_distributed.distributed([("docs/bench/x.json", run)])
    assert "| 1M (4 MB) | 2.00 (1.5 GB/s) | 3.00 (1.0 GB/s) | 1.90 (1.6 GB/s) | 1.05x | 0.100 | ≤ 1.1x: met |" in text
    assert "| overlap saving (no overlap - overlap) | -0.50 |" in text
    assert report.render_block("distributed", [("docs/bench/x.json", run)]).startswith("| params")

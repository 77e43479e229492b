"""precompile exercises every kernel a model needs, in worker processes too."""

import json
import os
import pathlib
import pty
import subprocess
import sys

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
from fnnet.precompile import _leaf_layers


def _model():
    return L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2), L.Dropout(0.1),
                         L.Residual(L.Sequential([L.Conv2D(4, 1), L.Tanh()])), L.Flatten(), L.Linear(3)])


def test_leaf_layers_in_order_with_shapes():
    leaves = _leaf_layers(_model(), (None, 2, 6, 6))
    names = [type(layer).__name__ for layer, _ in leaves]
    assert names == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D", "Dropout", "Conv2D", "Tanh", "Flatten", "Linear"]
    assert leaves[-1][1] == (None, 36)


def _remat_model():
    """``_model()`` with its blocks wrapped in Remat: a container, a Residual and a single layer."""
    return L.Sequential([L.Remat(L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU()])), L.MaxPool2D(2),
                         L.Dropout(0.1), L.Remat(L.Residual(L.Sequential([L.Conv2D(4, 1), L.Tanh()]))), L.Flatten(),
                         L.Remat(L.Linear(3))])


def test_leaf_layers_see_through_remat():
    plain = [(type(layer).__name__, shape) for layer, shape in _leaf_layers(_model(), (None, 2, 6, 6))]
    wrapped = [(type(layer).__name__, shape) for layer, shape in _leaf_layers(_remat_model(), (None, 2, 6, 6))]
    assert wrapped == plain


def _compiled_signatures():
    """{kernel: the signatures its Numba dispatcher has compiled or loaded} over every fnnet kernel module."""
    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("fnnet.kernels"):
            for attr, obj in vars(module).items():
                if hasattr(obj, "signatures") and hasattr(obj, "py_func"):
                    found[f"{name}.{attr}"] = set(map(str, obj.signatures))
    return found


def test_precompile_of_a_remat_model_leaves_nothing_for_training_to_compile():
    model, opt = _remat_model(), fnnet.optim.adam(1e-3)
    assert fnnet.precompile(model, (None, 2, 6, 6), num_classes=3, optimizer=opt, workers=1) == 9
    before = _compiled_signatures()
    params = model.init(fnnet.random.key(0), (None, 2, 6, 6))
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    x = np.random.default_rng(0).standard_normal((4, 2, 6, 6)).astype(np.float32)
    step(params, model.init_state((None, 2, 6, 6)), opt.init(params), x, np.zeros(4, np.int64), fnnet.random.key(1))
    after = _compiled_signatures()
    new = {k: v - before.get(k, set()) for k, v in after.items() if v - before.get(k, set())}
    assert not new, f"kernels compiled by the first training step, missed by precompile: {new}"


def test_precompile_serial_and_with_workers_then_training_runs():
    model = _model()
    opt = fnnet.optim.adam(1e-3)
    for workers in (1, 2):
        n = fnnet.precompile(model, (None, 2, 6, 6), num_classes=3, optimizer=opt, workers=workers)
        assert n == 9
    params = model.init(fnnet.random.key(0), (None, 2, 6, 6))
    state = model.init_state((None, 2, 6, 6))
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    x = np.zeros((4, 2, 6, 6), np.float32)
    step(params, state, opt.init(params), x, np.zeros(4, np.int64), fnnet.random.key(1))


def test_precompile_float64_and_example_array():
    model = L.Sequential([L.Linear(3), L.GELU()])
    assert fnnet.precompile(model, np.zeros((5, 4)), dtype=np.float64, workers=1) == 2


def test_precompile_feeds_indices_to_a_model_starting_with_embedding():
    model = L.Sequential([L.Remat(L.Embedding(5, 3)), L.Flatten(), L.Linear(2)])
    assert fnnet.precompile(model, (None, 4), workers=1) == 3


# ------------------------------------------------------------------------------ the function form, the log
# The subprocess tests start from an empty Numba cache, so they compile for real: fn calls two small
# kernels (multiply_fwd, relu_fwd; a few seconds cold), and each cold start is shared where possible.
_SCENARIO = """
import json, sys
import numpy as np
import fnnet, fnnet.layers as L
from fnnet import ops
from fnnet.precompile import _progress
from fnnet.precompile._progress import OutermostCompiles
from numba.core import event

_progress.NON_TTY_DELAY_S = 0.0  # no terminal: say it at once instead of after a second
relu = L.ReLU()

def fn(x):
    return relu.apply({}, ops.multiply(x, x))

x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
action, workers = sys.argv[1], (int(sys.argv[2]) if len(sys.argv) > 2 else None)
if action == "precompile":
    print(json.dumps(fnnet.precompile(fn, x, workers=workers)._asdict()))
else:  # run fn, count the fnnet kernels it compiled
    compiled = []
    event.register("numba:compile", OutermostCompiles(lambda d: True, lambda *a: compiled.append(a)))
    fn(x)
    print(json.dumps({"compiled": len(compiled)}))
"""


def _env(tmp, cache, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("FNNET_QUIET_COMPILE", "NUMBA_CACHE_DIR")}
    return {**env, "NUMBA_CACHE_DIR": str(tmp / cache), "FNNET_SIGNATURE_LOG_DIR": str(tmp / "log"), **extra}


def _scenario(env, *args):
    done = subprocess.run([sys.executable, "-c", _SCENARIO, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A first ever precompile of fn: empty cache, no signature log."""
    tmp = tmp_path_factory.mktemp("precompile")
    report, stderr = _scenario(_env(tmp, "cache-1"), "precompile")
    return tmp, report, stderr


def test_first_precompile_compiles_serially_writes_the_log_and_shows_progress(first_run):
    tmp, report, stderr = first_run
    assert (report["kernels"], report["compiled"], report["compiled_in_workers"], report["loaded"]) == (2, 2, 0, 0)
    logged = json.loads(pathlib.Path(report["log"]).read_text())
    assert pathlib.Path(report["log"]).parent == tmp / "log"
    assert sorted(e["kernel"] for e in logged["kernels"]) == ["fnnet.kernels.arithmetic:multiply_fwd",
                                                              "fnnet.kernels.elementwise:relu_fwd"]
    assert all(e["seconds"] > 0 for e in logged["kernels"])
    assert "fnnet: compiling kernels (first run only) ... " in stderr
    assert "fnnet: compiled 2 kernels in " in stderr


def test_after_precompile_fn_compiles_nothing_and_prints_nothing(first_run):
    tmp, _, _ = first_run
    result, stderr = _scenario(_env(tmp, "cache-1"), "run")
    assert result == {"compiled": 0}
    assert stderr == ""


def test_with_the_log_a_fresh_cache_is_filled_by_worker_processes(first_run):
    tmp, _, _ = first_run
    env = _env(tmp, "cache-2")
    report, stderr = _scenario(env, "precompile", 2)
    assert (report["kernels"], report["compiled_in_workers"], report["compiled"], report["loaded"]) == (2, 2, 0, 2)
    assert "fnnet: compiling kernels (first run only) in 2 processes ... " in stderr
    assert _scenario(env, "run")[0] == {"compiled": 0}


def test_progress_line_is_rewritten_in_place_on_a_terminal(tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", _SCENARIO, "run"], env=_env(tmp_path, "cache"),
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert json.loads(proc.communicate(timeout=600)[0]) == {"compiled": 2}
    text = seen.decode()
    assert text.startswith("\rfnnet: compiling kernels (first run only) ... 0 compiled, ")
    assert "\rfnnet: compiling kernels (first run only) ... 2 compiled, " in text and text.endswith("\x1b[K\r\n")


def test_quiet_compile_silences_the_progress_line(tmp_path):
    result, stderr = _scenario(_env(tmp_path, "cache", FNNET_QUIET_COMPILE="1"), "run")
    assert result == {"compiled": 2}
    assert stderr == ""


def test_precompile_rejects_a_non_callable_and_example_arguments_that_do_not_fit():
    with pytest.raises(TypeError, match=r"fnnet.precompile: expected a callable .* got int 3; pass the function"):
        fnnet.precompile(3, np.zeros(2, np.float32))

    def loss(w, x):
        raise AssertionError("must not run")

    fits = r"example arguments do not fit .*loss\(w, x\): missing a required argument: 'x'; pass exactly"
    with pytest.raises(TypeError, match=fits):
        fnnet.precompile(loss, np.zeros(2, np.float32))
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'y'"):
        fnnet.precompile(loss, 1, 2, y=3)


def test_an_error_raised_by_fn_says_that_precompile_called_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FNNET_SIGNATURE_LOG_DIR", str(tmp_path))

    def loss(x):
        return fnnet.ops.sum(x, axis=5)

    with pytest.raises(ValueError) as caught:
        fnnet.precompile(loss, np.zeros((2, 3), np.float32))
    assert "called by fnnet.precompile on the example arguments" in "".join(caught.value.__notes__)


def test_recorder_notes_each_kernel_signature_and_restores_the_dispatchers(tmp_path, monkeypatch):
    from numba.core.registry import CPUDispatcher

    from fnnet.kernels import arithmetic
    from fnnet.precompile._signatures import Recorder, format_signature, kernel_name

    x = np.ones((2, 3), np.float32)
    with Recorder() as seen:
        fnnet.ops.multiply(x, x)
        fnnet.ops.multiply(x, x)
    assert type(arithmetic.multiply_fwd) is CPUDispatcher
    [(name, text)] = [(kernel_name(d), format_signature(t)) for d, t in seen.calls]
    assert name == "fnnet.kernels.arithmetic:multiply_fwd"
    assert text.startswith("(Array(float32, 1, 'C', False, aligned=True), Array(float32, 1, 'C', False, aligned=True)")


def test_signature_text_reads_back_and_bad_text_is_refused():
    from numba.core import types

    from fnnet.precompile._signatures import format_signature, parse_signature

    argument_types = (types.float32[:, ::1], types.int64, types.UniTuple(types.intp, 2), types.boolean)
    assert parse_signature(format_signature(argument_types)) == argument_types
    with pytest.raises(ValueError, match="does not parse"):
        parse_signature("(__import__('os'),)")
    with pytest.raises(ValueError, match="does not read back"):
        parse_signature("int64")


def test_every_manifest_entry_names_a_kernel_and_its_signature_reads_back():
    from fnnet.precompile.__main__ import read_manifest
    from fnnet.precompile._signatures import find_kernel, parse_signature

    entries = read_manifest()
    assert len(entries) > 50
    assert {e["dtype"] for e in entries} == {"float32", "float16"}
    for entry in entries:
        find_kernel(entry["kernel"])
        parse_signature(entry["signature"])
    with pytest.raises(LookupError, match="no kernel 'fnnet.kernels.dense:nonexistent'"):
        find_kernel("fnnet.kernels.dense:nonexistent")


def test_warm_skips_what_the_cache_holds_and_reports(tmp_path, capsys):
    from fnnet.precompile.__main__ import warm

    from fnnet.precompile._signatures import Recorder, format_signature, kernel_name

    x = np.ones((2, 3), np.float32)
    with Recorder() as seen:  # compiled (or loaded) here, so the manifest entry below is cached
        fnnet.ops.multiply(x, x)
    entries = [{"kernel": kernel_name(d), "signature": format_signature(t), "dtype": "float32"} for d, t in seen.calls]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"kernels": entries}))
    assert warm(2, manifest) == 0
    assert "fnnet: 1 kernel signatures: 0 compiled, 1 already cached, 0 failed;" in capsys.readouterr().out


def test_worker_answers_one_json_line_per_signature():
    signature = "(Array(float32, 1, 'C', False, aligned=True),)"
    job = json.dumps({"kernel": "fnnet.kernels.elementwise:relu_fwd", "signature": signature}) + "\n"
    job += json.dumps({"kernel": "fnnet.kernels.elementwise:no_such_kernel", "signature": signature}) + "\n"
    done = subprocess.run([sys.executable, "-m", "fnnet.precompile", "--worker"], input=job, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = map(json.loads, done.stdout.splitlines())
    assert first["ok"] and isinstance(first["compiled"], bool)
    assert not second["ok"] and "no kernel 'fnnet.kernels.elementwise:no_such_kernel'" in second["error"]

"""Crash safety of fnnet.io.save (a child process SIGKILLed at random moments of a large save), removal of
stale temporary files, and the checkpoint format version."""

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fnnet import io
from fnnet.io import atomic

HEADER = "__fnnet__"
KILLS_PER_MODE = 3  # at least; more (up to MAX_KILLS) until a kill has landed inside a write
MAX_KILLS = 12


def big_params(i):
    """A 32 MB checkpoint whose every byte depends on the save number ``i``."""
    return {"w": np.arange(4_000_000, dtype=np.float64) * 0.5 + i, "step": [np.full(1000, i, np.int64)]}


_CHILD = inspect.getsource(big_params) + textwrap.dedent("""
    import sys
    import numpy as np
    from fnnet import io
    from fnnet.io import atomic
    path, i = sys.argv[1], int(sys.argv[2])
    if sys.argv[3] == "named":
        atomic._open_unnamed = lambda dir_fd: None      # force the named-temporary fallback
    while True:
        params = big_params(i)
        print("saving", i, flush=True)
        io.save(path, params, metadata={"iteration": i})
        print("saved", i, flush=True)
        i += 1
""")


def _strays(folder, name):
    return sorted(f for f in os.listdir(folder) if f != name)


def _kill_mid_save(path, first, mode, delay):
    """Run the saving child, SIGKILL it ``delay`` seconds after its first save; return (its pid, its output)."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(first), mode],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().split() == ["saving", str(first)]
        assert child.stdout.readline().split() == ["saved", str(first)]
        time.sleep(delay)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        out = child.stdout.read()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return child.pid, [line.split() for line in out.splitlines()]


def _check_bit_identical(path, expected_iterations):
    ck = io.load(path)
    i = ck.metadata["iteration"]
    assert i in expected_iterations, (i, expected_iterations)
    want = big_params(i)
    for got, exp in ((ck.params["w"], want["w"]), (ck.params["step"][0], want["step"][0])):
        assert got.dtype == exp.dtype and got.shape == exp.shape and got.tobytes() == exp.tobytes()
    return ck


@pytest.mark.parametrize("mode", ["unnamed", "named"])
def test_sigkill_mid_save_keeps_previous_file_and_next_save_leaves_no_strays(tmp_path, mode):
    path = tmp_path / "ckpt.npz"
    io.save(path, big_params(0), metadata={"iteration": 0})
    delays = np.random.default_rng(20240).uniform(0.0, 0.3, size=MAX_KILLS)
    mid_save, strays_seen = 0, 0
    for k, delay in enumerate(delays):
        if k >= KILLS_PER_MODE and mid_save and (strays_seen or mode != "named"):
            break  # where a kill lands depends on the machine's speed: kill again until one hit a write
        first = 1000 * (k + 1)
        pid, lines = _kill_mid_save(path, first, mode, delay)
        last_saved = max([int(n) for word, n in lines if word == "saved"], default=first)
        mid_save += bool(lines) and lines[-1][0] == "saving"
        # the file holds the last save that finished (it may have finished just before the "saved" print)
        ck = _check_bit_identical(path, {last_saved, last_saved + 1})
        strays = _strays(tmp_path, path.name)
        assert all(f.startswith(f".ckpt.npz.{pid}.") and f.endswith(".tmp") for f in strays), strays
        strays_seen += len(strays)
        io.save(path, ck.params, metadata=ck.metadata)           # one more save cleans up after the dead child
        assert _strays(tmp_path, path.name) == []
        _check_bit_identical(path, {ck.metadata["iteration"]})
    assert mid_save >= 1, "no kill landed mid-save: the test did not exercise a crash during a save"
    if mode == "named":  # a kill inside the write leaves the named temporary, which the next save removes
        assert strays_seen >= 1, "no kill left a temporary file: the cleanup was not exercised"


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_save_removes_temporaries_of_dead_writers_only(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead, live = _dead_pid(), sleeper.pid
        planted = {
            f".c.npz.{dead}.0123abcd.tmp": False,          # same target, writer dead: removed
            f".c.npz.{live}.0123abcd.tmp": True,           # same target, writer alive: kept
            f".c.npz.{os.getpid()}.89abcdef.tmp": True,    # this process (another thread may be saving): kept
            f".other.npz.{dead}.0123abcd.tmp": True,       # another target: not this save's business
            f".c.npz.1.{dead}.0123abcd.tmp": True,         # a temporary of target "c.npz.1": kept
        }
        for name in planted:
            (tmp_path / name).write_bytes(b"partial checkpoint")
        io.save(tmp_path / "c.npz", {"w": np.ones(3)})
        kept = {name for name, keep in planted.items() if keep}
        assert set(os.listdir(tmp_path)) == kept | {"c.npz"}
        sleeper.kill()
        sleeper.wait()
        io.save(tmp_path / "c.npz", {"w": np.zeros(3)})      # the sleeper is dead now: its file goes too
        assert f".c.npz.{live}.0123abcd.tmp" not in os.listdir(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    np.testing.assert_array_equal(io.load(tmp_path / "c.npz").params["w"], np.zeros(3))


def test_no_named_file_exists_while_the_data_is_written(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    io.save(path, {"w": np.ones(3)})
    real_savez, seen = np.savez, []

    def watching_savez(f, **arrays):
        seen.append(_strays(tmp_path, "c.npz"))
        real_savez(f, **arrays)

    monkeypatch.setattr(np, "savez", watching_savez)
    dir_fd = os.open(tmp_path, os.O_RDONLY)
    try:
        probe = atomic._open_unnamed(dir_fd)
    finally:
        os.close(dir_fd)
    io.save(path, {"w": np.zeros(3)})
    if probe is not None:                                      # O_TMPFILE: the data has no name until complete
        os.close(probe)
        assert seen == [[]]
    else:                                                      # fallback: one temporary named with our pid
        assert len(seen[0]) == 1 and seen[0][0].startswith(f".c.npz.{os.getpid()}.")
    assert _strays(tmp_path, "c.npz") == []
    np.testing.assert_array_equal(io.load(path).params["w"], np.zeros(3))


def test_named_fallback_round_trip_keeps_permissions(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_open_unnamed", lambda dir_fd: None)
    path = tmp_path / "c.npz"
    io.save(path, {"w": np.ones(3)})
    os.chmod(path, 0o640)
    io.save(path, {"w": np.full(3, 2.0)})
    assert os.stat(path).st_mode & 0o777 == 0o640                # the replaced file's permissions are kept
    np.testing.assert_array_equal(io.load(path).params["w"], np.full(3, 2.0))
    assert os.listdir(tmp_path) == ["c.npz"]


# ------------------------------------------------------------------------------------------ format version


def _rewrite_header(path, edit):
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    header = json.loads(arrays[HEADER].tobytes())
    edit(header)
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), np.uint8)
    np.savez(path, **arrays)


def test_format_version_round_trip(tmp_path):
    path = tmp_path / "c.npz"
    params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    io.save(path, params, metadata={"step": 3})
    with np.load(path) as z:
        assert json.loads(z[HEADER].tobytes())["version"] == io.FORMAT_VERSION == 1
    _rewrite_header(path, lambda h: h.pop("version"))        # files from releases without the field
    ck = io.load(path)
    np.testing.assert_array_equal(ck.params["w"], params["w"])
    assert ck.metadata == {"step": 3}


def test_newer_format_version_asks_to_upgrade(tmp_path):
    path = tmp_path / "future.npz"
    io.save(path, {"w": np.ones(2)})
    _rewrite_header(path, lambda h: h.update(version=io.FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=rf"fnnet.io.load: .*future\.npz has checkpoint format version "
                                         rf"{io.FORMAT_VERSION + 1}, newer than this fnnet reads \(format "
                                         rf"version {io.FORMAT_VERSION} and older\); upgrade fnnet"):
        io.load(path)
    for bad in ("2", True, 0, 1.5, None):
        _rewrite_header(path, lambda h: h.update(version=bad))
        with pytest.raises(ValueError, match=r"is not a valid fnnet checkpoint .* format version .* not a positive"):
            io.load(path)

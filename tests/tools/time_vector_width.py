"""Time the vectorised math kernels with 256-bit and with 512-bit vectors:
``python tests/tools/time_vector_width.py``.

On CPUs whose LLVM tuning prefers 256-bit vectors (Intel's AVX-512 parts), Numba's loops use 256-bit
vectors unless told otherwise; fnnet tells it otherwise on AVX-512 hosts (``_jit._allow_wide_vectors``).
This tool runs the same measurement in two fresh processes, each with an empty kernel cache: one with
``FNNET_WIDE_VECTORS=0`` (LLVM's default width), one as fnnet runs by default.  Each child times ``exp``,
``tanh``, sigmoid and the exact GELU forward kernels on 1M float32 values (median of 200 calls) and checks
the results equal across the two settings.  A developer tool; not part of the test suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
import fnnet.kernels as K
x = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32)
calls = {"exp": lambda: K.exp_fwd(x), "tanh": lambda: K.tanh_fwd(x), "sigmoid": lambda: K.sigmoid_fwd(x),
         "gelu exact": lambda: K.gelu_fwd(x, False)}
result = {}
for name, call in calls.items():
    out = call()
    seconds = []
    for _ in range(200):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    result[name] = [float(np.median(seconds)) * 1e3, hashlib.sha256(out.tobytes()).hexdigest()]
print(json.dumps(result))
"""


def _run(extra_env) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        inherited = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "FNNET_WIDE_VECTORS")}
        env = {**inherited, "NUMBA_CACHE_DIR": cache, **extra_env}
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    narrow = _run({"FNNET_WIDE_VECTORS": "0"})
    wide = _run({})
    for name, (ms, bits) in narrow.items():
        same = "same bits" if wide[name][1] == bits else "DIFFERENT bits"
        print(f"{name:12s} 256-bit {ms:.3f} ms   512-bit {wide[name][0]:.3f} ms   ({same})")


if __name__ == "__main__":
    main()

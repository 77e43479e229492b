"""Time the vectorised math kernels with LLVM's default vector width and with 512-bit vectors allowed:
``python tests/tools/time_vector_width.py``.

On CPUs whose LLVM tuning prefers 256-bit vectors (Intel's AVX-512 server parts), Numba's loops use
256-bit vectors even where 512-bit ones exist.  This tool runs the same measurement in two fresh
processes, each with an empty kernel cache: one as fnnet runs today, one with ``NUMBA_CPU_FEATURES`` set
to the host's features plus ``-prefer-256-bit`` (a process-wide Numba setting, which fnnet does not make).
Each child times ``exp``, ``tanh``, sigmoid and the exact GELU forward kernels on 1M float32 values
(median of 200 calls) and checks the results equal across the two settings.  A developer tool; not part
of the test suite.
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
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, **extra_env}
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    default = _run({})
    wide = _run({"NUMBA_CPU_FEATURES": features + ",-prefer-256-bit"})
    for name, (ms, bits) in default.items():
        same = "same bits" if wide[name][1] == bits else "DIFFERENT bits"
        print(f"{name:12s} default {ms:.3f} ms   512-bit allowed {wide[name][0]:.3f} ms   ({same})")


if __name__ == "__main__":
    main()

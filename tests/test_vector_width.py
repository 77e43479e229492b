"""``fnnet.kernels._jit._allow_wide_vectors``: 512-bit vectors on AVX-512 CPUs, and when fnnet leaves Numba alone.

Each case runs in a fresh process, because the setting is made once, before Numba's first compile, and the
environment of this test process already carries the value fnnet chose when it was imported here.
"""

import json
import os
import subprocess
import sys

import llvmlite.binding as llvm
import pytest

HAS_AVX512 = bool(llvm.get_host_cpu_features().get("avx512f"))

_REPORT = """
import json, os
{before}
import numpy as np
import fnnet
from fnnet.kernels import _jit
fnnet.kernels.exp_fwd(np.ones(3, np.float32))
from numba.core import registry
print(json.dumps({{"wide": _jit.WIDE_VECTORS, "env": os.environ.get("NUMBA_CPU_FEATURES"),
                  "codegen": registry.cpu_target.target_context.codegen()._tm_features}}))
"""


def _report(before="", **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "FNNET_WIDE_VECTORS")}
    out = subprocess.run([sys.executable, "-c", _REPORT.format(before=before)], env={**clean, **env},
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_wide_vectors_are_allowed_exactly_on_avx512_hosts():
    report = _report()
    assert report["wide"] is HAS_AVX512
    if HAS_AVX512:
        assert report["env"] == llvm.get_host_cpu_features().flatten() + ",-prefer-256-bit"
        assert report["codegen"] == report["env"]  # the kernels compiled with it
    else:
        assert report["env"] is None


def test_fnnet_wide_vectors_0_leaves_numba_alone():
    report = _report(FNNET_WIDE_VECTORS="0")
    assert report["wide"] is False and report["env"] is None
    assert "-prefer-256-bit" not in report["codegen"]


def test_the_users_own_numba_cpu_features_win():
    features = llvm.get_host_cpu_features().flatten()
    report = _report(NUMBA_CPU_FEATURES=features)
    assert report["wide"] is False and report["env"] == features and report["codegen"] == features


@pytest.mark.skipif(not HAS_AVX512, reason="the setting is only made on AVX-512 hosts")
def test_nothing_is_changed_once_numba_has_compiled():
    """Numba's code generator reads the features once; setting them later would only make worker processes
    compile for other features than this one (and miss its disk cache)."""
    before = "import numba\nnumba.njit(lambda: 1)()"
    report = _report(before=before)
    assert report["wide"] is False and report["env"] is None
    assert "-prefer-256-bit" not in report["codegen"]

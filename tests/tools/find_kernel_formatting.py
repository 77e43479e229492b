"""Find kernels that compile string formatting: ``python tests/tools/find_kernel_formatting.py [NAME ...]``.

Compiles every signature of ``fnnet/kernels/manifest.json`` in this process with an empty kernel cache
(a temporary ``NUMBA_CACHE_DIR``) and lists the kernels whose compile reached Numba's string
formatting (``str``/``repr`` of ints, string concatenation, ``raise_with_shape_context``), with the
seconds it cost.  Such code comes from array operations that check shapes at run time and format the
message, e.g. ``row[:] = other`` (write a loop instead); fnnet's ops check shapes in Python before a kernel
runs, so kernels need none of it.  Takes about 6 minutes on 2 cores; prints nothing under the header
when every kernel is clean.  ``NAME`` arguments keep only the manifest kernels whose name contains one of
them (``recurrent random``: a minute).  Not part of the test suite (it compiles everything from scratch).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import defaultdict

FORMATTING = ("unicode", "str_generic", "repr_generic", "raise_with_shape", "integer_str")


def main(names=()) -> int:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fnnet-formatting-")
    from numba.core import event

    from fnnet.precompile.__main__ import read_manifest
    from fnnet.precompile._signatures import find_kernel, parse_signature

    stack, found = [], defaultdict(float)

    class Listener(event.Listener):
        def on_start(self, ev):
            fn = ev.data["dispatcher"].py_func
            stack.append((f"{fn.__module__}.{fn.__qualname__}", time.perf_counter()))

        def on_end(self, ev):
            name, start = stack.pop()
            outermost = not any(word in n for n, _ in stack for word in FORMATTING)  # nested ones: counted there
            if stack and outermost and any(word in name for word in FORMATTING):
                owners = [n for n, _ in stack if n.startswith("fnnet.")]
                found[owners[0] if owners else stack[0][0]] += time.perf_counter() - start

    event.register("numba:compile", Listener())
    entries = [e for e in read_manifest() if not names or any(n in e["kernel"] for n in names)]
    for entry in entries:
        find_kernel(entry["kernel"]).compile(parse_signature(entry["signature"]))
    print(f"{len(entries)} kernel signatures compiled; kernels that compile string formatting:")
    for name, seconds in sorted(found.items(), key=lambda kv: -kv[1]):
        print(f"  {name}: {seconds:.1f} s")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Process-wide Numba set-up shared by every kernel file: threading layer and on-disk caching.

Threading layer
---------------
Numba's OpenMP workers and OpenBLAS's threads both spin while waiting; on a 2-core machine a step that
alternates BLAS calls with ``prange`` loops then runs 30-50x slower than it should (see docs/design.md).
The TBB layer does not spin, is safe to call from several Python threads at once, and survives ``fork``,
so fnnet selects it when the ``tbb`` package's shared library can be found (it is preloaded from the
environment's ``lib`` folder, where pip puts it but where Numba does not look).  Otherwise fnnet falls back
to OpenMP with ``GOMP_SPINCOUNT`` lowered before the first parallel region.  The workqueue layer is never
chosen: it aborts the process when two threads launch kernels at once.  ``NUMBA_THREADING_LAYER`` set by
the user always wins.

Caching
-------
Every kernel is compiled with ``cache=True`` when a writable cache location exists, so a second process
starts in a fraction of a second.  When none exists (read-only install, no writable home), caching is
turned off instead of letting ``import`` fail.  ``FNNET_DISABLE_CACHE=1`` turns it off on purpose.

Numba decides whether a cached kernel is stale from its own source file only, but a kernel also compiles
in the helpers it calls from other files (``blas.gemm``, the vectorised maths): after an edit of
``blas.py`` alone (a ``git pull`` on an editable install), ``dense.py``'s kernels would load old machine
code.  So every file in this folder shares one source stamp, made from all of their modification times and
sizes: a change to any kernel file recompiles every kernel.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import sys
import tempfile

import numba
from numba.core import types
from numba.core.cpu_options import ParallelOptions

__all__ = ["kernel", "helper", "share_threads", "swap_threads", "SERIAL_WORK", "SERIAL_STREAM", "CACHE_ENABLED", "THREADING_LAYER", "KERNEL_BLAS", "KEEPS_FREED_MEMORY", "WIDE_VECTORS"]


def _preload_tbb() -> bool:
    """Load libtbb from the running environment's lib folder; True when it is loaded."""
    candidates = []
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(sys.executable))]):
        candidates += sorted(glob.glob(os.path.join(prefix, "lib", "libtbb.so.12*")))
    for path in candidates:
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            return True
        except OSError:
            continue
    try:  # a system-wide TBB
        ctypes.CDLL("libtbb.so.12", mode=ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        return False


def _choose_threading_layer() -> str:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")  # only matters if OpenMP ends up loaded
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return numba.config.THREADING_LAYER
    if _preload_tbb():
        try:
            from numba.np.ufunc import tbbpool  # noqa: F401  (checks the version numba needs)
        except Exception:
            pass
        else:
            numba.config.THREADING_LAYER = "tbb"
            return "tbb"
    numba.config.THREADING_LAYER = "omp"
    return "omp"


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def _cache_possible() -> bool:
    if os.environ.get("FNNET_DISABLE_CACHE", "") not in ("", "0"):
        return False
    if numba.config.CACHE_DIR:
        return _writable(numba.config.CACHE_DIR)
    here = os.path.dirname(os.path.abspath(__file__))
    if _writable(os.path.join(here, "__pycache__")):
        return True
    # Numba's fallback locator: a user-wide cache folder, keyed by the source path.
    from numba.misc.appdirs import AppDirs

    return _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir)


def cython_blas():
    """``scipy.linalg.cython_blas``, the module whose capsules hold the BLAS entry points kernels call.

    Importing it the usual way first runs ``scipy.linalg/__init__`` and everything it imports (0.25-0.6 s,
    a third of ``import fnnet``), although only this one extension module is needed; so it is loaded from
    its file on its own, under its own name (a later ``import scipy.linalg`` finds it and does not load it
    again).  Falls back to the usual import if the file is not where it is expected."""
    import importlib.machinery
    import importlib.util

    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        return sys.modules[name]
    try:
        import scipy

        folder = os.path.join(os.path.dirname(os.path.abspath(scipy.__file__)), "linalg")
        path = next(os.path.join(folder, f) for f in sorted(os.listdir(folder))
                    if f.startswith("cython_blas.") and f.endswith((".so", ".pyd")))
        loader = importlib.machinery.ExtensionFileLoader(name, path)
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path, loader=loader))
        loader.exec_module(module)
    except (ImportError, OSError, StopIteration):
        import scipy.linalg.cython_blas as module
        return module
    sys.modules[name] = module
    if "scipy.linalg" in sys.modules:
        sys.modules["scipy.linalg"].cython_blas = module
    else:
        sys.meta_path.insert(0, _AttachCythonBlas(module))
    return module


class _AttachCythonBlas:
    """Import hook for :func:`cython_blas`: when ``scipy.linalg`` is imported later, its ``cython_blas``
    attribute is set to the module already loaded (Python sets a package's attribute only for submodules
    it imports itself).  Finds nothing itself; removes itself once done."""

    def __init__(self, module):
        self.module = module

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "scipy.linalg":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            module, run = self.module, spec.loader.exec_module

            def exec_module(package):
                package.cython_blas = module  # before the package's own code, which may use it
                run(package)

            spec.loader = _Delegate(spec.loader, exec_module)
        return spec


class _Delegate:
    """A loader that runs ``exec_module`` and forwards everything else to the package's own loader."""

    def __init__(self, loader, exec_module):
        self._loader, self.exec_module = loader, exec_module

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _single_threaded_kernel_blas():
    """Make the OpenBLAS that kernels call (SciPy's copy, through ``blas.gemm``) single-threaded.

    fnnet parallelises with ``prange`` and calls BLAS inside it (per sample, per row block); a
    multi-threaded BLAS there would oversubscribe the cores, and its spinning threads slow down every
    ``prange`` loop that follows a matrix product.  Only SciPy's OpenBLAS is changed: numpy's own BLAS (a
    separate library) keeps its threads.  ``FNNET_BLAS_THREADS=n`` chooses another count.  Returns the
    library path, or None when it could not be found (non-Linux, other BLAS builds).
    """
    threads = int(os.environ.get("FNNET_BLAS_THREADS", "1"))
    try:
        import scipy

        cython_blas()  # loads the library kernels call

        scipy_dir = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line}
    except (ImportError, OSError):
        return None
    for path in sorted(paths):
        if not path.startswith(scipy_dir) or "scipy.libs" not in path and "/scipy/" not in path:
            continue
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            setter = getattr(lib, symbol, None)
            if setter is not None:
                setter(threads)
                return path
    return None


def _keep_freed_memory():
    """Ask glibc to serve large blocks from the heap and to keep freed memory.

    A training step allocates and frees the same large activation arrays every step.  By default glibc
    maps each block over 128 KB freshly from the kernel and unmaps it when freed, so every step pays page
    faults for every activation (measured: the CNN benchmark step went from 60 to 48 ms when this is off).
    With these settings the memory is reused; resident memory stays at its high-water mark instead.
    ``FNNET_KEEP_FREED_MEMORY=0`` leaves the allocator alone.
    """
    if os.environ.get("FNNET_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def _allow_wide_vectors() -> bool:
    """On a CPU with AVX-512, let LLVM vectorise kernels with 512-bit vectors; True when that was set.

    LLVM's tuning for Intel's AVX-512 server and client parts prefers 256-bit vectors (512-bit
    instructions once lowered the clock of older parts), so Numba's loops use half the width the CPU has,
    while PyTorch's kernels use all of it.  The setting is Numba's ``NUMBA_CPU_FEATURES``: the host's
    features plus ``-prefer-256-bit``.  It is process-wide (Numba code of the user's own compiles with
    it too), it must be made before Numba's first compile, and it goes into the environment so that worker
    processes (``precompile``, distributed ranks) compile for the same features and share the disk cache.
    Left alone when the user set ``NUMBA_CPU_FEATURES``, when ``FNNET_WIDE_VECTORS=0``, when something
    already compiled, and on CPUs without AVX-512.  Results may differ in the last bits from 256-bit code
    (sums vectorised in another order); on one machine and setting they stay bitwise reproducible.
    """
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("FNNET_WIDE_VECTORS", "1") == "0":
        return False
    from numba.core import registry

    if "_toplevel_target_context" in vars(registry.cpu_target):  # Numba's code generator already exists
        return False
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
    except RuntimeError:  # the host's features cannot be read here
        return False
    if not features.get("avx512f"):
        return False
    os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    numba.config.reload_config()
    return True


THREADING_LAYER = _choose_threading_layer()
WIDE_VECTORS = _allow_wide_vectors()


def _stamp_kernel_files_together() -> bool:
    """Make Numba's cache see one source stamp for every kernel file of this folder (see the module
    docstring); other code's caching is untouched.  False when Numba's cache locators are not found."""
    try:
        from numba.core import caching

        bases = [caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator]
        locators = caching.CacheImpl._locator_classes
    except (ImportError, AttributeError):
        return False
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            stat = os.stat(os.path.join(here, name))
            digest.update(f"{name}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    stamp = digest.hexdigest()

    def shared_stamp(base):
        class Locator(base):
            def get_source_stamp(self):
                return stamp

            @classmethod
            def from_function(cls, py_func, py_file):
                if os.path.dirname(os.path.abspath(py_file)) != here:
                    return None
                return super().from_function(py_func, py_file)

        Locator.__name__ = Locator.__qualname__ = f"FnnetKernels{base.__name__}"
        return Locator

    if not any(cls.__name__.startswith("FnnetKernels") for cls in locators):
        locators[:0] = [shared_stamp(base) for base in bases]
    return True


SHARED_SOURCE_STAMP = _stamp_kernel_files_together()
CACHE_ENABLED = _cache_possible()
KERNEL_BLAS = _single_threaded_kernel_blas()
KEEPS_FREED_MEMORY = _keep_freed_memory()


def share_threads(python_threads: int) -> int:
    """In the calling Python thread, let kernels use only its share of the cores: the total divided by
    ``python_threads`` (at least 1).  Numba's thread count is per calling thread, so Python threads that
    each launch kernels can split the cores between them instead of oversubscribing.  Returns the count."""
    count = max(1, numba.config.NUMBA_NUM_THREADS // max(1, python_threads))
    numba.set_num_threads(count)
    return count


def _thread_count_functions():
    """``(get, set)`` of the calling thread's kernel thread count: the threading layer's own entry points
    (0.2-1 us a call) when Numba exposes them, else the public functions (2-3 us: they validate and lock)."""
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
        return parallel._get_num_threads, parallel._set_num_threads
    except (ImportError, AttributeError):
        return numba.get_num_threads, numba.set_num_threads


def swap_threads(n: int) -> int:
    """Let kernels launched from the calling thread use ``n`` threads (1..NUMBA_NUM_THREADS); returns the
    previous count.  Cheap enough for a replayed step to switch per call; results never depend on the
    count (every kernel's chunking is fixed)."""
    global _get_threads, _set_threads
    if _get_threads is None:
        _get_threads, _set_threads = _thread_count_functions()
    previous = _get_threads()
    _set_threads(n)
    return previous


_get_threads = _set_threads = None


#: Numba's parallel transformations limited to the explicit ``prange`` loops (and their reductions).  The
#: others turn array expressions and allocations (``np.zeros``, ``np.empty_like``) into extra parallel
#: loops of their own, each outlined and optimised separately: they roughly doubled the compile time of the
#: large kernels (measured: ``linear_bwd`` 38 s -> 23 s, ``conv2d_bwd_weight`` 48 s -> 24 s on a loaded
#: 2-core machine) and parallelise nothing that pays.  An options object, not a dict: Numba reads a dict
#: of options by popping its entries, in place, at every compile, so a shared dict is empty after the
#: first compile and every later kernel got all the transformations (its ``np.zeros`` a parallel launch of
#: its own on every call: ``column_sums`` of a (32, 64) array took 6.6-8.8 us instead of 1.7-1.8 us).
_PRANGE_ONLY = ParallelOptions({"prange": True, "reduction": True, "comprehension": False, "numpy": False,
                                "setitem": False, "stencil": False, "fusion": False, "inplace_binop": False})


#: Below this many elements of work a kernel runs its loop serially in the calling thread instead of in
#: ``prange``: a parallel launch costs 2-7 us even for a handful of elements (NUMBA_FACTS.md section 8;
#: more while Python and the worker threads share two cores), about what 16K elements of simple
#: arithmetic take on one core.  Small steps (a 64-wide MLP, a GRU cell of batch 32) are made of such
#: calls.  The choice depends on the size only, and every loop it applies to is elementwise or splits
#: its work in fixed chunks, so results never depend on it.
SERIAL_WORK = 16384

#: The same threshold for a pass that only converts and copies (float32 <-> float16 bits): one vector
#: instruction converts 8-16 elements, so one core streams far longer before a launch pays.  Measured
#: (float32 -> half, serial loop against the ``prange`` kernel, medians of 2000 calls): 64K elements
#: 6-9 us against 13-19 us, 200K 23-25 us against 31-33 us, 1M 100-149 us against 72-78 us.
SERIAL_STREAM = 1 << 19


def kernel(fn=None, *, parallel: bool = True, reduction: bool = False):
    """Compile ``fn`` the fnnet way: nopython, nogil, cached, numpy error model.

    ``reduction=True`` adds ``fastmath={'reassoc', 'contract'}`` so float sums vectorise; it keeps
    ``np.isnan`` working (full fast-math would not).  Summation order is still fixed by the kernel's
    chunking, so results do not depend on the thread count.
    """
    options = dict(parallel=_PRANGE_ONLY if parallel else False, nogil=True, cache=CACHE_ENABLED,
                   error_model="numpy")
    if reduction:
        options["fastmath"] = {"reassoc", "contract"}

    def wrap(f):
        return _typed_without_literals(numba.njit(**options)(f))

    return wrap(fn) if fn is not None else wrap


def _typed_without_literals(dispatcher):
    """``dispatcher``, made to compile for the plain types of the arguments another kernel calls it with.

    By default Numba types a constant argument as a literal (``Literal[int](0)``, ``Literal[bool](True)``) and
    compiles a function called as ``block(x, 0)`` in one branch and ``block(x, blk)`` in another twice, with
    everything it calls: ``gru_sequence_fwd``'s serial and ``prange`` branches compiled its gate pass, its
    products and ``gemm`` once each per branch.  Results do not change; a flag passed as a constant is then
    a run-time test (no training-step row of ``python -m fnnet.bench`` got slower)."""
    typed = dispatcher.get_call_template

    def get_call_template(args, kws):
        return typed(tuple(types.unliteral(a) for a in args), {k: types.unliteral(v) for k, v in kws.items()})

    dispatcher.get_call_template = get_call_template
    return dispatcher


def helper(fn=None, *, inline: bool = False):
    """Compile a function that kernels call (never Python): serial, nogil, cached like the kernels, numpy
    error model.  ``inline=True`` inlines it into each caller at the Numba IR level (small per-element
    maths that must vectorise with the caller's loop)."""
    options = dict(nogil=True, cache=CACHE_ENABLED, error_model="numpy", inline="always" if inline else "never")

    def wrap(f):
        jitted = numba.njit(**options)(f)
        return jitted if inline else _typed_without_literals(jitted)

    return wrap(fn) if fn is not None else wrap

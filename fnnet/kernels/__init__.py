"""Numba kernels, one file per family.  Kernels assume validated, C-contiguous inputs (see ``_jit``)."""

from ._jit import CACHE_ENABLED, THREADING_LAYER, kernel, share_threads, swap_threads  # noqa: F401  (configures threading first)
from .arithmetic import *  # noqa: F401,F403
from .dense import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .half import float32_to_half, half_to_float32  # noqa: F401
from .stats import all_finite, histogram, summary_stats  # noqa: F401
from .indexing import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403

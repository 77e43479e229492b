"""Parameter initializers: callables ``init(key, shape, dtype=np.float32) -> np.ndarray``.

Every initializer is an instance of a small frozen ``attrs`` class, so layer specs can hold one as a field,
compare it with ``==`` and save it with :func:`to_config` / :func:`from_config`.

Fans (see :func:`fans`): a dense weight is ``(in_features, out_features)``; a convolution weight follows
PyTorch, ``(out_channels, in_channels, *kernel)``, so ``fan_in = in_channels * prod(kernel)`` and
``fan_out = out_channels * prod(kernel)``.

The named initializers and their exact distributions:

- ``glorot_uniform`` = ``xavier_uniform``: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``.
- ``glorot_normal`` = ``xavier_normal``: ``N(0, std)``, ``std = sqrt(2 / (fan_in + fan_out))``, untruncated
  (as PyTorch's ``xavier_normal_``; Keras and JAX truncate instead).
- ``he_uniform`` = ``kaiming_uniform``: ``U(-a, a)``, ``a = sqrt(6 / fan_in)``.
- ``he_normal`` = ``kaiming_normal``: ``N(0, std)``, ``std = sqrt(2 / fan_in)``, untruncated (as PyTorch's
  ``kaiming_normal_``).
- ``lecun_uniform``: ``U(-a, a)``, ``a = sqrt(3 / fan_in)``.
- ``lecun_normal``: a normal truncated at +-2 of its own std, rescaled so that the std of the result is
  exactly ``1 / sqrt(fan_in)`` (the parent normal has std ``1 / sqrt(fan_in) / 0.87962566``).
- ``orthogonal``: a (semi-)orthogonal matrix, gain 1 (see :class:`Orthogonal`).
- ``normal``: ``N(0, 0.01)``; ``uniform``: ``U(-0.01, 0.01)``; ``truncated_normal``: ``0.01 * z`` with ``z``
  a standard normal truncated to ``(-2, 2)`` (std not corrected, about ``0.0088``).
- ``zeros``, ``ones``, ``constant(value)``: constant arrays.

float16 is supported as a storage type: values are drawn in float32 and cast.  Draws are scaled and cast
chunk by chunk straight into the result (see ``fnnet.random``), so an initializer needs little memory
beyond the array it returns; ``Orthogonal`` is the exception, its QR decomposition works in float64.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading

import attrs
import numpy as np

from fnnet.random._draws import draw_normal, draw_truncated_normal, draw_uniform
from fnnet.random._keys import as_dtype, as_shape, check_key

__all__ = [
    "Initializer", "ShapeDtype", "abstract_arrays", "VarianceScaling", "Normal", "Uniform", "TruncatedNormal", "Orthogonal", "Constant",
    "TRUNCATED_STD_2", "fans", "get", "to_config", "from_config", "register", "constant",
    "glorot_uniform", "xavier_uniform", "glorot_normal", "xavier_normal", "he_uniform", "kaiming_uniform",
    "he_normal", "kaiming_normal", "lecun_uniform", "lecun_normal", "orthogonal", "truncated_normal",
    "normal", "uniform", "zeros", "ones",
]

_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

TRUNCATED_STD_2 = math.sqrt(1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / math.erf(math.sqrt(2.0)))
"""0.8796: the standard deviation of a standard normal truncated to ``[-2, 2]``,
``sqrt(1 - 2 * 2 * phi(2) / (2 * Phi(2) - 1))``.  :class:`VarianceScaling` divides by it so that its truncated
draws have exactly the standard deviation asked for."""


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape.

    ``()`` -> ``(1, 1)``; ``(n,)`` -> ``(n, n)``; dense ``(in, out)`` -> ``(in, out)``; convolution
    ``(out_ch, in_ch, *kernel)`` -> ``(in_ch * prod(kernel), out_ch * prod(kernel))``.

    Raises:
      TypeError / ValueError: ``shape`` is not a tuple of non-negative ints.
    """
    shape = as_shape(shape, "fnnet.init.fans")
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _prepare(name, key, shape, dtype):
    """Validate (key, shape, dtype); returns (shape, target dtype, compute dtype)."""
    where = f"fnnet.init.{name}"
    check_key(key, where)
    shape = as_shape(shape, where)
    dt = as_dtype(dtype, where, lambda d: d in _DTYPES, "float16, float32 or float64")
    return shape, dt, (np.dtype(np.float32) if dt == np.float16 else dt)


def _positive(instance, attribute, value):
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be a finite number > 0, got {value!r}")


def _finite(instance, attribute, value):
    if not math.isfinite(value):
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be finite, got {value!r}")


def _one_of(*choices):
    def check(instance, attribute, value):
        if value not in choices:
            raise ValueError(f"{type(instance).__name__}: {attribute.name} must be one of {list(choices)}, "
                             f"got {value!r}")
    return check


@attrs.frozen
class ShapeDtype:
    """An array's description without its data: what initializers return under :func:`abstract_arrays`."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


_abstract = threading.local()


@contextlib.contextmanager
def abstract_arrays():
    """Within this block (in this thread), initializers validate their arguments and return
    :class:`ShapeDtype` descriptors instead of allocating and filling arrays."""
    previous = getattr(_abstract, "on", False)
    _abstract.on = True
    try:
        yield
    finally:
        _abstract.on = previous


class Initializer:
    """Base class (for ``isinstance`` checks): ``__call__(key, shape, dtype=np.float32) -> np.ndarray``.

    Subclasses' ``__call__`` is wrapped so that under :func:`abstract_arrays` it returns a
    :class:`ShapeDtype` after validating, without drawing any numbers.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        call = cls.__dict__.get("__call__")
        if call is None or getattr(call, "_fnnet_abstract_aware", False):
            return

        @functools.wraps(call)
        def wrapped(self, key, shape, dtype=np.float32):
            if getattr(_abstract, "on", False):
                shape, dt, _ = _prepare(type(self).__name__, key, shape, dtype)
                return ShapeDtype(shape, dt)
            return call(self, key, shape, dtype)

        wrapped._fnnet_abstract_aware = True
        cls.__call__ = wrapped

    def __call__(self, key, shape, dtype=np.float32) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


@attrs.frozen
class VarianceScaling(Initializer):
    """Zero-mean draws with variance ``scale / n``, ``n`` = fan_in, fan_out or their mean (``mode``).

    ``distribution="normal"``: ``N(0, sqrt(scale / n))``. ``"uniform"``: ``U(-a, a)``, ``a = sqrt(3 * scale / n)``.
    ``"truncated_normal"``: a normal truncated at +-2 of its own std, whose parent std is divided by
    ``TRUNCATED_STD_2`` (0.8796) so the resulting std is exactly ``sqrt(scale / n)``.
    """

    scale: float = attrs.field(default=1.0, converter=float, validator=_positive)
    mode: str = attrs.field(default="fan_in", validator=_one_of("fan_in", "fan_out", "fan_avg"))
    distribution: str = attrs.field(default="truncated_normal",
                                    validator=_one_of("truncated_normal", "normal", "uniform"))

    def __call__(self, key, shape, dtype=np.float32) -> np.ndarray:
        shape, dt, compute = _prepare("VarianceScaling", key, shape, dtype)
        if math.prod(shape) == 0:
            return np.zeros(shape, dt)
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        std = math.sqrt(self.scale / n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0) * std
            return draw_uniform(key, shape, compute, -limit, limit, out_dtype=dt)
        if self.distribution == "normal":
            return draw_normal(key, shape, compute, out_dtype=dt, scale=compute.type(std))
        return draw_truncated_normal(key, shape, compute, out_dtype=dt, scale=compute.type(std / TRUNCATED_STD_2))


@attrs.frozen
class Normal(Initializer):
    """``N(mean, std)`` draws."""

    std: float = attrs.field(default=0.01, converter=float, validator=_positive)
    mean: float = attrs.field(default=0.0, converter=float, validator=_finite)

    def __call__(self, key, shape, dtype=np.float32) -> np.ndarray:
        shape, dt, compute = _prepare("Normal", key, shape, dtype)
        return draw_normal(key, shape, compute, out_dtype=dt, scale=compute.type(self.std),
                           shift=compute.type(self.mean))


@attrs.frozen
class Uniform(Initializer):
    """``U(minval, maxval)`` draws in ``[minval, maxval)`` (float16 rounding may reach ``maxval``)."""

    minval: float = attrs.field(default=-0.01, converter=float, validator=_finite)
    maxval: float = attrs.field(default=0.01, converter=float, validator=_finite)

    def __attrs_post_init__(self):
        if not self.minval < self.maxval:
            raise ValueError(f"Uniform: need minval < maxval, got minval={self.minval}, maxval={self.maxval}")

    def __call__(self, key, shape, dtype=np.float32) -> np.ndarray:
        shape, dt, compute = _prepare("Uniform", key, shape, dtype)
        return draw_uniform(key, shape, compute, self.minval, self.maxval, out_dtype=dt)


@attrs.frozen
class TruncatedNormal(Initializer):
    """``std * z``, ``z`` a standard normal truncated to ``(lower, upper)`` (bounds in units of ``std``).

    ``std`` is the parent's, not corrected for truncation (the result's std is ``0.88 * std`` for +-2).
    """

    std: float = attrs.field(default=0.01, converter=float, validator=_positive)
    lower: float = attrs.field(default=-2.0, converter=float)
    upper: float = attrs.field(default=2.0, converter=float)

    def __attrs_post_init__(self):
        if not self.lower < self.upper:
            raise ValueError(f"TruncatedNormal: need lower < upper, got lower={self.lower}, upper={self.upper}")

    def __call__(self, key, shape, dtype=np.float32) -> np.ndarray:
        shape, dt, compute = _prepare("TruncatedNormal", key, shape, dtype)
        return draw_truncated_normal(key, shape, compute, self.lower, self.upper, out_dtype=dt,
                                     scale=compute.type(self.std))


@attrs.frozen
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``, viewed as ``(shape[0], prod(shape[1:]))`` (as PyTorch).

    For a convolution ``(out_ch, in_ch, *kernel)`` the ``out_ch`` flattened filters are orthonormal (when
    ``out_ch <= in_ch * prod(kernel)``, else the flattened columns are). For a dense ``(in, out)`` weight
    ``W``: ``W.T @ W = gain**2 * I`` when ``in >= out``, else ``W @ W.T = gain**2 * I``. Computed as the Q of
    the QR decomposition of a float64 standard normal matrix, with columns multiplied by ``sign(diag(R))``
    so that Q is Haar-distributed.

    Raises:
      ValueError: ``shape`` has fewer than 2 dimensions.
    """

    gain: float = attrs.field(default=1.0, converter=float, validator=_finite)

    def __call__(self, key, shape, dtype=np.float32) -> np.ndarray:
        shape, dt, _ = _prepare("Orthogonal", key, shape, dtype)
        if len(shape) < 2:
            raise ValueError(f"fnnet.init.Orthogonal: shape must have at least 2 dimensions, got {shape}")
        rows, cols = shape[0], math.prod(shape[1:])
        if rows * cols == 0:
            return np.zeros(shape, dt)
        q, r = np.linalg.qr(draw_normal(key, (max(rows, cols), min(rows, cols)), np.float64))
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        q *= self.gain
        out = np.empty(shape, dt)
        out.reshape(rows, cols)[...] = q.T if rows < cols else q
        return out


@attrs.frozen
class Constant(Initializer):
    """An array filled with ``value`` (the key is validated but unused)."""

    value: float = attrs.field(default=0.0, converter=float, validator=_finite)

    def __call__(self, key, shape, dtype=np.float32) -> np.ndarray:
        shape, dt, _ = _prepare("Constant", key, shape, dtype)
        return np.full(shape, self.value, dt)


def constant(value: float) -> Constant:
    """Returns the initializer filling arrays with ``value``."""
    return Constant(value)


glorot_uniform = xavier_uniform = VarianceScaling(1.0, "fan_avg", "uniform")
"""Glorot (Xavier) uniform: ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio, 2010).
The default ``w_init`` of ``Linear``."""
glorot_normal = xavier_normal = VarianceScaling(1.0, "fan_avg", "normal")
"""Glorot (Xavier) normal: zero mean, standard deviation ``sqrt(2 / (fan_in + fan_out))``."""
he_uniform = kaiming_uniform = VarianceScaling(2.0, "fan_in", "uniform")
"""He (Kaiming) uniform, for ReLU networks: ``U(-a, a)`` with ``a = sqrt(6 / fan_in)`` (He et al., 2015)."""
he_normal = kaiming_normal = VarianceScaling(2.0, "fan_in", "normal")
"""He (Kaiming) normal, for ReLU networks: zero mean, standard deviation ``sqrt(2 / fan_in)`` (He et al.,
2015).  The default ``w_init`` of the convolution layers."""
lecun_uniform = VarianceScaling(1.0, "fan_in", "uniform")
"""LeCun uniform: ``U(-a, a)`` with ``a = sqrt(3 / fan_in)``."""
lecun_normal = VarianceScaling(1.0, "fan_in", "truncated_normal")
"""LeCun normal: a normal truncated at two standard deviations, rescaled to standard deviation
``sqrt(1 / fan_in)``."""
orthogonal = Orthogonal(1.0)
"""A (semi-)orthogonal matrix with gain 1 (see :class:`Orthogonal`)."""
truncated_normal = TruncatedNormal(0.01)
"""``0.01 * z``, ``z`` a standard normal truncated to ``(-2, 2)`` (see :class:`TruncatedNormal`)."""
normal = Normal(0.01)
"""Normal draws with mean 0 and standard deviation 0.01."""
uniform = Uniform(-0.01, 0.01)
"""Uniform draws in ``[-0.01, 0.01)``."""
zeros = Constant(0.0)
"""All zeros: the default ``b_init`` of the layers with a bias."""
ones = Constant(1.0)
"""All ones (e.g. the scale of a normalization layer)."""

_NAMED = {
    "glorot_uniform": glorot_uniform, "xavier_uniform": xavier_uniform, "glorot_normal": glorot_normal,
    "xavier_normal": xavier_normal, "he_uniform": he_uniform, "kaiming_uniform": kaiming_uniform,
    "he_normal": he_normal, "kaiming_normal": kaiming_normal, "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal, "orthogonal": orthogonal, "truncated_normal": truncated_normal,
    "normal": normal, "uniform": uniform, "zeros": zeros, "ones": ones,
}
_CLASSES = {cls.__name__: cls for cls in (VarianceScaling, Normal, Uniform, TruncatedNormal, Orthogonal, Constant)}


def register(cls):
    """Class decorator: make a user's frozen attrs initializer class known to :func:`from_config`.

    Raises:
      TypeError: ``cls`` is not an attrs class.
      ValueError: the class name is already taken by another class.
    """
    if not attrs.has(cls):
        raise TypeError(f"fnnet.init.register: expected an attrs class, got {cls!r}")
    if _CLASSES.get(cls.__name__, cls) is not cls:
        raise ValueError(f"fnnet.init.register: an initializer class named {cls.__name__!r} is already registered")
    _CLASSES[cls.__name__] = cls
    return cls


def get(name_or_init):
    """Look up an initializer by name (``"he_normal"``, ``"xavier_uniform"``, ...); an initializer object is
    returned unchanged.

    Raises:
      ValueError: unknown name.
      TypeError: neither a string nor a callable.
    """
    if isinstance(name_or_init, str):
        if name_or_init not in _NAMED:
            raise ValueError(f"fnnet.init.get: unknown initializer {name_or_init!r}; "
                             f"available: {sorted(_NAMED)}")
        return _NAMED[name_or_init]
    if callable(name_or_init):
        return name_or_init
    raise TypeError(f"fnnet.init.get: expected an initializer name or object, got {name_or_init!r}")


def to_config(init) -> dict:
    """A JSON-serialisable dict ``{"name": class name, **fields}``, e.g.
    ``{"name": "VarianceScaling", "scale": 2.0, "mode": "fan_in", "distribution": "normal"}``.

    Raises:
      TypeError: ``init`` is not an instance of a registered attrs initializer class.
    """
    cls = type(init)
    if _CLASSES.get(cls.__name__) is not cls:
        raise TypeError(f"fnnet.init.to_config: {init!r} is not an instance of a registered initializer class "
                        f"({sorted(_CLASSES)}); decorate custom classes with fnnet.init.register")
    return {"name": cls.__name__, **attrs.asdict(init)}


def from_config(config: dict):
    """Rebuild an initializer from :func:`to_config`'s dict.

    Raises:
      ValueError: unknown class name or bad fields.
    """
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"fnnet.init.from_config: expected a dict with a 'name' key, got {config!r}")
    fields = dict(config)
    name = fields.pop("name")
    if name not in _CLASSES:
        raise ValueError(f"fnnet.init.from_config: unknown initializer class {name!r}; known: {sorted(_CLASSES)}")
    try:
        return _CLASSES[name](**fields)
    except TypeError as e:
        raise ValueError(f"fnnet.init.from_config: bad fields for {name}: {e}") from None

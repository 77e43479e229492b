"""The layer protocol, the layer registry, configs, and the helpers every layer file shares.

A layer is an ``@attrs.frozen`` class of hyperparameters with pure methods:

- ``init(key, in_shape, dtype=np.float32) -> params``: a nested dict with fixed names (``{}`` if none).
  ``in_shape`` includes the batch axis, which may be ``None``; an example array is accepted too.
- ``init_state(in_shape, dtype=np.float32) -> state``: running statistics (``{}`` for most layers).
- ``out_shape(in_shape) -> shape``: shape inference only, nothing is allocated or computed.
- ``apply(params, x, *, state=None, key=None, train=False)``: returns ``y``; when a ``state`` tree is
  passed it returns ``(y, new_state)``.  Nothing is ever mutated in place.

Multi-input and multi-output layers (``Parallel``, ``FanOut``, ``FanInSum`` ...) take and return tuples
of arrays, and their shapes are tuples of shapes.
"""

from __future__ import annotations

import contextlib
import numbers

import attrs
import numpy as np

from .. import init as initializers

__all__ = [
    "Layer", "register", "get", "registered_layers", "to_config", "from_config",
    "positive_int", "non_negative_int", "as_shape", "check_params", "child_errors", "with_path", "USER_ERRORS",
]

_LAYERS: dict[str, type] = {}


@attrs.frozen
class Layer:
    """Base of every layer: defaults for stateless, parameter-free layers."""

    def init(self, key, in_shape, dtype=np.float32) -> dict:
        self.out_shape(in_shape)  # validates the input shape(s)
        return {}

    def init_state(self, in_shape, dtype=np.float32) -> dict:
        return {}

    @property
    def has_state(self) -> bool:
        return False

    def out_shape(self, in_shape):
        return as_shape(in_shape)

    def apply(self, params, x, *, state=None, key=None, train=False):
        y = self.forward(params, x, key=key, train=train)
        return y if state is None else (y, state)

    def forward(self, params, x, *, key=None, train=False):
        raise NotImplementedError(f"{type(self).__name__} must define forward() or apply()")

    def __call__(self, params, x, **kwargs):
        return self.apply(params, x, **kwargs)


def register(cls):
    """Class decorator adding a layer class to the registry, so :func:`get` and :func:`from_config`
    know it.  Built-in layers use it too.

    Raises:
        TypeError: ``cls`` is not an attrs class.  ValueError: another class already has its name.
    """
    if not attrs.has(cls):
        raise TypeError(f"fnnet.layers.register: {cls!r} is not an attrs class; decorate it with @attrs.frozen first")
    name = cls.__name__
    if _LAYERS.get(name, cls) is not cls and _LAYERS[name].__qualname__ != cls.__qualname__:
        raise ValueError(f"fnnet.layers.register: a layer named {name!r} is already registered ({_LAYERS[name]!r})")
    _LAYERS[name] = cls
    return cls


def get(name: str) -> type:
    """The registered layer class called ``name``."""
    try:
        return _LAYERS[name]
    except KeyError:
        raise KeyError(f"fnnet.layers.get: no layer named {name!r}; registered: {sorted(_LAYERS)}") from None


def registered_layers() -> dict:
    return dict(_LAYERS)


def _encode(value):
    if attrs.has(type(value)) and type(value).__name__ in _LAYERS:
        return to_config(value)
    if isinstance(value, initializers.Initializer):
        return {"initializer": initializers.to_config(value)}
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"dtype": np.dtype(value).name}
    raise TypeError(f"fnnet.layers.to_config: cannot serialise field value {value!r} of type {type(value).__name__}")


def _decode(value):
    if isinstance(value, dict):
        if "layer" in value:
            return from_config(value)
        if "initializer" in value:
            return initializers.from_config(value["initializer"])
        if "dtype" in value:
            return np.dtype(value["dtype"]).type
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def to_config(layer) -> dict:
    """A JSON-serialisable description of ``layer`` (nested layers and initializers included), such that
    ``from_config(to_config(layer)) == layer``."""
    name = type(layer).__name__
    if _LAYERS.get(name) is not type(layer):
        raise TypeError(f"fnnet.layers.to_config: {name} is not a registered layer; decorate it with @fnnet.layers.register")
    fields = {f.name: _encode(getattr(layer, f.name)) for f in attrs.fields(type(layer)) if f.init}
    return {"layer": name, **fields}


def from_config(config: dict):
    """Rebuild a layer from :func:`to_config`'s output."""
    if not isinstance(config, dict) or "layer" not in config:
        raise ValueError(f"fnnet.layers.from_config: expected a dict with a 'layer' key, got {config!r}")
    fields = dict(config)
    cls = get(fields.pop("layer"))
    return cls(**{k: _decode(v) for k, v in fields.items()})


# ----------------------------------------------------------------------------------------------- helpers


def positive_int(instance, attribute, value):
    """attrs validator: an int > 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be a positive int, got {value!r}")


def non_negative_int(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be a non-negative int, got {value!r}")


def as_shape(in_shape, where="layer"):
    """Normalise a shape (tuple of ints, the batch entry may be None) or an example array's shape."""
    if hasattr(in_shape, "shape") and not isinstance(in_shape, tuple):
        return tuple(in_shape.shape)
    if isinstance(in_shape, list):
        in_shape = tuple(in_shape)
    if not isinstance(in_shape, tuple) or not all(
        s is None or (isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0) for s in in_shape
    ):
        raise ValueError(
            f"{where}: in_shape must be a tuple of non-negative ints (the batch entry may be None) or an example "
            f"array, got {in_shape!r}"
        )
    return tuple(None if s is None else int(s) for s in in_shape)


def check_params(where: str, params, required=(), optional=()):
    """Raise a clear error unless ``params`` is a dict with exactly the ``required`` keys (plus any of
    ``optional``)."""
    if type(params) is dict and len(params) == len(required) and all(k in params for k in required):
        return  # the common case, checked cheaply
    if not isinstance(params, dict):
        raise TypeError(f"{where}: params must be a dict, got {type(params).__name__}; pass the tree from init()")
    missing = [k for k in required if k not in params]
    extra = [k for k in params if k not in required and k not in optional]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing key(s) {missing}")
        if extra:
            parts.append(f"unexpected key(s) {extra}")
        raise ValueError(
            f"{where}: params do not match the layer: {' and '.join(parts)} (expected {list(required)}, got "
            f"{sorted(params)}); re-create them with init() for this model"
        )


def with_path(e, name, layer):
    """A copy of exception ``e`` (from child ``name``) whose message starts with the child's path, so
    errors from deep inside a model read ``layers/3 (Linear): ...``."""
    inner_path = getattr(e, "fnnet_path", None)
    path = str(name) if inner_path is None else f"{name}/{inner_path}"
    kind = getattr(e, "fnnet_layer", type(layer).__name__)
    message = getattr(e, "fnnet_message", None)
    if message is None:
        message = str(e.args[0]) if e.args else str(e)
        if message.startswith(f"{kind}: "):
            message = message[len(kind) + 2:]
    try:
        new = type(e)(f"{path} ({kind}): {message}")
    except Exception:  # exception classes with unusual constructors
        new = ValueError(f"{path} ({kind}): {message}")
    new.fnnet_path, new.fnnet_layer, new.fnnet_message = path, kind, message
    return new


#: The exception types a container re-raises with the failing child's path.
USER_ERRORS = (ValueError, TypeError, IndexError, KeyError)


@contextlib.contextmanager
def child_errors(name, layer):
    """Context manager form of :func:`with_path` for code off the hot path (init, out_shape)."""
    try:
        yield
    except USER_ERRORS as e:
        raise with_path(e, name, layer) from e

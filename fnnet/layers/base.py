"""The layer protocol, the layer registry, configs, and the helpers every layer file shares.

A layer is an ``@attrs.frozen`` class of hyperparameters with pure methods:

- ``init(key, in_shape, dtype=np.float32) -> params``: a nested dict with fixed names (``{}`` if none).
  ``in_shape`` includes the batch axis, which may be ``None``; an example array is accepted too.
- ``init_state(in_shape, dtype=np.float32) -> state``: running statistics (``{}`` for most layers).
- ``out_shape(in_shape) -> shape``: shape inference only, nothing is allocated or computed.
- ``apply(params, x, *, state=None, key=None, train=False)``: returns ``y``; when a ``state`` tree is
  passed it returns ``(y, new_state)``.  Nothing is ever mutated in place.

What a layer says about itself, so that no code outside its file switches on its class (defaults in
:class:`Layer`; a layer that does not subclass it gets the same defaults from the readers):

- ``children()``: ``((name, layer), ...)`` in params-tree order (``()`` for a leaf);
  ``child_in_shapes(in_shape)``: each child's input shape.  :func:`fnnet.layers.walk` walks a model by them.
- ``flops(in_shape)`` and ``tape_bytes(in_shape, dtype)``: estimates for ``fnnet.summary`` (``None``: not
  estimated, shown as ``?``).
- ``torch_layout()``: how the equivalent ``torch.nn`` module's ``state_dict`` maps onto params and state.
- ``compile_cost``, ``integer_input``: hints for ``fnnet.precompile``.
- ``fusable_activations``, ``fused_activation``, ``apply_fused``: kernel fusion inside ``Sequential``.
- ``no_decay_params``: the params weight decay should skip (``fnnet.layers.decay_mask``).

Multi-input and multi-output layers (``Parallel``, ``FanOut``, ``FanInSum`` ...) take and return tuples
of arrays, and their shapes are tuples of shapes.
"""

from __future__ import annotations

import contextlib
import math
import numbers

import attrs
import numpy as np

from .. import init as initializers
from .. import tree
from ..ops._validate import check_float, is_array

__all__ = [
    "Layer", "TorchParam", "numel", "register", "get", "registered_layers", "to_config", "from_config",
    "positive_int", "non_negative_int", "as_shape", "check_input", "check_params", "check_param",
    "check_passthrough", "child_errors", "with_path", "USER_ERRORS",
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
        check_input(self, x)
        y = self.forward(params, x, key=key, train=train)
        return y if state is None else (y, state)

    def forward(self, params, x, *, key=None, train=False):
        raise NotImplementedError(f"{type(self).__name__} must define forward() or apply()")

    def __call__(self, params, x, **kwargs):
        return self.apply(params, x, **kwargs)

    # ------------------------------------------------------------------ what the layer says about itself
    # Plain class attributes (not annotated, so not attrs fields):

    #: relative time to compile this layer's kernels; ``fnnet.precompile`` starts the heaviest first.
    compile_cost = 1
    #: the input is integer indices (``Embedding``): not differentiated, fed zeros by ``precompile``.
    integer_input = False
    #: the children's activations are recomputed in the backward instead of kept (``Remat``).
    rematerializes = False
    #: the name under which fused kernels apply this activation (``"relu"``), or None.
    fused_activation = None
    #: the ``fused_activation`` names this layer's kernel can apply to its output (see ``apply_fused``).
    fusable_activations = frozenset()
    #: names (paths inside this layer's own params) that weight decay skips: see ``fnnet.layers.decay_mask``.
    #: Biases by default; normalisation layers add their scale.
    no_decay_params = ("bias",)

    def children(self) -> tuple:
        """``((name, layer), ...)``: the direct children in params-tree order (``params[name]`` is the
        child's params); ``()`` for a leaf.  A name of ``None`` marks a child whose params are this layer's
        own, not nested (``Remat``)."""
        return ()

    def child_in_shapes(self, in_shape) -> tuple:
        """The input shape of each child (aligned with :meth:`children`) when this layer's is ``in_shape``."""
        if self.children():
            raise NotImplementedError(f"{type(self).__name__} has children() but does not define child_in_shapes()")
        return ()

    def flops(self, in_shape):
        """Forward floating-point operations for an input of ``in_shape`` (a multiply-add counts 2), or
        None when not estimated (``fnnet.summary`` shows ``?``)."""
        return None

    def tape_bytes(self, in_shape, dtype):
        """Bytes of activations this layer's ops keep on the tape for the backward in training (params
        excluded), or None when not estimated."""
        return None

    def torch_layout(self):
        """``(TorchParam, ...)``: how the ``state_dict`` of the equivalent ``torch.nn`` module maps onto this
        layer's params and state; None: params are matched name for name with unchanged shapes."""
        return None

    def apply_fused(self, params, x, activation):
        """``activation(apply(params, x))`` in one kernel, for ``activation`` in ``fusable_activations``."""
        raise NotImplementedError(f"{type(self).__name__} fuses no activation (fusable_activations is empty)")


def _default_name(entry):
    return entry.torch_name


@attrs.frozen
class TorchParam:
    """One ``state_dict`` entry of a ``torch.nn`` module and where it goes in the fnnet layer's trees.

    Args:
        torch_name: the key inside the module (``"weight"``, ``"running_mean"``).
        section: ``"params"``, ``"state"``, or ``"ignored"`` (kept by torch, not needed by fnnet).
        name: the fnnet key (default: ``torch_name``).
        shape: the fnnet shape as far as the hyperparameters fix it: ints, and strings naming the sizes
            only the input fixes, e.g. ``("in_features", 10)``; None: not checked.
        transpose: fnnet stores the transpose of torch's 2-D array.
    """

    torch_name: str
    section: str = attrs.field(default="params", validator=attrs.validators.in_(("params", "state", "ignored")))
    name: str = attrs.field(default=attrs.Factory(_default_name, takes_self=True))
    shape: tuple | None = None
    transpose: bool = False


def numel(shape) -> int:
    """Number of elements of ``shape``, a ``None`` (batch) entry counting as 1; a tuple of shapes sums."""
    if shape and isinstance(shape[0], (tuple, list)):
        return sum(numel(s) for s in shape)
    return math.prod(1 if s is None else s for s in shape)


def register(cls):
    """Class decorator adding a layer class to the registry, so :func:`get` and :func:`from_config`
    know it.  Built-in layers use it too.

    Raises:
        TypeError: ``cls`` is not an attrs class.
        ValueError: another class already has its name.
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
    """A copy of the registry: ``{class name: layer class}`` for every class known to :func:`get`."""
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
    if hasattr(value, "apply") and hasattr(value, "init"):
        raise TypeError(f"fnnet.layers.to_config: the nested layer {type(value).__name__} is not registered; "
                        "decorate its class with @fnnet.layers.register (below @attrs.frozen)")
    if callable(value):
        raise TypeError(f"fnnet.layers.to_config: cannot serialise the function {value!r}; use an initializer from "
                        "fnnet.init, or an attrs initializer class decorated with @fnnet.init.register")
    raise TypeError(f"fnnet.layers.to_config: cannot serialise field value {value!r} of type {type(value).__name__}; "
                    "fields must be numbers, strings, tuples, dtypes, registered layers or registered initializers")


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


def check_input(layer, x) -> None:
    """Raise a TypeError naming ``layer`` unless ``x`` is an array or a traced array, or a tuple (or other
    tree) of them for multi-input layers; the ops then check dtypes and shapes."""
    if is_array(x):
        return  # the common case, checked cheaply
    leaves = tree.leaves(x)
    if leaves and all(is_array(leaf) for leaf in leaves):
        return
    dtype = "np.int64" if getattr(layer, "integer_input", False) else "np.float32"
    raise TypeError(
        f"{type(layer).__name__}: x expected a numpy array (or a traced one; a tuple of them for a multi-input "
        f"layer), got {type(x).__name__}; convert it with np.asarray(x, dtype={dtype})"
    )


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


def check_param(where: str, params, name: str, ndim: int, axes: str = ""):
    """``params[name]`` after checking it is an array (or a traced one) with ``ndim`` axes, so a None, a list,
    a scalar or a wrongly shaped leaf raises an error naming ``where`` and the param instead of failing
    inside an op; ``axes`` describes the expected shape (``"(in_features, out_features)"``).  Call it after
    :func:`check_params`.  Dtypes are left to the ops."""
    p = params[name]
    if is_array(p) and p.ndim == ndim:
        return p  # the common case, checked cheaply; the ops check the dtype
    want = f"a float array with {ndim} {'axis' if ndim == 1 else 'axes'} {axes}".rstrip()
    if not is_array(p):
        got = "None" if p is None else type(p).__name__
        raise TypeError(f"{where}: params[{name!r}] expected {want}, got {got}; re-create the params with init()")
    raise ValueError(f"{where}: params[{name!r}] expected {want}, got shape {tuple(p.shape)}; re-create the "
                     "params with init() for this layer")


def check_passthrough(layer, x, arg: str = "x"):
    """``x`` checked like an op's float input (a float array or a live tracer of one; a leaked tracer raises
    ``UnexpectedTracerError``), for layers that return their input unchanged (``Identity``, ``FanOut``,
    ``Dropout`` in evaluation) and so call no op that would check it."""
    return check_float(type(layer).__name__, arg, x)


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

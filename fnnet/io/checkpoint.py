"""Checkpoints: ``save`` / ``load`` (and ``restore_opt_state``).

Checkpoint format
-----------------
A checkpoint is a ``.npz`` file written with ``np.savez`` (no pickling; ``load`` reads it with
``allow_pickle=False``).  It holds:

- one array per leaf of the ``params``, ``state`` and ``opt_state`` trees, stored under its tree path
  (``params/0/weight``, ``opt_state/1/mu/0/bias`` ...), with its dtype (float16/32/64, ints, bools ...)
  and shape exactly as given;
- one entry ``__fnnet__`` (a uint8 array of UTF-8 JSON) with the format version, the nesting of each tree
  (dicts with their key order, lists, tuples, namedtuples, ``None``), the model ``config``
  (``fnnet.layers.to_config``) and the user's ``metadata``.

Namedtuples defined inside fnnet (optimizer states such as ``AdamState``) are rebuilt as the same type;
any other namedtuple comes back as a plain tuple (no code is imported by name from outside fnnet).
:func:`restore_opt_state` puts loaded leaves back into the exact structure of a template state, e.g.
``opt.init(params)``, for states built by your own code.  Dict subclasses come back as ``dict``.

A path ending in ``.safetensors`` is written in the safetensors format instead (the optional
``safetensors`` package, ``pip install fnnet[examples]``); the JSON entry then lives in its metadata.

The JSON entry's ``"version"`` is the format version (:data:`FORMAT_VERSION`); a file without one (written
by fnnet releases before the field existed) is read as version 1, and a file of a newer version than this
fnnet reads makes :func:`load` raise a ``ValueError`` saying to upgrade fnnet.

Writes are crash-safe (``fnnet.io.atomic``): the data goes to an unnamed temporary file in the same folder
(or, where the system has none, to ``.<name>.<pid>.<hex>.tmp``), is fsync'ed, and replaces ``path`` with
``os.replace``; then the folder is fsync'ed.  A crash at any moment leaves the previous checkpoint intact,
and each save removes the temporaries of earlier saves of the same ``path`` whose process has died.  A
truncated or corrupt file makes :func:`load` raise a ``ValueError``.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import zipfile
from typing import Any

import attrs
import numpy as np

from .. import layers as fnlayers
from .. import tree
from .atomic import atomic_write

__all__ = ["Checkpoint", "save", "load", "restore_opt_state", "FORMAT_VERSION"]

FORMAT_NAME = "fnnet-checkpoint"
FORMAT_VERSION = 1
"""The checkpoint format version :func:`save` writes; :func:`load` reads this version and older ones."""
_HEADER = "__fnnet__"
_SECTIONS = ("params", "state", "opt_state")
_SAFETENSORS_DTYPES = {np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                              np.uint32, np.uint64, np.float16, np.float32, np.float64)}


@attrs.frozen(eq=False)
class Checkpoint:
    """What :func:`load` returns.  Fields are also readable as items: ``ckpt["params"]``.

    Attributes:
        params, state, opt_state: the trees given to :func:`save` (``None`` when not saved).
        config: the model config (a JSON dict; rebuild with ``fnnet.layers.from_config``) or None.
        metadata: the JSON metadata given to :func:`save` or None.
    """

    params: Any
    state: Any = None
    opt_state: Any = None
    config: Any = None
    metadata: Any = None

    def __getitem__(self, name):
        if name not in attrs.fields_dict(Checkpoint):
            raise KeyError(f"fnnet.io.Checkpoint: no field {name!r}; fields: {list(attrs.fields_dict(Checkpoint))}")
        return getattr(self, name)

    def keys(self):
        return list(attrs.fields_dict(Checkpoint))

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.keys()}


# ------------------------------------------------------------------------------------------ encoding


def _encode_key(key, where, path):
    if isinstance(key, str):
        return key
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return {"int": int(key)}
    raise TypeError(f"{where}: dict key {key!r} at {path or 'the root'} has type {type(key).__name__}; "
                    "checkpoints support str and int keys")


def _decode_key(key):
    return key["int"] if isinstance(key, dict) else key


class _Encoder:
    """Walks a tree, collecting its arrays under unique names and returning a JSON description."""

    def __init__(self, where, safetensors):
        self.where, self.safetensors, self.arrays = where, safetensors, {}

    def _name(self, path):
        name, n = path, 1
        while name in self.arrays or name == _HEADER:
            name = f"{path}~{n}"
            n += 1
        return name

    def leaf(self, x, path):
        if isinstance(x, (bool, np.bool_)) and not isinstance(x, np.ndarray):
            kind, arr = ("bool" if isinstance(x, bool) else "scalar"), np.asarray(x)
        elif isinstance(x, np.ndarray):
            kind, arr = "array", x
        elif isinstance(x, np.generic):
            kind, arr = "scalar", np.asarray(x)
        elif isinstance(x, int):
            kind, arr = "int", np.asarray(x, np.int64) if -2 ** 63 <= x < 2 ** 63 else None
            if arr is None:
                raise TypeError(f"{self.where}: the int at {path!r} does not fit in int64: {x}")
        elif isinstance(x, float):
            kind, arr = "float", np.asarray(x, np.float64)
        else:
            raise TypeError(f"{self.where}: the leaf at {path!r} is a {type(x).__name__}; checkpoints hold numpy "
                            "arrays, numpy scalars and Python bool/int/float leaves only")
        if arr.dtype.hasobject or arr.dtype.fields is not None:
            raise TypeError(f"{self.where}: the array at {path!r} has dtype {arr.dtype}; object and structured "
                            "arrays cannot be saved without pickling")
        if self.safetensors and np.dtype(arr.dtype.str.replace(">", "<")) not in _SAFETENSORS_DTYPES:
            raise TypeError(f"{self.where}: the array at {path!r} has dtype {arr.dtype}, which safetensors cannot "
                            "store; use a .npz path")
        name = self._name(path)
        self.arrays[name] = arr
        return {"leaf": name, "kind": kind, "dtype": arr.dtype.str, "shape": list(arr.shape)}

    def node(self, x, path):
        if x is None:
            return None
        if isinstance(x, dict):
            items = [[_encode_key(k, self.where, path), self.node(v, f"{path}/{k}")] for k, v in x.items()]
            return {"dict": items}
        if isinstance(x, tuple) and hasattr(type(x), "_fields"):
            typ = type(x)
            return {"namedtuple": f"{typ.__module__}:{typ.__qualname__}", "fields": list(typ._fields),
                    "items": [self.node(v, f"{path}/{f}") for f, v in zip(typ._fields, x)]}
        if isinstance(x, (list, tuple)):
            kind = "list" if isinstance(x, list) else "tuple"
            return {kind: [self.node(v, f"{path}/{i}") for i, v in enumerate(x)]}
        return self.leaf(x, path)


def _namedtuple_type(spec, fields):
    """The fnnet namedtuple class named ``module:qualname``, or None (then a plain tuple is built)."""
    module_name, _, qualname = spec.partition(":")
    if not (module_name == "fnnet" or module_name.startswith("fnnet.")):
        return None
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    if isinstance(obj, type) and issubclass(obj, tuple) and list(getattr(obj, "_fields", ())) == list(fields):
        return obj
    return None


def _decode(node, arrays):
    """Rebuild a tree from its JSON description; KeyError/ValueError/TypeError on a malformed one."""
    if node is None:
        return None
    if not isinstance(node, dict):
        raise ValueError(f"malformed tree description {node!r}")
    if "leaf" in node:
        arr = arrays[node["leaf"]]
        if arr.dtype.str != node["dtype"]:
            arr = arr.astype(np.dtype(node["dtype"]))  # safetensors stores little-endian only
        shape = tuple(node["shape"])
        if arr.shape != shape:
            if arr.size != int(np.prod(shape)):
                raise ValueError(f"array {node['leaf']!r} has shape {arr.shape}, the header says {shape}")
            arr = arr.reshape(shape)  # safetensors may store a 0-d array as (1,)
        kind = node["kind"]
        if kind == "array":
            return arr
        if kind == "scalar":
            return arr[()]
        return {"bool": bool, "int": int, "float": float}[kind](arr[()])
    if "dict" in node:
        return {_decode_key(k): _decode(v, arrays) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, arrays) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays) for v in node["tuple"])
    if "namedtuple" in node:
        items = [_decode(v, arrays) for v in node["items"]]
        typ = _namedtuple_type(node["namedtuple"], node["fields"])
        return typ(*items) if typ is not None else tuple(items)
    raise ValueError(f"malformed tree description {node!r}")


# ------------------------------------------------------------------------------------------ files


def _is_safetensors(path) -> bool:
    return os.fspath(path).endswith(".safetensors")


def save(path, params, *, state=None, opt_state=None, config=None, metadata=None) -> None:
    """Write a checkpoint atomically (the file format is described in :mod:`fnnet.io.checkpoint`).

    Args:
        path: the file to write (``.npz``; ``.safetensors`` for the safetensors format).  Replaced atomically.
        params: a tree (nested dict/list/tuple/namedtuple) of numpy arrays, numpy scalars or Python numbers.
        state: optional tree of model state (e.g. BatchNorm running statistics).
        opt_state: optional optimizer state (e.g. from ``fnnet.optim.adam(...).init(params)``).
        config: optional model config: a layer (converted with ``fnnet.layers.to_config``) or a JSON dict.
        metadata: optional JSON-serialisable value (step number, metrics, ...).

    Raises:
        TypeError: a leaf that is not an array or number, an object dtype, a dict key that is not str/int,
            or a config/metadata that is not JSON-serialisable.
        ImportError: a ``.safetensors`` path without the ``safetensors`` package.

    Example::

        fnnet.io.save("ckpt.npz", params, state=state, opt_state=opt_state, config=model,
                      metadata={"step": 1000})
    """
    where = "fnnet.io.save"
    safetensors = _is_safetensors(path)
    if config is not None and not isinstance(config, (dict, list, str, int, float, bool)):
        config = fnlayers.to_config(config)
    encoder = _Encoder(where, safetensors)
    trees = {}
    for section, value in zip(_SECTIONS, (params, state, opt_state)):
        trees[section] = encoder.node(value, section)
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "trees": trees, "config": config,
              "metadata": metadata}
    try:
        header_json = json.dumps(header, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: config and metadata must be JSON-serialisable: {e}") from None
    if safetensors:
        try:
            from safetensors.numpy import save as st_save
        except ImportError:
            raise ImportError(f"{where}: saving {os.fspath(path)!r} needs the optional safetensors package: "
                              "pip install fnnet[examples] (or pip install safetensors), or use a .npz path") from None
        tensors = {name: np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
                   for name, a in encoder.arrays.items()}
        blob = st_save(tensors, metadata={_HEADER: header_json})
        atomic_write(path, lambda f: f.write(blob))
        return
    arrays = dict(encoder.arrays)
    arrays[_HEADER] = np.frombuffer(header_json.encode("utf-8"), np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _corrupt(path, detail):
    return ValueError(f"fnnet.io.load: {os.fspath(path)} is not a valid fnnet checkpoint (truncated or corrupt): "
                      f"{detail}")


def _read_npz(path):
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise _corrupt(path, "it holds a single array (.npy), not an .npz archive")
        with z:
            if _HEADER not in z.files:
                raise _corrupt(path, f"no {_HEADER!r} entry (an .npz file not written by fnnet.io.save?)")
            arrays = {name: z[name] for name in z.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, struct.error, RuntimeError) as e:
        if isinstance(e, ValueError) and str(e).startswith("fnnet.io.load"):
            raise
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    header_bytes = arrays.pop(_HEADER)
    try:
        return arrays, header_bytes.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise _corrupt(path, f"the {_HEADER!r} entry is not UTF-8 text: {e}") from None


def _read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    try:
        (n,) = struct.unpack("<Q", blob[:8])
        meta = json.loads(blob[8:8 + n]).get("__metadata__") or {}
        header = meta[_HEADER]
    except (struct.error, ValueError, KeyError, AttributeError) as e:
        raise _corrupt(path, f"bad safetensors header ({type(e).__name__}: {e})") from None
    try:
        from safetensors.numpy import load as st_load
    except ImportError:
        raise ImportError(f"fnnet.io.load: reading {os.fspath(path)!r} needs the optional safetensors package: "
                          "pip install fnnet[examples] (or pip install safetensors)") from None
    try:
        arrays = st_load(blob)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    return arrays, header


def _check_version(path, version):
    """Raise unless this fnnet reads checkpoint format ``version`` (files without a version are version 1)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _corrupt(path, f"the {_HEADER!r} entry has format version {version!r}, not a positive int")
    if version > FORMAT_VERSION:
        raise ValueError(f"fnnet.io.load: {os.fspath(path)} has checkpoint format version {version}, newer than "
                         f"this fnnet reads (format version {FORMAT_VERSION} and older); upgrade fnnet "
                         "(pip install -U fnnet) to load it")


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save`.

    Args:
        path: the ``.npz`` (or ``.safetensors``) file.

    Returns:
        A :class:`Checkpoint` with ``params``, ``state``, ``opt_state``, ``config`` and ``metadata``; arrays
        have exactly the saved dtypes and shapes.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated, corrupt, or not an fnnet checkpoint (the message says which), or
            it has a newer format version than this fnnet reads (upgrade fnnet).
    """
    arrays, header_text = (_read_safetensors if _is_safetensors(path) else _read_npz)(path)
    try:
        header = json.loads(header_text)
    except ValueError as e:
        raise _corrupt(path, f"the {_HEADER!r} entry is not valid JSON: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _corrupt(path, f"the {_HEADER!r} entry does not describe an fnnet checkpoint")
    _check_version(path, header.get("version", 1))
    trees = header.get("trees")
    if not isinstance(trees, dict):
        raise _corrupt(path, f"the {_HEADER!r} entry has no tree descriptions")
    try:
        out = {section: _decode(trees.get(section), arrays) for section in _SECTIONS}
    except KeyError as e:
        raise _corrupt(path, f"array {e.args[0]!r} listed in the header is missing") from None
    except (ValueError, TypeError) as e:
        raise _corrupt(path, str(e)) from None
    return Checkpoint(out["params"], out["state"], out["opt_state"], header.get("config"), header.get("metadata"))


def restore_opt_state(template, loaded):
    """Put the leaves of a loaded optimizer state back into the exact structure of ``template``.

    Use it when a state contains types that :func:`load` rebuilds as plain tuples (namedtuples defined
    outside fnnet), or to check that a checkpoint fits the current optimizer and params.

    Args:
        template: a state of the wanted structure, e.g. ``opt.init(params)``.
        loaded: the ``opt_state`` of a :class:`Checkpoint`.

    Returns:
        A tree with the structure (and container types) of ``template`` and the leaves of ``loaded``.

    Raises:
        ValueError: different numbers of leaves, or a leaf whose shape or dtype differs from the template's
            (the message names the path).
    """
    where = "fnnet.io.restore_opt_state"
    t_leaves, treedef = tree.flatten(template)
    l_leaves = tree.leaves(loaded)
    if len(t_leaves) != len(l_leaves):
        raise ValueError(f"{where}: the template has {len(t_leaves)} leaves, the loaded state has {len(l_leaves)}; "
                         f"template structure: {treedef!r}, loaded structure: {tree.structure(loaded)!r}")
    for path, t, x in zip(tree.paths(template), t_leaves, l_leaves):
        ts, xs = np.shape(t), np.shape(x)
        td, xd = np.asarray(t).dtype, np.asarray(x).dtype
        if ts != xs or td != xd:
            raise ValueError(f"{where}: leaf {path or '(root)'!r} is {xd}{list(xs)} in the loaded state but "
                             f"{td}{list(ts)} in the template")
    return tree.unflatten(treedef, l_leaves)

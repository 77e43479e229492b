"""Importing PyTorch weights: ``load_torch_state_dict`` maps a ``torch.nn`` module's ``state_dict`` onto an
fnnet model's params and state trees (layouts converted; torch itself is never imported)."""

from __future__ import annotations

import numpy as np

from .. import tree
from ..layers.walking import is_leaf, walk

__all__ = ["load_torch_state_dict"]


def _to_numpy(v):
    if hasattr(v, "detach"):  # a torch tensor; torch itself is not imported
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _fmt_shape(shape):
    inner = ", ".join(str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _at(nested, path):
    """The subtree of ``nested`` at ``path`` (``""`` is the root), or None."""
    node = nested
    for part in path.split("/") if path else ():
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _place(holder, path, value, overwrite):
    """Store ``value`` at ``path`` in the tree ``holder[""]``, creating the dicts on the way."""
    parts = ["", *path.split("/")] if path else [""]
    node = holder
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if overwrite or parts[-1] not in node:
        node[parts[-1]] = value


def _check_spec(kind, entry, raw, arr, key):
    """Check a converted array against the shape the layer's hyperparameters fix (no template given)."""
    spec = entry.shape
    if spec is None or (arr.ndim == len(spec) and all(isinstance(e, str) or e == a for a, e in zip(arr.shape, spec))):
        return
    expected = _fmt_shape(spec)
    if entry.transpose:
        expected = f"{_fmt_shape(spec[::-1])} (fnnet stores its transpose {expected})"
    raise ValueError(f"fnnet.io.load_torch_state_dict: {key!r} has shape {tuple(raw.shape)} but the {kind} layer "
                     f"expects {expected}")


class _TorchImport:
    def __init__(self, state_dict):
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"fnnet.io.load_torch_state_dict: state_dict must be a mapping (module.state_dict()), "
                            f"got {type(state_dict).__name__}")
        self.sd = state_dict
        self.used = set()

    def take(self, key, fnnet_path):
        if key not in self.sd:
            raise ValueError(f"fnnet.io.load_torch_state_dict: missing key {key!r} in the state_dict (needed for "
                             f"fnnet {fnnet_path}); state_dict keys: {sorted(self.sd)}")
        self.used.add(key)
        return _to_numpy(self.sd[key])

    def leaf(self, layer, path, params_t, state_t):
        """(params, state) of one leaf layer: by its ``torch_layout()``, or name for name without one."""
        layout_of = getattr(layer, "torch_layout", None)
        layout = None if layout_of is None else layout_of()
        prefix = path.replace("/", ".") + "." if path else ""
        if layout is None:
            return self.by_name(type(layer).__name__, prefix, path, params_t, state_t)
        params, state = {}, {}
        for entry in layout:
            key = prefix + entry.torch_name
            if entry.section == "ignored":
                if key in self.sd:
                    self.used.add(key)
                continue
            template = params_t if entry.section == "params" else state_t
            if template is not None and entry.name not in template:
                continue
            where = f"{entry.section}[{path!r}][{entry.name!r}]" if path else f"{entry.section}[{entry.name!r}]"
            raw = self.take(key, where)
            arr = np.ascontiguousarray(raw.T) if entry.transpose else raw
            if template is not None:
                arr = self.like_template(type(layer).__name__, entry, key, where, raw, arr, template[entry.name])
            else:
                _check_spec(type(layer).__name__, entry, raw, arr, key)
                arr = np.array(arr, copy=True)
            (params if entry.section == "params" else state)[entry.name] = arr
        return params, state

    @staticmethod
    def like_template(kind, entry, key, where, raw, arr, template):
        target = np.asarray(template)
        if arr.shape != target.shape:
            torch_shape = tuple(reversed(target.shape)) if entry.transpose else target.shape
            note = f" (fnnet's {kind} stores the transpose of torch's {entry.torch_name!r})" if entry.transpose else ""
            raise ValueError(
                f"fnnet.io.load_torch_state_dict: {key!r} has shape {tuple(raw.shape)} in the state_dict, "
                f"but fnnet {where} has shape {target.shape} (torch shape {torch_shape} expected){note}")
        return arr.astype(target.dtype)

    def by_name(self, kind, prefix, path, params_t, state_t):
        """A layer without a ``torch_layout``: parameter-free, or mapped name for name with the template's shapes."""
        if not params_t:
            return ({} if params_t is None else params_t), ({} if state_t is None else state_t)
        leaves, treedef = tree.flatten(params_t)
        out = []
        for p, t in zip(tree.paths(params_t), leaves):
            key = prefix + p.replace("/", ".")
            raw = self.take(key, f"params[{path!r}][{p!r}]")
            if raw.shape != np.shape(t):
                raise ValueError(f"fnnet.io.load_torch_state_dict: {key!r} has shape {tuple(raw.shape)} in the "
                                 f"state_dict, but the {kind} layer's param {p!r} has shape {np.shape(t)}")
            out.append(raw.astype(np.asarray(t).dtype))
        return tree.unflatten(treedef, out), ({} if state_t is None else state_t)

    def model(self, model, params_t, state_t):
        """(params, state) of the whole model, built leaf by leaf at the leaves' paths."""
        params, state = {}, {}
        for path, layer, _ in walk(model):
            if not is_leaf(layer):  # a container: its (possibly empty) dict; leaves fill it
                _place(params, path, {}, overwrite=False)
                _place(state, path, {}, overwrite=False)
                continue
            p, s = self.leaf(layer, path, _at(params_t, path), _at(state_t, path))
            _place(params, path, p, overwrite=True)
            _place(state, path, s, overwrite=True)
        return params[""], state[""]


def load_torch_state_dict(model, state_dict, params=None, state=None):
    """Map a PyTorch module's ``state_dict`` onto an fnnet model's params and state.

    The fnnet model is walked in order (:func:`fnnet.layers.walk`) and each layer's params path is its
    torch key prefix: ``Sequential``/``Parallel`` children are matched by their names (``"0.weight"``,
    ``"3.running_mean"`` ... for ``nn.Sequential``, where parameter-free modules such as ``nn.ReLU`` also
    take an index, as fnnet's activation layers do), ``Residual`` blocks by ``"block."``, and a ``Remat``
    adds nothing (its block has the path of the plain model's layer; PyTorch checkpoints without a module).

    Each layer converts its own entries (``Layer.torch_layout()``): e.g. ``Linear`` transposes the weight
    (torch ``(out, in)``, fnnet ``(in, out)``), ``BatchNorm`` maps ``running_mean``/``running_var`` to its
    state ``mean``/``var`` and ignores ``num_batches_tracked``; convolution, normalisation and embedding
    weights keep their layout.  Layers without a layout are matched name for name (``"w"`` ->
    ``"<prefix>.w"``) with unchanged shapes; this needs a ``params`` template.

    Args:
        model: the fnnet layer (usually a ``Sequential``).
        state_dict: ``module.state_dict()`` (torch tensors) or a mapping of numpy arrays.
        params: optional template (``model.init(key, in_shape)``): fixes the expected shapes and the dtype
            (arrays are cast to it).  Without it, arrays keep their dtype and are checked against the
            layers' hyperparameters (``out_features``, ``kernel_size`` ...).
        state: optional state template (``model.init_state(in_shape)``), used like ``params``.

    Returns:
        ``(params, state)``: new trees with the structure of ``model.init`` / ``model.init_state``.

    Raises:
        ValueError: a missing key, an unexpected (unused) key, or a shape mismatch; the message names the key
            and both shapes.
        TypeError: ``state_dict`` is not a mapping.

    Example::

        torch_model = torch.nn.Sequential(torch.nn.Linear(784, 10))
        model = fnnet.layers.Sequential([fnnet.layers.Linear(10)])
        params, state = fnnet.io.load_torch_state_dict(model, torch_model.state_dict())
    """
    importer = _TorchImport(state_dict)
    new_params, new_state = importer.model(model, params, state)
    extra = [k for k in state_dict.keys() if k not in importer.used]
    if extra:
        raise ValueError(f"fnnet.io.load_torch_state_dict: unexpected key(s) {extra} in the state_dict: no fnnet "
                         f"param or state matches them (used keys: {sorted(importer.used)}); check that the fnnet "
                         "model mirrors the torch module layer by layer")
    return new_params, new_state

"""Importing PyTorch weights: ``load_torch_state_dict`` maps a ``torch.nn`` module's ``state_dict`` onto an
fnnet model's params and state trees (layouts converted; torch itself is never imported)."""

from __future__ import annotations

import numpy as np

from .. import tree

__all__ = ["load_torch_state_dict"]


def _transpose(a):
    return np.ascontiguousarray(a.T)


# fnnet layer class name -> {torch state_dict name: (section, fnnet name, convert to fnnet layout or None)}.
# torch names absent here are errors, except the ignored ones.
_TORCH_LAYOUTS = {
    "Linear": {"weight": ("params", "weight", _transpose), "bias": ("params", "bias", None)},
    "Conv2D": {"weight": ("params", "weight", None), "bias": ("params", "bias", None)},
    "BatchNorm": {"weight": ("params", "weight", None), "bias": ("params", "bias", None),
                  "running_mean": ("state", "mean", None), "running_var": ("state", "var", None)},
    "LayerNorm": {"weight": ("params", "weight", None), "bias": ("params", "bias", None)},
    "Embedding": {"weight": ("params", "weight", None)},
}
_TORCH_IGNORED = {"BatchNorm": ("num_batches_tracked",)}
_LAYOUT_NOTES = {("Linear", "weight"): " (torch Linear.weight is (out, in), fnnet's is its transpose (in, out))"}


def _to_numpy(v):
    if hasattr(v, "detach"):  # a torch tensor; torch itself is not imported
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _expected_torch_names(layer, kind, template_params, template_state):
    """The torch names this layer needs: from the templates when given, else from the layer's flags."""
    names = []
    for tname, (section, fname, _) in _TORCH_LAYOUTS[kind].items():
        template = template_params if section == "params" else template_state
        if template is not None:
            if fname in template:
                names.append(tname)
            continue
        if section == "params":
            if fname == "bias" and not getattr(layer, "use_bias", True):
                continue
            if not getattr(layer, "affine", True):
                continue
        names.append(tname)
    return names


def _check_spec(layer, kind, tname, arr, key):
    """Check a converted array against the layer's hyperparameters (when no template fixes the shape)."""
    expected = None
    if kind == "Linear":
        if tname == "weight" and (arr.ndim != 2 or arr.shape[1] != layer.out_features):
            expected = f"(in_features, {layer.out_features}) after transposing, i.e. torch shape ({layer.out_features}, in_features)"
        elif tname == "bias" and arr.shape != (layer.out_features,):
            expected = f"({layer.out_features},)"
    elif kind == "Conv2D":
        if tname == "weight" and (arr.ndim != 4 or arr.shape[0] != layer.out_channels
                                  or tuple(arr.shape[2:]) != tuple(layer.kernel_size)):
            expected = f"({layer.out_channels}, in_channels // groups, {', '.join(map(str, layer.kernel_size))})"
        elif tname == "bias" and arr.shape != (layer.out_channels,):
            expected = f"({layer.out_channels},)"
    elif kind == "Embedding":
        if arr.shape != (layer.num_embeddings, layer.features):
            expected = f"({layer.num_embeddings}, {layer.features})"
    elif arr.ndim != 1:
        expected = "a 1-D array (channels,)"
    if expected is not None:
        raise ValueError(f"fnnet.io.load_torch_state_dict: {key!r} has shape {tuple(arr.shape)} but the {kind} "
                         f"layer expects {expected}")


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

    def walk(self, layer, prefix, path, params_t, state_t):
        if hasattr(layer, "layers") and hasattr(layer, "child_names"):
            params, state = {}, {}
            for name, child in zip(layer.child_names, layer.layers):
                params[name], state[name] = self.walk(
                    child, f"{prefix}{name}.", f"{path}/{name}" if path else name,
                    None if params_t is None else params_t.get(name), None if state_t is None else state_t.get(name))
            return params, state
        if hasattr(layer, "block") and type(layer).__name__ == "Residual":
            p, s = self.walk(layer.block, f"{prefix}block.", f"{path}/block" if path else "block",
                             None if params_t is None else params_t.get("block"),
                             None if state_t is None else state_t.get("block"))
            return {"block": p}, {"block": s}
        kind = type(layer).__name__
        if kind in _TORCH_LAYOUTS:
            return self.leaf_layer(layer, kind, prefix, path, params_t, state_t)
        return self.generic_layer(kind, prefix, path, params_t, state_t)

    def leaf_layer(self, layer, kind, prefix, path, params_t, state_t):
        params, state = {}, {}
        for tname in _TORCH_IGNORED.get(kind, ()):
            if prefix + tname in self.sd:
                self.used.add(prefix + tname)
        for tname in _expected_torch_names(layer, kind, params_t, state_t):
            section, fname, convert = _TORCH_LAYOUTS[kind][tname]
            key = prefix + tname
            where = f"{section}[{path!r}][{fname!r}]" if path else f"{section}[{fname!r}]"
            raw = self.take(key, where)
            arr = convert(raw) if convert is not None else raw
            template = (params_t if section == "params" else state_t)
            if template is not None:
                target = np.asarray(template[fname])
                if arr.shape != target.shape:
                    note = _LAYOUT_NOTES.get((kind, tname), "")
                    torch_shape = tuple(reversed(target.shape)) if convert is _transpose else target.shape
                    raise ValueError(
                        f"fnnet.io.load_torch_state_dict: {key!r} has shape {tuple(raw.shape)} in the state_dict, "
                        f"but fnnet {where} has shape {target.shape} (torch shape {torch_shape} expected){note}")
                arr = arr.astype(target.dtype)
            else:
                _check_spec(layer, kind, tname, arr, key)
                arr = np.array(arr, copy=True)
            (params if section == "params" else state)[fname] = arr
        return params, state

    def generic_layer(self, kind, prefix, path, params_t, state_t):
        """A layer without a table entry: parameter-free, or mapped name for name with the template's shapes."""
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


def load_torch_state_dict(model, state_dict, params=None, state=None):
    """Map a PyTorch module's ``state_dict`` onto an fnnet model's params and state.

    The fnnet model is walked in order: ``Sequential``/``Parallel`` children are matched to torch keys by
    their names (``"0.weight"``, ``"0.bias"``, ``"3.running_mean"`` ... for ``nn.Sequential``, where
    parameter-free modules such as ``nn.ReLU`` also take an index, as fnnet's activation layers do), and
    ``Residual`` blocks by ``"block."``.  Layouts are converted per layer type:

    ============  =======================================  ===========================================
    fnnet layer   torch keys                               fnnet params / state
    ============  =======================================  ===========================================
    Linear        weight ``(out, in)``, bias               weight ``(in, out)`` (transposed), bias
    Conv2D        weight ``(O, C/g, kh, kw)``, bias        weight (same layout), bias
    BatchNorm     weight, bias, running_mean, running_var  params weight/bias, state mean/var
                  (num_batches_tracked is ignored)
    LayerNorm     weight, bias ``(F,)``                    weight, bias
    Embedding     weight ``(num, features)``               weight
    ============  =======================================  ===========================================

    Other layers with params are matched name for name (``"w"`` -> ``"<prefix>.w"``) with unchanged shapes;
    this needs a ``params`` template.

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
    new_params, new_state = importer.walk(model, "", "", params, state)
    extra = [k for k in state_dict.keys() if k not in importer.used]
    if extra:
        raise ValueError(f"fnnet.io.load_torch_state_dict: unexpected key(s) {extra} in the state_dict: no fnnet "
                         f"param or state matches them (used keys: {sorted(importer.used)}); check that the fnnet "
                         "model mirrors the torch module layer by layer")
    return new_params, new_state

"""Recurrent layers: ``GRUCell`` and ``LSTMCell`` (one time step) and ``RNN`` (a cell run over time).

The cells follow PyTorch's gate order and param layout exactly, so ``nn.GRUCell``/``nn.LSTMCell`` state
dicts load name for name and ``nn.GRU``/``nn.LSTM`` (one layer, one direction) state dicts load into
``RNN`` (``weight_ih_l0`` -> ``weight_ih`` ...) with :func:`fnnet.io.load_torch_state_dict`.

``RNN`` holds its cell as a hyperparameter, not as a child layer: it runs the cell's ops itself (the weight
transposes are hoisted out of the time loop), so model walkers see one leaf whose params, FLOPs (``T`` steps)
and PyTorch names (``_l0``) are the whole recurrence's.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .. import random as fnrandom
from ..ops._validate import is_array
from .base import Layer, TorchParam, as_shape, check_input, check_param, check_params, numel, positive_int, register

__all__ = ["GRUCell", "LSTMCell", "RNN"]

_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _fmt(shape):
    return tuple(shape)


@attrs.frozen
class _Cell(Layer):
    """What GRU and LSTM cells share: params, shapes, checks and the input projection."""

    hidden_size: int = attrs.field(validator=positive_int)

    gates = 0  #: gate blocks stacked in the weights (GRU 3, LSTM 4)
    no_decay_params = ("bias_ih", "bias_hh")

    def init(self, key, in_shape, dtype=np.float32):
        """``{"weight_ih": (G*H, in), "weight_hh": (G*H, H), "bias_ih": (G*H,), "bias_hh": (G*H,)}``, all drawn
        from ``U(-1/sqrt(H), 1/sqrt(H))`` as PyTorch does."""
        shape = self._input_shape(in_shape, f"{type(self).__name__}.init")
        bound = 1.0 / math.sqrt(self.hidden_size)
        draw = initializers.Uniform(-bound, bound)
        rows = self.gates * self.hidden_size
        shapes = ((rows, shape[-1]), (rows, self.hidden_size), (rows,), (rows,))
        keys = fnrandom.split(key, 4)
        return {name: draw(k, s, dtype) for name, k, s in zip(_PARAMS, keys, shapes)}

    def _input_shape(self, in_shape, where):
        shape = as_shape(in_shape, where)
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(f"{type(self).__name__}: expected input (batch, input_size), got shape {shape}; "
                             "run a cell over a (batch, time, features) sequence with RNN(cell)")
        return shape

    def _state_shape(self, in_shape):
        return (self._input_shape(in_shape, f"{type(self).__name__}.out_shape")[0], self.hidden_size)

    def step_flops(self, batch, input_size):
        """FLOPs of one step: the two projections plus about ``10 * H`` elementwise operations per row."""
        g = self.gates * self.hidden_size
        return 2 * batch * g * (input_size + self.hidden_size) + 10 * batch * self.hidden_size

    def flops(self, in_shape):
        shape = self._input_shape(in_shape, f"{type(self).__name__}.flops")
        return self.step_flops(1 if shape[0] is None else shape[0], shape[1])

    def step_tape_bytes(self, batch, input_size, dtype):
        """Bytes one step keeps for the backward: the input and state rows plus about ``3 G`` gate rows."""
        return batch * (input_size + 2 * self.hidden_size + 3 * self.gates * self.hidden_size) * np.dtype(dtype).itemsize

    def tape_bytes(self, in_shape, dtype):
        shape = self._input_shape(in_shape, f"{type(self).__name__}.tape_bytes")
        return self.step_tape_bytes(1 if shape[0] is None else shape[0], shape[1], dtype)

    def sequence_tape_bytes(self, batch, input_size, dtype):
        """Bytes :meth:`sequence` keeps per time step (the composed steps keep what one cell step keeps)."""
        return self.step_tape_bytes(batch, input_size, dtype)

    def torch_layout(self, suffix=""):
        """Name for name with ``nn.GRUCell``/``nn.LSTMCell``; ``suffix="_l0"`` for ``nn.GRU``/``nn.LSTM``."""
        rows = self.gates * self.hidden_size
        shapes = ((rows, "input_size"), (rows, self.hidden_size), (rows,), (rows,))
        return tuple(TorchParam(name + suffix, name=name, shape=s) for name, s in zip(_PARAMS, shapes))

    def check_weights(self, params, input_size, where):
        """Raise unless ``params`` are this cell's, for inputs of ``input_size`` features."""
        check_params(where, params, _PARAMS)
        rows, hidden = self.gates * self.hidden_size, self.hidden_size
        expected = {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden), "bias_ih": (rows,), "bias_hh": (rows,)}
        for name, shape in expected.items():
            check_param(where, params, name, len(shape), str(shape))
            if tuple(params[name].shape) != shape:
                raise ValueError(f"{where}: params[{name!r}] must have shape {shape} for hidden_size={hidden} and "
                                 f"input_size={input_size}, got {_fmt(params[name].shape)}; re-create the params "
                                 "with init() for this input")

    def _project(self, params, x):
        """``x W_ih^T + b_ih``, the input part of every gate, for ``x (N, in)`` or ``(N, T, in)``: one GEMM."""
        return ops.linear(x, ops.transpose(params["weight_ih"]), params["bias_ih"])

    def _project_one_step(self, params, x):
        """The projection of one step's ``x (N, in)`` as the fused sequence ops take it: ``(N, 1, G)``."""
        return ops.reshape(self._project(params, x), (x.shape[0], 1, self.gates * self.hidden_size))

    def sequence(self, params, x, hidden, reverse):
        """Every step's output ``(N, T, H)`` for checked ``params``, ``x (N, T, in)`` and initial ``hidden``:
        one GEMM for all input projections, then the cell's ``step`` per time step."""
        w_hh, b_hh = ops.transpose(params["weight_hh"]), params["bias_hh"]
        x_proj = self._project(params, x)
        steps = x.shape[1]
        outputs = [None] * steps
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            hidden = self.step(ops.getitem(x_proj, (slice(None), t)), hidden, w_hh, b_hh)
            outputs[t] = hidden[0] if isinstance(hidden, tuple) else hidden
        return ops.stack(outputs, axis=1)

    def check_state(self, where, name, h, batch, dtype):
        """Raise unless the state array ``h`` is ``(batch, hidden_size)`` of ``dtype``."""
        if not hasattr(h, "shape") or not hasattr(h, "dtype"):
            raise TypeError(f"{where}: {name} expected an array of shape {(batch, self.hidden_size)}, got "
                            f"{type(h).__name__}")
        if tuple(h.shape) != (batch, self.hidden_size):
            raise ValueError(f"{where}: {name} must have shape {(batch, self.hidden_size)} (batch, hidden_size), got "
                             f"{_fmt(h.shape)}")
        if np.dtype(h.dtype) != np.dtype(dtype):
            raise TypeError(f"{where}: {name} has dtype {np.dtype(h.dtype)} but the input has dtype "
                            f"{np.dtype(dtype)}; cast it with .astype(x.dtype)")

    def check_x(self, where, x, ndim):
        what = "(batch, input_size)" if ndim == 2 else "(batch, time, input_size)"
        if not is_array(x):
            raise TypeError(f"{where}: x expected one numpy array {what}, got {type(x).__name__}")
        if len(x.shape) != ndim:
            raise ValueError(f"{where}: expected input {what}, got shape {_fmt(x.shape)}")

    def apply(self, params, x, hidden=None, *, state=None, key=None, train=False):
        """One time step: see the class docstring."""
        where = type(self).__name__
        check_input(self, x)
        self.check_x(where, x, 2)
        self.check_weights(params, x.shape[1], where)
        hidden = self.zero_state(x.shape[0], x.dtype) if hidden is None else hidden
        self.check_hidden(where, "hidden", hidden, x.shape[0], x.dtype)
        y = self.one_step(params, x, hidden)
        return y if state is None else (y, state)

    def one_step(self, params, x, hidden):
        """The next state(s) for checked inputs: the input projection, then the cell's ``step``."""
        return self.step(self._project(params, x), hidden, ops.transpose(params["weight_hh"]), params["bias_hh"])


@register
@attrs.frozen
class GRUCell(_Cell):
    """One step of a gated recurrent unit, with PyTorch's gate order ``r, z, n``::

        r  = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
        z  = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n  = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
        h' = (1 - z) * n + z * h

    Args:
        hidden_size: ``H``, the size of the state.

    Params: ``weight_ih (3H, in)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``: PyTorch's
    ``nn.GRUCell`` layout (rows ``[r; z; n]``), loadable name for name.

    Shapes: ``apply(params, x (N, in), hidden (N, H) = zeros) -> h' (N, H)``.

    Example::

        cell = GRUCell(16)
        params = cell.init(fnnet.random.key(0), (None, 8))
        h = cell.apply(params, np.zeros((4, 8), np.float32))            # (4, 16)
        h = cell.apply(params, np.ones((4, 8), np.float32), h)

    Reference: Cho et al., "Learning phrase representations using RNN encoder-decoder" (2014).
    """

    gates = 3

    def out_shape(self, in_shape):
        return self._state_shape(in_shape)

    def zero_state(self, batch, dtype):
        return np.zeros((batch, self.hidden_size), dtype)

    def check_hidden(self, where, name, hidden, batch, dtype):
        self.check_state(where, name, hidden, batch, dtype)

    def sequence_tape_bytes(self, batch, input_size, dtype):
        """The fused op keeps the input, the state and four gate rows per step."""
        return batch * (input_size + 5 * self.hidden_size) * np.dtype(dtype).itemsize

    def sequence(self, params, x, hidden, reverse):
        """Every step's state in one fused op (``fnnet.ops.gru_sequence``) after one GEMM for the inputs."""
        return ops.gru_sequence(self._project(params, x), hidden, params["weight_hh"], params["bias_hh"],
                                reverse=reverse)

    def one_step(self, params, x, hidden):
        """``h'`` through the fused op over one step (``fnnet.ops.gru_sequence``): one kernel for the gates instead
        of a dozen element-wise ops, which is what a cell stepped in a Python loop spends its time on."""
        h = ops.gru_sequence(self._project_one_step(params, x), hidden, params["weight_hh"], params["bias_hh"])
        return ops.reshape(h, (x.shape[0], self.hidden_size))

    @staticmethod
    def step(x_proj, h, w_hh, b_hh):
        """``h'`` from the input projection ``x_proj (N, 3H)`` (bias included) and the state ``h (N, H)``, in
        element-wise ops (the loop ``_Cell.sequence`` runs; tests compare the fused op with it)."""
        x_r, x_z, x_n = ops.chunk(x_proj, 3, axis=-1)
        h_r, h_z, h_n = ops.chunk(ops.linear(h, w_hh, b_hh), 3, axis=-1)
        r = ops.sigmoid(x_r + h_r)
        z = ops.sigmoid(x_z + h_z)
        n = ops.tanh(x_n + r * h_n)
        return n + z * (h - n)


@register
@attrs.frozen
class LSTMCell(_Cell):
    """One step of a long short-term memory unit, with PyTorch's gate order ``i, f, g, o``::

        i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh, 4)
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    Args:
        hidden_size: ``H``, the size of the state.

    Params: ``weight_ih (4H, in)``, ``weight_hh (4H, H)``, ``bias_ih (4H,)``, ``bias_hh (4H,)``: PyTorch's
    ``nn.LSTMCell`` layout (rows ``[i; f; g; o]``), loadable name for name.

    Shapes: ``apply(params, x (N, in), hidden (h, c) = zeros, each (N, H)) -> (h', c')``.

    Example::

        cell = LSTMCell(16)
        params = cell.init(fnnet.random.key(0), (None, 8))
        h, c = cell.apply(params, np.zeros((4, 8), np.float32))       # each (4, 16)
        h, c = cell.apply(params, np.ones((4, 8), np.float32), (h, c))

    Reference: Hochreiter and Schmidhuber, "Long short-term memory" (1997).
    """

    gates = 4

    def out_shape(self, in_shape):
        shape = self._state_shape(in_shape)
        return (shape, shape)

    def zero_state(self, batch, dtype):
        return (np.zeros((batch, self.hidden_size), dtype), np.zeros((batch, self.hidden_size), dtype))

    def check_hidden(self, where, name, hidden, batch, dtype):
        if not isinstance(hidden, (tuple, list)) or len(hidden) != 2:
            raise TypeError(f"{where}: {name} expected a pair (h, c) of arrays (batch, hidden_size), got "
                            f"{type(hidden).__name__}")
        self.check_state(where, f"{name}[0] (h)", hidden[0], batch, dtype)
        self.check_state(where, f"{name}[1] (c)", hidden[1], batch, dtype)

    def sequence(self, params, x, hidden, reverse):
        """Every step's ``h`` in one fused op (``fnnet.ops.lstm_sequence``) after one GEMM for the inputs."""
        return ops.lstm_sequence(self._project(params, x), hidden[0], hidden[1], params["weight_hh"],
                                 params["bias_hh"], reverse=reverse)

    def sequence_tape_bytes(self, batch, input_size, dtype):
        """The fused op keeps the input, ``h``, ``c`` and four gate rows per step."""
        return batch * (input_size + 6 * self.hidden_size) * np.dtype(dtype).itemsize

    def one_step(self, params, x, hidden):
        """``(h', c')`` through the fused op over one step (``fnnet.ops.lstm_sequence`` with ``return_cell``): one
        kernel for the gates instead of a dozen element-wise ops, as in ``GRUCell.one_step``."""
        hs, c = ops.lstm_sequence(self._project_one_step(params, x), hidden[0], hidden[1], params["weight_hh"],
                                  params["bias_hh"], return_cell=True)
        return ops.reshape(hs, (x.shape[0], self.hidden_size)), c

    @staticmethod
    def step(x_proj, hidden, w_hh, b_hh):
        """``(h', c')`` from the input projection ``x_proj (N, 4H)`` (bias included) and ``(h, c)``."""
        h, c = hidden
        i, f, g, o = ops.chunk(x_proj + ops.linear(h, w_hh, b_hh), 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        return ops.sigmoid(o) * ops.tanh(c), c


def _check_cell(instance, attribute, value):
    if not isinstance(value, _Cell):
        raise TypeError(f"RNN: cell must be a GRUCell or an LSTMCell, got {value!r}")


@register
@attrs.frozen
class RNN(Layer):
    """Run ``cell`` over the time axis of a batch-first sequence.

    Args:
        cell: a ``GRUCell`` or ``LSTMCell``.
        return_sequences: return every step's hidden state ``(N, T, H)``; False: only the last ``(N, H)``.
        reverse: run from the last step to the first.  Outputs stay aligned with the inputs (``y[:, t]`` is
            the state after reading ``x[:, t]``, as in the backward direction of PyTorch's bidirectional RNNs),
            and the last state is the one after ``x[:, 0]``: ``RNN(cell, reverse=True)(p, x)`` equals
            ``flip(RNN(cell)(p, flip(x)))`` along time.

    Params: the cell's (not nested).  ``nn.GRU``/``nn.LSTM`` state dicts (``num_layers=1``,
    ``bidirectional=False``) load with ``fnnet.io.load_torch_state_dict``: ``weight_ih_l0 -> weight_ih`` ...

    Shapes: ``apply(params, x (N, T, in), *, initial_state=None)`` with ``initial_state`` ``(N, H)`` for a
    GRU, ``(h0, c0)`` for an LSTM (zeros by default) -> ``(N, T, H)`` or ``(N, H)``.  For an LSTM the
    outputs are the ``h`` states (like ``nn.LSTM``'s output); the cell state ``c`` is not returned.
    ``T`` must be at least 1 (a ValueError otherwise); ``T = 1`` is one cell step.

    Example::

        model = Sequential([RNN(GRUCell(128), return_sequences=False), Linear(10)])
        params = model.init(fnnet.random.key(0), (None, 32, 20))
        logits = model.apply(params, np.zeros((8, 32, 20), np.float32))    # (8, 10)
    """

    cell: _Cell = attrs.field(validator=_check_cell)
    return_sequences: bool = True
    reverse: bool = False

    @property
    def no_decay_params(self):
        return self.cell.no_decay_params

    def _shape(self, in_shape, where):
        shape = as_shape(in_shape, where)
        if len(shape) != 3 or shape[-1] is None:
            raise ValueError(f"RNN: expected input (batch, time, input_size), got shape {shape}; a single step "
                             "(batch, input_size) is the cell's own apply")
        return shape

    def init(self, key, in_shape, dtype=np.float32):
        shape = self._shape(in_shape, "RNN.init")
        return self.cell.init(key, (shape[0], shape[2]), dtype)

    def out_shape(self, in_shape):
        n, t, _ = self._shape(in_shape, "RNN.out_shape")
        return (n, t, self.cell.hidden_size) if self.return_sequences else (n, self.cell.hidden_size)

    def flops(self, in_shape):
        n, t, features = self._shape(in_shape, "RNN.flops")
        return (t or 0) * self.cell.step_flops(1 if n is None else n, features)

    def tape_bytes(self, in_shape, dtype):
        n, t, features = self._shape(in_shape, "RNN.tape_bytes")
        return (t or 0) * self.cell.sequence_tape_bytes(1 if n is None else n, features, dtype)

    def torch_layout(self):
        return self.cell.torch_layout("_l0")

    def apply(self, params, x, *, initial_state=None, state=None, key=None, train=False):
        check_input(self, x)
        self.cell.check_x("RNN", x, 3)
        n, t, features = x.shape
        if t == 0:
            raise ValueError(f"RNN: the sequence is empty (x.shape={_fmt(x.shape)}, time axis 1 has size 0); "
                             "pass at least one time step")
        self.cell.check_weights(params, features, "RNN")
        hidden = self.cell.zero_state(n, x.dtype) if initial_state is None else initial_state
        self.cell.check_hidden("RNN", "initial_state", hidden, n, x.dtype)
        ys = self.cell.sequence(params, x, hidden, self.reverse)
        if not self.return_sequences:
            ys = ops.getitem(ys, (slice(None), 0 if self.reverse else t - 1))
        return ys if state is None else (ys, state)

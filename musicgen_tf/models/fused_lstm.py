"""The fused LSTM of MusicVAE's training path, in Keras' and in `LSTMBlockCell` weight layouts.

On CPU, `keras.layers.LSTM` runs its cell once per step, input matmul included, and differentiates through the
loop step by step.  Training instead runs the same weights (a `keras.layers.LSTM`'s kernel [F, 4H], recurrent
kernel [H, 4H] and bias [4H], gates i, f, c, o) as PyTorch / cuDNN do: the input projection of all steps is one
matmul, the loop only does `h @ recurrent_kernel`, and a hand-written backward loop collects the gate gradients so
that the kernel gradients are again single matmuls over all steps.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import tensorflow as tf


def _gates_forward(projected, recurrent, c, block=False):
    """One step's input and recurrent pre-activations [N, 4H] and cell c [N, H] -> (h, new c, gates [N, 4H]).

    block: the pre-activation columns are in `LSTMBlockCell` order (i, c, f, o) instead of Keras' (i, f, c, o); the
    forget bias is already in `projected`.  The returned gates are (i, f, c, o) in either case.
    """
    i, f, g, o = tf.split(projected + recurrent, 4, axis=-1)
    if block:
        g, f = f, g
    i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
    c = f * c + i * g
    return o * tf.tanh(c), c, tf.concat([i, f, g, o], axis=-1)


def _gates_backward(gates, c, previous_c, d_h, d_h_output, d_c, block=False):
    """One step back through `_gates_forward` (d_h from the next step, d_h_output from this step's output)
    -> (d_z [N, 4H] in the kernel's column order, d_c of the previous step [N, H])."""
    i, f, g, o = tf.split(gates, 4, axis=-1)
    tanh_c = tf.tanh(c)
    d_h = d_h + d_h_output
    d_c = d_c + d_h * o * (1.0 - tf.square(tanh_c))
    d_i, d_f = d_c * g * i * (1.0 - i), d_c * previous_c * f * (1.0 - f)
    d_g, d_o = d_c * i * (1.0 - tf.square(g)), d_h * tanh_c * o * (1.0 - o)
    d_z = tf.concat([d_i, d_g, d_f, d_o] if block else [d_i, d_f, d_g, d_o], axis=-1)
    return d_z, d_c * f


def _make_recurrence(gates_forward, gates_backward, reverse, block):
    """The fused recurrence (with its hand-written gradient) around the given gate functions.

    reverse: walk the steps from last to first (a backward-direction LSTM) by indexing, not by reversing tensors.
    block: `LSTMBlockCell` gate order (see `_gates_forward`).
    """

    @tf.custom_gradient
    def recurrence(projected, h0, c0, recurrent_kernel):
        """projected [T, N, 4H] (x @ kernel + bias, time-major), h0, c0 [N, H], recurrent_kernel [H, 4H]
        -> (h of every step [T, N, H], final h [N, H], final c [N, H])."""
        units = recurrent_kernel.shape[0]
        steps = tf.shape(projected)[0]
        order = tf.range(steps - 1, -1, -1) if reverse else tf.range(steps)  # order[k]: the k-th step's index

        def forward(k, h, c, hs, cs, gates):
            t = order[k]
            h, c, gate = gates_forward(projected[t], tf.matmul(h, recurrent_kernel), c, block)
            return k + 1, h, c, hs.write(t, h), cs.write(k + 1, c), gates.write(k, gate)

        # cs[k + 1] is the cell after the k-th step and cs[0] = c0; gates[k] are the k-th step's gates.  Both stay
        # TensorArrays (read back one step at a time) instead of being stacked into [T, ...] copies.
        hs = tf.TensorArray(projected.dtype, size=steps, element_shape=h0.shape)
        cs = tf.TensorArray(projected.dtype, size=steps + 1, element_shape=c0.shape,
                            clear_after_read=False).write(0, c0)  # (eager TensorArrays clear on read by default)
        gates = tf.TensorArray(projected.dtype, size=steps, element_shape=projected[0].shape)
        _, h, c, hs, cs, gates = tf.while_loop(lambda k, *_: k < steps, forward,
                                               (tf.constant(0), h0, c0, hs, cs, gates))
        hs = hs.stack()

        def backward(d_hs, d_h, d_c):
            d_hs = tf.zeros_like(hs) if d_hs is None else d_hs
            d_h = tf.zeros_like(h0) if d_h is None else d_h
            d_c = tf.zeros_like(c0) if d_c is None else d_c
            recurrent_t = tf.transpose(recurrent_kernel)  # [4H, H]; `transpose_b=True` is ~3x slower at this size

            def step(k, d_h, d_c, d_zs):
                t = order[k]
                d_z, d_c = gates_backward(gates.read(k), cs.read(k + 1), cs.read(k), d_h, d_hs[t], d_c, block)
                return k - 1, tf.matmul(d_z, recurrent_t), d_c, d_zs.write(t, d_z)

            d_zs = tf.TensorArray(projected.dtype, size=steps, element_shape=projected[0].shape)
            _, d_h0, d_c0, d_zs = tf.while_loop(lambda k, *_: k >= 0, step, (steps - 1, d_h, d_c, d_zs))
            d_zs = d_zs.stack()
            # h before each step: h0 for the first one, else the neighbour's output (in time order).
            previous_hs = (tf.concat([hs[1:], h0[None]], axis=0) if reverse else
                           tf.concat([h0[None], hs[:-1]], axis=0))
            d_recurrent = tf.matmul(tf.reshape(previous_hs, [-1, units]), tf.reshape(d_zs, [-1, 4 * units]),
                                    transpose_a=True)
            return d_zs, d_h0, d_c0, d_recurrent

        return (hs, h, c), backward

    return recurrence


# Training compiles each step's gate arithmetic with XLA: one fused kernel instead of ~12 small ops per step.
# Inference keeps plain ops, so SavedModels need no XLA in the serving binary.
_XLA_GATES = (tf.function(_gates_forward, jit_compile=True), tf.function(_gates_backward, jit_compile=True))
_RECURRENCES = {(xla, reverse, block): _make_recurrence(*(_XLA_GATES if xla else (_gates_forward, _gates_backward)),
                                                        reverse=reverse, block=block)
                for xla in (False, True) for reverse in (False, True) for block in (False, True)}

# Magenta's `LSTMBlockCell` (TF's LSTMBlockCell op): kernel [F + H, 4H] over [x, h], columns (i, c, f, o), and a
# fixed forget bias of 1.0 added to the f pre-activation.  Its state is the tuple (c, h).
KERAS_CELL, BLOCK_CELL = "keras", "lstm_block"
BLOCK_FORGET_BIAS = 1.0


def effective_bias(bias, block):
    """The bias the gates see: with `block`, plus the fixed forget bias on the f columns (the third quarter)."""
    if not block:
        return bias
    units = bias.shape[0] // 4
    return bias + tf.constant([0.0] * (2 * units) + [BLOCK_FORGET_BIAS] * units + [0.0] * units, bias.dtype)


def lstm_step(lstm, x, state, block=False, constant_projection=None):
    """One step of a built `keras.layers.LSTM`'s weights: x [N, F], state [h, c] -> (h [N, H], [h, c]).

    constant_projection: [N, 4H] or None: the projection (bias included) of a per-sequence input that follows x's F
    features in the kernel's rows, computed once by `constant_projection` instead of at every step."""
    cell = lstm.cell
    dtype = x.dtype
    kernel = tf.cast(cell.kernel, dtype)
    if constant_projection is None:
        projected = tf.matmul(x, kernel) + effective_bias(tf.cast(cell.bias, dtype), block)
    else:
        projected = tf.matmul(x, kernel[:x.shape[-1]]) + tf.cast(constant_projection, dtype)
    h, c = (tf.cast(s, dtype) for s in state)
    h, c, _ = _gates_forward(projected, tf.matmul(h, tf.cast(cell.recurrent_kernel, dtype)), c, block)
    return h, [h, c]


class TokenInputs(NamedTuple):
    """An LSTM input that is a lookup: `ids` int [N, T] (or time-major [T, N]) into `table` float [V, F], whose row
    v holds the features of token v.  `run_lstm` projects the V rows once and looks the projections up, instead of
    projecting all N * T steps (and differentiating that matmul twice).
    """
    ids: tf.Tensor
    table: tf.Tensor

    def features(self):
        """The same input as floats, [..., F]: what dropout needs."""
        return tf.gather(self.table, self.ids)

    def time_major(self):
        return self._replace(ids=tf.transpose(self.ids))

    def project(self, kernel):
        """The projections of the table's rows, [V, 4H], by a kernel [F, 4H]."""
        return tf.matmul(self.table, kernel)

    def previous(self):
        """A teacher-forced decoder's input: zeros at step 0 (a new all-zero row), then the token of the step before."""
        start = tf.shape(self.table)[0]
        return self._replace(ids=tf.pad(self.ids[:, :-1], [[0, 0], [1, 0]], constant_values=start),
                             table=tf.pad(self.table, [[0, 1], [0, 0]]))


class OneHotTokens(TokenInputs):
    """TokenInputs whose table is the identity (Magenta's one-hot inputs), possibly followed by an all-zero start
    row: the projection of row v is row v of the kernel, so there is no matmul at all."""

    def project(self, kernel):
        return tf.pad(kernel, [[0, tf.shape(self.table)[0] - tf.shape(kernel)[0]], [0, 0]])


def time_major(x):
    """float [N, T, F] or TokenInputs with ids [N, T] -> the same, time-major."""
    return x.time_major() if isinstance(x, TokenInputs) else tf.transpose(x, [1, 0, 2])


def with_constant(x, constant):
    """Time-major x (float or TokenInputs) and a per-sequence constant [N, E] (or None) -> float [T, N, F (+ E)]:
    the explicit per-step input that dropout masks."""
    if isinstance(x, TokenInputs):
        x = x.features()
    if constant is None:
        return x
    return tf.concat([x, tf.tile(tf.cast(constant, x.dtype)[None], [tf.shape(x)[0], 1, 1])], axis=-1)


@functools.cache
def concurrent_chains() -> int:
    """Into how many batch slices a training `LstmStack` splits its batch: 2 on CPU, 1 when a GPU is visible.

    A recurrence is a long chain of small dependent ops that leaves a CPU's cores partly idle: a [64, 512] x
    [512, 2048] matmul scales poorly past one core, the per-step gate arithmetic not at all.  Two independent
    half-batch chains through the whole LSTM stack run side by side in TF's inter-op thread pool (with
    `train.runtime.share_cpu_threads` sharing the cores among them).  On a GPU they would only queue one after
    the other.
    """
    return 1 if tf.config.list_physical_devices("GPU") else 2


def run_lstm(lstm, x, initial_state, constant=None, reverse=False, training=False, block=False):
    """Teacher-forced run of a built `keras.layers.LSTM`'s weights over a time-major sequence.

    x float [T, N, F] or TokenInputs (ids [T, N]); initial_state [h, c], each [N, H] (or None: zeros); constant
    float [N, E] or None: a per-sequence input appended to every step (the layer's kernel is [F + E, 4H]),
    projected once instead of T times.  reverse: run from the last step to the first (outputs stay in input
    order).  training: use the XLA-compiled gate arithmetic.  block: the weights are in `LSTMBlockCell` layout
    (gate order i, c, f, o and a fixed forget bias of 1.0; see `_gates_forward`).
    Returns (h of every step [T, N, H], final h [N, H], final c [N, H]).
    """
    cell = lstm.cell
    tokens = isinstance(x, TokenInputs)
    dtype = x.table.dtype if tokens else x.dtype
    kernel, bias = tf.cast(cell.kernel, dtype), effective_bias(tf.cast(cell.bias, dtype), block)
    step_kernel, constant_kernel = tf.split(kernel, [(x.table if tokens else x).shape[-1], -1])
    if tokens:
        projected = tf.gather(x.project(step_kernel), x.ids)
    else:
        projected = tf.einsum("tnf,fg->tng", x, step_kernel)
    if constant is None:
        projected = tf.nn.bias_add(projected, bias)  # its gradient (BiasAddGrad) is ~4x faster than a broadcast add's
    else:
        projected += (tf.matmul(tf.cast(constant, dtype), constant_kernel) + bias)[None]
    if initial_state is None:
        zeros = tf.zeros([tf.shape(projected)[1], cell.units], dtype)
        initial_state = [zeros, zeros]
    h0, c0 = (tf.cast(s, dtype) for s in initial_state)
    return _RECURRENCES[training, reverse, block](projected, h0, c0, tf.cast(cell.recurrent_kernel, dtype))


def batch_slices(chains, x, states, constant, masks):
    """Split a time-major input (float [T, N, ...] or TokenInputs), per-layer states ([h, c], each [N, H]), a
    per-sequence constant [N, E] (or None) and per-layer dropout masks ([T, N, F] or None) into `chains` batch
    slices whose sizes differ by at most one.  Returns (x, states, constant, masks) per slice."""
    batch = tf.shape(states[0][0])[0]
    bounds = [batch * i // chains for i in range(chains + 1)]
    sizes = [bounds[i + 1] - bounds[i] for i in range(chains)]

    def split(value, axis=0):
        return tf.split(value, sizes, num=chains, axis=axis)

    xs = [x._replace(ids=ids) for ids in split(x.ids, 1)] if isinstance(x, TokenInputs) else split(x, 1)
    layers = [(split(h), split(c)) for h, c in states]
    slice_states = [[[h[i], c[i]] for h, c in layers] for i in range(chains)]
    constants = [None] * chains if constant is None else split(constant)
    layer_masks = [[None] * chains if mask is None else split(mask, 1) for mask in masks]
    return list(zip(xs, slice_states, constants, [list(parts) for parts in zip(*layer_masks)]))

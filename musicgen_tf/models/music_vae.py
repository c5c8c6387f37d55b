"""MusicVAE and GrooVAE in Keras 3: a bidirectional LSTM encoder, a flat or hierarchical LSTM decoder, and the ELBO.

Behavioural reference: Magenta's `magenta/models/music_vae/{base_model,lstm_models,lstm_utils,configs}.py`.

    inputs ──StepFeatures──> [B, T, F] ──BidirectionalEncoder──> [B, 2H] ──Dense──> mu, Dense+softplus──> sigma
    z = mu + sigma * eps                                           (float32 [B, latent_dim])
    flat:          LstmStack(decoder) initialised from z, input at step t = [features(x[t-1]), z]
    hierarchical:  LstmStack(conductor) initialised from z, run U steps on zeros -> one embedding e_u per segment;
                   LstmStack(decoder) re-initialised from e_u at the start of every segment (Magenta's
                   `HierarchicalLstmDecoder` with `disable_autoregression=True`), input = [features(x[t-1]), e_u]
    logits = output_projection(decoder outputs)                   (float32 [B, T, D])

Two output kinds:
- `"categorical"`: one token per step (melody: 90 classes; drums: 512 bit-packed class sets), softmax cross-entropy.
  The LSTMs read the token's one-hot vector (looked up, not multiplied: `OneHotTokens`).  With `drum_roll_input`
  the encoder reads the token's drum bits instead (C classes + a silence bit, computed in-graph with `tf.bitwise`)
  while the decoder still reads the previous token's one-hot, as Magenta's `roll_input=True`.

The LSTMs are Magenta's `LSTMBlockCell` (gate columns i, c, f, o, a fixed forget bias of 1.0, (c, h) state tuples
for the initial-state projections); `cell="keras"`, `input_encoding="embedding"` and `decoder_roll_input=True`
are our variants (see `MusicVAE`).
- `"groove"`: GrooVAE's per-step (hits, velocities, offsets) for C drum classes; D = 3C outputs activated with
  sigmoid / sigmoid / tanh, loss = sigmoid cross-entropy on hits + squared error on velocities and offsets, summed
  over classes and time.  As Magenta's `GrooveLstmDecoder`, the squared errors are *not* masked by the hits (the
  targets are 0 where there is no hit, so the model learns to output 0 there).

Loss (Magenta's `base_model.py`), per example, then averaged over the batch:
    kl       = KL(N(mu, sigma) || N(0, 1))                          nats
    kl_cost  = max(kl - free_bits * ln 2, 0)
    beta     = (1 - beta_rate ** step) * max_beta                   step = optimizer.iterations (resume-safe)
    loss     = reconstruction + beta * kl_cost
`fit` reports `loss`, `reconstruction_loss` (nats per sequence), `kl` (**bits** per sequence, Magenta's
`losses/kl_bits`), `beta` and `accuracy` (token accuracy, or hit accuracy over all steps x classes for groove).

Label conditioning (`num_labels > 0`, not in Magenta): `inputs[f"{label_key}_id"]` (int64 [B]) selects a learned
embedding that is appended to every encoder input step and to z (hence to the decoder's initial state and inputs).
A missing label or id -1 (an unknown label in `make_dataset`) gives a zero embedding, i.e. "no label".

Scheduled sampling (Magenta's `sampling_schedule` / `sampling_rate` hparams and `ScheduledOutputTrainingHelper`):
from the second step of each segment on, every sequence reads, with probability p, its own sample of the previous
step (temperature 1, no gradient through the draw) instead of the true previous step.  p is
    constant          p = sampling_rate
    exponential       p = 1 - sampling_rate ** step
    inverse_sigmoid   p = 1 - sampling_rate / (sampling_rate + exp(step / sampling_rate))
at training step `step`, and 1 outside training (validation then measures free-running reconstruction, as
Magenta's eval jobs do).  It needs a step-by-step decoder loop, so models without a schedule keep the fused path.

Generation (`sample`, `decode`, `interpolate`) is one `tf.while_loop` over the T steps that steps the same LSTM
cells the fused layers use, with `tf.random.stateless_*` draws, so it runs eagerly, inside `tf.function` and in a
SavedModel signature.  Not ported from Magenta: beam search, variable-length sequences and hierarchical
*encoders*; gradient clipping (Magenta: global norm 1.0) and the learning-rate decay belong to the optimizer
passed to `compile`.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from musicgen_tf.models.common import Dropout, LossDictModel, dropout_mask, global_batch_draw, replicas_in_sync
from musicgen_tf.models.fused_lstm import (BLOCK_CELL, KERAS_CELL, OneHotTokens, TokenInputs, batch_slices,
                                          concurrent_chains, effective_bias, lstm_step, run_lstm, time_major,
                                          with_constant)
from musicgen_tf.models.groove_inputs import corrupt_groove

CATEGORICAL = "categorical"
GROOVE = "groove"
GROOVE_FEATURES = ("hits", "velocities", "offsets")
GREEDY_TEMPERATURE = 1e-4  # temperatures at or below this decode greedily (argmax, hits > 0.5)
# Stateless generator for seeded sampling.  The same seed gives the same samples eagerly and in `tf.function` /
# SavedModel; an XLA-compiled (`jit_compile=True`) caller gets a different, equally reproducible stream.
RNG_ALG = "philox"


# -- ELBO pieces (pure functions, tested on hand-computed values) ----------------------------------------------------

def kl_divergence(z_mean, z_sigma):
    """KL(N(mu, diag(sigma^2)) || N(0, I)) per example: float32 [B, latent] x2 -> float32 [B], in nats."""
    return 0.5 * tf.reduce_sum(tf.square(z_mean) + tf.square(z_sigma) - 1.0 - 2.0 * tf.math.log(z_sigma), axis=-1)


def free_bits_kl_cost(kl, free_bits):
    """Magenta's `kl_cost = max(kl - free_bits * ln 2, 0)`: float32 [B] nats -> float32 [B] nats."""
    return tf.maximum(kl - free_bits * math.log(2.0), 0.0)


def kl_beta(step, max_beta, beta_rate):
    """Magenta's KL weight `(1 - beta_rate ** step) * max_beta` at training step `step` -> float32 scalar."""
    decay = tf.pow(tf.constant(beta_rate, tf.float64), tf.cast(step, tf.float64))  # float64: 0.99999 ** step
    return tf.cast((1.0 - decay) * max_beta, tf.float32)


def sampling_probability(step, schedule, rate):
    """Magenta's scheduled-sampling probability at training step `step` -> float32 scalar."""
    step = tf.cast(step, tf.float32)
    if schedule == "constant":
        return tf.constant(rate, tf.float32)
    if schedule == "exponential":
        return 1.0 - tf.pow(tf.constant(rate, tf.float32), step)
    return tf.sigmoid(step / rate - math.log(rate))  # = 1 - k / (k + exp(step / k)), without overflow


def _check_sampling_schedule(schedule, rate):
    """Magenta's validity ranges, checked when the model is built rather than at the first training step."""
    ranges = {"constant": (0 <= rate <= 1, "in [0, 1]"), "exponential": (0 < rate < 1, "in (0, 1)"),
              "inverse_sigmoid": (rate >= 1, "at least 1")}
    if schedule not in ranges:
        raise ValueError(f"sampling_schedule must be one of {tuple(ranges)}, got {schedule!r}")
    valid, expected = ranges[schedule]
    if not valid:
        raise ValueError(f"a {schedule!r} sampling_rate must be {expected}, got {rate}")


def slerp(p0, p1, t):
    """Spherical interpolation (Magenta's `_slerp`): p0, p1 float32 [D], t float32 [S] -> float32 [S, D].

    Falls back to linear interpolation when the two vectors are (anti-)parallel.
    """
    t = tf.reshape(tf.cast(t, tf.float32), [-1, 1])
    cos = tf.reduce_sum(tf.math.l2_normalize(p0) * tf.math.l2_normalize(p1))
    omega = tf.acos(tf.clip_by_value(cos, -1.0, 1.0))
    so = tf.sin(omega)
    spherical = tf.sin((1.0 - t) * omega) / so * p0 + tf.sin(t * omega) / so * p1
    return tf.where(tf.abs(so) < 1e-6, (1.0 - t) * p0 + t * p1, spherical)


# -- layers -----------------------------------------------------------------------------------------------------------

class StepFeatures(keras.layers.Layer):
    """What an LSTM reads for one step of the sequence.

    mode "one_hot":   tokens int [...] -> one-hot float [..., vocab_size]            (Magenta's inputs)
    mode "embedding": tokens int [...] -> learned embedding float [..., embedding_dim]  (ours, an option)
    mode "roll":      tokens int [...] -> [C drum bits, silence bit (, end-token bit)] float [..., C + 1 (+1)]
                      (Magenta's `roll_input=True` encoder input, computed in-graph with `tf.bitwise`)
    mode "groove":    [hits | velocities | offsets] float [..., 3C] -> unchanged
    """

    MODES = ("one_hot", "embedding", "roll", "groove")

    def __init__(self, mode, vocab_size, num_classes, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"StepFeatures mode must be one of {self.MODES}, got {mode!r}")
        self.mode, self.vocab_size, self.num_classes, self.embedding_dim = mode, vocab_size, num_classes, embedding_dim
        self.has_end_bit = mode == "roll" and vocab_size > 2 ** num_classes
        self.embedding = (keras.layers.Embedding(vocab_size, embedding_dim, name="token_embedding")
                          if mode == "embedding" else None)

    @property
    def depth(self) -> int:
        return {"one_hot": self.vocab_size, "embedding": self.embedding_dim,
                "roll": self.num_classes + 1 + self.has_end_bit, "groove": 3 * self.num_classes}[self.mode]

    def build(self, input_shape=None):
        if self.embedding is not None:
            self.embedding.build((None,))

    def lstm_inputs(self, x):
        """The LSTMs' input for x: categorical tokens as TokenInputs (ids into the features of every token), groove
        features as they are."""
        if self.mode == "groove":
            return self(x)
        kind = OneHotTokens if self.mode == "one_hot" else TokenInputs
        return kind(tf.cast(x, tf.int32), self(tf.range(self.vocab_size)))

    def call(self, x):
        if self.mode == "groove":
            return tf.cast(x, self.compute_dtype)
        if self.mode == "embedding":
            return self.embedding(x)
        if self.mode == "one_hot":
            return tf.one_hot(tf.cast(x, tf.int32), self.vocab_size, dtype=self.compute_dtype)
        tokens = tf.cast(x, tf.int64)
        bits = tf.bitwise.bitwise_and(
            tf.bitwise.right_shift(tokens[..., None], tf.range(self.num_classes, dtype=tf.int64)), 1)
        columns = [tf.cast(bits, self.compute_dtype), tf.cast(tokens == 0, self.compute_dtype)[..., None]]
        if self.has_end_bit:
            columns.append(tf.cast(tokens == 2 ** self.num_classes, self.compute_dtype)[..., None])
        return tf.concat(columns, axis=-1)


def _make_lstm(units, cell, name, return_state=False):
    """A `keras.layers.LSTM` holding the weights `run_lstm` / `lstm_step` use (its own `call` is never run).

    cell "lstm_block": Magenta's layout; the bias starts at 0 (the fixed forget bias does Keras' unit_forget_bias'
    job) and `_init_block_kernels` gives kernel and recurrent kernel the Glorot-uniform range of Magenta's single
    [F + H, 4H] kernel.
    """
    return keras.layers.LSTM(units, return_sequences=True, return_state=return_state,
                             unit_forget_bias=cell == KERAS_CELL, name=name)


def _init_block_kernels(lstm, input_depth, cell):
    """Before building: Magenta's Glorot-uniform range for kernel and recurrent kernel of a "lstm_block" LSTM."""
    if cell == BLOCK_CELL:
        units = lstm.units
        limit = math.sqrt(6.0 / (input_depth + units + 4 * units))
        for attribute in ("kernel_initializer", "recurrent_initializer"):
            setattr(lstm.cell, attribute, keras.initializers.RandomUniform(-limit, limit))


class BidirectionalEncoder(keras.layers.Layer):
    """Stacked bidirectional LSTMs: float [B, T, F] or TokenInputs (ids [B, T]), plus an optional per-sequence
    constant [B, E] read at every step of the first layer -> concatenated final h of both directions,
    [B, 2 * units[-1]].

    `units` are per direction per layer (Magenta's `enc_rnn_size`); `dropout` is applied to every layer's input
    (Magenta's `input_keep_prob = 1 - dropout`), with a separate mask for each direction; `cell` is "lstm_block"
    (Magenta's) or "keras".
    """

    def __init__(self, units, dropout=0.0, cell=BLOCK_CELL, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout, self.cell = tuple(units), dropout, cell
        self.block = cell == BLOCK_CELL
        self.dropouts = [Dropout(dropout, batch_axis=1, name=f"dropout_{i}") for i in range(len(self.units))]
        self.layers = [keras.layers.Bidirectional(_make_lstm(u, cell, f"lstm_{i}", return_state=True),
                                                  name=f"bilstm_{i}") for i, u in enumerate(self.units)]

    def build(self, input_shape):
        depth = input_shape[-1]
        for units, layer in zip(self.units, self.layers):
            _init_block_kernels(layer.forward_layer, depth, self.cell)
            _init_block_kernels(layer.backward_layer, depth, self.cell)
            layer.build((None, None, depth))
            depth = 2 * units

    def call(self, x, constant=None, training=False):
        x = time_major(x)  # [T, B, ...]
        for dropout, layer in zip(self.dropouts, self.layers):
            x_fw = x_bw = x
            if training and self.dropout > 0:  # each direction its own mask, as Magenta's per-cell DropoutWrapper
                x_fw, x_bw = (dropout(with_constant(x, constant), training=training) for _ in range(2))
                constant = None
            # The two directions are independent chains already: they run side by side (see `concurrent_chains`).
            forward, h_fw, _ = run_lstm(layer.forward_layer, x_fw, None, constant, training=training, block=self.block)
            backward, h_bw, _ = run_lstm(layer.backward_layer, x_bw, None, constant, reverse=True, training=training,
                                         block=self.block)
            x, constant = tf.concat([forward, backward], axis=-1), None
        return tf.concat([h_fw, h_bw], axis=-1)


class LstmStack(keras.layers.Layer):
    """Stacked unidirectional LSTMs whose initial state comes from an embedding (the decoder and the conductor).

    `initial_state(e)`:  float [N, E] -> per layer [h, c], each [N, units[i]]  (Dense + tanh, Magenta's
                         `initial_cell_state_from_embedding`, kernel ~ N(0, 0.001); its columns are
                         (c_0, h_0, c_1, h_1, ...) for "lstm_block" cells as Magenta's (c, h) state tuples,
                         (h_0, c_0, ...) for "keras" cells)
    `call(x, states, constant=None)`:  float [N, L, F] or TokenInputs (ids [N, L]) (+ float [N, E] read at every
                         step) -> float [N, L, units[-1]]
                         (teacher forcing; `run_lstm` over the `keras.layers.LSTM` weights)
    `step(x, states, training=False)`:  float [N, F] -> (float [N, units[-1]], new states)  (the same weights,
                         one step; dropout on each layer's input when training, as `call`)
    """

    def __init__(self, units, dropout=0.0, cell=BLOCK_CELL, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout, self.cell = tuple(units), dropout, cell
        self.block = cell == BLOCK_CELL
        # Their seed generators draw the masks (`_dropout_masks`, `step`): one per layer for the whole batch.
        self.dropouts = [keras.layers.Dropout(dropout, name=f"dropout_{i}") for i in range(len(self.units))]
        self.lstms = [_make_lstm(u, cell, f"lstm_{i}") for i, u in enumerate(self.units)]
        self.state_projection = keras.layers.Dense(
            2 * sum(self.units), activation="tanh", name="initial_state",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.001))

    def build(self, input_shape, embedding_shape):
        depth = input_shape[-1]
        for units, lstm in zip(self.units, self.lstms):
            _init_block_kernels(lstm, depth, self.cell)
            lstm.build((None, None, depth))
            depth = units
        self.state_projection.build(embedding_shape)

    def initial_state(self, embedding):
        flat = tf.split(self.state_projection(embedding), [u for u in self.units for _ in range(2)], axis=-1)
        pairs = [flat[2 * i:2 * i + 2] for i in range(len(self.units))]
        return [[h, c] for c, h in pairs] if self.block else [list(pair) for pair in pairs]

    def call(self, x, states, constant=None, training=False, chains=None):
        """chains: when training, run the batch as this many independent slices through all layers (default
        `concurrent_chains()`); the results are the same."""
        x = time_major(x)  # [L, N, ...]
        chains = (chains or concurrent_chains()) if training else 1
        masks = self._dropout_masks(x, constant, training)
        if chains == 1:
            return tf.transpose(self._run(x, states, constant, masks, training), [1, 0, 2])
        slices = batch_slices(chains, x, states, constant, masks)
        return tf.transpose(tf.concat([self._run(*parts, training) for parts in slices], axis=1), [1, 0, 2])

    def _dropout_masks(self, x, constant, training):
        """Per layer, the multipliers of its input [L, N, F_l] (float32), or None without dropout.

        Drawn for the whole batch before it is sliced into chains, and as this replica's rows of a global-batch
        draw, so the masks do not depend on how the batch is split (chains, replicas, workers)."""
        if not (training and self.dropout > 0):
            return [None] * len(self.lstms)
        steps_batch = tf.shape(x.ids if isinstance(x, TokenInputs) else x)[:2]
        first = tf.shape(x.table if isinstance(x, TokenInputs) else x)[-1]
        if constant is not None:
            first += tf.shape(constant)[-1]
        steps, batch = steps_batch[0], steps_batch[1]
        return [dropout_mask(tf.stack([steps, batch, depth]), self.dropout, layer.seed_generator, batch_axis=1)
                for depth, layer in zip((first,) + self.units[:-1], self.dropouts)]

    def _run(self, x, states, constant, masks, training):
        """Time-major x -> h of the last layer, [L, N, units[-1]]."""
        for mask, lstm, state in zip(masks, self.lstms, states):
            if mask is not None:  # per-step dropout masks, on the constant too
                x = with_constant(x, constant)
                x, constant = x * tf.cast(mask, x.dtype), None
            x, _, _ = run_lstm(lstm, x, state, constant, training=training, block=self.block)
            constant = None
        return x

    def step(self, x, states, training=False, constant_projection=None):
        """constant_projection: from `constant_projection(constant)`, for x without the constant (not training)."""
        new_states = []
        for dropout, lstm, state in zip(self.dropouts, self.lstms, states):
            x = tf.cast(x, self.compute_dtype)
            if training and self.dropout > 0:
                x = x * tf.cast(dropout_mask(tf.shape(x), self.dropout, dropout.seed_generator), x.dtype)
            x, state = lstm_step(lstm, x, state, self.block, constant_projection)
            new_states.append(state)
            constant_projection = None
        return x, new_states

    def constant_projection(self, constant):
        """float [..., E] per-sequence input of the first layer (its kernel's last E rows) -> its projection plus
        the bias, [..., 4H]: the part of every step's input projection that does not change (see `step`)."""
        cell = self.lstms[0].cell
        kernel = tf.cast(cell.kernel, self.compute_dtype)
        bias = effective_bias(tf.cast(cell.bias, self.compute_dtype), self.block)
        return tf.einsum("...e,eg->...g", tf.cast(constant, self.compute_dtype),
                         kernel[-constant.shape[-1]:]) + bias


# -- the model --------------------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="musicgen_tf")
class MusicVAE(LossDictModel):
    """MusicVAE (categorical tokens, flat or hierarchical decoder) and GrooVAE (`output_kind="groove"`).

    Inputs (the dict batches of `musicgen_tf.tfrecords.dataset.make_dataset`; other keys are ignored):
      categorical: `{"tokens": int64 [B, T]}`;  groove: `{"hits", "velocities", "offsets": float32 [B, T, C]}`;
      optional `{f"{label_key}_id": int64 [B]}` when `num_labels > 0`.
    `call(inputs, training)` -> `{"logits": float32 [B, T, D], "z_mean", "z_sigma": float32 [B, latent_dim]}`
      (teacher forcing; D = vocab_size, or 3C raw pre-activations [hits | velocities | offsets] for groove).

    Defaults are Magenta's `cat-mel_2bar_small`; `hierdec-mel_16bar` is `seq_len=256, encoder_units=(2048, 2048),
    latent_dim=512, decoder="hierarchical", conductor_units=(1024, 1024), decoder_units=(1024, 1024),
    level_lengths=(16, 16), free_bits=256, max_beta=0.2, beta_rate=0.0`.

    The defaults are Magenta's network exactly (so `musicgen_tf.interop.magenta` can load its checkpoints):
    `input_encoding="one_hot"` (tokens enter as one-hot vectors; looked up, never multiplied), `cell="lstm_block"`
    (`LSTMBlockCell`: gates i, c, f, o, fixed forget bias 1.0, (c, h) initial-state columns), and with
    `drum_roll_input` only the encoder reads the drum bits while the decoder reads the previous token's one-hot.
    Our variants, off by default: `input_encoding="embedding"` (a learned `embedding_dim` embedding),
    `cell="keras"` (Keras' gate order and unit forget bias), `decoder_roll_input=True` (the decoder reads the drum
    bits too).
    """

    metric_names = ("loss", "reconstruction_loss", "kl", "beta", "accuracy")

    def __init__(self, output_kind=CATEGORICAL, vocab_size=90, num_classes=9, drum_roll_input=False, seq_len=32,
                 encoder_units=(512,), latent_dim=256, decoder_units=(256, 256), decoder="flat",
                 conductor_units=(1024, 1024), level_lengths=None, embedding_dim=64, dropout=0.0, free_bits=0.0,
                 max_beta=0.2, beta_rate=0.99999, sampling_schedule="constant", sampling_rate=0.0, num_labels=0,
                 label_dim=16, label_key="label", input_encoding="one_hot", cell=BLOCK_CELL,
                 decoder_roll_input=False, encoder_corruption=None, **kwargs):
        super().__init__(**kwargs)
        if output_kind not in (CATEGORICAL, GROOVE):
            raise ValueError(f"output_kind must be {CATEGORICAL!r} or {GROOVE!r}, got {output_kind!r}")
        if decoder not in ("flat", "hierarchical"):
            raise ValueError(f"decoder must be 'flat' or 'hierarchical', got {decoder!r}")
        if drum_roll_input and output_kind != CATEGORICAL:
            raise ValueError("drum_roll_input applies to categorical drum tokens only")
        if drum_roll_input and vocab_size not in (2 ** num_classes, 2 ** num_classes + 1):
            raise ValueError(f"drum_roll_input needs vocab_size 2**num_classes (+1 end token) = {2 ** num_classes}, "
                             f"got {vocab_size}")
        if decoder == "hierarchical":
            if level_lengths is None or len(level_lengths) != 2 or level_lengths[0] * level_lengths[1] != seq_len:
                raise ValueError(f"hierarchical decoder needs level_lengths (segments, steps) whose product is "
                                 f"seq_len={seq_len}, got {level_lengths}")
        if input_encoding not in ("one_hot", "embedding"):
            raise ValueError(f"input_encoding must be 'one_hot' or 'embedding', got {input_encoding!r}")
        if cell not in (BLOCK_CELL, KERAS_CELL):
            raise ValueError(f"cell must be {BLOCK_CELL!r} or {KERAS_CELL!r}, got {cell!r}")
        if decoder_roll_input and not drum_roll_input:
            raise ValueError("decoder_roll_input needs drum_roll_input")
        if encoder_corruption and output_kind != GROOVE:
            raise ValueError("encoder_corruption applies to GrooVAE (output_kind='groove') only")
        _check_sampling_schedule(sampling_schedule, float(sampling_rate))
        self.output_kind, self.vocab_size, self.num_classes = output_kind, int(vocab_size), int(num_classes)
        self.drum_roll_input, self.seq_len = bool(drum_roll_input), int(seq_len)
        self.encoder_units, self.latent_dim = tuple(encoder_units), int(latent_dim)
        self.decoder_units, self.decoder_kind = tuple(decoder_units), decoder
        self.conductor_units = tuple(conductor_units)
        self.level_lengths = None if level_lengths is None else tuple(int(n) for n in level_lengths)
        self.embedding_dim, self.dropout = int(embedding_dim), float(dropout)
        self.input_encoding, self.cell, self.decoder_roll_input = input_encoding, cell, bool(decoder_roll_input)
        self.encoder_corruption = dict(encoder_corruption) if encoder_corruption else None
        self.free_bits, self.max_beta, self.beta_rate = float(free_bits), float(max_beta), float(beta_rate)
        self.sampling_schedule, self.sampling_rate = sampling_schedule, float(sampling_rate)
        self.scheduled_sampling = not (sampling_schedule == "constant" and self.sampling_rate == 0.0)
        self.num_labels, self.label_dim, self.label_key = int(num_labels), int(label_dim), label_key
        self.output_depth = self.vocab_size if output_kind == CATEGORICAL else 3 * self.num_classes
        # (segments, steps per segment); the flat decoder is one segment of seq_len steps.
        self.segments, self.segment_len = self.level_lengths if decoder == "hierarchical" else (1, self.seq_len)

        # What the encoder reads (`step_features`) and what the decoder reads of the previous step
        # (`decoder_features`, the same layer when both read the same).
        token_mode = GROOVE if output_kind == GROOVE else input_encoding
        encoder_mode = "roll" if self.drum_roll_input else token_mode
        decoder_mode = "roll" if self.decoder_roll_input else token_mode
        self.step_features = StepFeatures(encoder_mode, self.vocab_size, self.num_classes, self.embedding_dim,
                                          name="step_features")
        self.decoder_features = (self.step_features if decoder_mode == encoder_mode else
                                 StepFeatures(decoder_mode, self.vocab_size, self.num_classes, self.embedding_dim,
                                              name="decoder_features"))
        self.label_embedding = (keras.layers.Embedding(self.num_labels, self.label_dim, name="label_embedding")
                                if self.num_labels else None)
        # Posterior noise from a model-owned generator: its state is saved with the weights, so a resumed run
        # draws the same noise as an uninterrupted one.
        self.noise = keras.random.SeedGenerator(name="posterior_noise")
        self.encoder = BidirectionalEncoder(self.encoder_units, self.dropout, cell, name="encoder")
        init = keras.initializers.RandomNormal(stddev=0.001)  # Magenta's encoder/mu and encoder/sigma
        self.z_mean_dense = keras.layers.Dense(self.latent_dim, kernel_initializer=init, dtype="float32",
                                               name="z_mean")
        self.z_sigma_dense = keras.layers.Dense(self.latent_dim, activation="softplus", kernel_initializer=init,
                                                dtype="float32", name="z_sigma")
        self.conductor = (LstmStack(self.conductor_units, self.dropout, cell, name="conductor")
                          if decoder == "hierarchical" else None)
        self.decoder = LstmStack(self.decoder_units, self.dropout, cell, name="decoder")
        self.output_projection = keras.layers.Dense(self.output_depth, dtype="float32", name="output_projection")

        if self.scheduled_sampling:
            self.metric_names = MusicVAE.metric_names + ("sampling_probability",)
        self.create_trackers()
        self.build()

    # -- construction ------------------------------------------------------------------------------------------------

    def build(self, input_shape=None):
        """Create every weight from the config alone (so checkpoints load into a fresh `from_config` model)."""
        label = self.label_dim if self.num_labels else 0
        features = self.step_features.depth
        self.step_features.build()
        self.decoder_features.build()
        if self.label_embedding is not None:
            self.label_embedding.build((None,))
        self.encoder.build((None, self.seq_len, features + label))
        self.z_mean_dense.build((None, 2 * self.encoder_units[-1]))
        self.z_sigma_dense.build((None, 2 * self.encoder_units[-1]))
        z_cond = self.latent_dim + label
        if self.conductor is not None:
            self.conductor.build((None, self.segments, 1), (None, z_cond))
            segment_embedding = self.conductor_units[-1]
        else:
            segment_embedding = z_cond
        self.decoder.build((None, self.segment_len, self.decoder_features.depth + segment_embedding),
                           (None, segment_embedding))
        self.output_projection.build((None, self.decoder_units[-1]))
        self.built = True

    def get_config(self):
        return {"name": self.name, "output_kind": self.output_kind, "vocab_size": self.vocab_size,
                "num_classes": self.num_classes, "drum_roll_input": self.drum_roll_input, "seq_len": self.seq_len,
                "encoder_units": list(self.encoder_units), "latent_dim": self.latent_dim,
                "decoder_units": list(self.decoder_units), "decoder": self.decoder_kind,
                "conductor_units": list(self.conductor_units),
                "level_lengths": None if self.level_lengths is None else list(self.level_lengths),
                "embedding_dim": self.embedding_dim, "dropout": self.dropout, "free_bits": self.free_bits,
                "max_beta": self.max_beta, "beta_rate": self.beta_rate,
                "sampling_schedule": self.sampling_schedule, "sampling_rate": self.sampling_rate,
                "num_labels": self.num_labels, "label_dim": self.label_dim, "label_key": self.label_key,
                "input_encoding": self.input_encoding, "cell": self.cell,
                "decoder_roll_input": self.decoder_roll_input, "encoder_corruption": self.encoder_corruption}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- inputs ------------------------------------------------------------------------------------------------------

    @property
    def input_keys(self) -> tuple[str, ...]:
        """The batch keys the model reads: its features and, when conditioned, `f"{label_key}_id"`."""
        keys = ("tokens",) if self.output_kind == CATEGORICAL else GROOVE_FEATURES
        return keys + ((f"{self.label_key}_id",) if self.num_labels else ())

    def _targets(self, inputs):
        """Decoder targets: categorical int32 [B, T]; groove float32 [B, T, 3C] = [hits | velocities | offsets]."""
        if self.output_kind == CATEGORICAL:
            targets = tf.cast(inputs["tokens"], tf.int32)
        else:
            targets = tf.concat([tf.cast(inputs[k], tf.float32) for k in GROOVE_FEATURES], axis=-1)
        if targets.shape[1] is not None and targets.shape[1] != self.seq_len:
            raise ValueError(f"sequences have {targets.shape[1]} steps but the model was built for "
                             f"seq_len={self.seq_len}")
        return targets

    def _label_vector(self, labels, batch_size):
        """int [B] label ids (or None) -> compute-dtype [B, label_dim]; ids < 0 and None give zeros."""
        if labels is None:
            return tf.zeros([batch_size, self.label_dim], self.compute_dtype)
        labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        known = labels >= 0
        vector = self.label_embedding(tf.where(known, labels, 0))
        return tf.cast(vector, self.compute_dtype) * tf.cast(known, self.compute_dtype)[:, None]

    def _conditioning(self, z, label_vector):
        """z float32 [B, latent] (+ label [B, label_dim]) -> compute-dtype [B, latent (+ label_dim)]."""
        z = tf.cast(z, self.compute_dtype)
        return z if label_vector is None else tf.concat([z, label_vector], axis=-1)

    # -- encoder / decoder -------------------------------------------------------------------------------------------

    def _encode(self, targets, label_vector, training=False):
        """targets ([B, T] or [B, T, 3C]) -> (z_mean, z_sigma), float32 [B, latent_dim].  A GrooVAE with
        `encoder_corruption` encodes the corrupted groove, as Magenta's converter feeds its encoder."""
        if self.encoder_corruption:
            targets = corrupt_groove(targets, self.encoder_corruption)
        h = tf.cast(self.encoder(self.step_features.lstm_inputs(targets), label_vector, training=training),
                    tf.float32)
        return self.z_mean_dense(h), self.z_sigma_dense(h)

    def _segment_embeddings(self, z_cond, training=False):
        """z_cond [B, Z] -> the embedding that starts each segment, compute-dtype [B, segments, E]."""
        if self.conductor is None:
            return z_cond[:, None]
        zeros = tf.zeros([tf.shape(z_cond)[0], self.segments, 1], self.compute_dtype)
        return self.conductor(zeros, self.conductor.initial_state(z_cond), training=training)

    def _decode_teacher_forced(self, targets, z_cond, training=False):
        """targets + z_cond [B, Z] -> logits float32 [B, T, D].  All segments run as one batch of B * U sequences."""
        inputs = self.decoder_features.lstm_inputs(targets)
        # Magenta's x_input: zeros, then x[t-1]
        if isinstance(inputs, TokenInputs):
            previous = inputs.previous()
            previous = previous._replace(ids=tf.reshape(previous.ids, [-1, self.segment_len]))  # [B * U, L]
        else:
            previous = tf.pad(inputs[:, :-1], [[0, 0], [1, 0], [0, 0]])
            previous = tf.reshape(previous, [-1, self.segment_len, previous.shape[-1]])  # [B * U, L, F]
        embeddings = self._segment_embeddings(z_cond, training)  # [B, U, E]
        embeddings = tf.reshape(embeddings, [-1, embeddings.shape[-1]])
        states = self.decoder.initial_state(embeddings)
        if self.scheduled_sampling:
            if isinstance(previous, TokenInputs):
                previous = previous.features()
            logits = self._decode_scheduled(previous, embeddings, states, self.current_sampling_probability(training),
                                            training)
        else:
            # Each step reads [previous, embedding]; the embedding's share of the input projection is computed once.
            logits = self.output_projection(self.decoder(previous, states, constant=embeddings, training=training))
        return tf.reshape(logits, [-1, self.seq_len, self.output_depth])

    def current_sampling_probability(self, training):
        """The scheduled-sampling probability now: the schedule at the optimizer's step, 1 outside training."""
        if not training:
            return tf.constant(1.0)
        return sampling_probability(self._training_step(), self.sampling_schedule, self.sampling_rate)

    def _training_step(self):
        """The optimizer's step count (resume-safe schedules); 0 before `compile`."""
        optimizer = getattr(self, "optimizer", None)
        return optimizer.iterations if optimizer is not None else 0

    def _decode_scheduled(self, previous, embeddings, states, probability, training):
        """Scheduled sampling, one decoder step at a time.

        previous [N, L, F] teacher inputs; embeddings [N, E]; states: the decoder's initial states ->
        logits float32 [N, L, D].  Step 0 of every segment reads the teacher input (as Magenta's helper does).
        """
        previous = tf.transpose(previous, [1, 0, 2])  # [L, N, F]
        use_sample = global_batch_draw(lambda shape: keras.random.uniform(shape, seed=self.noise),
                                       tf.shape(previous)[:2], batch_axis=1) < probability  # [L, N]
        seed = tf.cast(keras.random.randint([2], 0, 2 ** 31 - 1, seed=self.noise), tf.int64)
        if replicas_in_sync() > 1:  # replicas' samples independent (not the same draws as one process, though)
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica, tf.int64), alg=RNG_ALG)
        logits_array = tf.TensorArray(tf.float32, size=self.segment_len)

        def body(t, sampled, states, logits_array):
            x = tf.where(use_sample[t][:, None], sampled, previous[t])
            h, states = self.decoder.step(tf.concat([x, embeddings], axis=-1), states, training=training)
            logits = self.output_projection(h)
            _, sampled = self._sample_step(tf.stop_gradient(logits), 1.0,
                                           tf.random.experimental.stateless_fold_in(seed, t, alg=RNG_ALG))
            return t + 1, tf.cast(sampled, previous.dtype), states, logits_array.write(t, logits)

        _, _, _, logits_array = tf.while_loop(lambda t, *_: t < self.segment_len, body,
                                              (tf.constant(0), previous[0], states, logits_array),
                                              maximum_iterations=self.segment_len)
        return tf.transpose(logits_array.stack(), [1, 0, 2])

    def call(self, inputs, training=False, sample_z=None):
        """sample_z: decode z drawn from the posterior (default: when training) instead of its mean."""
        targets = self._targets(inputs)
        label_vector = None
        if self.num_labels:
            label_vector = self._label_vector(inputs.get(f"{self.label_key}_id"), tf.shape(targets)[0])
        z_mean, z_sigma = self._encode(targets, label_vector, training)
        sample_z = training if sample_z is None else sample_z
        z = z_mean
        if sample_z:  # each replica its rows of one global-batch draw
            z = z_mean + z_sigma * global_batch_draw(lambda shape: keras.random.normal(shape, seed=self.noise),
                                                     tf.shape(z_mean))
        logits = self._decode_teacher_forced(targets, self._conditioning(z, label_vector), training)
        return {"logits": logits, "z_mean": z_mean, "z_sigma": z_sigma}

    # -- losses ------------------------------------------------------------------------------------------------------

    def reconstruction_loss(self, targets, logits):
        """targets, logits float32 [B, T, D] -> (loss float32 [B] nats summed over time, accuracy scalar)."""
        if self.output_kind == CATEGORICAL:
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            correct = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets)
            return tf.reduce_sum(losses, axis=1), tf.reduce_mean(tf.cast(correct, tf.float32))
        target_hits, target_velocities, target_offsets = tf.split(targets, 3, axis=-1)
        hit_logits, velocity_logits, offset_logits = tf.split(logits, 3, axis=-1)
        hits = tf.nn.sigmoid_cross_entropy_with_logits(labels=target_hits, logits=hit_logits)
        velocities = tf.square(tf.sigmoid(velocity_logits) - target_velocities)
        offsets = tf.square(tf.tanh(offset_logits) - target_offsets)
        correct = tf.equal(hit_logits > 0.0, target_hits > 0.5)
        return tf.reduce_sum(hits + velocities + offsets, axis=[1, 2]), tf.reduce_mean(tf.cast(correct, tf.float32))

    def compute_losses(self, inputs, training=False):
        """One batch -> dict of scalars: loss, reconstruction_loss (nats), kl (bits), kl_cost (nats), beta, accuracy.

        z is drawn from the posterior in validation too (Magenta's `eval` computes the same loss as `train`)."""
        outputs = self(inputs, training=training, sample_z=True)
        reconstruction, accuracy = self.reconstruction_loss(self._targets(inputs), outputs["logits"])
        kl = kl_divergence(outputs["z_mean"], outputs["z_sigma"])
        kl_cost = free_bits_kl_cost(kl, self.free_bits)
        beta = kl_beta(self._training_step(), self.max_beta, self.beta_rate)
        reconstruction, kl_cost = tf.reduce_mean(reconstruction), tf.reduce_mean(kl_cost)
        losses = {"loss": reconstruction + beta * kl_cost, "reconstruction_loss": reconstruction,
                  "kl": tf.reduce_mean(kl) / math.log(2.0), "kl_cost": kl_cost, "beta": beta, "accuracy": accuracy}
        if self.scheduled_sampling:
            losses["sampling_probability"] = self.current_sampling_probability(training)
        return losses

    # -- generation --------------------------------------------------------------------------------------------------

    def encode(self, inputs):
        """Batch dict (as `call`) -> (z_mean, z_sigma), float32 [B, latent_dim] (deterministic)."""
        targets = self._targets(inputs)
        label_vector = None
        if self.num_labels:
            label_vector = self._label_vector(inputs.get(f"{self.label_key}_id"), tf.shape(targets)[0])
        return self._encode(targets, label_vector, training=False)

    def encode_inputs(self, inputs, labels=None):
        """Encoder input tensors as Magenta feeds them (a converter's `to_tensors` inputs, e.g. one-hot melodies,
        drum bits + silence bit, corrupted GrooVAE inputs): float [B, T, F] -> (z_mean, z_sigma), float32
        [B, latent_dim].  F is `step_features.depth`; labels: int [B] or None (conditioned models)."""
        inputs = tf.cast(tf.convert_to_tensor(inputs), self.compute_dtype)
        if inputs.shape[-1] != self.step_features.depth:
            raise ValueError(f"encoder inputs have depth {inputs.shape[-1]}, the model reads "
                             f"{self.step_features.depth} ({self.step_features.mode})")
        label_vector = self._label_vector(labels, tf.shape(inputs)[0]) if self.num_labels else None
        h = tf.cast(self.encoder(inputs, label_vector), tf.float32)
        return self.z_mean_dense(h), self.z_sigma_dense(h)

    def sample(self, num, temperature=1.0, seed=None, labels=None):
        """Decode `num` draws z ~ N(0, I).

        num: int or int32 scalar; temperature: float scalar (<= 1e-4: greedy); seed: int [2] (reproducible) or None;
        labels: int [num] label ids or None.  Returns what `decode` returns.
        """
        seed = self._seed(seed)
        z_seed, decode_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2, alg=RNG_ALG))
        z = tf.random.stateless_normal(tf.stack([num, self.latent_dim]), seed=z_seed, alg=RNG_ALG)
        return self.decode(z, temperature=temperature, seed=decode_seed, labels=labels)

    def decode(self, z, temperature=1.0, seed=None, labels=None):
        """z float32 [N, latent_dim] -> categorical tokens int32 [N, T], or groove
        `{"hits": float32 [N, T, C] in {0, 1}, "velocities": [N, T, C] in (0, 1), "offsets": [N, T, C] in (-1, 1)}`.

        Autoregressive: one `tf.while_loop` over T steps feeding back each step's sample (argmax / hits > 0.5 when
        temperature <= 1e-4).  seed: int [2] or None; labels: int [N] or None (conditioned models).
        """
        z = tf.convert_to_tensor(z, tf.float32)
        batch = tf.shape(z)[0]
        label_vector = self._label_vector(labels, batch) if self.num_labels else None
        return self._sample_loop(self._conditioning(z, label_vector), temperature, self._seed(seed))

    def interpolate(self, inputs_a, inputs_b, steps, labels=None):
        """Greedy decodes of `steps` points on the slerp between the z means of two sequences.

        inputs_a, inputs_b: one example each (as `call`, batch dim of 1 optional); steps: int.
        Returns tokens int32 [steps, T] (or the groove dict with leading dim `steps`); row 0 / -1 decode the means
        of a / b.  labels: int scalar or [steps] label id for conditioned models.
        """
        z_a, z_b = self.encode(self._one(inputs_a))[0][0], self.encode(self._one(inputs_b))[0][0]
        z = slerp(z_a, z_b, tf.linspace(0.0, 1.0, steps))
        if labels is not None:
            labels = tf.broadcast_to(tf.cast(labels, tf.int32), [tf.shape(z)[0]])
        return self.decode(z, temperature=0.0, seed=[0, 0], labels=labels)

    def _one(self, inputs):
        """Add the batch dim to a single unbatched example."""
        rank = 1 if self.output_kind == CATEGORICAL else 2
        out = {}
        for key in self.input_keys:
            if key in inputs:
                value = tf.convert_to_tensor(inputs[key])
                expected = rank if key in ("tokens",) + GROOVE_FEATURES else 0
                out[key] = value[None] if value.shape.rank == expected else value
        return out

    @staticmethod
    def _seed(seed):
        if seed is None:
            return tf.random.uniform([2], maxval=2 ** 31 - 1, dtype=tf.int64)
        return tf.cast(tf.convert_to_tensor(seed), tf.int64)

    def _sample_step(self, logits, temperature, seed):
        """One step's output float32 [N, D] -> (value to store, next decoder input features)."""
        greedy = temperature <= GREEDY_TEMPERATURE
        scaled = logits / tf.maximum(temperature, GREEDY_TEMPERATURE)
        if self.output_kind == CATEGORICAL:
            branches = (lambda: tf.argmax(logits, axis=-1, output_type=tf.int32),
                        lambda: tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int32)[:, 0])
            # a Python temperature picks its branch now; a tensor one skips the draw when greedy
            tokens = ((branches[0] if greedy else branches[1])() if isinstance(greedy, bool)
                      else tf.cond(greedy, *branches))
            return tokens, self.decoder_features(tokens)
        hit_logits, velocity_logits, offset_logits = tf.split(logits, 3, axis=-1)
        hit_scaled = tf.split(scaled, 3, axis=-1)[0]
        drawn = tf.random.stateless_uniform(tf.shape(hit_logits), seed=seed, alg=RNG_ALG) < tf.sigmoid(hit_scaled)
        hits = tf.cast(tf.where(greedy, hit_logits > 0.0, drawn), tf.float32)
        value = tf.concat([hits, tf.sigmoid(velocity_logits), tf.tanh(offset_logits)], axis=-1)
        return value, self.decoder_features(value)

    def _sample_loop(self, z_cond, temperature, seed):
        """z_cond [N, Z] -> samples; the decoder state is reset from the segment embedding every segment_len steps."""
        temperature = tf.cast(temperature, tf.float32)
        batch = tf.shape(z_cond)[0]
        embeddings = self._segment_embeddings(z_cond)  # [N, U, E]
        flat_states = self.decoder.initial_state(tf.reshape(embeddings, [-1, embeddings.shape[-1]]))
        initial_states = [[tf.reshape(s, [batch, self.segments, s.shape[-1]]) for s in layer]
                          for layer in flat_states]  # per layer [h, c], each [N, U, units]
        states = [[s[:, 0] for s in layer] for layer in initial_states]
        constant_projections = self.decoder.constant_projection(embeddings)  # [N, U, 4H], once per segment
        previous = tf.zeros([batch, self.decoder_features.depth], self.compute_dtype)
        dtype = tf.int32 if self.output_kind == CATEGORICAL else tf.float32
        outputs = tf.TensorArray(dtype, size=self.seq_len, element_shape=None)

        def body(t, previous, states, outputs):
            segment = t // self.segment_len
            reset = tf.equal(t % self.segment_len, 0)
            states = [[tf.where(reset, tf.gather(init, segment, axis=1), s) for init, s in zip(init_layer, layer)]
                      for init_layer, layer in zip(initial_states, states)]
            h, states = self.decoder.step(previous, states,
                                          constant_projection=tf.gather(constant_projections, segment, axis=1))
            logits = self.output_projection(h)
            value, previous = self._sample_step(logits, temperature,
                                                tf.random.experimental.stateless_fold_in(seed, t, alg=RNG_ALG))
            return t + 1, tf.cast(previous, self.compute_dtype), states, outputs.write(t, value)

        _, _, _, outputs = tf.while_loop(lambda t, *_: t < self.seq_len, body,
                                         (tf.constant(0), previous, states, outputs),
                                         maximum_iterations=self.seq_len)
        stacked = tf.transpose(outputs.stack(), [1, 0] + ([2] if self.output_kind == GROOVE else []))
        if self.output_kind == CATEGORICAL:
            return tf.ensure_shape(stacked, [None, self.seq_len])
        return dict(zip(GROOVE_FEATURES, tf.split(stacked, 3, axis=-1)))

"""Transformer-XL over REMI tokens (Dai et al. 2019; Huang & Yang 2020, "Pop Music Transformer").

Read top to bottom: the relative attention layer, one decoder block, then the model with its segment-recurrent
training step and its cached generation loop.

Shapes: B batch, S `segment_len`, M `mem_len`, K = M + S key slots, D `d_model`, H heads, d = D / H, V vocabulary.

- **Segments and memory.**  A training batch holds B whole pieces [B, L] (zero-padded).  `train_step` walks them in
  consecutive segments of S tokens; each layer attends over [its memory (M hidden states of the previous segments,
  stop-gradient) + the current segment] with a causal mask; memory slots that precede the piece are masked (the
  paper's code attends to a zero memory there instead).
- **Gradients: one tape per segment, accumulated.**  Memories are stop-gradient, so the gradient of the summed NLL
  over all segments is exactly the sum of the per-segment gradients; a tape per segment keeps one segment's
  activations alive instead of the whole piece's.  One optimizer step per batch applies sum(grad) / tokens, i.e.
  the gradient of the batch's mean token NLL.  (The paper's code steps the optimizer after every segment.)
- **Relative attention** (paper eq. 4): score(i, j) = (q_i + u) k_j + (q_i + v) W_r R_{i-j}, R sinusoidal
  (`keras_hub.layers.SinePositionEncoding`), u/v learned per layer.  Post-norm blocks as the paper, ReLU FFN,
  input embedding scaled by sqrt(D) and tied with the softmax (`keras_hub.layers.ReversibleEmbedding`) plus a bias.
- **Generation** keeps per-layer key/value buffers of K slots ([memory | current segment]); each new token runs
  one query through the layers against those buffers (O(K D) attention + O(D^2) projections), never the prefix.
  When the current segment fills, the buffers shift by S (the last M hidden states become the memory, exactly as in
  training).  `logits_full_recompute` is the slow segment-by-segment reference the cached path must match.
"""

from __future__ import annotations

import math

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from musicgen_tf.models.common import Dropout, replicas_in_sync

NEG_INF = -1e9
GENERATION_MEMORIES = ("segments", "sliding")


def _init(stddev=0.02):
    return keras.initializers.RandomNormal(stddev=stddev)


def rel_shift(x):
    """[B, H, Q, K] scores indexed by (query i, relative-position column c) -> by (query i, key j).

    Column c of the input holds distance K-1-c; query i sits at key slot K-Q+i, so key j needs column
    j + Q - 1 - i.  Entries with j > K-Q+i (future keys) are garbage and must be masked.
    """
    b, h, q, k = tf.unstack(tf.shape(x))
    x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [1, 0]])
    x = tf.reshape(x, [b, h, k + 1, q])[:, :, 1:, :]
    return tf.reshape(x, [b, h, q, k])


POSITION_LAYOUTS = ("interleaved", "concat")


def relative_encoding(distances, d_model, dtype="float32", layout="interleaved"):
    """Sinusoids R_d for int distances [N] -> float [N, D].

    Both layouts use the frequencies 1 / 10000^(2i/D), i < D/2.  "interleaved": keras-hub's sin, cos, sin, ...;
    "concat": [sin(all frequencies), cos(all frequencies)], the Transformer-XL/Pop Music Transformer code's layout
    (its weights only work with it)."""
    if layout == "concat":
        inv_freq = 1.0 / (10000.0 ** (tf.range(0, d_model, 2.0) / d_model))
        angles = tf.cast(distances, tf.float32)[:, None] * inv_freq[None, :]
        return tf.cast(tf.concat([tf.sin(angles), tf.cos(angles)], -1), dtype)
    if layout != "interleaved":
        raise ValueError(f"position layout must be one of {POSITION_LAYOUTS}, got {layout!r}")
    layer = keras_hub.layers.SinePositionEncoding(dtype=dtype)
    positions = tf.cast(distances, dtype)
    return layer(tf.zeros([1, tf.shape(distances)[0], d_model], dtype), positions=positions)[0]


# ------------------------------------------------------------------------------------------------------- layers
class RelativeMultiHeadAttention(keras.layers.Layer):
    """Multi-head attention with relative positions and the learned u/v biases (Dai et al. 2019, sec. 3.3).

    With `own_biases=False` the layer has no u/v of its own: the caller passes one pair shared by all layers
    (`biases=(u, v)`, each [H, d]), as the original code's `untie_r=False`."""

    def __init__(self, num_heads, d_model, dropout=0.1, dropatt=0.0, own_biases=True, layer_norm_epsilon=1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        self.own_biases, self.layer_norm_epsilon = bool(own_biases), float(layer_norm_epsilon)
        self.num_heads, self.d_model = int(num_heads), int(d_model)
        self.head_dim = self.d_model // self.num_heads
        self.dropout, self.dropatt = float(dropout), float(dropatt)
        inner = self.num_heads * self.head_dim
        self.query = keras.layers.Dense(inner, use_bias=False, kernel_initializer=_init(), name="query")
        self.key_value = keras.layers.Dense(2 * inner, use_bias=False, kernel_initializer=_init(), name="key_value")
        self.position = keras.layers.Dense(inner, use_bias=False, kernel_initializer=_init(), name="position")
        self.output_dense = keras.layers.Dense(self.d_model, use_bias=False, kernel_initializer=_init(),
                                               name="output")
        self.attention_dropout = Dropout(self.dropatt, name="attention_dropout")
        self.output_dropout = Dropout(self.dropout, name="output_dropout")
        self.norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="norm")
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def build(self, input_shape=None):
        shape = (None, None, self.d_model)
        for layer in (self.query, self.key_value, self.position):
            layer.build(shape)
        self.output_dense.build((None, None, self.num_heads * self.head_dim))
        self.norm.build(shape)
        if self.own_biases:
            self.u = self.add_weight(shape=(self.num_heads, self.head_dim), initializer=_init(), name="u")
            self.v = self.add_weight(shape=(self.num_heads, self.head_dim), initializer=_init(), name="v")
        self.built = True

    def _biases(self, biases):
        """(u, v), each [H, d]: the layer's own pair, or the shared pair the caller passes."""
        if self.own_biases:
            return self.u, self.v
        if biases is None:
            raise ValueError(f"{self.name} has no u/v biases of its own: pass the shared pair")
        return biases

    def _heads(self, x):
        """[..., H * d] -> [..., H, d]."""
        return tf.reshape(x, tf.concat([tf.shape(x)[:-1], [self.num_heads, self.head_dim]], 0))

    def key_values(self, h):
        """Hidden states [..., D] -> (keys, values), each [..., H, d]."""
        k, v = tf.split(self.key_value(h), 2, axis=-1)
        return self._heads(k), self._heads(v)

    def position_keys(self, r):
        """Sinusoids [N, D] -> W_r R, [N, H, d]."""
        return self._heads(self.position(r))

    def _finish(self, h, attended, training):
        """attended [..., H, d] -> post-norm residual output [..., D]."""
        shape = tf.concat([tf.shape(attended)[:-2], [self.num_heads * self.head_dim]], 0)
        out = self.output_dense(tf.reshape(attended, shape))
        return self.norm(h + self.output_dropout(out, training=training))

    def call(self, h, memory, r, mask, training=False, biases=None):
        """One segment.  h [B, S, D]; memory [B, M, D]; r sinusoids for distances K-1..0, [K, D];
        mask bool [S, K] (True = may attend); biases: the shared (u, v) when the layer has none.  Returns [B, S, D]."""
        u, v_bias = self._biases(biases)
        q = self._heads(self.query(h))  # [B, S, H, d]
        k, v = self.key_values(tf.concat([memory, h], axis=1))  # [B, K, H, d]
        r_k = self.position_keys(r)  # [K, H, d]
        ac = tf.einsum("bihd,bjhd->bhij", q + u, k)
        bd = rel_shift(tf.einsum("bihd,jhd->bhij", q + v_bias, r_k))
        scores = (ac + bd) * self.scale
        scores = tf.where(mask[None, None], scores, tf.cast(NEG_INF, scores.dtype))
        probs = self.attention_dropout(tf.nn.softmax(scores, axis=-1), training=training)
        return self._finish(h, tf.einsum("bhij,bjhd->bihd", probs, v), training)

    def step(self, h, k_cache, v_cache, r_k, slot, mask, biases=None):
        """One query per row against cached keys.  h [B, D]; k_cache/v_cache [K, B, H, d] already holding this
        token's key/value at `slot`; r_k [K, H, d] for distances 0..K-1; mask bool [K].  Returns [B, D]."""
        u, v_bias = self._biases(biases)
        q = self._heads(self.query(h))  # [B, H, d]
        ac = tf.einsum("bhd,kbhd->bhk", q + u, k_cache)
        by_distance = tf.einsum("bhd,khd->bhk", q + v_bias, r_k)
        distance = tf.maximum(slot - tf.range(tf.shape(r_k)[0]), 0)  # key slot j is slot - j tokens back
        bd = tf.gather(by_distance, distance, axis=-1)
        scores = (ac + bd) * self.scale
        scores = tf.where(mask[None, None], scores, tf.cast(NEG_INF, scores.dtype))
        probs = tf.nn.softmax(scores, axis=-1)
        return self._finish(h, tf.einsum("bhk,kbhd->bhd", probs, v_cache), training=False)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "d_model": self.d_model,
                "dropout": self.dropout, "dropatt": self.dropatt, "own_biases": self.own_biases,
                "layer_norm_epsilon": self.layer_norm_epsilon}


class PositionwiseFeedForward(keras.layers.Layer):
    """ReLU MLP D -> d_inner -> D with dropout and a post-norm residual.  `output_relu` adds a ReLU after the second
    layer too, as the Pop Music Transformer's `positionwise_FF` does."""

    def __init__(self, d_model, d_inner, dropout=0.1, output_relu=False, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.d_inner, self.dropout = int(d_model), int(d_inner), float(dropout)
        self.output_relu, self.layer_norm_epsilon = bool(output_relu), float(layer_norm_epsilon)
        self.inner = keras.layers.Dense(self.d_inner, activation="relu", kernel_initializer=_init(), name="inner")
        self.outer = keras.layers.Dense(self.d_model, activation="relu" if self.output_relu else None,
                                        kernel_initializer=_init(), name="outer")
        self.inner_dropout = Dropout(self.dropout, name="inner_dropout")
        self.outer_dropout = Dropout(self.dropout, name="outer_dropout")
        self.norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="norm")

    def build(self, input_shape=None):
        self.inner.build((None, self.d_model))
        self.outer.build((None, self.d_inner))
        self.norm.build((None, self.d_model))
        self.built = True

    def call(self, h, training=False):
        x = self.inner_dropout(self.inner(h), training=training)
        return self.norm(h + self.outer_dropout(self.outer(x), training=training))

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "d_inner": self.d_inner, "dropout": self.dropout,
                "output_relu": self.output_relu, "layer_norm_epsilon": self.layer_norm_epsilon}


class TransformerXLBlock(keras.layers.Layer):
    """Relative attention then feed-forward, both post-norm (the paper's block)."""

    def __init__(self, num_heads, d_model, d_inner, dropout=0.1, dropatt=0.0, own_biases=True, ff_output_relu=False,
                 layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.attention = RelativeMultiHeadAttention(num_heads, d_model, dropout, dropatt, own_biases=own_biases,
                                                    layer_norm_epsilon=layer_norm_epsilon, name="attention")
        self.feed_forward = PositionwiseFeedForward(d_model, d_inner, dropout, output_relu=ff_output_relu,
                                                    layer_norm_epsilon=layer_norm_epsilon, name="feed_forward")
        self._config = {"num_heads": num_heads, "d_model": d_model, "d_inner": d_inner, "dropout": dropout,
                        "dropatt": dropatt, "own_biases": own_biases, "ff_output_relu": ff_output_relu,
                        "layer_norm_epsilon": layer_norm_epsilon}

    def build(self, input_shape=None):
        self.attention.build()
        self.feed_forward.build()
        self.built = True

    def call(self, h, memory, r, mask, training=False, biases=None):
        return self.feed_forward(self.attention(h, memory, r, mask, training=training, biases=biases),
                                 training=training)

    def step(self, h, k_cache, v_cache, r_k, slot, mask, biases=None):
        return self.feed_forward(self.attention.step(h, k_cache, v_cache, r_k, slot, mask, biases=biases),
                                 training=False)

    def get_config(self):
        return {**super().get_config(), **self._config}


# -------------------------------------------------------------------------------------------------------- model
class TransformerXL(keras.Model):
    """REMI language model.  Inputs: `{"tokens": int [B, L]}` (whole pieces, PAD=0 after EOS).

    Args:
      vocab_size: REMI vocabulary (from the converter).  pad_id, eos_id, bar_id: special token ids.
      num_layers, d_model, num_heads, d_inner, dropout, dropatt: network sizes (seed: 12, 512, 8, 2048, 0.1).
      segment_len, mem_len: S and M (seed: 512 and 512).
      sample_bars, sample_max_tokens: what `sample` (the training SampleLogger) generates.

    Options that make the network the Pop Music Transformer's own (`interop/remi.py` sets them;
    the defaults are ours, for training from scratch):
      pad_id, eos_id = -1: the vocabulary has no such token (generation then ends on the Bar token past the last
        bar, kept, and rows that end early are filled with -1).
      shared_relative_bias: one u/v pair for all layers (its `untie_r=False`).
      position_layout: "concat" = [sin, cos] sinusoids (see `relative_encoding`).
      ff_output_relu: ReLU after the feed-forward's second layer.  layer_norm_epsilon: 1e-3 (Keras' default).
      generation_memory: "segments" (ours: key/value buffers of M + S slots shifting by S, the training layout)
        or "sliding" (its generate: the whole prompt in one pass over an attended zero memory of M states, then
        one token at a time with the memory sliding by one state per token).
    """

    def __init__(self, vocab_size, pad_id=0, eos_id=1, bar_id=2, num_layers=12, d_model=512, num_heads=8,
                 d_inner=2048, dropout=0.1, dropatt=0.0, segment_len=512, mem_len=512, sample_bars=4,
                 sample_max_tokens=512, shared_relative_bias=False, position_layout="interleaved",
                 ff_output_relu=False, layer_norm_epsilon=1e-5, generation_memory="segments", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.pad_id, self.eos_id, self.bar_id = int(vocab_size), int(pad_id), int(eos_id), int(bar_id)
        self.shared_relative_bias, self.position_layout = bool(shared_relative_bias), str(position_layout)
        self.ff_output_relu, self.layer_norm_epsilon = bool(ff_output_relu), float(layer_norm_epsilon)
        self.generation_memory = str(generation_memory)
        if self.position_layout not in POSITION_LAYOUTS:
            raise ValueError(f"position_layout must be one of {POSITION_LAYOUTS}, got {position_layout!r}")
        if self.generation_memory not in GENERATION_MEMORIES:
            raise ValueError(f"generation_memory must be one of {GENERATION_MEMORIES}, got {generation_memory!r}")
        self.num_layers, self.d_model, self.num_heads = int(num_layers), int(d_model), int(num_heads)
        self.d_inner, self.dropout_rate, self.dropatt = int(d_inner), float(dropout), float(dropatt)
        self.segment_len, self.mem_len = int(segment_len), int(mem_len)
        self.sample_bars, self.sample_max_tokens = int(sample_bars), int(sample_max_tokens)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.embedding = keras_hub.layers.ReversibleEmbedding(
            self.vocab_size, self.d_model, tie_weights=True, embeddings_initializer=_init(), name="embedding")
        self.blocks = [TransformerXLBlock(self.num_heads, self.d_model, self.d_inner, self.dropout_rate,
                                          self.dropatt, own_biases=not self.shared_relative_bias,
                                          ff_output_relu=self.ff_output_relu,
                                          layer_norm_epsilon=self.layer_norm_epsilon, name=f"block_{i}")
                       for i in range(self.num_layers)]
        self.input_dropout = Dropout(self.dropout_rate, name="input_dropout")
        self.position_dropout = Dropout(self.dropout_rate, batch_axis=None, name="position_dropout")
        self.output_dropout = Dropout(self.dropout_rate, name="output_dropout")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self._generate_fn = None

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        for block in self.blocks:
            block.build()
        self.output_bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="output_bias")
        if self.shared_relative_bias:
            head_dim = self.d_model // self.num_heads
            self.shared_u = self.add_weight(shape=(self.num_heads, head_dim), initializer=_init(), name="shared_u")
            self.shared_v = self.add_weight(shape=(self.num_heads, head_dim), initializer=_init(), name="shared_v")
        self.built = True

    @property
    def _biases(self):
        """The (u, v) pair shared by all layers, or None when each layer has its own."""
        return (self.shared_u, self.shared_v) if self.shared_relative_bias else None

    def _relative_encoding(self, distances):
        return relative_encoding(distances, self.d_model, self.compute_dtype, self.position_layout)

    # -- network ---------------------------------------------------------------------------------------------------
    @property
    def num_slots(self):
        return self.mem_len + self.segment_len

    def _embed(self, tokens):
        return self.embedding(tokens) * tf.cast(math.sqrt(self.d_model), self.compute_dtype)

    def _logits(self, h):
        """[..., D] -> float32 logits [..., V] (softmax tied to the input embedding)."""
        return tf.cast(self.embedding(h, reverse=True), tf.float32) + tf.cast(self.output_bias, tf.float32)

    def initial_memory(self, batch_size):
        """Empty memories: (list of num_layers float [B, M, D] zeros, valid slots int32 0)."""
        zeros = tf.zeros([batch_size, self.mem_len, self.d_model], self.compute_dtype)
        return [zeros] * self.num_layers, tf.constant(0, tf.int32)

    def segment_mask(self, mem_valid, length=None):
        """bool [S, K]: query i (slot M+i) sees memory slots holding real history and current keys j <= M+i.
        `length` (default S) is the number of queries."""
        length = self.segment_len if length is None else length
        slots = tf.range(self.mem_len + length)[None, :]
        query_slots = self.mem_len + tf.range(length)[:, None]
        return (slots <= query_slots) & (slots >= self.mem_len - mem_valid)

    def segment_forward(self, tokens, memory, mem_valid, training=False):
        """One segment.  tokens int [B, Q] (Q = S in training; any length for the original's prompt pass); memory
        list of [B, M, D]; mem_valid int32 scalar (real memory slots; M attends to all of them, zeros included).
        Returns (logits float32 [B, Q, V], new memory (the last M layer inputs), new mem_valid)."""
        length = tf.shape(tokens)[1]
        h = self.input_dropout(self._embed(tokens), training=training)
        distances = tf.range(self.mem_len + length - 1, -1, -1)
        r = self.position_dropout(self._relative_encoding(distances), training=training)
        mask = self.segment_mask(mem_valid, length)
        new_memory = []
        for block, mem in zip(self.blocks, memory):
            new_memory.append(tf.stop_gradient(tf.concat([mem, h], axis=1)[:, -self.mem_len:]))
            h = block(h, mem, r, mask, training=training, biases=self._biases)
        logits = self._logits(self.output_dropout(h, training=training))
        return logits, new_memory, tf.minimum(mem_valid + length, self.mem_len)

    def _segments(self, tokens):
        """int [B, L] -> (int [n, B, S] zero-padded segments, n)."""
        tokens = tf.convert_to_tensor(tokens)
        length = tf.shape(tokens)[1]
        count = tf.maximum((length + self.segment_len - 1) // self.segment_len, 1)
        padded = tf.pad(tokens, [[0, 0], [0, count * self.segment_len - length]],
                        constant_values=max(self.pad_id, 0))  # no PAD token (-1): any id, after the real ones
        segments = tf.reshape(padded, [tf.shape(tokens)[0], count, self.segment_len])
        return tf.transpose(segments, [1, 0, 2]), count

    def call(self, inputs, training=False):
        """`{"tokens": int [B, L]}` or int [B, L] -> logits float32 [B, L, V], segment by segment with memory."""
        tokens = inputs["tokens"] if isinstance(inputs, dict) else inputs
        tokens = tf.cast(tokens, tf.int32)
        segments, count = self._segments(tokens)
        memory, mem_valid = self.initial_memory(tf.shape(tokens)[0])
        outputs = tf.TensorArray(tf.float32, size=count)

        def body(i, memory, mem_valid, outputs):
            logits, memory, mem_valid = self.segment_forward(segments[i], memory, mem_valid, training=training)
            return i + 1, memory, mem_valid, outputs.write(i, logits)

        _, _, _, outputs = tf.while_loop(lambda i, *_: i < count, body, (0, memory, mem_valid, outputs))
        logits = tf.transpose(outputs.stack(), [1, 0, 2, 3])  # [B, n, S, V]
        logits = tf.reshape(logits, [tf.shape(tokens)[0], -1, self.vocab_size])
        return logits[:, :tf.shape(tokens)[1]]

    def logits_full_recompute(self, ids):
        """Slow reference: int ids [P] (or [B, P]) -> float32 logits [P, V] (or [B, P, V]) from scratch."""
        ids = tf.convert_to_tensor(ids, tf.int32)
        if ids.shape.rank == 1:
            return self(ids[None], training=False)[0]
        return self(ids, training=False)

    # -- training --------------------------------------------------------------------------------------------------
    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def _segment_terms(self, logits, targets):
        """-> (summed NLL, correct predictions, counted tokens), float32 scalars; PAD targets ignored."""
        weights = tf.cast(tf.not_equal(targets, self.pad_id), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), targets), tf.float32)
        return tf.reduce_sum(nll * weights), tf.reduce_sum(correct * weights), tf.reduce_sum(weights)

    def _walk(self, data, training):
        """Segment loop over a batch of whole pieces; with `training`, also the accumulated gradients.

        Returns (gradient sums or [], summed NLL, correct, tokens)."""
        if self.pad_id < 0:
            raise ValueError("this Transformer-XL has no PAD token (an imported Pop Music Transformer): training "
                             "or evaluating it on padded pieces is not supported")
        tokens = data[0] if isinstance(data, (tuple, list)) else data
        tokens = tf.cast(tokens["tokens"] if isinstance(tokens, dict) else tokens, tf.int32)
        inputs_segments, count = self._segments(tokens[:, :-1])
        target_segments, _ = self._segments(tokens[:, 1:])
        memory, mem_valid = self.initial_memory(tf.shape(tokens)[0])
        variables = self.trainable_variables if training else []
        sums = [tf.zeros(v.shape, v.dtype) for v in variables]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync

        def forward(i, memory, mem_valid):
            logits, new_memory, new_valid = self.segment_forward(inputs_segments[i], memory, mem_valid,
                                                                 training=training)
            return (new_memory, new_valid) + self._segment_terms(logits, target_segments[i])

        def body(i, memory, mem_valid, sums, nll, correct, counted):
            if training:
                with tf.GradientTape() as tape:
                    new_memory, new_valid, seg_nll, seg_correct, seg_count = forward(i, memory, mem_valid)
                    objective = self.optimizer.scale_loss(seg_nll / replicas)
                grads = tape.gradient(objective, variables)
                sums = [s + tf.convert_to_tensor(g) for s, g in zip(sums, grads)]
            else:
                new_memory, new_valid, seg_nll, seg_correct, seg_count = forward(i, memory, mem_valid)
            return i + 1, new_memory, new_valid, sums, nll + seg_nll, correct + seg_correct, counted + seg_count

        zero = tf.constant(0.0)
        _, _, _, sums, nll, correct, counted = tf.while_loop(
            lambda i, *_: i < count, body, (0, memory, mem_valid, sums, zero, zero, zero))
        return sums, nll, correct, counted

    def _update_metrics(self, nll, correct, counted):
        counted_safe = tf.maximum(counted, 1.0)
        self.loss_tracker.update_state(nll / counted_safe, sample_weight=counted)
        self.accuracy_tracker.update_state(correct / counted_safe, sample_weight=counted)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    def train_step(self, data):
        sums, nll, correct, counted = self._walk(data, training=True)
        # The mean over every token of the global batch.  `sums` are this replica's gradient sums over its tokens,
        # divided by the replicas (gradients are summed across them): scale by replicas / global token count.
        replicas = replicas_in_sync()
        total = counted if replicas == 1 else tf.distribute.get_replica_context().all_reduce("sum", counted)
        grads = [g / (tf.maximum(total, 1.0) / replicas) for g in sums]
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(nll, correct, counted)

    def test_step(self, data):
        _, nll, correct, counted = self._walk(data, training=False)
        return self._update_metrics(nll, correct, counted)

    # -- generation ------------------------------------------------------------------------------------------------
    def _empty_cache(self, num):
        """Per-layer (r_k [K, H, d] for distances 0..K-1, zero key and value buffers [K, num, H, d])."""
        r = self._relative_encoding(tf.range(self.num_slots))
        shape = [self.num_slots, num, self.num_heads, self.d_model // self.num_heads]
        return ([block.attention.position_keys(r) for block in self.blocks],
                [tf.zeros(shape, self.compute_dtype) for _ in self.blocks],
                [tf.zeros(shape, self.compute_dtype) for _ in self.blocks])

    def _cached_step(self, token, t, r_k, k_caches, v_caches):
        """Token int32 [num] at piece position t -> (logits float32 [num, V], updated key/value buffers).

        Buffers hold [memory (M slots) | current segment (S slots)]; when t starts a new segment they shift by S,
        so the previous segment's last M keys/values become the memory, as in `segment_forward`."""
        S, M = self.segment_len, self.mem_len
        shift = tf.where(tf.logical_and(t > 0, tf.equal(t % S, 0)), -S, 0)
        slot = M + t % S
        mem_valid = tf.minimum((t // S) * S, M)
        slots = tf.range(self.num_slots)
        mask = (slots <= slot) & (slots >= M - mem_valid)
        h = self._embed(token)
        new_k, new_v = [], []
        for block, k_cache, v_cache, r in zip(self.blocks, k_caches, v_caches, r_k):
            k, v = block.attention.key_values(h)
            k_cache = tf.tensor_scatter_nd_update(tf.roll(k_cache, shift, axis=0), [[slot]], k[None])
            v_cache = tf.tensor_scatter_nd_update(tf.roll(v_cache, shift, axis=0), [[slot]], v[None])
            h = block.step(h, k_cache, v_cache, r, slot, mask, biases=self._biases)
            new_k.append(k_cache)
            new_v.append(v_cache)
        return self._logits(h), new_k, new_v

    # The original's generation memory ("sliding"): buffers of M + 1 slots, [memory (M) | this token].
    def prompt_pass(self, prompt):
        """The whole prompt in one pass over a zero memory of M states that is attended to (the original's first
        `sess.run`).  prompt int32 [B, P] -> (logits float32 [B, P, V], per-layer key/value buffers [M + 1, B, H, d]
        whose slots 1..M hold the memory (the last M layer inputs), position keys r_k [M + 1, H, d])."""
        prompt = tf.convert_to_tensor(prompt, tf.int32)
        zeros = tf.zeros([tf.shape(prompt)[0], self.mem_len, self.d_model], self.compute_dtype)
        logits, memory, _ = self.segment_forward(prompt, [zeros] * self.num_layers, tf.constant(self.mem_len))
        r = self._relative_encoding(tf.range(self.mem_len + 1))
        r_k, k_caches, v_caches = [], [], []
        for block, mem in zip(self.blocks, memory):
            k, v = block.attention.key_values(mem)  # [B, M, H, d]
            pad = tf.zeros_like(k[:, :1])
            k_caches.append(tf.transpose(tf.concat([pad, k], 1), [1, 0, 2, 3]))
            v_caches.append(tf.transpose(tf.concat([pad, v], 1), [1, 0, 2, 3]))
            r_k.append(block.attention.position_keys(r))
        return logits, r_k, k_caches, v_caches

    def _sliding_step(self, token, r_k, k_caches, v_caches):
        """Token int32 [num] -> (logits float32 [num, V], buffers slid by one state).  The memory keeps the M
        states before this token, zeros included (attended, as the original's zero-initialised memory)."""
        slot = self.mem_len
        mask = tf.ones([self.mem_len + 1], tf.bool)
        h = self._embed(token)
        new_k, new_v = [], []
        for block, k_cache, v_cache, r in zip(self.blocks, k_caches, v_caches, r_k):
            k, v = block.attention.key_values(h)
            k_cache = tf.tensor_scatter_nd_update(tf.roll(k_cache, -1, axis=0), [[slot]], k[None])
            v_cache = tf.tensor_scatter_nd_update(tf.roll(v_cache, -1, axis=0), [[slot]], v[None])
            h = block.step(h, k_cache, v_cache, r, slot, mask, biases=self._biases)
            new_k.append(k_cache)
            new_v.append(v_cache)
        return self._logits(h), new_k, new_v

    def logits_sliding(self, prompt, continuation):
        """The original's generation teacher-forced: prompt int [P] in one pass, then `continuation` int [N] one
        token at a time.  Returns (prompt logits float32 [P, V], step logits [N, V] after each continuation token)."""
        logits, r_k, k_caches, v_caches = self.prompt_pass(np.asarray(prompt, np.int32).reshape(1, -1))
        rows = []
        for token in np.asarray(continuation, np.int32).reshape(-1):
            step, k_caches, v_caches = self._sliding_step(tf.constant([token]), r_k, k_caches, v_caches)
            rows.append(step[0])
        steps = tf.stack(rows) if rows else tf.zeros([0, self.vocab_size])
        return logits[0], steps

    def logits_cached(self, ids):
        """The cached path teacher-forced: int ids [P] -> float32 logits [P, V] (tests compare it with
        `logits_full_recompute`)."""
        ids = tf.convert_to_tensor(ids, tf.int32)
        r_k, k_caches, v_caches = self._empty_cache(1)
        rows = []
        for t in range(int(ids.shape[0])):
            logits, k_caches, v_caches = self._cached_step(ids[t:t + 1], tf.constant(t), r_k, k_caches, v_caches)
            rows.append(logits[0])
        return tf.stack(rows)

    def _decode_loop(self, prompt, num, max_bars, max_tokens, temperature, top_k, seed):
        """Cached sampling (graph code).  prompt int32 [P >= 1] (shared by the `num` rows); generation starts after
        it and ends instead of a Bar token that would exceed `max_bars` bars in total (prompt included): EOS takes
        its place, or, without an EOS token, that Bar is kept and ends the row (as the original's generate).
        Returns (tokens int32 [num, max_tokens] PAD (or -1) after the end, lengths int32 [num])."""
        prompt_len = tf.shape(prompt)[0]
        max_tokens = tf.maximum(max_tokens, prompt_len + 1)
        out = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])
        pad_column = tf.equal(tf.range(self.vocab_size), self.pad_id)[None]
        temperature = tf.cast(temperature, tf.float32)
        if self.generation_memory == "sliding":
            rows = tf.tile(prompt[None], [num, 1])
            logits, r_k, k_caches, v_caches = self.prompt_pass(rows)
            logits = logits[:, -1]
            out = out.scatter(tf.range(prompt_len), tf.transpose(rows))
            bars = tf.fill([num], tf.reduce_sum(tf.cast(tf.equal(prompt, self.bar_id), tf.int32)))
            t0 = prompt_len - 1

            def advance(token, t, k_caches, v_caches):
                return self._sliding_step(token, r_k, k_caches, v_caches)
        else:
            r_k, k_caches, v_caches = self._empty_cache(num)
            logits, k_caches, v_caches = self._cached_step(tf.fill([num], prompt[0]), tf.constant(0), r_k,
                                                           k_caches, v_caches)
            out = out.write(0, tf.fill([num], prompt[0]))
            bars = tf.fill([num], tf.cast(tf.equal(prompt[0], self.bar_id), tf.int32))
            t0 = tf.constant(0)

            def advance(token, t, k_caches, v_caches):
                return self._cached_step(token, t, r_k, k_caches, v_caches)
        done = tf.zeros([num], tf.bool)
        lengths = tf.zeros([num], tf.int32)
        terminator = self.eos_id if self.eos_id >= 0 else self.bar_id

        def body(t, logits, k_caches, v_caches, bars, done, lengths, out):
            """logits [num, V] at position t -> the token at t + 1, and the logits after it."""
            masked = tf.where(pad_column, NEG_INF, logits)
            sampled = _sample(masked, temperature, top_k, tf.random.experimental.stateless_fold_in(seed, t))
            forced = t + 1 < prompt_len
            nxt = tf.where(forced, prompt[tf.minimum(t + 1, prompt_len - 1)], sampled)
            is_bar = tf.equal(nxt, self.bar_id)
            over = tf.logical_and(is_bar, bars >= max_bars) & ~forced
            nxt = tf.where(over, terminator, nxt)
            nxt = tf.where(done, self.pad_id, nxt)
            bars = bars + tf.cast(is_bar & ~over & ~done, tf.int32)
            ends = ~done & (over | tf.equal(nxt, self.eos_id))
            lengths = tf.where(ends, t + 2, lengths)
            done = done | ends
            logits, k_caches, v_caches = advance(tf.maximum(nxt, 0), t + 1, k_caches, v_caches)
            return t + 1, logits, k_caches, v_caches, bars, done, lengths, out.write(t + 1, nxt)

        def cond(t, logits, k_caches, v_caches, bars, done, lengths, out):
            return tf.logical_and(t + 1 < max_tokens, ~tf.reduce_all(done))

        t, _, _, _, _, done, lengths, out = tf.while_loop(
            cond, body, (t0, logits, k_caches, v_caches, bars, done, lengths, out))
        tokens = tf.transpose(out.stack())  # [num, t + 1]
        return tokens, tf.where(done, lengths, t + 1)

    def _compiled_decode(self):
        if self._generate_fn is None:
            self._generate_fn = tf.function(self._decode_loop, reduce_retracing=True, input_signature=[
                tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32),
                tf.TensorSpec([2], tf.int32)])
        return self._generate_fn

    def _run_decode(self, prompt, num, max_bars, max_tokens, temperature, top_k, seed):
        """-> int64 numpy [num, longest] with PAD after each row's end."""
        if not self.built:
            self.build()
        seed = np.random.randint(0, 2**31 - 1, size=2) if seed is None else np.asarray(seed).reshape(-1)[:2]
        tokens, lengths = self._compiled_decode()(
            tf.constant(np.asarray(prompt).reshape(-1), tf.int32), tf.constant(int(num), tf.int32),
            tf.constant(int(max_bars), tf.int32), tf.constant(int(max_tokens), tf.int32),
            tf.constant(float(temperature), tf.float32), tf.constant(int(top_k), tf.int32),
            tf.constant(seed.astype(np.int64) % (2**31 - 1), tf.int32))
        tokens, lengths = tokens.numpy(), lengths.numpy()
        tokens = tokens[:, : int(lengths.max())].astype(np.int64)
        tokens[np.arange(tokens.shape[1])[None, :] >= lengths[:, None]] = self.pad_id
        return tokens

    def generate(self, num_bars, temperature=1.0, top_k=0, seed=None, max_tokens=4096, num=1):
        """Task 1: `num` pieces from a lone `Bar_None`, `num_bars` bars each (fewer if EOS or `max_tokens` comes
        first).  seed: int [2] or None.  Returns int64 [num, T] ending with EOS, PAD after."""
        return self._run_decode([self.bar_id], num, num_bars, max_tokens, temperature, top_k, seed)

    def continue_tokens(self, prompt_ids, num_bars, temperature=1.0, top_k=0, seed=None, max_tokens=4096, num=1):
        """Task 2: keep `prompt_ids` int [P] (no EOS) exactly and add `num_bars` bars.
        Returns int64 [num, T] (prompt first); `max_tokens` counts the prompt."""
        prompt = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
        prompt = prompt[(prompt != self.pad_id) & (prompt != self.eos_id)]
        if prompt.size == 0:
            prompt = np.array([self.bar_id])
        total = int(np.sum(prompt == self.bar_id)) + int(num_bars)
        return self._run_decode(prompt, num, total, max(int(max_tokens), prompt.size + 1), temperature, top_k,
                                seed)

    def sample(self, num, temperature=1.0, seed=None, labels=None):
        """For the SampleLogger: `num` pieces of `sample_bars` bars, int64 [num, T]."""
        if labels is not None:
            raise ValueError("TransformerXL is not conditioned on a label")
        return self.generate(self.sample_bars, temperature=temperature, seed=seed,
                             max_tokens=self.sample_max_tokens, num=num)

    def get_config(self):
        return {"name": self.name, "vocab_size": self.vocab_size, "pad_id": self.pad_id, "eos_id": self.eos_id,
                "bar_id": self.bar_id, "num_layers": self.num_layers, "d_model": self.d_model,
                "num_heads": self.num_heads, "d_inner": self.d_inner, "dropout": self.dropout_rate,
                "dropatt": self.dropatt, "segment_len": self.segment_len, "mem_len": self.mem_len,
                "sample_bars": self.sample_bars, "sample_max_tokens": self.sample_max_tokens,
                "shared_relative_bias": self.shared_relative_bias, "position_layout": self.position_layout,
                "ff_output_relu": self.ff_output_relu, "layer_norm_epsilon": self.layer_norm_epsilon,
                "generation_memory": self.generation_memory}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _sample(logits, temperature, top_k, seed):
    """float32 logits [B, V] -> int32 [B]: argmax when temperature <= 0, else softmax(logits / T) restricted to the
    `top_k` most likely tokens (0 = all), drawn with a stateless seed int32 [2]."""
    def draw():
        scaled = logits / tf.maximum(temperature, 1e-6)
        k = tf.where(top_k > 0, tf.minimum(top_k, tf.shape(logits)[-1]), tf.shape(logits)[-1])
        kth = tf.reduce_min(tf.math.top_k(scaled, k=k).values, axis=-1, keepdims=True)
        scaled = tf.where(scaled < kth, NEG_INF, scaled)
        return tf.cast(tf.random.stateless_categorical(scaled, 1, seed=seed)[:, 0], tf.int32)

    return tf.cond(temperature > 0, draw, lambda: tf.argmax(logits, -1, output_type=tf.int32))


__all__ = ["TransformerXL", "TransformerXLBlock", "RelativeMultiHeadAttention", "PositionwiseFeedForward",
           "rel_shift"]

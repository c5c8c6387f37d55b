"""Plumbing shared by the model families: composite-loss training steps and resumable random noise."""

from __future__ import annotations

import keras
import tensorflow as tf


def stateless_seed(seed):
    """int [2] seed tensor; None draws one (does not touch the models' training noise)."""
    if seed is None:
        return tf.random.uniform([2], maxval=2 ** 31 - 1, dtype=tf.int64)
    return tf.cast(tf.convert_to_tensor(seed), tf.int64)


def replicas_in_sync() -> int:
    """Replicas sharing this step (1 outside a distribution strategy's `run`)."""
    context = tf.distribute.get_replica_context()
    return context.num_replicas_in_sync if context is not None else 1


def global_batch_draw(draw, shape, batch_axis: int = 0):
    """`draw(shape)` for the whole global batch, keeping this replica's rows along `batch_axis`.

    Under a distribution strategy every replica holds the same generator state; drawing only its own rows would
    give every replica the same noise.  Drawing [replicas * rows] along the batch axis and slicing makes the union
    over replicas exactly what one process draws for the global batch (same losses, independent noise per example).
    """
    replicas = replicas_in_sync()
    if replicas == 1:
        return draw(shape)
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)
    rows = shape[batch_axis]
    values = draw(tf.tensor_scatter_nd_update(shape, [[batch_axis]], [rows * replicas]))
    start = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32) * rows
    begin = tf.tensor_scatter_nd_update(tf.zeros_like(shape), [[batch_axis]], [start])
    return tf.slice(values, begin, shape)


def dropout_mask(shape, rate, seed, dtype="float32", batch_axis: int | None = 0):
    """Inverted-dropout multipliers (0 or 1 / (1 - rate)) of `shape`, this replica's rows of a global draw.

    `x * mask` equals `keras.random.dropout(x, rate, seed=seed)` for the same draw.  batch_axis None: one mask
    shared by every example (e.g. position encodings), the same on every replica."""
    def draw(full):
        return keras.random.dropout(tf.ones(full, dtype), rate, seed=seed)

    return draw(shape) if batch_axis is None else global_batch_draw(draw, shape, batch_axis)


class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose mask, under a distribution strategy, is this replica's rows of one global-batch
    draw (see `global_batch_draw`): N workers train exactly as one process with the same global batch.

    batch_axis: the inputs' batch axis (time-major inputs: 1); None for inputs without one."""

    def __init__(self, rate, batch_axis: int | None = 0, **kwargs):
        super().__init__(rate, **kwargs)
        self.batch_axis = batch_axis

    def call(self, inputs, training=False):
        if not training or self.rate == 0 or replicas_in_sync() == 1 or self.noise_shape is not None:
            return super().call(inputs, training=training)
        return inputs * dropout_mask(tf.shape(inputs), self.rate, self.seed_generator, inputs.dtype, self.batch_axis)

    def get_config(self):
        return {**super().get_config(), "batch_axis": self.batch_axis}


class NoiseSource(keras.layers.Layer):
    """A `keras.random.SeedGenerator` whose state is saved and restored with the weights.

    `normal(shape)`, `uniform(shape)`: float32 draws; `dropout(x, rate)`: inverted dropout.  Each call advances the
    generator, inside `tf.function`/XLA too.  Under a distribution strategy the first axis is taken as the batch and
    each replica gets its rows of one global-batch draw (see `global_batch_draw`).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed, name="generator")
        self.built = True

    def normal(self, shape):
        return global_batch_draw(lambda full: keras.random.normal(full, seed=self.generator, dtype="float32"), shape)

    def uniform(self, shape):
        return global_batch_draw(lambda full: keras.random.uniform(full, seed=self.generator, dtype="float32"), shape)

    def dropout(self, x, rate):
        if replicas_in_sync() == 1:
            return keras.random.dropout(x, rate, seed=self.generator)
        return x * dropout_mask(tf.shape(x), rate, self.generator, x.dtype)

    def save_own_variables(self, store):
        store["state"] = keras.ops.convert_to_numpy(self.generator.state.value)

    def load_own_variables(self, store):
        self.generator.state.assign(store["state"])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class LossDictModel(keras.Model):
    """A model whose loss needs more than `(y, y_pred)` (ELBOs with beta, free bits, extra terms).

    Subclasses implement `compute_losses(inputs, training) -> dict` of scalars: "loss" is reported, "objective"
    (default: "loss") is minimised, and every name in `metric_names` is tracked and shown by `fit`.  They call
    `self.create_trackers()` in `__init__`.
    """

    metric_names: tuple[str, ...] = ("loss",)

    def create_trackers(self):
        self.trackers = [keras.metrics.Mean(name=name) for name in self.metric_names]

    @property
    def metrics(self):
        return list(self.trackers)

    def _update_metrics(self, losses):
        for tracker in self.trackers:
            tracker.update_state(losses[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.trackers}

    def train_step(self, data):
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            losses = self.compute_losses(inputs, training=True)
            objective = losses.pop("objective", losses["loss"])
            # Gradients are summed over replicas, so each replica contributes loss / replicas (as Keras does).
            objective = objective / tf.distribute.get_strategy().num_replicas_in_sync
            objective = self.optimizer.scale_loss(objective)  # LossScaleOptimizer under mixed_float16
        gradients = tape.gradient(objective, self.trainable_weights)
        # Static shapes (the fused LSTM's custom gradients lose some): a strategy packs only fully known shapes
        # into its gradient all-reduces.
        gradients = [tf.ensure_shape(g, v.shape) if isinstance(g, tf.Tensor) else g
                     for g, v in zip(gradients, self.trainable_weights)]
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_metrics(losses)

    def test_step(self, data):
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        return self._update_metrics(self.compute_losses(inputs, training=False))

"""Plumbing shared by the model families: composite-loss training steps and resumable random noise."""

from __future__ import annotations

import keras
import tensorflow as tf


def stateless_seed(seed):
    """int [2] seed tensor; None draws one (does not touch the models' training noise)."""
    if seed is None:
        return tf.random.uniform([2], maxval=2 ** 31 - 1, dtype=tf.int64)
    return tf.cast(tf.convert_to_tensor(seed), tf.int64)


def _replicas() -> int:
    """Replicas sharing this step (1 outside a strategy's `run`)."""
    context = tf.distribute.get_replica_context()
    return context.num_replicas_in_sync if context is not None else 1


def _global_batch_draw(draw, shape):
    """Draw for the whole global batch and keep this replica's rows (shape's first axis is the batch).

    Under a distribution strategy every replica holds the same generator state; drawing only its own rows would
    give every replica the same noise.  Drawing [replicas * rows, ...] and slicing makes the union over replicas
    exactly what one process draws for the global batch (same losses, independent noise per example).
    """
    replicas = _replicas()
    if replicas == 1:
        return draw(shape)
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int32)
    rows = shape[0]
    values = draw(tf.concat([[rows * replicas], shape[1:]], 0))
    start = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32) * rows
    return values[start:start + rows]


class NoiseSource(keras.layers.Layer):
    """A `keras.random.SeedGenerator` whose state is saved and restored with the weights.

    `normal(shape)`, `uniform(shape)`: float32 draws; `dropout(x, rate)`: inverted dropout.  Each call advances the
    generator, inside `tf.function`/XLA too.  Under a distribution strategy the first axis is taken as the batch and
    each replica gets its rows of one global-batch draw (see `_global_batch_draw`).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed, name="generator")
        self.built = True

    def normal(self, shape):
        return _global_batch_draw(lambda full: keras.random.normal(full, seed=self.generator, dtype="float32"), shape)

    def uniform(self, shape):
        return _global_batch_draw(lambda full: keras.random.uniform(full, seed=self.generator, dtype="float32"), shape)

    def dropout(self, x, rate):
        if _replicas() == 1:
            return keras.random.dropout(x, rate, seed=self.generator)
        scale = _global_batch_draw(lambda full: keras.random.dropout(tf.ones(full, x.dtype), rate, seed=self.generator),
                                   tf.shape(x))
        return x * scale

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
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_metrics(losses)

    def test_step(self, data):
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        return self._update_metrics(self.compute_losses(inputs, training=False))

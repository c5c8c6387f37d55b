"""Learning-rate schedules (serialisable Keras schedules) and the optimizer a `TrainConfig` asks for."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from musicgen_tf.configs import TrainConfig


@keras.saving.register_keras_serializable(package="musicgen_tf")
class ExponentialDecayToFloor(keras.optimizers.schedules.LearningRateSchedule):
    """Magenta's MusicVAE schedule: (initial - floor) * decay_rate**step + floor."""

    def __init__(self, initial_learning_rate: float, decay_rate: float, min_learning_rate: float):
        self.initial_learning_rate = initial_learning_rate
        self.decay_rate = decay_rate
        self.min_learning_rate = min_learning_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        return ((self.initial_learning_rate - self.min_learning_rate) * ops.power(self.decay_rate, step)
                + self.min_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_rate": self.decay_rate,
                "min_learning_rate": self.min_learning_rate}


@keras.saving.register_keras_serializable(package="musicgen_tf")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Rate grows linearly from 0 to `after`'s over `warmup_steps` steps (step + 1 / warmup_steps), then follows
    `after` (a schedule or a constant) at the same step."""

    def __init__(self, after, warmup_steps: int):
        self.after = after
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = self.after(step) if callable(self.after) else ops.cast(self.after, "float32")
        return rate * ops.minimum((step + 1.0) / float(self.warmup_steps), 1.0)

    def get_config(self):
        after = (keras.saving.serialize_keras_object(self.after) if callable(self.after) else self.after)
        return {"after": after, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        after = config["after"]
        if isinstance(after, dict):
            after = keras.saving.deserialize_keras_object(after)
        return cls(after, config["warmup_steps"])


def learning_rate(train: TrainConfig):
    rate = _schedule(train)
    return LinearWarmup(rate, train.warmup_steps) if train.warmup_steps > 0 else rate


def _schedule(train: TrainConfig):
    if train.lr_schedule == "constant":
        return train.learning_rate
    if train.lr_schedule == "exponential":
        return ExponentialDecayToFloor(train.learning_rate, train.decay_rate, train.min_learning_rate)
    if train.lr_schedule == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            train.learning_rate, decay_steps=train.decay_epochs * train.steps_per_epoch,
            decay_rate=train.decay_rate, staircase=True)
    if train.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            train.learning_rate, decay_steps=train.total_steps, alpha=train.min_learning_rate / train.learning_rate)
    raise ValueError(f"unknown lr_schedule {train.lr_schedule!r}; choose constant, exponential, step or cosine")


def clip_or_zero(grads, clip_norm, zero_norm):
    """Magenta's `music_vae_train` gradient step with clip_mode "global_norm".

    grads: list of float tensors (or None).  n = their global norm; if n < zero_norm, `tf.clip_by_global_norm`
    (scale = clip_norm * min(1 / n, 1 / clip_norm); no clipping when clip_norm is None), else all zeros -- also
    when n is NaN or inf, since the comparison is then false.  Returns the list in the same order.
    """
    present = [g for g in grads if g is not None]
    norm = ops.sqrt(ops.sum(ops.stack([ops.sum(ops.square(ops.cast(g, "float32"))) for g in present])))
    keep = ops.less(norm, zero_norm)
    scale = 1.0 if clip_norm is None else clip_norm * ops.minimum(1.0 / norm, 1.0 / clip_norm)
    return [None if g is None else ops.where(keep, g * ops.cast(scale, g.dtype), ops.zeros_like(g)) for g in grads]


class ClipsSummedGradients:
    """An optimizer mixin that clips the gradient summed over replicas, as one process clips the whole batch's.

    Keras 3 (TensorFlow backend) clips in `apply` *before* `_backend_update_step` sums the replicas' gradients,
    so under a distribution strategy each replica's part is clipped alone: with N replicas a clipped step can be up
    to N times as long, and its direction changes.  Here `_clip_gradients` does nothing and the update step sums
    first, then clips (`clip_summed`), then applies.  With one replica the sum is the gradient itself.
    """

    def _clip_gradients(self, grads):
        return grads  # clipped in _backend_update_step, after the sum over replicas

    def clip_summed(self, grads):
        return keras.optimizers.Optimizer._clip_gradients(self, grads)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        summed = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        clipped = self.clip_summed([g for g, _ in summed])
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy, list(zip(clipped, variables)),
            learning_rate)


@keras.saving.register_keras_serializable(package="musicgen_tf")
class Adam(ClipsSummedGradients, keras.optimizers.Adam):
    """Keras' Adam, its clipping on the gradient summed over replicas."""


@keras.saving.register_keras_serializable(package="musicgen_tf")
class AdamW(ClipsSummedGradients, keras.optimizers.AdamW):
    """Keras' AdamW, its clipping on the gradient summed over replicas."""


@keras.saving.register_keras_serializable(package="musicgen_tf")
class MagentaAdam(Adam):
    """Adam whose gradients go through `clip_or_zero` (Magenta's global-norm clip and `grad_norm_clip_to_zero`)
    instead of Keras' `global_clipnorm` clipping.  Zeroed steps still count: the Adam moments decay and
    `iterations` (hence the learning rate and KL schedules) advance, as `apply_gradients` does in TF1."""

    def __init__(self, grad_norm_clip_to_zero=10_000.0, **kwargs):
        super().__init__(**kwargs)
        self.grad_norm_clip_to_zero = float(grad_norm_clip_to_zero)

    def clip_summed(self, grads):
        return clip_or_zero(grads, self.global_clipnorm, self.grad_norm_clip_to_zero)

    def get_config(self):
        return {**super().get_config(), "grad_norm_clip_to_zero": self.grad_norm_clip_to_zero}


def make_optimizer(train: TrainConfig) -> keras.optimizers.Optimizer:
    kwargs = {"learning_rate": learning_rate(train), "global_clipnorm": train.clip_norm,
              "gradient_accumulation_steps": train.gradient_accumulation if train.gradient_accumulation > 1 else None}
    if train.optimizer == "adam" and train.grad_norm_clip_to_zero is not None:
        return MagentaAdam(grad_norm_clip_to_zero=train.grad_norm_clip_to_zero, epsilon=train.adam_epsilon, **kwargs)
    if train.grad_norm_clip_to_zero is not None:
        raise ValueError(f"grad_norm_clip_to_zero needs optimizer 'adam', got {train.optimizer!r}")
    if train.optimizer == "adam":
        return Adam(epsilon=train.adam_epsilon, **kwargs)
    if train.optimizer == "adamw":
        return AdamW(weight_decay=train.weight_decay, epsilon=train.adam_epsilon, **kwargs)
    raise ValueError(f"unknown optimizer {train.optimizer!r}; choose adam or adamw")

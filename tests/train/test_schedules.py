"""The optimizer of a TrainConfig: Magenta's global-norm clip, zeroing of huge gradients, TF1's Adam epsilon."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.configs import PRESETS, TrainConfig
from musicgen_tf.train.schedules import MagentaAdam, clip_or_zero, make_optimizer


def _magenta_clip(grads, clip_norm=1.0, zero_norm=10_000.0):
    """music_vae_train.py's graph code, run in TF2: tf.cond(norm < zero, clip_by_global_norm(use_norm), zeros)."""
    norm = tf.linalg.global_norm(grads)
    return tf.cond(norm < zero_norm, lambda: tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)[0],
                   lambda: [tf.zeros(tf.shape(g)) for g in grads])


@pytest.mark.parametrize("scale", [1e-3, 0.5, 3.0, 9_000.0, 20_000.0, float("nan"), float("inf")])
def test_clip_or_zero_matches_magentas_train_graph(scale):
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=(3, 4)), tf.float32), tf.constant(rng.normal(size=(5,)), tf.float32)]
    norm = float(tf.linalg.global_norm(grads))
    grads = [g * (scale / norm) for g in grads]  # global norm == scale
    ours = clip_or_zero(grads, 1.0, 10_000.0)
    for a, b in zip(ours, _magenta_clip(grads)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    if not np.isfinite(scale) or scale >= 10_000:
        assert all(not np.any(g.numpy()) for g in ours)
    else:
        assert float(tf.linalg.global_norm(ours)) == pytest.approx(min(scale, 1.0), rel=1e-5)


def test_huge_gradient_is_zeroed_but_the_step_counts():
    var = keras.Variable(np.ones(3, np.float32))
    optimizer = MagentaAdam(learning_rate=0.1, global_clipnorm=1.0, grad_norm_clip_to_zero=10_000.0, epsilon=1e-8)
    optimizer.apply([tf.constant([3.0, 4.0, 0.0])], [var])  # norm 5: clipped to norm 1, then an Adam step
    after_first = var.numpy().copy()
    np.testing.assert_allclose(after_first, [1 - 0.1, 1 - 0.1, 1.0], rtol=1e-5)  # Adam's first step: lr * sign
    optimizer.apply([tf.constant([3e4, 4e4, 0.0])], [var])  # norm 5e4 >= 10,000: a zero gradient
    assert int(optimizer.iterations) == 2
    # Zero gradient: m decays to 0.9 m, v to 0.999 v; the variable still moves along the old momentum, less far.
    m, v = 0.9 * 0.1 * np.array([0.6, 0.8]), 0.999 * 0.001 * np.array([0.36, 0.64])
    alpha = 0.1 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2)
    np.testing.assert_allclose(var.numpy()[:2], after_first[:2] - alpha * m / (np.sqrt(v) + 1e-8), rtol=1e-5)
    optimizer.apply([tf.constant([np.nan, 1.0, 1.0])], [var])  # a NaN gradient is zeroed, not applied
    assert np.all(np.isfinite(var.numpy()))


def test_musicvae_presets_use_magentas_optimizer_and_others_keep_keras():
    for preset in PRESETS.values():
        optimizer = make_optimizer(preset.train)
        if preset.family == "music_vae":
            assert isinstance(optimizer, MagentaAdam), preset.name
            assert optimizer.epsilon == 1e-8 and optimizer.grad_norm_clip_to_zero == 10_000.0
            assert optimizer.global_clipnorm == 1.0
        else:
            assert not isinstance(optimizer, MagentaAdam), preset.name
    assert make_optimizer(TrainConfig()).epsilon == 1e-7
    with pytest.raises(ValueError, match="grad_norm_clip_to_zero needs optimizer 'adam'"):
        make_optimizer(TrainConfig(optimizer="adamw", grad_norm_clip_to_zero=1.0))


def test_magenta_adam_round_trips_its_config():
    optimizer = MagentaAdam(learning_rate=0.01, global_clipnorm=1.0, grad_norm_clip_to_zero=123.0, epsilon=1e-8)
    again = MagentaAdam.from_config(optimizer.get_config())
    assert again.grad_norm_clip_to_zero == 123.0 and again.epsilon == 1e-8


CLIP_ACROSS_REPLICAS = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from musicgen_tf.configs import TrainConfig
from musicgen_tf.train.schedules import make_optimizer

PARTS = [[3.0, 0.0], [0.0, 0.5]]  # each replica's part of the gradient; their sum has global norm 3.04
config = TrainConfig(**json.loads(sys.argv[1]))

def step(strategy):
    with strategy.scope():
        var = tf.Variable([1.0, 1.0])
        optimizer = make_optimizer(config)
        optimizer.build([var])
    def part():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        optimizer.apply([tf.gather(tf.constant(PARTS), replica)], [var])
    if strategy.num_replicas_in_sync == 1:
        optimizer.apply([tf.reduce_sum(PARTS, 0)], [var])
    else:
        tf.function(lambda: strategy.run(part))()
    return var.numpy().tolist()

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert mirrored.num_replicas_in_sync == 2
print(json.dumps({"one": step(tf.distribute.get_strategy()), "two": step(mirrored)}))
"""


@pytest.mark.parametrize("config", [
    {"optimizer": "adam"},
    {"optimizer": "adamw", "weight_decay": 0.0},
    {"optimizer": "adam", "grad_norm_clip_to_zero": 10_000.0},
])
def test_two_replicas_clip_the_summed_gradient_as_one_process(config):
    """Keras 3 alone clips each replica's part (here [3, 0] -> [1, 0] and [0, 0.5]); one process clips their sum."""
    import json
    import subprocess
    import sys

    # epsilon 1: Adam's first step is then proportional to the (clipped) gradient, not just its sign.
    config = {"clip_norm": 1.0, "learning_rate": 0.1, "lr_schedule": "constant", "adam_epsilon": 1.0, **config}
    done = subprocess.run([sys.executable, "-c", CLIP_ACROSS_REPLICAS, json.dumps(config)], capture_output=True,
                          text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["two"], result["one"], rtol=1e-6)
    summed = np.array([3.0, 0.5])
    clipped = summed / np.linalg.norm(summed)
    alpha = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)  # Keras' Adam, first step: m = 0.1 g, v = 0.001 g^2
    adam_first_step = alpha * 0.1 * clipped / (np.sqrt(0.001) * clipped + 1.0)
    np.testing.assert_allclose(result["one"], 1.0 - adam_first_step, rtol=1e-5)

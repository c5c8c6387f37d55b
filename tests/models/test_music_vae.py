"""MusicVAE / GrooVAE: shapes, config round trip, ELBO pieces, training (XLA, mixed precision, strategy), generation."""

from __future__ import annotations

import math

import keras
import note_seq
import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.models.fused_lstm import TokenInputs, run_lstm
from musicgen_tf.models.music_vae import (LstmStack, MusicVAE, free_bits_kl_cost, kl_beta, kl_divergence,
                                          sampling_probability, slerp)
from musicgen_tf.music.melody import MelodyConverter
from tests.models import assert_same_values_and_gradients

T = 16
TINY = dict(seq_len=T, encoder_units=(16,), latent_dim=8, decoder_units=(16, 16), embedding_dim=8)
VARIANTS = {
    "melody_flat": dict(vocab_size=90),
    "melody_hierarchical": dict(vocab_size=90, decoder="hierarchical", level_lengths=(4, 4), conductor_units=(16,)),
    "drums_roll_input": dict(vocab_size=512, num_classes=9, drum_roll_input=True),
    "groove": dict(output_kind="groove", num_classes=9),
    "groove_hierarchical": dict(output_kind="groove", num_classes=9, decoder="hierarchical", level_lengths=(2, 8),
                                conductor_units=(16,)),
    "melody_scheduled_sampling": dict(vocab_size=90, sampling_schedule="constant", sampling_rate=0.5),
}


def make_model(variant, **overrides):
    return MusicVAE(**{**TINY, **VARIANTS[variant], **overrides})


def make_batch(model, batch=4, seed=0):
    """A batch shaped like `make_dataset(..., with_source_key=False)` output (what training feeds)."""
    rng = np.random.default_rng(seed)
    if model.output_kind == "categorical":
        out = {"tokens": rng.integers(0, model.vocab_size, size=(batch, model.seq_len)).astype(np.int64)}
    else:
        hits = (rng.random((batch, model.seq_len, model.num_classes)) < 0.3).astype(np.float32)
        out = {"hits": hits, "velocities": hits * rng.random(hits.shape).astype(np.float32),
               "offsets": hits * rng.uniform(-1, 1, hits.shape).astype(np.float32)}
    return out


def dataset(batch, repeat=1):
    return tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in batch.items()}).repeat(repeat)


def assert_finite_history(history):
    for name in ("loss", "reconstruction_loss", "kl", "beta", "accuracy"):
        assert name in history.history, name
        assert np.all(np.isfinite(history.history[name])), (name, history.history[name])


# -- shapes and config ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_output_shapes(variant):
    model = make_model(variant)
    batch = make_batch(model, batch=3)
    outputs = model(batch, training=True)
    assert outputs["logits"].shape == (3, T, model.output_depth)
    assert outputs["logits"].dtype == tf.float32
    assert outputs["z_mean"].shape == outputs["z_sigma"].shape == (3, 8)
    z_mean, z_sigma = model.encode(batch)
    assert z_mean.shape == (3, 8) and np.all(z_sigma.numpy() > 0)
    samples = model.sample(2, seed=[1, 2])
    if model.output_kind == "categorical":
        assert samples.shape == (2, T) and samples.dtype == tf.int32
        assert np.all((samples.numpy() >= 0) & (samples.numpy() < model.vocab_size))
    else:
        assert sorted(samples) == ["hits", "offsets", "velocities"]
        for value in samples.values():
            assert value.shape == (2, T, 9) and value.dtype == tf.float32
        assert set(np.unique(samples["hits"].numpy())) <= {0.0, 1.0}


def test_drum_roll_input_bits():
    model = make_model("drums_roll_input")
    features = model.step_features(tf.constant([[0, 1, 2 ** 8 + 4]], tf.int64)).numpy()[0]
    assert features.shape == (3, 10)  # 9 classes + silence bit
    np.testing.assert_array_equal(features[0], [0] * 9 + [1])
    np.testing.assert_array_equal(features[1], [1] + [0] * 8 + [0])
    np.testing.assert_array_equal(features[2], [0, 0, 1, 0, 0, 0, 0, 0, 1, 0])
    assert not any("token_embedding" in w.path for w in model.weights)


def test_config_round_trip_and_weights(tmp_path):
    model = make_model("melody_hierarchical", num_labels=3, label_key="style", dropout=0.1, free_bits=4.0)
    config = model.get_config()
    clone = MusicVAE.from_config(config)
    assert clone.get_config() == config
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]
    path = str(tmp_path / "vae.weights.h5")
    model.save_weights(path)
    clone.load_weights(path)
    batch = make_batch(model)
    np.testing.assert_allclose(model(batch)["logits"], clone(batch)["logits"], rtol=1e-5, atol=1e-5)
    model.save(str(tmp_path / "vae.keras"))
    loaded = keras.models.load_model(str(tmp_path / "vae.keras"))
    np.testing.assert_allclose(model(batch)["logits"], loaded(batch)["logits"], rtol=1e-5, atol=1e-5)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="level_lengths"):
        MusicVAE(**TINY, decoder="hierarchical", level_lengths=(3, 3))
    with pytest.raises(ValueError, match="drum_roll_input"):
        MusicVAE(**TINY, vocab_size=90, drum_roll_input=True)
    with pytest.raises(ValueError, match="seq_len=16"):
        make_model("melody_flat")({"tokens": np.zeros([2, 32], np.int64)})
    with pytest.raises(ValueError, match="inverse_sigmoid.*at least 1"):
        make_model("melody_flat", sampling_schedule="inverse_sigmoid", sampling_rate=0.5)
    with pytest.raises(ValueError, match="sampling_schedule must be one of"):
        make_model("melody_flat", sampling_schedule="linear", sampling_rate=0.5)


# -- fused LSTM -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("xla_gates", [False, True], ids=["plain_gates", "xla_gates"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_fused_lstm_matches_keras_lstm_values_and_gradients(reverse, xla_gates):
    """`run_lstm` (one input projection, hand-written backward loop) == `keras.layers.LSTM` with autodiff."""
    rng = np.random.default_rng(0)
    lstm = keras.layers.LSTM(6, return_sequences=True, return_state=True, go_backwards=reverse)
    x = tf.constant(rng.normal(size=(3, 5, 4)), tf.float32)  # [N, T, F] (Keras) = [T, N, F] transposed
    constant = tf.constant(rng.normal(size=(3, 2)), tf.float32)  # appended to every step's input
    h0, c0 = (tf.constant(rng.normal(size=(3, 6)), tf.float32) for _ in range(2))
    lstm.build((None, None, 6))
    lstm.cell.bias.assign(rng.normal(size=lstm.cell.bias.shape))
    weights = [tf.constant(rng.normal(size=(5, 3, 6)), tf.float32), tf.constant(rng.normal(size=(3, 6)), tf.float32)]

    def loss_keras():
        inputs = tf.concat([x, tf.tile(constant[:, None], [1, 5, 1])], axis=-1)
        hs, h, c = lstm(inputs, initial_state=[h0, c0])
        hs = tf.reverse(hs, [1]) if reverse else hs  # Keras returns go_backwards outputs in reversed order
        return tf.reduce_sum(tf.transpose(hs, [1, 0, 2]) * weights[0]) + tf.reduce_sum((h + 2 * c) * weights[1])

    def loss_fused():
        hs, h, c = run_lstm(lstm, tf.transpose(x, [1, 0, 2]), [h0, c0], constant=constant, reverse=reverse,
                            training=xla_gates)
        return tf.reduce_sum(hs * weights[0]) + tf.reduce_sum((h + 2 * c) * weights[1])

    assert_same_values_and_gradients(loss_keras, loss_fused, [x, constant, h0, c0], lstm.trainable_weights)


@pytest.mark.parametrize("with_constant", [False, True], ids=["plain", "constant"])
@pytest.mark.parametrize("shift", [False, True], ids=["tokens", "previous_tokens"])
def test_token_inputs_match_their_features_values_and_gradients(shift, with_constant):
    """`run_lstm` over TokenInputs (project the table once, look rows up) == over the looked-up float features."""
    rng = np.random.default_rng(1)
    lstm = keras.layers.LSTM(6, return_sequences=True)
    lstm.build((None, None, 4 + 2 * with_constant))
    lstm.cell.bias.assign(rng.normal(size=lstm.cell.bias.shape))
    table = tf.constant(rng.normal(size=(7, 4)), tf.float32)
    ids = tf.constant(rng.integers(0, 7, size=(3, 5)), tf.int32)  # [N, T]
    constant = tf.constant(rng.normal(size=(3, 2)), tf.float32) if with_constant else None
    weights = tf.constant(rng.normal(size=(5, 3, 6)), tf.float32)

    results = []
    for as_features in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(table)
            inputs = TokenInputs(ids, table).previous() if shift else TokenInputs(ids, table)
            x = inputs.time_major().features() if as_features else inputs.time_major()
            hs, _, _ = run_lstm(lstm, x, None, constant=constant, training=True)
            loss = tf.reduce_sum(hs * weights)
        gradients = tape.gradient(loss, [table] + lstm.trainable_weights)
        results.append([loss] + [tf.convert_to_tensor(g) for g in gradients])  # (dense, not IndexedSlices)
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
    features = inputs.features().numpy()
    if shift:  # step 0 reads the all-zero start row, step t the token of step t - 1
        np.testing.assert_array_equal(features[:, 0], np.zeros([3, 4]))
        np.testing.assert_array_equal(features[:, 1:], tf.gather(table, ids[:, :-1]))


@pytest.mark.parametrize("chains", [2, 4])
@pytest.mark.parametrize("token_inputs", [False, True], ids=["features", "tokens"])
def test_lstm_stack_in_batch_slices_matches_one_batch(token_inputs, chains):
    """Training runs the batch as independent slices through all layers (3 sequences: 1 + 2, or 0 + 1 + 1 + 1):
    values and gradients equal those of one whole batch."""
    rng = np.random.default_rng(2)
    stack = LstmStack((6, 5), name="stack")
    stack.build((None, 4, 3 + 2), (None, 2))
    table = tf.constant(rng.normal(size=(7, 3)), tf.float32)
    ids = tf.constant(rng.integers(0, 7, size=(3, 4)), tf.int32)  # [N, L]
    embedding = tf.constant(rng.normal(size=(3, 2)), tf.float32)
    weights = tf.constant(rng.normal(size=(3, 4, 5)), tf.float32)
    results = []
    for n in (1, chains):
        with tf.GradientTape() as tape:
            tape.watch([table, embedding])
            x = TokenInputs(ids, table) if token_inputs else tf.gather(table, ids)
            outputs = stack(x, stack.initial_state(embedding), constant=embedding, training=True, chains=n)
            loss = tf.reduce_sum(outputs * weights)
        gradients = tape.gradient(loss, [table, embedding] + stack.trainable_weights)
        results.append([loss] + [tf.convert_to_tensor(g) for g in gradients])
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


# -- ELBO pieces ------------------------------------------------------------------------------------------------------

def test_kl_free_bits_and_beta_match_hand_computed_values():
    mu = tf.constant([[0.0, 0.0], [1.0, -2.0]])
    sigma = tf.constant([[1.0, 1.0], [0.5, 2.0]])
    kl = kl_divergence(mu, sigma).numpy()
    expected_1 = 0.5 * ((1 + 0.25 - 1 - 2 * math.log(0.5)) + (4 + 4 - 1 - 2 * math.log(2.0)))
    np.testing.assert_allclose(kl, [0.0, expected_1], rtol=1e-6)
    # free bits: 1 bit = ln 2 nats are free; below that the cost is 0.
    cost = free_bits_kl_cost(tf.constant([0.5, 3.0]), 1.0).numpy()
    np.testing.assert_allclose(cost, [0.0, 3.0 - math.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(free_bits_kl_cost(tf.constant([3.0]), 0.0), [3.0])
    # beta = (1 - rate ** step) * max_beta
    np.testing.assert_allclose(kl_beta(0, 0.2, 0.99999), 0.0)
    np.testing.assert_allclose(kl_beta(1000, 0.2, 0.99999), (1 - 0.99999 ** 1000) * 0.2, rtol=1e-5)
    np.testing.assert_allclose(kl_beta(5, 1.0, 0.0), 1.0)  # GrooVAE: beta_rate 0 -> constant after step 0


def test_loss_combines_terms_and_beta_follows_optimizer_iterations():
    model = make_model("melody_flat", free_bits=1.0, max_beta=0.5, beta_rate=0.9)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(10)  # as after resuming from a checkpoint at step 10
    batch = make_batch(model)
    losses = model.compute_losses(batch, training=False)
    np.testing.assert_allclose(losses["beta"], (1 - 0.9 ** 10) * 0.5, rtol=1e-6)
    np.testing.assert_allclose(losses["loss"], losses["reconstruction_loss"] + losses["beta"] * losses["kl_cost"],
                               rtol=1e-6)
    outputs = model(batch)
    kl_nats = kl_divergence(outputs["z_mean"], outputs["z_sigma"])
    np.testing.assert_allclose(losses["kl"], tf.reduce_mean(kl_nats) / math.log(2.0), rtol=1e-5)
    np.testing.assert_allclose(losses["kl_cost"], tf.reduce_mean(tf.maximum(kl_nats - math.log(2.0), 0.0)),
                               rtol=1e-5, atol=1e-7)
    logs = model.train_on_batch(batch, return_dict=True)
    np.testing.assert_allclose(logs["beta"], (1 - 0.9 ** 10) * 0.5, rtol=1e-5)
    assert int(model.optimizer.iterations) == 11


def test_groove_loss_matches_magenta_formula():
    targets = tf.constant([[[1.0, 0.5, -0.5]]])  # one step, one class: hit, velocity, offset
    logits = tf.constant([[[0.0, 0.0, 0.0]]])
    model = MusicVAE(**{**TINY, "output_kind": "groove", "num_classes": 1})
    loss, accuracy = model.reconstruction_loss(targets, logits)
    expected = math.log(2.0) + (0.5 - 0.5) ** 2 + (0.0 + 0.5) ** 2  # sigmoid CE + MSE(sigmoid) + MSE(tanh)
    np.testing.assert_allclose(loss, [expected], rtol=1e-6)
    assert float(accuracy) == 0.0  # logit 0 predicts "no hit"


# -- scheduled sampling -----------------------------------------------------------------------------------------------

def test_sampling_probability_schedules_match_magenta_formulas():
    np.testing.assert_allclose(sampling_probability(123, "constant", 0.25), 0.25)
    np.testing.assert_allclose(sampling_probability(100, "exponential", 0.99), 1 - 0.99 ** 100, rtol=1e-5)
    np.testing.assert_allclose(sampling_probability(0, "inverse_sigmoid", 1000.0), 1 - 1000 / 1001, rtol=1e-5)
    # inverse sigmoid crosses 1/2 where exp(step / k) = k
    np.testing.assert_allclose(sampling_probability(1000 * math.log(1000), "inverse_sigmoid", 1000.0), 0.5,
                               rtol=1e-4)


def _decode_with_schedule(variant, schedule, rate, weights_from=None, seed=0):
    """Teacher-forced decoder logits of a fixed z for `make_batch(seed)`, at optimizer step 0 in training mode."""
    model = make_model(variant, sampling_schedule=schedule, sampling_rate=rate)
    if weights_from is not None:
        model.set_weights(weights_from.get_weights())
    batch = make_batch(model, seed=seed)
    z = tf.random.stateless_normal([4, model.latent_dim], seed=[3, 4])
    return model, model._decode_teacher_forced(model._targets(batch), z, training=True).numpy()


@pytest.mark.parametrize("variant", ["melody_hierarchical", "drums_roll_input", "groove"])
def test_scheduled_decoder_at_probability_zero_equals_the_fused_teacher_forced_path(variant):
    fused_model, fused = _decode_with_schedule(variant, "constant", 0.0)
    # exponential: p = 1 - rate ** 0 = 0 at step 0, but it runs the step-by-step scheduled loop
    _, stepped = _decode_with_schedule(variant, "exponential", 0.5, weights_from=fused_model)
    np.testing.assert_allclose(stepped, fused, rtol=1e-4, atol=1e-5)


def test_probability_one_feeds_the_models_own_samples_not_the_targets():
    model, _ = _decode_with_schedule("melody_flat", "constant", 1.0)
    z = tf.random.stateless_normal([4, model.latent_dim], seed=[3, 4])
    state = model.noise.state.numpy()

    def logits(seed):
        model.noise.state.assign(state)  # the same draws for both target batches
        return model._decode_teacher_forced(model._targets(make_batch(model, seed=seed)), z, training=True).numpy()

    # Step 0 reads zeros and later steps read samples, so the targets do not matter at p = 1 ...
    np.testing.assert_allclose(logits(seed=1), logits(seed=2), rtol=1e-6)
    # ... whereas teacher forcing reads them.
    teacher = make_model("melody_flat")
    teacher.set_weights(model.get_weights())
    forced = [teacher._decode_teacher_forced(teacher._targets(make_batch(teacher, seed=s)), z).numpy() for s in (1, 2)]
    assert np.abs(forced[0][:, 1:] - forced[1][:, 1:]).max() > 1e-3


def test_scheduled_sampling_model_trains_and_reports_the_probability():
    model = make_model("melody_hierarchical", sampling_schedule="inverse_sigmoid", sampling_rate=2.0, dropout=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(dataset(make_batch(model), repeat=3), verbose=0)
    assert_finite_history(history)
    expected = [1 - 2 / (2 + math.exp(step / 2)) for step in range(3)]
    np.testing.assert_allclose(history.history["sampling_probability"], [np.mean(expected)], rtol=1e-5)
    # Every weight learns, except the conductor's input kernel: the conductor reads zeros (Magenta's hierdec).
    unchanged = [w.path for b, w in zip(before, model.trainable_weights) if np.allclose(b, w.numpy())]
    assert unchanged == [w.path for w in model.conductor.lstms[0].weights if w.path.endswith("cell/kernel")]
    # Validation decodes free-running (p = 1), as Magenta's eval jobs.
    assert model.evaluate(dataset(make_batch(model)), verbose=0, return_dict=True)["sampling_probability"] == 1.0


# -- training ---------------------------------------------------------------------------------------------------------

def test_tiny_model_overfits_fixed_sequences():
    keras.utils.set_random_seed(0)
    model = MusicVAE(vocab_size=90, seq_len=T, encoder_units=(64,), latent_dim=16, decoder_units=(64,),
                     embedding_dim=16, max_beta=0.01, beta_rate=0.99)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    batch = make_batch(model, batch=4, seed=1)
    history = model.fit(dataset(batch, repeat=300), verbose=0)
    assert history.history["reconstruction_loss"][0] < 80
    metrics = model.evaluate(dataset(batch), verbose=0, return_dict=True)
    assert metrics["accuracy"] > 0.95, metrics
    # The greedy decode of each sequence's z mean reproduces it.
    z_mean, _ = model.encode(batch)
    decoded = model.decode(z_mean, temperature=0.0).numpy()
    assert np.mean(decoded == batch["tokens"]) > 0.95


@pytest.mark.parametrize("variant", ["melody_hierarchical", "drums_roll_input", "groove", "melody_scheduled_sampling"])
def test_jit_compile_trains_without_nan(variant):
    model = make_model(variant)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    batch = make_batch(model)  # training data comes without `source/key` strings
    history = model.fit(dataset(batch, repeat=3), verbose=0)
    assert_finite_history(history)
    assert int(model.optimizer.iterations) == 3
    metrics = model.evaluate(dataset(batch), verbose=0, return_dict=True)
    assert np.isfinite(metrics["loss"])


@pytest.mark.parametrize("variant", ["melody_hierarchical", "groove", "melody_scheduled_sampling"])
def test_mixed_float16_trains_without_nan(variant):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = make_model(variant)
        assert model.compute_dtype == "float16"
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        batch = make_batch(model)
        assert model(batch)["logits"].dtype == tf.float32
        assert_finite_history(model.fit(dataset(batch, repeat=3), verbose=0))
        samples = model.sample(2, seed=[1, 2])
        assert (samples if model.output_kind == "categorical" else samples["hits"]).shape[:2] == (2, T)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_mirrored_strategy_scope_trains():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = make_model("melody_flat")
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert_finite_history(model.fit(dataset(make_batch(model), repeat=2), verbose=0))


def test_conditioned_model_trains_and_samples_per_label():
    model = make_model("melody_flat", num_labels=3, label_key="primary_style")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = make_batch(model)
    batch["primary_style_id"] = np.array([0, 1, 2, -1], np.int64)  # -1: label unknown to the vocabulary
    assert_finite_history(model.fit(dataset(batch, repeat=2), verbose=0))
    z = tf.random.stateless_normal([3, model.latent_dim], seed=[4, 5])
    by_label = [model.decode(z, temperature=0.0, labels=[label] * 3).numpy() for label in range(3)]
    assert all(s.shape == (3, T) for s in by_label)
    samples = model.sample(3, seed=[1, 2], labels=tf.constant([0, 1, 2]))
    assert samples.shape == (3, T)
    # The label reaches the decoder: the same z decodes through different logits.
    z_cond = [model._conditioning(z, model._label_vector(tf.constant([label] * 3), 3)) for label in range(2)]
    logits = [model._decode_teacher_forced(tf.zeros([3, T], tf.int32), zc) for zc in z_cond]
    assert not np.allclose(logits[0], logits[1])


# -- generation -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["melody_flat", "groove"])
def test_sampling_is_reproducible_with_a_seed(variant):
    model = make_model(variant)
    as_array = (lambda s: s.numpy()) if model.output_kind == "categorical" else (
        lambda s: np.concatenate([s[k].numpy() for k in sorted(s)], axis=-1))
    a = as_array(model.sample(4, temperature=1.0, seed=[7, 8]))
    b = as_array(model.sample(4, temperature=1.0, seed=[7, 8]))
    c = as_array(model.sample(4, temperature=1.0, seed=[9, 10]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # The same code runs inside tf.function (as in an exported signature) with the same result.
    traced = tf.function(lambda seed: model.sample(4, temperature=1.0, seed=seed))
    # (graph-mode kernels may differ from eager ones in the last bit of the continuous groove outputs)
    np.testing.assert_allclose(as_array(traced(tf.constant([7, 8], tf.int64))), a, atol=1e-6)


@pytest.mark.parametrize("variant", ["melody_flat", "melody_hierarchical", "drums_roll_input", "groove_hierarchical"])
def test_temperature_zero_is_the_argmax_path(variant):
    model = make_model(variant)
    z = tf.random.stateless_normal([3, model.latent_dim], seed=[1, 1]) * 3.0
    greedy = model.decode(z, temperature=0.0, seed=[1, 2])
    again = model.decode(z, temperature=1e-6, seed=[3, 4])  # tiny temperature is greedy too, seed irrelevant
    # Teacher-forcing the greedy output through the decoder: every step's argmax is the token that was fed next.
    if model.output_kind == "categorical":
        np.testing.assert_array_equal(greedy, again)
        logits = model._decode_teacher_forced(greedy, model._conditioning(z, None))
        np.testing.assert_array_equal(tf.argmax(logits, axis=-1, output_type=tf.int32), greedy)
    else:
        for key in greedy:
            np.testing.assert_array_equal(greedy[key], again[key])
        targets = tf.concat([greedy[k] for k in ("hits", "velocities", "offsets")], axis=-1)
        logits = model._decode_teacher_forced(targets, model._conditioning(z, None))
        hit_logits, velocity_logits, _ = tf.split(logits, 3, axis=-1)
        np.testing.assert_array_equal(tf.cast(hit_logits > 0, tf.float32), greedy["hits"])
        np.testing.assert_allclose(tf.sigmoid(velocity_logits), greedy["velocities"], atol=1e-5)


@pytest.mark.parametrize("variant", ["melody_hierarchical", "groove"])
def test_interpolate_endpoints_are_greedy_decodes_of_the_means(variant):
    model = make_model(variant)
    batch = make_batch(model, batch=2)
    first = {k: v[0] for k, v in batch.items()}  # unbatched
    second = {k: v[1:] for k, v in batch.items()}  # batch of one
    result = model.interpolate(first, second, steps=5)
    z_mean, _ = model.encode(batch)
    expected = model.decode(z_mean, temperature=0.0)
    if model.output_kind == "categorical":
        assert result.shape == (5, T)
        np.testing.assert_array_equal(result.numpy()[[0, -1]], expected.numpy())
    else:
        assert result["hits"].shape == (5, T, 9)
        for key in result:
            np.testing.assert_allclose(result[key].numpy()[[0, -1]], expected[key].numpy(), atol=1e-6)


def test_slerp_keeps_endpoints_and_norm():
    p0, p1 = tf.constant([1.0, 0.0]), tf.constant([0.0, 2.0])
    path = slerp(p0, p1, tf.linspace(0.0, 1.0, 3)).numpy()
    np.testing.assert_allclose(path[0], [1, 0], atol=1e-6)
    np.testing.assert_allclose(path[-1], [0, 2], atol=1e-6)
    np.testing.assert_allclose(path[1], [math.sqrt(0.5), math.sqrt(2.0)], rtol=1e-5)
    np.testing.assert_allclose(slerp(p0, p0, tf.constant([0.5])).numpy(), [[1.0, 0.0]], atol=1e-6)


def test_reads_sizes_from_the_converter_and_round_trips_to_midi():
    converter = MelodyConverter(slice_bars=1)
    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=120)
    ns.time_signatures.add(numerator=4, denominator=4)
    for i, pitch in enumerate([60, 62, 64, 65, 67, 65, 64, 62]):
        ns.notes.add(pitch=pitch, velocity=80, start_time=i * 0.25, end_time=(i + 1) * 0.25)
    ns.total_time = 2.0
    examples = converter.to_examples(ns)
    model = MusicVAE(**{**TINY, "vocab_size": converter.output_depth, "seq_len": converter.sequence_length})
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    tokens = np.stack([e["tokens"] for e in examples])
    assert_finite_history(model.fit(dataset({"tokens": tokens}), verbose=0))
    sample = model.sample(1, seed=[1, 2]).numpy()[0]
    decoded = converter.from_example({"tokens": sample})
    assert isinstance(decoded, note_seq.NoteSequence)

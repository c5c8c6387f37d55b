"""β-VAEs (seeds 000 and 002): loss terms, windows, overfitting, temperature, continuation, interpolation, configs,
resumable noise, and training end to end from real MIDI files through `musicgen_tf.train.trainer.train`."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf import generation
from musicgen_tf.configs import get_preset
from musicgen_tf.models.beta_vae import (MelodyBetaVAE, PitchHistogramBetaVAE, adjacent_consistency,
                                         binary_cross_entropy, entropy_bits, kl_divergence, reconstruction_loss,
                                         temper)
from musicgen_tf.models.builders import build_model, outputs_to_examples
from musicgen_tf.music.melody_timeseries import MelodyTimeSeriesConverter
from musicgen_tf.music.pitch_histogram import PitchHistogramConverter
from musicgen_tf.music.representations import get_converter
from musicgen_tf.preprocessing.pipeline import run_preprocess
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.train.run_dir import RunDir
from musicgen_tf.train.trainer import TrainOptions, load_trained_model, train
from tests import fixtures

CONVERTER = MelodyTimeSeriesConverter()
PAD, DELIMITER = 0, int(CONVERTER.delimiter_ids(1)[0])


def tiny_pitch(**kwargs):
    return PitchHistogramBetaVAE(**{"hidden_units": (32, 16), "num_residual_blocks": 1, "latent_dim": 8,
                                    "entropy_samples": 8, "seed": 1, **kwargs})


def tiny_melody(**kwargs):
    return MelodyBetaVAE(**{"vocab_size": CONVERTER.vocab_size, "window": 8, "hidden_units": 32, "latent_dim": 4,
                            "delimiter_id": DELIMITER, "seed": 1, **kwargs})


def histograms(num=6, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.random((num, 128)).astype(np.float32) ** 8
    return h / h.sum(axis=1, keepdims=True)


def songs():
    """Two songs zero-padded to 12: one longer than an 8-window, one of 3 symbols."""
    long = CONVERTER.encode_symbols("60 _ _ 62 _ 64 _ 65 67 _ r _")
    short = CONVERTER.encode_symbols("72 _ 71")
    return np.stack([long, np.pad(short, (0, 9))])


# -- loss terms -------------------------------------------------------------------------------------------------------

def test_binary_cross_entropy_and_reductions_match_hand_values():
    targets = np.array([[1.0, 0.0], [0.5, 0.25]], np.float32)
    logits = np.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]], np.float32)  # p = 0.5, 0.75
    expected = np.array([[math.log(2), math.log(4)],
                         [math.log(2), -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))]])
    np.testing.assert_allclose(binary_cross_entropy(targets, logits), expected, rtol=1e-6)
    np.testing.assert_allclose(reconstruction_loss(targets, logits, "sum"), expected.sum(axis=1).mean(), rtol=1e-6)
    np.testing.assert_allclose(reconstruction_loss(targets, logits, "mean"), expected.sum() / 4, rtol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        reconstruction_loss(targets, logits, "max")


def test_kl_and_consistency_match_hand_values():
    z_mean = np.array([[0.0, 0.0], [1.0, 2.0]], np.float32)
    z_log_var = np.array([[0.0, 0.0], [0.0, math.log(2.0)]], np.float32)
    np.testing.assert_allclose(kl_divergence(z_mean, z_log_var), [0.0, 3.0 - math.log(2.0) / 2], rtol=1e-6)
    probabilities = np.array([[0.1, 0.3, 0.2], [0.5, 0.5, 0.5]], np.float32)
    np.testing.assert_allclose(adjacent_consistency(probabilities), (0.04 + 0.01 + 0 + 0) / 4, rtol=1e-6)


def test_model_loss_is_bce_plus_beta_kl_plus_weighted_consistency():
    model = tiny_pitch(beta=0.5, consistency_weight=0.2)
    batch = {"histogram": histograms(4)}
    out = model(batch)
    losses = model.compute_losses(batch)
    reconstruction = np.mean(np.sum(binary_cross_entropy(batch["histogram"], out["logits"]), axis=1))
    kl = np.mean(kl_divergence(out["z_mean"], out["z_log_var"]))
    consistency = float(adjacent_consistency(out["probabilities"]))
    np.testing.assert_allclose(losses["reconstruction_loss"], reconstruction, rtol=1e-5)
    np.testing.assert_allclose(losses["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(losses["consistency"], consistency, rtol=1e-5)
    np.testing.assert_allclose(losses["loss"], reconstruction + 0.5 * kl + 0.2 * consistency, rtol=1e-5)


def test_melody_loss_is_mean_bce_and_l2_only_in_the_objective():
    model = tiny_melody(beta=0.5, l2_weight_decay=1e-2)
    batch = {"tokens": songs()}
    x, out = model.forward(batch)
    assert x.shape == (2, 8 * CONVERTER.vocab_size)
    losses = model.compute_losses(batch)
    bce = binary_cross_entropy(x, out["logits"]).numpy()
    np.testing.assert_allclose(losses["reconstruction_loss"], bce.sum() / bce.size, rtol=1e-5)  # seed: sum / numel
    kl = np.mean(kl_divergence(out["z_mean"], out["z_log_var"]))
    np.testing.assert_allclose(losses["loss"], bce.mean() + 0.5 * kl, rtol=1e-5)
    l2 = 0.5 * 1e-2 * sum(float(np.sum(w.numpy() ** 2)) for w in model.trainable_weights)
    np.testing.assert_allclose(model.penalty(), l2, rtol=1e-5)
    with tf.GradientTape() as tape:  # the L2 gradient is wd * w, PyTorch Adam's weight_decay
        penalty = model.penalty()
    gradient = tape.gradient(penalty, model.output_layer.bias)
    np.testing.assert_allclose(gradient, 1e-2 * model.output_layer.bias.numpy(), rtol=1e-5)


def test_temper_normalises_and_orders_entropy():
    p = np.array([[0.9, 0.5, 0.1, 0.1]], np.float32)
    np.testing.assert_allclose(temper(p, 1.0), p / p.sum(), rtol=1e-6)
    entropies = [float(entropy_bits(temper(p, t))[0]) for t in (1e-5, 0.5, 1.0, 2.0, 100.0)]
    assert entropies == sorted(entropies) and entropies[0] < 1e-3 and abs(entropies[-1] - 2.0) < 1e-2


# -- melody windows ---------------------------------------------------------------------------------------------------

def test_evaluation_window_is_the_opening_padded_with_delimiters():
    model = tiny_melody()
    windows = model.window_tokens(songs(), training=False).numpy()
    np.testing.assert_array_equal(windows[0], songs()[0][:8])
    np.testing.assert_array_equal(windows[1], [DELIMITER] * 5 + list(songs()[1][:3]))
    np.testing.assert_array_equal(model.window_tokens(windows, training=False), windows)  # windows pass through


@pytest.mark.parametrize("lead_in", [True, False])
def test_training_windows_are_random_slices_of_the_song(lead_in):
    model = tiny_melody(lead_in=lead_in)
    batch = songs()
    song = list(batch[0])
    seen = set()
    for _ in range(60):
        long, short = model.window_tokens(batch, training=True).numpy()
        lead = int(np.sum(long == DELIMITER))
        body = list(long[lead:])
        assert lead == 0 or body == song[:8 - lead]  # lead-in windows are the song's opening
        assert any(song[s:s + len(body)] == body for s in range(len(song)))
        short_lead = int(np.sum(short == DELIMITER))
        assert short_lead >= 5 and list(short[short_lead:]) == list(batch[1][:8 - short_lead])
        seen.add((lead, tuple(body)))
        if not lead_in:
            assert lead == 0
            np.testing.assert_array_equal(short, [DELIMITER] * 5 + list(batch[1][:3]))
    assert len(seen) > 3  # the windows really move
    assert any(lead > 0 for lead, _ in seen) == lead_in


# -- training, sampling, generation -----------------------------------------------------------------------------------

def _fit(model, batch, epochs, learning_rate):
    """Fit, then check `test_step` reports the same metrics, deterministically (no noise at evaluation)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    history = model.fit(batch, batch_size=len(next(iter(batch.values()))), epochs=epochs, verbose=0).history
    first, second = (model.evaluate(batch, verbose=0, return_dict=True) for _ in range(2))
    assert set(first) == set(history) and first == second
    return history


def test_tiny_pitch_model_overfits():
    keras.utils.set_random_seed(0)
    history = _fit(tiny_pitch(), {"histogram": histograms(4)}, epochs=60, learning_rate=3e-3)
    assert set(history) == {"loss", "reconstruction_loss", "kl", "consistency", "sample_entropy"}
    assert history["reconstruction_loss"][-1] < 0.3 * history["reconstruction_loss"][0]
    assert history["loss"][-1] < history["loss"][0]


def test_tiny_melody_model_overfits():
    keras.utils.set_random_seed(0)
    model = tiny_melody(dropout=0.0, lead_in=False)
    history = _fit(model, {"tokens": songs()}, epochs=80, learning_rate=5e-3)
    assert set(history) == {"loss", "reconstruction_loss", "kl"}
    assert history["reconstruction_loss"][-1] < 0.3 * history["reconstruction_loss"][0]


def test_melody_model_with_summed_bce_reconstructs_its_inputs_exactly():
    """With the seed's BCE mean over elements, β = 0.5 * KL outweighs the reconstruction and z is ignored (both
    songs decode alike); summed over the window, the same network reconstructs every symbol."""
    keras.utils.set_random_seed(0)
    model = tiny_melody(dropout=0.0, lead_in=False, reconstruction_reduction="sum")
    windows = model.window_tokens(songs()).numpy()
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    model.fit(tf.data.Dataset.from_tensors({"tokens": windows}).repeat(), epochs=1, steps_per_epoch=300, verbose=0)
    np.testing.assert_array_equal(model.decode(model.encode(windows)[0], temperature=0.0), windows)


def test_pitch_temperature_raises_sample_entropy():
    model = tiny_pitch()
    entropies = []
    for temperature in (0.25, 1.0, 4.0):
        sample = model.sample(32, temperature=temperature, seed=[3, 4])
        assert set(sample) == {"histogram"} and sample["histogram"].shape == (32, 128)
        np.testing.assert_allclose(np.sum(sample["histogram"], axis=1), 1.0, rtol=1e-5)
        entropies.append(float(np.mean(entropy_bits(sample["histogram"]))))
    assert entropies[0] < entropies[1] < entropies[2]
    example = outputs_to_examples(model.sample(2, seed=[0, 0]))[0]
    assert len(PitchHistogramConverter().from_example(example).notes) > 0


def test_melody_temperature_raises_symbol_diversity_and_never_draws_pad():
    model = tiny_melody()
    bias = np.random.default_rng(0).normal(-4.0, 1.5, model.input_dim)  # mostly-off outputs, as after training
    model.output_layer.bias.assign(bias.astype(np.float32))

    def draw(temperature):
        tokens = model.sample(64, temperature=temperature, seed=[5, 6]).numpy()
        assert tokens.shape == (64, 8) and tokens.dtype == np.int64 and PAD not in tokens
        return tokens

    greedy = draw(0.0)
    assert (greedy == greedy[0]).all()  # z = 0 and argmax: one melody
    agreement = [float(np.mean(draw(t) == greedy[0])) for t in (0.0, 0.3, 1.0, 3.0)]
    assert agreement[0] == 1.0 and agreement[0] > agreement[1] > agreement[2] > agreement[3]
    distinct = [len(np.unique(draw(t))) for t in (0.0, 0.3, 3.0)]
    assert distinct[0] < distinct[1] < distinct[2]
    np.testing.assert_array_equal(model.sample(3, seed=[1, 2]), model.sample(3, seed=[1, 2]))
    graph = tf.function(lambda: model.sample(3, temperature=0.7, seed=[1, 2]))
    np.testing.assert_array_equal(graph(), model.sample(3, temperature=0.7, seed=[1, 2]))
    CONVERTER.from_example(outputs_to_examples(model.sample(2, seed=[0, 0]))[0])  # renders


@pytest.mark.parametrize("prompt", ["60 _ _ 62 _ 64", "60 _ 62 _ 64 _ 65 _ 67 _ 69 _", ""])
def test_continue_melody_keeps_the_prompt(prompt):
    model = tiny_melody()
    tokens = CONVERTER.encode_symbols(prompt)
    out = model.continue_melody(tokens, 10, temperature=1.0, seed=[7, 8]).numpy()
    assert out.shape == (len(tokens) + 10,) and out.dtype == np.int64
    np.testing.assert_array_equal(out[:len(tokens)], tokens)
    assert PAD not in out[len(tokens):] and DELIMITER not in out[len(tokens):]
    np.testing.assert_array_equal(out, model.continue_melody(tokens, 10, temperature=1.0, seed=[7, 8]))
    graph = tf.function(lambda: model.continue_melody(tokens, 10, temperature=1.0, seed=[7, 8]))
    np.testing.assert_array_equal(graph(), out)
    assert CONVERTER.decode_symbols(out).startswith(prompt)


def test_interpolation_endpoints_are_the_reconstructions():
    pitch = tiny_pitch()
    a, b = histograms(2)
    path = pitch.interpolate({"histogram": a}, b, 5)["histogram"].numpy()
    assert path.shape == (5, 128)
    for row, x in ((0, a), (-1, b)):
        np.testing.assert_allclose(path[row], pitch.decode(pitch.encode(x)[0])["histogram"][0], rtol=1e-5,
                                   atol=1e-7)
    melody = tiny_melody()
    a, b = songs()
    path = melody.interpolate({"tokens": a[None]}, b, 4).numpy()
    assert path.shape == (4, 8)
    for row, x in ((0, a), (-1, b)):
        np.testing.assert_array_equal(path[row], melody.decode(melody.encode(x)[0], temperature=0.0)[0])


@pytest.mark.parametrize("make", [tiny_pitch, tiny_melody])
def test_get_config_round_trip(make):
    model = make()
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model)).get_config() == config
    clone.set_weights(model.get_weights())
    batch = {"histogram": histograms(2)} if make is tiny_pitch else {"tokens": songs()}
    for key in ("logits", "z_mean", "z_log_var"):
        np.testing.assert_allclose(clone(batch)[key], model(batch)[key], rtol=1e-6)
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]  # every layer named, not numbered


def test_noise_state_is_saved_with_the_weights(tmp_path):
    model = tiny_melody()
    for _ in range(3):  # advance the window, reparameterisation and dropout streams
        model.compute_losses({"tokens": songs()}, training=True)
    model.save_weights(str(tmp_path / "m.weights.h5"))
    restored = tiny_melody()
    restored.load_weights(str(tmp_path / "m.weights.h5"))
    for a, b in ((model.noise, restored.noise), (model.encoder.dropout, restored.encoder.dropout)):
        np.testing.assert_array_equal(a.generator.state.numpy(), b.generator.state.numpy())
    np.testing.assert_allclose(model.compute_losses({"tokens": songs()}, training=True)["loss"],
                               restored.compute_losses({"tokens": songs()}, training=True)["loss"], rtol=1e-6)


def test_builder_reads_sizes_from_the_manifest():
    converter = MelodyTimeSeriesConverter(min_pitch=48, max_pitch=84)
    manifest = {"representation": converter.get_config(),
                "features": {"tokens": {"dtype": "int64", "shape": [None]}}}
    model = build_model(get_preset("beta_vae_melody").resolved(tiny=True), manifest)
    assert isinstance(model, MelodyBetaVAE) and model.vocab_size == converter.vocab_size == 41
    assert model.delimiter_id == DELIMITER and model.pad_id == PAD and model.window == 16
    manifest = {"representation": PitchHistogramConverter().get_config(),
                "features": {"histogram": {"dtype": "float32", "shape": [128]}}}
    model = build_model(get_preset("beta_vae_pitch"), manifest)
    assert isinstance(model, PitchHistogramBetaVAE) and model.latent_dim == 128 and model.input_dim == 128


def test_presets_carry_the_seed_values():
    pitch, melody = get_preset("beta_vae_pitch"), get_preset("beta_vae_melody")
    assert pitch.family == melody.family == "beta_vae"
    assert (pitch.train.optimizer, pitch.train.lr_schedule, pitch.train.learning_rate,
            pitch.train.min_learning_rate, pitch.train.gradient_accumulation, pitch.train.early_stopping_patience,
            pitch.train.sample_every_epochs) == ("adamw", "cosine", 2e-4, 2e-6, 2, 15, 10)
    assert (pitch.model["latent_dim"], pitch.model["beta"], pitch.model["consistency_weight"]) == (128, 0.5, 0.2)
    assert (melody.train.optimizer, melody.train.learning_rate, melody.train.lr_schedule,
            melody.train.decay_rate, melody.train.decay_epochs, melody.train.weight_decay) == (
        "adam", 0.005, "step", 0.1, 10, 0.0)
    assert (melody.model["window"], melody.model["hidden_units"], melody.model["latent_dim"],
            melody.model["dropout"], melody.model["beta"], melody.model["l2_weight_decay"]) == (
        64, 256, 50, 0.5, 0.5, 1e-5)


# -- end to end: real MIDI -> preprocess -> train -> load -----------------------------------------------------------

@pytest.fixture(scope="module")
def midi_folder(tmp_path_factory):
    """12 real C-major quarter-note melodies of 2 to 5 bars (variable-length songs)."""
    root = tmp_path_factory.mktemp("beta_midi")
    rng = np.random.default_rng(0)
    for index in range(12):
        bars = 2 + index % 4
        pitches = list(rng.choice([60, 62, 64, 65, 67, 69, 71, 72], size=4 * bars))
        fixtures.write_midi(root / f"song_{index:02d}.mid", fixtures.melody_notes(bars, pitches=pitches))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("preset,representation", [("beta_vae_pitch", "pitch_histogram"),
                                                   ("beta_vae_melody", "melody_timeseries")])
def test_train_end_to_end_from_midi(midi_folder, tmp_path, preset, representation):
    data = tmp_path / "records"
    manifest = run_preprocess(get_reader("midi-dir"), get_converter(representation), str(data),
                              input_dir=str(midi_folder), num_shards=1)
    assert manifest["splits"]["train"]["examples"] >= 6
    history = train(TrainOptions(preset=preset, data=str(data), run_dir=str(tmp_path / "run"), tiny=True, epochs=2,
                                 steps_per_epoch=5, batch_size=4, verbose=0))
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert {"reconstruction_loss", "kl"} <= set(history.history)
    run = RunDir(tmp_path / "run")
    assert run.final_weights.is_file() and list(run.samples_dir.glob("epoch-0002/sample-*.mid"))
    loaded = load_trained_model(str(tmp_path / "run"))
    assert type(loaded.model).__name__ == {"beta_vae_pitch": "PitchHistogramBetaVAE"}.get(preset, "MelodyBetaVAE")
    midi_a, midi_b = sorted(midi_folder.glob("*.mid"))[:2]
    assert len(generation.generate(str(tmp_path / "run"), str(tmp_path / "samples"), num=2, seed=3)) == 2
    assert len(generation.interpolate(str(tmp_path / "run"), str(midi_a), str(midi_b), str(tmp_path / "path"),
                                      steps=3)) == 3
    assert len(generation.reconstruct(str(tmp_path / "run"), str(midi_a), str(tmp_path / "again"))) == 2


class _Crash(keras.callbacks.Callback):
    """Stands in for a killed process right after the backup of epoch 2."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == 2:
            raise KeyboardInterrupt("simulated kill")


@pytest.mark.slow
def test_interrupted_melody_run_resumes_to_the_same_weights(midi_folder, tmp_path):
    """Random windows, reparameterisation and dropout continue the same stream after a restart."""
    data = tmp_path / "records"
    run_preprocess(get_reader("midi-dir"), get_converter("melody_timeseries"), str(data), input_dir=str(midi_folder),
                   num_shards=1)

    def options(run, **kwargs):
        return TrainOptions(preset="beta_vae_melody", data=str(data), run_dir=str(tmp_path / run), tiny=True,
                            epochs=3, steps_per_epoch=5, batch_size=4, verbose=0, **kwargs)

    train(options("straight"))
    with pytest.raises(KeyboardInterrupt):
        train(options("killed", callbacks=[_Crash()]))
    train(options("killed"))
    for straight, resumed in zip(load_trained_model(str(tmp_path / "straight")).model.get_weights(),
                                 load_trained_model(str(tmp_path / "killed")).model.get_weights()):
        np.testing.assert_array_equal(straight, resumed)

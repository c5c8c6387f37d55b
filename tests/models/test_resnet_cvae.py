"""Resnet1D CVAE (seed 004): shapes per preset, exact odd lengths, loss terms, overfitting real WAV clips, genre
sampling, and the whole path GTZAN folder -> TFRecords -> train -> generate/reconstruct WAV + PNG files."""

import json
import math

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from musicgen_tf.audio_generation import generate_audio, reconstruct_audio
from musicgen_tf.configs import get_preset
from musicgen_tf.models.builders import build_model, outputs_to_examples
from musicgen_tf.models.resnet_cvae import (Resnet1DBlock, ResnetCVAE, log_normal_pdf, multi_resolution_stft_loss,
                                            waveform_log_likelihood)
from musicgen_tf.music.converter import Waveform
from musicgen_tf.music.representations import get_converter
from musicgen_tf.preprocessing.pipeline import run_preprocess
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.train.trainer import TrainOptions, train
from tests import fixtures

PRESETS = ("resnet_cvae_gtzan", "resnet_cvae_spectral")


def manifest_for(preset, genres=("jazz", "rock")):
    params = dict(get_preset(preset).converter_params)
    return {"representation": {"name": "waveform", "params": params},
            "features": {"audio": {"dtype": "float32", "shape": [params["frame_length"]]}},
            "labels": {"genre": {"dtype": "bytes", "vocabulary": list(genres)}}}


def write_clips(folder, rate=3000, seconds=1.0):
    """Real WAV files: two sines and two chords at different pitches; returns float32 [4, rate * seconds]."""
    t = np.arange(int(rate * seconds)) / rate
    clips = {"sine_220": [220.0], "sine_440": [440.0], "chord_c": [261.6, 329.6, 392.0], "chord_a": [220.0, 277.2]}
    for name, freqs in clips.items():
        wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) * (0.5 / len(freqs))
        soundfile.write(str(folder / f"{name}.wav"), wave.astype(np.float32), rate, subtype="PCM_16")
    return np.stack([soundfile.read(str(folder / f"{name}.wav"), dtype="float32")[0] for name in clips])


# -- shapes -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS)
def test_tiny_presets_build_with_exact_lengths_and_round_trip_config(preset):
    resolved = get_preset(preset).resolved(tiny=True)
    manifest = manifest_for(preset)
    model = build_model(resolved, manifest)
    n = manifest["features"]["audio"]["shape"][0]
    assert model.num_labels == 2 and model.frame_length == n
    batch = {"audio": np.zeros([2, n], np.float32), "genre_id": np.array([0, 1])}
    outputs = model(batch)
    assert outputs["audio"].shape == (2, n) and outputs["z_mean"].shape == (2, model.latent_dim)
    samples = model.sample(3, seed=[1, 2])
    assert samples["audio"].shape == (3, n)
    rows = outputs_to_examples(samples)
    assert len(rows) == 3 and rows[0]["audio"].shape == (n,)
    clone = ResnetCVAE.from_config(model.get_config())
    assert clone.count_params() == model.count_params()
    assert {layer.name for layer in model.layers if isinstance(layer, Resnet1DBlock)} >= {"encoder_block_0",
                                                                                           "decoder_block_0"}


def test_one_genre_means_no_conditioning():
    model = build_model(get_preset("resnet_cvae_gtzan").resolved(tiny=True), manifest_for("resnet_cvae_gtzan",
                                                                                           ("jazz",)))
    assert model.num_labels == 0
    with pytest.raises(ValueError, match="not conditioned"):
        model.sample(1, seed=[0, 0], labels=[0])


@pytest.mark.parametrize("length", [90001, 3001, 777])
def test_temporal_layout_crops_odd_lengths_exactly(length):
    model = ResnetCVAE(frame_length=length, layout="temporal", latent_dim=4, encoder_filters=(4, 4),
                       decoder_filters=(4, 4), kernel_size=5, strides=(4, 4))
    assert model.padded_length % 16 == 0 and model.padded_length >= length
    out = model.reconstruct(np.zeros([2, length], np.float32))["audio"]
    assert out.shape == (2, length)


def test_seed_frame_layout_is_the_notebooks_network():
    model = build_model(get_preset("resnet_cvae_gtzan"), manifest_for("resnet_cvae_gtzan"))
    names = [layer.name for layer in model.layers]
    assert model.layout == "frame" and model.frame_length == 90001 and model.latent_dim == 2
    assert [model.get_layer(f"encoder_conv_{i}").filters for i in range(4)] == [64, 128, 128, 256]
    assert [model.get_layer(f"decoder_upconv_{i}").filters for i in range(4)] == [512, 256, 128, 64]
    assert model.get_layer("logits").filters == 90001 and "posterior" in names
    model.compile(optimizer="adam")
    assert model.optimizer.epsilon == pytest.approx(1e-8)


# -- loss terms -------------------------------------------------------------------------------------------------------

def test_loss_terms_match_hand_values():
    z = np.array([[0.0, 1.0]], np.float32)
    assert log_normal_pdf(z, 0.0, 0.0).numpy()[0] == pytest.approx(-0.5 * (1.0 + 2 * math.log(2 * math.pi)), 1e-6)
    audio = np.array([[1.0, -1.0, 0.0]], np.float32)  # targets 1, 0, 0.5
    logits = np.zeros([1, 3], np.float32)
    assert waveform_log_likelihood(audio, logits).numpy()[0] == pytest.approx(-3 * math.log(2), 1e-6)


def test_spectral_loss_is_zero_for_identical_signals_and_grows_with_noise():
    rng = np.random.default_rng(0)
    t = np.arange(8192) / 16000
    clean = (0.5 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
    assert float(multi_resolution_stft_loss(clean, clean)[0]) == pytest.approx(0.0, abs=1e-6)
    losses = [float(multi_resolution_stft_loss(clean, clean + level * rng.standard_normal(clean.shape)
                                               .astype(np.float32))[0]) for level in (0.001, 0.01, 0.1)]
    assert 0 < losses[0] < losses[1] < losses[2]


def test_model_reports_spectral_loss_only_when_on():
    audio = {"audio": np.zeros([2, 1024], np.float32)}
    kwargs = dict(frame_length=1024, layout="temporal", latent_dim=2, encoder_filters=(2,), decoder_filters=(2,),
                  kernel_size=3, strides=(4,), fft_sizes=(128, 256))
    assert set(ResnetCVAE(**kwargs).compute_losses(audio)) == {"loss", "reconstruction_loss", "kl"}
    losses = ResnetCVAE(spectral_weight=10.0, **kwargs).compute_losses(audio)
    assert float(losses["loss"]) == pytest.approx(float(losses["reconstruction_loss"] + losses["kl"]
                                                         + 10.0 * losses["spectral_loss"]), rel=1e-5)


# -- learning ---------------------------------------------------------------------------------------------------------

def test_tiny_model_overfits_real_wav_clips(tmp_path):
    clips = write_clips(tmp_path)  # [4, 3000] at 3000 Hz
    model = ResnetCVAE(frame_length=clips.shape[1], latent_dim=4, encoder_filters=(16, 16), decoder_filters=(32, 16),
                       seed=3)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))

    def error():
        return float(np.mean((np.asarray(model.reconstruct(clips)["audio"]) - clips) ** 2))

    before = error()
    history = model.fit(tf.data.Dataset.from_tensors({"audio": clips}).repeat(), epochs=3, steps_per_epoch=60,
                        verbose=0).history
    after = error()
    assert history["reconstruction_loss"][-1] < history["reconstruction_loss"][0]
    assert after < 0.25 * before, (before, after)


def test_sampling_with_a_genre_label_follows_the_label():
    model = ResnetCVAE(frame_length=256, layout="temporal", latent_dim=2, encoder_filters=(2,), decoder_filters=(2,),
                       kernel_size=3, strides=(4,), num_labels=3)
    jazz = model.sample(2, seed=[0, 1], labels=np.array([1, 1]))["audio"]
    rock = model.sample(2, seed=[0, 1], labels=np.array([2, 2]))["audio"]
    again = model.sample(2, seed=[0, 1], labels=np.array([1, 1]))["audio"]
    assert jazz.shape == (2, 256)
    np.testing.assert_array_equal(jazz, again)
    assert not np.allclose(jazz, rock)
    assert model.sample(4, seed=[0, 1])["audio"].shape == (4, 256)  # no labels: cycles through the genres
    with pytest.raises(ValueError, match="conditioned"):
        model.reconstruct(np.zeros([1, 256], np.float32))


# -- end to end -------------------------------------------------------------------------------------------------------

def _preprocess_train(tmp_path, preset, gtzan_root):
    params = dict(get_preset(preset).converter_params)
    data = tmp_path / "data"
    manifest = run_preprocess(get_reader("gtzan"), get_converter("waveform", **params), str(data),
                              input_dir=str(gtzan_root), num_shards=1)
    run_dir = tmp_path / "run"
    train(TrainOptions(preset=preset, data=str(data), run_dir=str(run_dir), tiny=True, epochs=1, steps_per_epoch=3,
                       batch_size=2, verbose=0))
    return manifest, run_dir


def _assert_clip_files(results, rate, length):
    for result in results:
        samples, file_rate = soundfile.read(result["wav"], dtype="float32")
        assert file_rate == rate and samples.shape == (length,)
        for key in ("waveform_png", "spectrogram_png"):
            with open(result[key], "rb") as handle:
                assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_gtzan_to_generated_and_reconstructed_wavs(tmp_path):
    root = fixtures.make_gtzan(tmp_path / "gtzan")
    manifest, run_dir = _preprocess_train(tmp_path, "resnet_cvae_spectral", root)
    skipped = {record["key"]: record["reason"] for record in manifest["skipped"]}
    assert "jazz/jazz.00053.wav" in skipped and "jazz/jazz.00054.wav" in skipped
    assert manifest["labels"]["genre"]["vocabulary"] == ["jazz", "rock"]
    assert (run_dir / "model.weights.h5").is_file()
    assert sorted(p.name for p in (run_dir / "samples" / "epoch-0001").glob("*.wav")) == ["sample-0.wav",
                                                                                          "sample-1.wav"]
    results = generate_audio(str(run_dir), str(tmp_path / "gen"), num=2, genre="jazz", seed=7)
    _assert_clip_files(results, 16000, 32768)
    again = generate_audio(str(run_dir), str(tmp_path / "gen2"), num=2, genre="jazz", seed=7)
    np.testing.assert_array_equal(soundfile.read(results[0]["wav"])[0], soundfile.read(again[0]["wav"])[0])
    with pytest.raises(Exception, match="unknown genre"):
        generate_audio(str(run_dir), str(tmp_path / "bad"), num=1, genre="polka")
    recon = reconstruct_audio(str(run_dir), str(root / "genres" / "rock" / "rock.00001.wav"), str(tmp_path / "rec"))
    _assert_clip_files(recon, 16000, 32768)
    with pytest.raises(Exception, match="silent"):
        reconstruct_audio(str(run_dir), str(root / "genres" / "jazz" / "jazz.00053.wav"), str(tmp_path / "rec2"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"]["name"] == "resnet_cvae_spectral"


@pytest.mark.slow
def test_seed_preset_trains_on_30s_gtzan_clips_and_generates(tmp_path):
    """The seed's 3000 Hz / 90001-sample frames need 15 s or more of audio per clip: one genre of 16 s clips."""
    for index in range(3):
        fixtures.write_wav(tmp_path / "gtzan" / "genres" / "jazz" / f"jazz.{index:05d}.wav", seconds=16.0,
                           rate=8000, frequency=220.0 + 60 * index)
    manifest, run_dir = _preprocess_train(tmp_path, "resnet_cvae_gtzan",
                                          tmp_path / "gtzan")
    assert manifest["features"]["audio"]["shape"] == [90001]
    results = generate_audio(str(run_dir), str(tmp_path / "gen"), num=1, genre="jazz", seed=1)  # one genre: ok
    _assert_clip_files(results, 3000, 90001)
    recon = reconstruct_audio(str(run_dir), str(tmp_path / "gtzan" / "genres" / "jazz" / "jazz.00001.wav"),
                              str(tmp_path / "rec"))
    _assert_clip_files(recon, 3000, 90001)
    assert isinstance(get_converter("waveform", sample_rate=3000, frame_length=90001).from_example(
        {"audio": soundfile.read(recon[1]["wav"], dtype="float32")[0]}), Waveform)

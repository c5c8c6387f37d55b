"""SavedModel export of a tiny REMI Transformer-XL and a tiny genre-conditioned audio VAE: signatures, reload in a
TensorFlow-only process, equality with the Keras model, `saved_model_cli`, and the client turning their outputs into
MIDI / WAV + spectrogram files."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from musicgen_tf.serving.export import check, export, read_metadata
from musicgen_tf.train.trainer import load_trained_model
from tests import fixtures, serving

pytestmark = pytest.mark.slow

SIGNATURES = {
    "txl": {"generate", "continue", "musicgen_config"},
    "cvae": {"sample", "reconstruct", "encode", "decode", "musicgen_config"},
}


@functools.lru_cache(maxsize=None)
def trained_run(kind: str) -> str:
    """A tiny remi_txl_pop run on the serving fixture melodies, or a tiny resnet_cvae_spectral run on GTZAN-layout
    WAVs (two genres: a conditioned model)."""
    from musicgen_tf.configs import get_preset
    from musicgen_tf.music.representations import get_converter
    from musicgen_tf.preprocessing.pipeline import run_preprocess
    from musicgen_tf.preprocessing.readers import get_reader
    from musicgen_tf.train.trainer import TrainOptions, train

    root = serving._root()
    data, run_dir = root / f"{kind}-records", root / f"{kind}-run"
    if kind == "txl":
        preset, converter, reader = "remi_txl_pop", "remi", "midi-dir"
        source = serving.corpus("melodies")
    else:
        preset, converter, reader = "resnet_cvae_spectral", "waveform", "gtzan"
        source = fixtures.make_gtzan(root / "gtzan")
    run_preprocess(get_reader(reader), get_converter(converter, **get_preset(preset).converter_params), str(data),
                   input_dir=str(source), num_shards=1)
    train(TrainOptions(preset=preset, data=str(data), run_dir=str(run_dir), tiny=True, epochs=1, steps_per_epoch=2,
                       batch_size=2, verbose=0))
    return str(run_dir)


@functools.lru_cache(maxsize=None)
def exported(kind: str) -> str:
    return export(trained_run(kind), str(serving._root() / "models"), kind, version=1)


def _signature(path, name):
    return tf.saved_model.load(path).signatures[name]


@pytest.mark.parametrize("kind", sorted(SIGNATURES))
def test_export_reloads_without_project_code_and_matches_keras(kind):
    path = exported(kind)
    metadata = read_metadata(path)
    assert set(metadata["signatures"]) == SIGNATURES[kind]
    report = check(path)  # fresh TensorFlow-only process; raises on any difference above 1e-5
    assert set(report["signatures"]) == SIGNATURES[kind] == set(report["reloaded_signatures"])
    assert report["max_abs_diff"] <= 1e-5


def test_txl_generate_and_continue_equal_the_keras_model():
    path = exported("txl")
    model = load_trained_model(trained_run("txl")).model
    signatures = tf.saved_model.load(path).signatures
    seed = np.array([11, 4], np.int64)
    served = signatures["generate"](num=tf.constant(2), num_bars=tf.constant(2), temperature=tf.constant(0.9),
                                    top_k=tf.constant(5), max_tokens=tf.constant(60), seed=tf.constant(seed))
    keras_tokens = model.generate(2, temperature=0.9, top_k=5, seed=seed, max_tokens=60, num=2)
    np.testing.assert_array_equal(served["tokens"].numpy(), keras_tokens)
    assert served["tokens"].dtype == tf.int64 and served["tokens"].shape[1] <= 60

    prompt = model.generate(1, temperature=1.0, seed=[1, 2], max_tokens=30)[0]
    prompt = prompt[prompt != model.eos_id]
    served = signatures["continue"](prompt_tokens=tf.constant(prompt), num=tf.constant(1), num_bars=tf.constant(1),
                                    temperature=tf.constant(1.0), top_k=tf.constant(0), max_tokens=tf.constant(80),
                                    seed=tf.constant(seed))
    keras_tokens = model.continue_tokens(prompt, 1, temperature=1.0, top_k=0, seed=seed, max_tokens=80)
    np.testing.assert_array_equal(served["tokens"].numpy(), keras_tokens)
    kept = prompt[prompt != model.pad_id]
    np.testing.assert_array_equal(served["tokens"].numpy()[0, :kept.size], kept)  # the prompt is kept exactly
    assert int(served["lengths"][0]) >= kept.size


def test_cvae_sample_and_reconstruct_equal_the_keras_model():
    path = exported("cvae")
    model = load_trained_model(trained_run("cvae")).model
    signatures = tf.saved_model.load(path).signatures
    seed = np.array([7, 0], np.int64)
    served = signatures["sample"](genre_id=tf.constant([1], tf.int64), num=tf.constant(2),
                                  temperature=tf.constant(0.7), seed=tf.constant(seed))["audio"].numpy()
    keras_audio = model.sample(2, temperature=0.7, seed=seed, labels=np.array([1, 1]))["audio"].numpy()
    assert served.shape == (2, model.frame_length) and served.dtype == np.float32
    np.testing.assert_allclose(served, keras_audio, atol=1e-5)
    cycled = signatures["sample"](genre_id=tf.constant([-1], tf.int64), num=tf.constant(2),
                                  temperature=tf.constant(0.7), seed=tf.constant(seed))["audio"].numpy()
    np.testing.assert_allclose(cycled, model.sample(2, temperature=0.7, seed=seed)["audio"].numpy(), atol=1e-5)

    clip = np.asarray(soundfile.read(str(serving._root() / "gtzan/genres/rock/rock.00001.wav"),
                                     dtype="float32")[0][:model.frame_length])
    clip = np.pad(clip, (0, model.frame_length - clip.size))[None]
    served = signatures["reconstruct"](audio=tf.constant(clip), genre_id=tf.constant([1], tf.int64))["audio"]
    np.testing.assert_allclose(served.numpy(), model.reconstruct(clip, labels=[1])["audio"].numpy(), atol=1e-5)


def test_saved_model_cli_lists_the_signatures():
    cli = str(Path(sys.executable).parent / "saved_model_cli")
    outputs = {}
    for kind in SIGNATURES:
        result = subprocess.run([cli, "show", "--all", "--dir", exported(kind)], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        for name in SIGNATURES[kind]:
            assert f"signature_def['{name}']" in result.stdout
        outputs[kind] = result.stdout
    cont = outputs["txl"].split("signature_def['continue']")[1].split("signature_def[")[0]
    assert "inputs['prompt_tokens'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1)" in cont
    assert "outputs['tokens'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1, -1)" in cont
    sample = outputs["cvae"].split("signature_def['sample']")[1].split("signature_def[")[0]
    assert "inputs['genre_id'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1)" in sample
    assert "outputs['audio'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 32768)" in sample


def test_client_writes_midi_from_txl_tokens_and_wav_from_cvae_audio(tmp_path):
    from musicgen_tf.serving.client import ServingClient, client_generate
    from tests.serving.test_client import FakeTFServing

    server = FakeTFServing({kind: exported(kind) for kind in SIGNATURES})
    try:
        txl = ServingClient(server.address, model="txl", timeout=120, backoff=0.01)
        result = client_generate(txl, "sample", str(tmp_path / "gen"), num=2, temperature=0.9, seed=3, steps=2)
        assert len(result["files"]) == 2 and all(Path(f["mid"]).is_file() for f in result["files"])
        prompt = next(serving.corpus("melodies").glob("*.mid"))
        result = client_generate(txl, "continue", str(tmp_path / "cont"), seed=3, steps=1, prompt=str(prompt))
        assert Path(result["files"][0]["mid"]).name == "continuation-00.mid"
        cvae = ServingClient(server.address, model="cvae", timeout=120, backoff=0.01)
        result = client_generate(cvae, "sample", str(tmp_path / "audio"), num=2, temperature=0.8, seed=5)
        for files in result["files"]:
            samples, rate = soundfile.read(files["wav"], dtype="float32")
            assert rate == 16000 and samples.shape == (32768,)
            assert Path(files["spectrogram_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.close()

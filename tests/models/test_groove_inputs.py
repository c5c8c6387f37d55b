"""GrooVAE encoder-input corruptions in the graph equal Magenta's converter's (`GrooveConverter.make_inputs`), and a
model trained with them encodes what Magenta's encoder reads."""

import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.configs import get_preset
from musicgen_tf.models.groove_inputs import corrupt_groove, encoder_corruption
from musicgen_tf.models.music_vae import MusicVAE
from musicgen_tf.music.representations import get_converter

MAGENTA_GROOVES = ["groovae_2bar_humanize", "groovae_2bar_tap_fixed_velocity", "groovae_2bar_add_closed_hh"]


def random_groove(rng, steps=32, classes=9):
    hits = (rng.random((steps, classes)) < 0.3).astype(np.float32)
    velocities = hits * rng.uniform(0.1, 1.0, (steps, classes)).astype(np.float32)
    offsets = hits * rng.uniform(-0.5, 0.5, (steps, classes)).astype(np.float32)
    return hits, velocities, offsets


@pytest.mark.parametrize("preset", MAGENTA_GROOVES)
def test_graph_corruption_equals_the_converters(preset):
    converter = get_converter("groovae", **get_preset(preset).converter_params)
    corruption = encoder_corruption(converter)
    assert corruption is not None
    rng = np.random.default_rng(0)
    grooves = [random_groove(rng) for _ in range(4)]
    expected = np.stack([np.concatenate(converter.make_inputs(*g), axis=1) for g in grooves])
    batch = tf.constant(np.stack([np.concatenate(g, axis=1) for g in grooves]))
    corrupted = corrupt_groove(batch, corruption).numpy()
    np.testing.assert_array_equal(corrupted, expected)
    assert not np.array_equal(corrupted, batch.numpy())


def test_plain_groovae_has_no_corruption_and_unknown_ones_are_refused():
    assert encoder_corruption(get_converter("groovae", **get_preset("groovae_2bar").converter_params)) is None
    with pytest.raises(ValueError, match="unknown GrooVAE input corruption"):
        corrupt_groove(tf.zeros([1, 2, 27]), {"note_dropout": 0.5})
    with pytest.raises(ValueError, match="GrooVAE"):
        MusicVAE(output_kind="categorical", encoder_corruption={"humanize": True})


def test_a_humanize_model_encodes_the_same_z_whatever_the_velocities_and_offsets():
    model = MusicVAE(output_kind="groove", num_classes=9, seq_len=32, encoder_units=(16,), latent_dim=8,
                     decoder_units=(16,), encoder_corruption={"humanize": True})
    hits, velocities, offsets = random_groove(np.random.default_rng(1))
    batch = {"hits": hits[None], "velocities": velocities[None], "offsets": offsets[None]}
    quantized = {**batch, "velocities": np.zeros_like(velocities)[None], "offsets": np.zeros_like(offsets)[None]}
    z_mean, _ = model.encode(batch)
    z_quantized, _ = model.encode(quantized)
    np.testing.assert_allclose(z_mean.numpy(), z_quantized.numpy(), rtol=1e-6)
    assert MusicVAE.from_config(model.get_config()).encoder_corruption == {"humanize": True}


@pytest.mark.slow
def test_groovae_2bar_humanize_trains_with_corrupted_encoder_inputs(tmp_path):
    from musicgen_tf.cli import main
    from musicgen_tf.train.trainer import load_trained_model
    from tests import fixtures

    records = str(fixtures.groove_records(tmp_path, preset="groovae_2bar_humanize", num_shards=1))
    run = str(tmp_path / "run")
    assert main(["train", "--preset", "groovae_2bar_humanize", "--tiny", "--data", records, "--run-dir", run,
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2"]) == 0
    assert load_trained_model(run).model.encoder_corruption == {"humanize": True, "tapify": False,
                                                                "fixed_velocities": False, "add_instruments": []}

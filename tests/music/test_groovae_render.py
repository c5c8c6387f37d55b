"""GrooVAE outputs are heard in Magenta's inference mode: drum classes named by the reduced (GM) map."""

import numpy as np

from musicgen_tf import generation
from musicgen_tf.configs import get_preset
from musicgen_tf.models.music_vae import MusicVAE
from musicgen_tf.music.groovae import GrooveConverter
from musicgen_tf.music.melody import MelodyConverter
from musicgen_tf.train.trainer import TrainedRun

# Magenta 2.1.4 data.py: REDUCED_DRUM_PITCH_CLASSES (= drums_encoder_decoder.DEFAULT_DRUM_TYPE_PITCHES) first pitches
# vs ROLAND_DRUM_PITCH_CLASSES first pitches; GrooveConverter.from_tensors in 'infer' mode plays the former.
REDUCED_FIRST = [36, 38, 42, 46, 45, 48, 50, 49, 51]
ROLAND_FIRST = [36, 38, 42, 46, 43, 47, 50, 49, 51]


def _every_class_once(steps=32, classes=9):
    hits = np.zeros([steps, classes], np.float32)
    hits[np.arange(classes), np.arange(classes)] = 1.0
    return {"hits": hits, "velocities": hits * 0.8, "offsets": np.zeros_like(hits)}


def test_render_output_uses_the_inference_map_and_from_example_the_training_map():
    converter = GrooveConverter.from_preset("groovae_2bar_humanize")
    example = _every_class_once()
    assert [n.pitch for n in converter.render_output(example).notes] == REDUCED_FIRST
    assert [n.pitch for n in converter.from_example(example).notes] == ROLAND_FIRST
    melody = MelodyConverter()
    tokens = {"tokens": np.array([40, 0, 1, 0] * 8)}
    assert melody.render_output(tokens) == melody.from_example(tokens)  # other representations: unchanged


def test_generate_writes_groovae_samples_with_the_reduced_map(tmp_path, monkeypatch):
    converter = GrooveConverter(split_bars=2)
    model = MusicVAE(output_kind="groove", num_classes=9, seq_len=32, encoder_units=(8,), latent_dim=4,
                     decoder_units=(8,))
    model.output_projection.bias.assign(np.full([27], 2.0, np.float32))  # hits likely: every class gets played
    run = TrainedRun(model, get_preset("groovae_2bar"), converter, {})
    monkeypatch.setattr(generation, "load_trained_model", lambda run_dir, checkpoint=None: run)
    monkeypatch.setattr(generation, "render_pieces",
                        lambda pieces, out_dir, prefix, representation="": [p for p in pieces])
    (piece,) = generation.generate("unused", str(tmp_path), num=1, seed=3)
    pitches = {n.pitch for n in piece.notes}
    assert pitches == set(REDUCED_FIRST), pitches

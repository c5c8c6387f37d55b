"""REMI windows and augmentation in the tf.data pipeline: pitch shift moves notes by k and chord roots by k mod 12,
never out of range; tempo stretch re-encodes the tempo pairs; validation input is left as it was."""

import numpy as np
import pytest
import tensorflow as tf
from note_seq import testing_lib
from note_seq.protobuf import music_pb2

from musicgen_tf.configs import get_preset
from musicgen_tf.music.remi import PAD_ID, RemiConverter
from musicgen_tf.tfrecords.augment import make_augmenter
from musicgen_tf.tfrecords.remi_augment import RemiAugmentation, token_windows
from musicgen_tf.train import runtime
from musicgen_tf.train.schedules import make_optimizer
from musicgen_tf.train.trainer import token_transforms

CONVERTER = RemiConverter(chords="markers")


def piece(pitches=(60, 64, 67, 71), chord="A:min7", qpm=100.0):
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    ns.tempos.add(qpm=qpm)
    ns.time_signatures.add(numerator=4, denominator=4)
    ns.text_annotations.add(time=0.0, text=chord,
                            annotation_type=music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL)
    ns.text_annotations.add(time=1.0, text="N.C.", annotation_type=music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL)
    testing_lib.add_track_to_sequence(ns, 0, [(p, 80, i * 0.5, i * 0.5 + 0.5) for i, p in enumerate(pitches)])
    return CONVERTER.encode_ids(ns)


def strings(ids):
    return CONVERTER.tokens_to_strings(np.asarray(ids))


def of_kind(tokens, kind):
    return [t.split("_", 1)[1] for t in tokens if t.split("_")[0] == kind]


@pytest.mark.parametrize("shift", [-6, -1, 0, 5, 6])
def test_pitch_shift_moves_notes_by_k_and_chord_roots_by_k_mod_12(shift):
    augment = RemiAugmentation(CONVERTER, max_shift=6, max_stretch=1.0)
    ids = piece()
    shifted = strings(augment.transpose(tf.constant(ids), shift).numpy())
    original = strings(ids)
    assert [int(p) for p in of_kind(shifted, "Note-On")] == [int(p) + shift for p in of_kind(original, "Note-On")]
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    assert of_kind(shifted, "Chord") == [f"{names[(9 + shift) % 12]}:min7", "N:N"]
    # everything else (bars, positions, durations, velocities, tempo) is untouched
    others = [t for t in original if t.split("_")[0] not in ("Note-On", "Chord")]
    assert [t for t in shifted if t.split("_")[0] not in ("Note-On", "Chord")] == others


def test_pitch_shift_never_leaves_the_pitch_range():
    converter = RemiConverter(chords="markers", min_pitch=21, max_pitch=108)
    augment = RemiAugmentation(converter, max_shift=6, max_stretch=1.0)
    ns_ids = converter.encode_ids(_plain([105, 60]))  # highest note 105: at most +3 fits
    lowest, highest = (int(x) for x in augment.allowed_shifts(tf.constant(ns_ids)))
    assert (lowest, highest) == (-6, 3)
    up = of_kind(strings_of(converter, augment.transpose(tf.constant(ns_ids), 6)), "Note-On")
    assert sorted(int(p) for p in up) == [63, 108]  # clamped to +3
    for index in range(40):  # random draws stay inside as well
        pitches = [int(p) for p in of_kind(strings_of(converter, augment(tf.constant(ns_ids), index)), "Note-On")]
        assert min(pitches) >= 54 and max(pitches) <= 108


def _plain(pitches):
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    ns.tempos.add(qpm=120.0)
    testing_lib.add_track_to_sequence(ns, 0, [(p, 80, i * 0.5, i * 0.5 + 0.5) for i, p in enumerate(pitches)])
    return ns


def strings_of(converter, ids):
    return converter.tokens_to_strings(np.asarray(ids))


def test_tempo_stretch_reencodes_each_tempo_pair():
    augment = RemiAugmentation(CONVERTER, max_shift=0, max_stretch=1.5)
    ids = piece(qpm=100.0)  # Tempo-Class_mid Tempo-Value_10
    faster = strings(augment.stretch_tempo(tf.constant(ids), 1.6).numpy())  # 160 qpm: fast, 10
    assert of_kind(faster, "Tempo-Class") == ["fast"] and of_kind(faster, "Tempo-Value") == ["10"]
    slower = strings(augment.stretch_tempo(tf.constant(ids), 0.1).numpy())  # 10 qpm -> clipped to 30: slow, 0
    assert of_kind(slower, "Tempo-Class") == ["slow"] and of_kind(slower, "Tempo-Value") == ["0"]
    assert len(faster) == len(strings(ids))
    assert of_kind(faster, "Note-On") == of_kind(strings(ids), "Note-On")


def test_random_augmentation_is_seeded_per_example_and_varies():
    augment = RemiAugmentation(CONVERTER, max_shift=6, max_stretch=1.2, seed=3)
    ids = tf.constant(piece())
    draws = [augment(ids, i).numpy() for i in range(12)]
    np.testing.assert_array_equal(draws[0], augment(ids, 0).numpy())
    assert len({tuple(d) for d in draws}) > 4


def test_windows_follow_the_seed_slicing():
    tokens = tf.range(1, 11, dtype=tf.int64)  # 10 tokens
    windows = [w.numpy().tolist() for w in token_windows(tokens, 4, 2)]
    assert windows == [[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 8], [7, 8, 9, 10]]
    short = [w.numpy().tolist() for w in token_windows(tf.constant([5, 6], tf.int64), 4, 2)]
    assert short == [[5, 6, PAD_ID, PAD_ID]]


def test_trainer_augments_training_windows_only():
    preset = get_preset("remi_txl_pop").resolved(tiny=True)
    assert dict(preset.augmentation) == {"pitch_shift": 6, "tempo_stretch": 1.2}
    augmenter = make_augmenter(preset.augmentation, preset.representation, CONVERTER, seed=preset.train.seed)
    train_transform, validation_transform = token_transforms(preset, augmenter)
    pieces = [np.tile(piece(), 6) for _ in range(3)]
    source = tf.data.Dataset.from_generator(lambda: ({"tokens": p} for p in pieces),
                                            output_signature={"tokens": tf.TensorSpec([None], tf.int64)})
    expected = sorted(tuple(w.numpy()) for p in pieces for w in token_windows(tf.constant(p), 64, 32))
    validation = sorted(tuple(e["tokens"].numpy()) for e in validation_transform(source))
    assert validation == expected  # windows exactly, no augmentation
    trained = [tuple(e["tokens"].numpy()) for e in train_transform(source)]
    assert len(trained) == len(expected) and sorted(trained) != expected


def test_seed_003_regime_is_the_preset_default():
    config = get_preset("remi_txl_pop").train
    assert (config.batch_size, config.learning_rate, config.warmup_steps) == (16, 1e-4, 1000)
    assert (config.window_tokens, config.window_stride, config.mixed_precision) == (512, 256, "auto")
    optimizer = make_optimizer(config)
    rates = [float(optimizer.learning_rate) for _ in range(1)]  # step 0
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(1e-7) and float(schedule(499)) == pytest.approx(5e-5)
    assert float(schedule(999)) == pytest.approx(1e-4) and float(schedule(50_000)) == pytest.approx(1e-4)
    assert rates[0] == pytest.approx(1e-7)
    # "auto" is on exactly when a GPU is visible
    assert runtime.resolve_mixed_precision("auto") == bool(tf.config.list_physical_devices("GPU"))
    assert runtime.resolve_mixed_precision("on") is True and runtime.resolve_mixed_precision(False) is False
    with pytest.raises(ValueError, match="on, off or auto"):
        runtime.resolve_mixed_precision("sometimes")

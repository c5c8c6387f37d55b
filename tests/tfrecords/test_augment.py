"""Melody transposition of training batches (Magenta's NoteSequenceAugmenter(transpose_range=(-5, 5)))."""

import note_seq
import numpy as np
import pytest
import tensorflow as tf
from note_seq import sequences_lib

from musicgen_tf.configs import PRESETS, get_preset
from musicgen_tf.music.melody import MelodyConverter
from musicgen_tf.tfrecords.augment import MelodyTransposer, make_augmenter

CONVERTER = MelodyConverter(slice_bars=2, steps_per_quarter=4)


def _sequence(notes):
    """notes: (pitch, start_step, end_step) on 16ths at 120 qpm -> NoteSequence."""
    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=120)
    ns.time_signatures.add(numerator=4, denominator=4)
    for pitch, start, end in notes:
        ns.notes.add(pitch=pitch, start_time=start * 0.125, end_time=end * 0.125, velocity=80)
    ns.total_time = max(n.end_time for n in ns.notes)
    return ns


def _tokens(ns):
    (example,) = CONVERTER.to_examples(ns)
    return example["tokens"]


def _magenta(ns, k):
    """What Magenta trains on: the NoteSequence augmented by k (notes outside 0..127 deleted), then converted."""
    augmented = sequences_lib.augment_note_sequence(ns, 1.0, 1.0, k, k, delete_out_of_range_notes=True)
    return _tokens(augmented)


# High and low notes near the piano range's ends (21..108): legato, after rests, two dropped in a row.
MELODIES = {
    "high": [(96, 0, 4), (104, 4, 8), (107, 8, 12), (106, 12, 14), (100, 16, 20), (108, 22, 24), (105, 24, 26),
             (99, 28, 32)],
    "low": [(40, 0, 4), (22, 4, 6), (24, 8, 12), (21, 12, 16), (30, 18, 20), (23, 20, 22), (45, 24, 32)],
}


@pytest.mark.parametrize("name", sorted(MELODIES))
@pytest.mark.parametrize("k", [-5, -3, -1, 0, 2, 5])
def test_transposed_tokens_equal_magentas_augmented_and_converted_sequence(name, k):
    ns = _sequence(MELODIES[name])
    transposer = MelodyTransposer.from_converter(CONVERTER, (-5, 5))
    ours = transposer.transpose(tf.constant(_tokens(ns)[None]), tf.constant([k]))[0].numpy()
    np.testing.assert_array_equal(ours, _magenta(ns, k))


def test_in_range_notes_move_by_k_and_nothing_else_changes():
    tokens = np.array([[0, 1, 40, 0, 0, 1, 50, 41, 0, 1]] * 3, np.int64)
    out = MelodyTransposer.from_converter(CONVERTER, (-5, 5)).transpose(tf.constant(tokens), tf.constant([3, -5, 0]))
    onsets = tokens >= 2
    np.testing.assert_array_equal(out.numpy()[~onsets], tokens[~onsets])
    np.testing.assert_array_equal(out.numpy() - tokens, onsets * np.array([[3], [-5], [0]]))
    assert out.dtype == tf.int64


def test_amounts_are_uniform_in_the_range_per_example_and_reproducible():
    transposer = MelodyTransposer.from_converter(CONVERTER, (-5, 5))
    tokens = np.full([2000, 4], 2 + 60 - 21, np.int64)  # middle C onsets: never out of range
    batch = {"tokens": tf.constant(tokens), "other": tf.zeros([2000])}
    out = transposer(batch, tf.constant([1, 2], tf.int64))
    shifts = out["tokens"].numpy()[:, 0] - tokens[:, 0]
    assert set(shifts) == set(range(-5, 6))  # 11 values, both ends included (random.randint)
    assert np.all(out["tokens"].numpy() - tokens == shifts[:, None])  # one k per example
    assert max(np.bincount(shifts + 5)) < 2000 / 11 * 1.3
    again = transposer(batch, tf.constant([1, 2], tf.int64))["tokens"].numpy()
    np.testing.assert_array_equal(again, out["tokens"].numpy())
    assert "other" in out


def test_apply_seeds_each_batch_by_its_index_so_a_skip_resumes_the_same_stream():
    transposer = MelodyTransposer.from_converter(CONVERTER, (-5, 5), seed=7)
    data = tf.data.Dataset.from_tensors({"tokens": tf.fill([8, 4], tf.constant(50, tf.int64))}).repeat(6)
    full = [b["tokens"].numpy() for b in transposer.apply(data)]
    resumed = [b["tokens"].numpy() for b in transposer.apply(data).skip(4)]
    np.testing.assert_array_equal(np.stack(full[4:]), np.stack(resumed))
    assert not all(np.array_equal(full[0], b) for b in full[1:])


def test_presets_augment_where_magenta_does():
    augmented = {name for name, p in PRESETS.items() if p.augmentation and p.representation == "melody"}
    # cat-mel_2bar_small/_big: (-5, 5); Magenta's 16-bar, drum, groove: none
    assert augmented == {"cat-mel_2bar", "cat-mel_2bar_small", "cat-mel_2bar_big"}
    for name in augmented:
        assert tuple(get_preset(name).augmentation["transpose_range"]) == (-5, 5)
    assert make_augmenter(None, "melody", CONVERTER) is None
    with pytest.raises(ValueError, match="needs one of the representations"):
        make_augmenter({"transpose_range": (-5, 5)}, "drums", None)
    with pytest.raises(ValueError, match="unknown augmentation"):
        make_augmenter({"stretch_range": (0.9, 1.1)}, "melody", CONVERTER)
    with pytest.raises(ValueError, match="unknown augmentation"):
        make_augmenter({"transpose_range": (-5, 5)}, "remi", None)

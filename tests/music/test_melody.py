"""MelodyConverter == Magenta's OneHotMelodyConverter (cases and expected labels from music_vae/data_test.py)."""

import json

import note_seq
import numpy as np
import pytest
from note_seq import testing_lib

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Feature
from musicgen_tf.music.magenta_common import np_onehot
from musicgen_tf.music.melody import MEL_PROGRAMS, MelodyConverter
from musicgen_tf.music.representations import get_converter

NO_EVENT, NOTE_OFF = note_seq.MELODY_NO_EVENT, note_seq.MELODY_NOTE_OFF

# OneHotMelodyConverterTest.setUp: events with min pitch (21) subtracted; labels are events + 2.
EXPECTED_UNSLICED_EVENTS = [
    (NO_EVENT, NO_EVENT, 11, NO_EVENT, NOTE_OFF, NO_EVENT, 12, NO_EVENT,
     NO_EVENT, NO_EVENT, NO_EVENT, 13, NO_EVENT, NOTE_OFF, NO_EVENT, NO_EVENT),
    (NO_EVENT, 14, NO_EVENT, NOTE_OFF),
    (NO_EVENT, NO_EVENT, 14, NO_EVENT, NOTE_OFF, NO_EVENT, 15, NO_EVENT),
    (NO_EVENT, 50, 52, NO_EVENT, NO_EVENT, NOTE_OFF, NO_EVENT, NO_EVENT),
    (NO_EVENT, NO_EVENT, 12, NO_EVENT, NO_EVENT, NO_EVENT, NO_EVENT, 13),
]
EXPECTED_SLICED_EVENTS = [
    (NO_EVENT, NO_EVENT, 11, NO_EVENT, NOTE_OFF, NO_EVENT, 12, NO_EVENT),
    (NO_EVENT, NO_EVENT, 12, NO_EVENT, NO_EVENT, NO_EVENT, NO_EVENT, 13),
    (NO_EVENT, NO_EVENT, NO_EVENT, 13, NO_EVENT, NOTE_OFF, NO_EVENT, NO_EVENT),
    (NO_EVENT, NO_EVENT, 14, NO_EVENT, NOTE_OFF, NO_EVENT, 15, NO_EVENT),
    (NO_EVENT, 50, 52, NO_EVENT, NO_EVENT, NOTE_OFF, NO_EVENT, NO_EVENT),
]
EXPECTED_UNSLICED_LABELS = [np.array(e) + 2 for e in EXPECTED_UNSLICED_EVENTS]
EXPECTED_SLICED_LABELS = [np.array(e) + 2 for e in EXPECTED_SLICED_EVENTS]


@pytest.fixture
def sequence():
    ns = note_seq.NoteSequence()
    ns.tempos.add(qpm=60)
    testing_lib.add_track_to_sequence(ns, 0, [(32, 100, 2, 4), (33, 1, 6, 11), (34, 1, 11, 13), (35, 1, 17, 19)])
    testing_lib.add_track_to_sequence(ns, 1, [(35, 127, 2, 4), (36, 50, 6, 8), (71, 100, 33, 37),
                                              (73, 100, 34, 37), (33, 1, 50, 55), (34, 1, 55, 56)])
    return ns


def assert_array_sets_equal(lhs, rhs):
    """Magenta's assertArraySetsEqual: equal as multisets of arrays."""
    assert len(lhs) == len(rhs)
    key = lambda a: (a.shape, np.asarray(a, np.int64).tobytes())  # noqa: E731
    for a, b in zip(sorted(lhs, key=key), sorted(rhs, key=key)):
        np.testing.assert_array_equal(np.asarray(a, np.int64), np.asarray(b, np.int64))


def magenta(**kwargs):
    """Magenta's class defaults (max_bars=None) with the test's overrides."""
    return MelodyConverter(**{"max_bars": None, **kwargs})


def test_unsliced(sequence):
    converter = magenta(steps_per_quarter=1, slice_bars=None)
    tensors = converter.to_tensors(sequence)
    assert_array_sets_equal([np_onehot(l, converter.input_depth) for l in EXPECTED_UNSLICED_LABELS], tensors.inputs)
    assert_array_sets_equal(EXPECTED_UNSLICED_LABELS, [np.argmax(t, axis=-1) for t in tensors.outputs])
    assert all(t.dtype == bool and t.shape[1] == 90 for t in tensors.outputs)
    assert list(tensors.lengths) == [len(t) for t in tensors.inputs]
    assert all(c.shape == (n, 0) for c, n in zip(tensors.controls, tensors.lengths))


def test_unsliced_end_token(sequence):
    original = magenta(steps_per_quarter=1, slice_bars=None)
    converter = magenta(steps_per_quarter=1, slice_bars=None, add_end_token=True)
    assert original.end_token is None
    assert converter.input_depth == original.input_depth + 1 == converter.output_depth
    assert converter.end_token == original.output_depth
    expected = [np.append(l, [converter.end_token]) for l in EXPECTED_UNSLICED_LABELS]
    tensors = converter.to_tensors(sequence)
    assert_array_sets_equal([np_onehot(l, converter.input_depth) for l in expected], tensors.inputs)
    assert_array_sets_equal(expected, [np.argmax(t, axis=-1) for t in tensors.outputs])


def test_sliced(sequence):
    converter = magenta(steps_per_quarter=1, slice_bars=2, max_tensors_per_notesequence=None)
    tensors = converter.to_tensors(sequence)
    assert_array_sets_equal([np_onehot(l, converter.input_depth) for l in EXPECTED_SLICED_LABELS], tensors.inputs)
    assert_array_sets_equal(EXPECTED_SLICED_LABELS, [np.argmax(t, axis=-1) for t in tensors.outputs])
    # the stored tokens are those labels, window for window in the same order
    examples = converter.to_examples(sequence)
    assert len(examples) == len(tensors.outputs)
    for example, output in zip(examples, tensors.outputs):
        assert example["tokens"].dtype == np.int64 and example["tokens"].shape == (8,)
        np.testing.assert_array_equal(example["tokens"], np.argmax(output, axis=-1))


def test_max_outputs_per_note_sequence(sequence):
    assert len(magenta(steps_per_quarter=1, slice_bars=2, max_tensors_per_notesequence=2)
               .to_tensors(sequence).inputs) == 2
    assert len(magenta(steps_per_quarter=1, slice_bars=2, max_tensors_per_notesequence=3)
               .to_tensors(sequence).inputs) == 3
    assert len(magenta(steps_per_quarter=1, slice_bars=2, max_tensors_per_notesequence=100)
               .to_tensors(sequence).inputs) == 5


def test_to_note_sequence(sequence):
    only_track_0 = note_seq.NoteSequence()
    only_track_0.CopyFrom(sequence)
    del only_track_0.notes[:]
    only_track_0.notes.extend(n for n in sequence.notes if n.instrument == 0)
    converter = magenta(steps_per_quarter=1, slice_bars=4, max_tensors_per_notesequence=1)
    examples = converter.to_examples(only_track_0)
    assert len(examples) == 1
    expected = note_seq.NoteSequence(ticks_per_quarter=220)
    expected.tempos.add(qpm=120)
    testing_lib.add_track_to_sequence(expected, 0, [(32, 80, 1.0, 2.0), (33, 80, 3.0, 5.5), (34, 80, 5.5, 6.5)])
    assert converter.from_example(examples[0]) == expected


def test_input_is_not_modified(sequence):
    before = sequence.SerializeToString()
    magenta(steps_per_quarter=1, min_pitch=40).to_tensors(sequence)
    assert sequence.SerializeToString() == before


def _two_bar_melody(qpm=120.0):
    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=qpm)
    ns.time_signatures.add(numerator=4, denominator=4)
    testing_lib.add_track_to_sequence(ns, 0, [(60, 90, 0.0, 0.5), (62, 90, 0.5, 1.0), (64, 90, 1.0, 2.0),
                                              (67, 90, 2.25, 3.0), (65, 90, 3.0, 3.75)])
    ns.total_time = 4.0
    return ns


def test_round_trip_and_midi(tmp_path):
    converter = MelodyConverter.from_preset("cat-mel_2bar_small")
    ns = _two_bar_melody()
    (example,) = converter.to_examples(ns)
    assert example["tokens"].shape == (32,)
    back = converter.from_example(example)
    assert [(n.pitch, n.start_time, n.end_time) for n in back.notes] == \
           [(n.pitch, n.start_time, n.end_time) for n in ns.notes]
    assert back.tempos[0].qpm == 120
    assert converter.stats(example) == {"length": 32.0, "notes": 5.0}
    path = tmp_path / "melody.mid"
    note_seq.sequence_proto_to_midi_file(back, str(path))
    assert [n.pitch for n in note_seq.midi_file_to_note_sequence(str(path)).notes] == [60, 62, 64, 67, 65]


def test_skip_input_reasons():
    converter = MelodyConverter()
    with pytest.raises(SkipInput, match="no notes"):
        converter.to_examples(note_seq.NoteSequence(filename="empty.mid"))
    one_bar = _two_bar_melody()
    del one_bar.notes[2:]
    with pytest.raises(SkipInput, match="slice_bars=2") as info:
        converter.to_examples(one_bar)
    assert info.value.path == "<sequence>"
    with pytest.raises(SkipInput, match="pitch/program range"):
        MelodyConverter(min_pitch=80).to_examples(_two_bar_melody())
    waltz = _two_bar_melody()
    waltz.time_signatures[0].numerator = 3
    with pytest.raises(SkipInput, match="steps per bar"):
        converter.to_examples(waltz)
    # whatever the reason, nothing usable means SkipInput and an empty to_tensors
    assert converter.to_tensors(waltz).inputs == []


def test_params_presets_and_registry():
    converter = MelodyConverter.from_preset("cat-mel_2bar_small")
    params = converter.params()
    json.dumps(params)
    assert MelodyConverter(**params) == converter
    assert params["valid_programs"] == MEL_PROGRAMS and params["slice_bars"] == 2 and params["max_bars"] == 100
    assert converter.feature_spec() == {"tokens": Feature("int64", (32,))}
    assert converter.input_depth == converter.output_depth == 90
    hier = MelodyConverter.from_preset("hierdec-mel_16bar")
    assert hier.feature_spec()["tokens"].shape == (256,) and hier.valid_programs is None
    assert isinstance(get_converter("melody"), MelodyConverter)
    assert MelodyConverter(slice_bars=None).feature_spec()["tokens"].shape == (None,)
    with pytest.raises(ValueError):
        MelodyConverter.from_preset("nope")


@pytest.mark.parametrize("shift", [-5, -1, 0, 2, 6])  # a tritone up comes back down (-6..5)
def test_normalize_key_moves_the_tune_to_c_major(shift):
    """A C-major tune transposed by `shift` gives the C-major tune's tokens back; without the option, its own."""
    in_c = _two_bar_melody()
    testing_lib.add_track_to_sequence(in_c, 0, [(69, 90, 3.75, 3.875), (71, 90, 3.875, 4.0)])  # C major only
    moved = note_seq.NoteSequence()
    moved.CopyFrom(in_c)
    for note in moved.notes:
        note.pitch += shift
    before = moved.SerializeToString()
    converter = MelodyConverter(normalize_key=True)
    assert_array_sets_equal([e["tokens"] for e in converter.to_examples(moved)],
                            [e["tokens"] for e in MelodyConverter().to_examples(in_c)])
    assert moved.SerializeToString() == before  # the input is not transposed in place
    plain = [e["tokens"] for e in MelodyConverter().to_examples(moved)]
    if shift:
        assert not np.array_equal(plain[0], converter.to_examples(moved)[0]["tokens"])
    assert converter.params()["normalize_key"] and not MelodyConverter().params()["normalize_key"]

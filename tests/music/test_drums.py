"""DrumsConverter == Magenta's DrumsConverter (cases and expected labels from music_vae/data_test.py)."""

import json

import note_seq
import numpy as np
import pytest
from note_seq import testing_lib

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Feature
from musicgen_tf.music.drums import (FULL_DRUM_PITCH_CLASSES, REDUCED_DRUM_PITCH_CLASSES, DrumsConverter,
                                     load_drum_map)
from musicgen_tf.music.magenta_common import np_onehot
from musicgen_tf.music.representations import get_converter
from tests.music.test_melody import assert_array_sets_equal

NO_DRUMS = 0
# OneHotDrumsConverterTest.setUp
EXPECTED_UNSLICED_LABELS = [np.array(e) for e in [
    (1, 5, NO_DRUMS, NO_DRUMS, 2, NO_DRUMS, NO_DRUMS, NO_DRUMS),
    (NO_DRUMS, 1, NO_DRUMS, NO_DRUMS, NO_DRUMS, 2, NO_DRUMS, NO_DRUMS, 160, NO_DRUMS, NO_DRUMS, 256),
    (NO_DRUMS, 2, NO_DRUMS, NO_DRUMS, 160, NO_DRUMS, NO_DRUMS, 256),
]]
EXPECTED_SLICED_LABELS = [np.array(e) for e in [
    (1, 5, NO_DRUMS, NO_DRUMS, 2, NO_DRUMS, NO_DRUMS, NO_DRUMS),
    (NO_DRUMS, 1, NO_DRUMS, NO_DRUMS, NO_DRUMS, 2, NO_DRUMS, NO_DRUMS),
    (NO_DRUMS, 2, NO_DRUMS, NO_DRUMS, 160, NO_DRUMS, NO_DRUMS, 256),
]]


@pytest.fixture
def sequence():
    ns = note_seq.NoteSequence()
    ns.tempos.add(qpm=60)
    testing_lib.add_track_to_sequence(
        ns, 0, [(35, 100, 0, 10), (44, 55, 1, 2), (40, 45, 4, 5), (35, 45, 9, 10), (40, 45, 13, 13),
                (55, 120, 16, 18), (60, 100, 16, 17), (53, 99, 19, 20)], is_drum=True)
    testing_lib.add_track_to_sequence(
        ns, 1, [(35, 55, 1, 2), (40, 45, 25, 26), (55, 120, 28, 30), (60, 100, 28, 29), (53, 99, 31, 33)],
        is_drum=True)
    return ns


def magenta(**kwargs):
    """Magenta's DrumsConverter class defaults with the test's overrides."""
    return DrumsConverter(**{"max_bars": None, "slice_bars": None, "roll_input": False, **kwargs})


def labels_to_inputs(labels, converter):
    if not converter.roll_input:
        return [np_onehot(l, converter.input_depth) for l in labels]
    inputs = []  # RollInputsOneHotDrumsConverterTest.labels_to_inputs
    for label_arr in labels:
        input_ = np.zeros((len(label_arr), converter.input_depth), bool)
        for i, l in enumerate(label_arr):
            if l == converter.end_token:
                input_[i, -2] = 1
            elif l == 0:
                input_[i, -1] = 1
            else:
                j = 0
                while l:
                    input_[i, j] = l % 2
                    l >>= 1
                    j += 1
        inputs.append(input_)
    return inputs


@pytest.mark.parametrize("roll_input", [False, True])
def test_unsliced_and_sliced(sequence, roll_input):
    converter = magenta(steps_per_quarter=1, roll_input=roll_input)
    tensors = converter.to_tensors(sequence)
    assert_array_sets_equal(labels_to_inputs(EXPECTED_UNSLICED_LABELS, converter), tensors.inputs)
    assert_array_sets_equal(EXPECTED_UNSLICED_LABELS, [np.argmax(t, axis=-1) for t in tensors.outputs])

    converter = magenta(steps_per_quarter=1, slice_bars=2, roll_input=roll_input, max_tensors_per_notesequence=None)
    tensors = converter.to_tensors(sequence)
    assert_array_sets_equal(labels_to_inputs(EXPECTED_SLICED_LABELS, converter), tensors.inputs)
    assert_array_sets_equal(EXPECTED_SLICED_LABELS, [np.argmax(t, axis=-1) for t in tensors.outputs])
    for example, output in zip(converter.to_examples(sequence), tensors.outputs):
        assert example["tokens"].dtype == np.int64
        np.testing.assert_array_equal(example["tokens"], np.argmax(output, axis=-1))


@pytest.mark.parametrize("roll_input", [False, True])
def test_unsliced_end_token(sequence, roll_input):
    original = magenta(steps_per_quarter=1, roll_input=roll_input)
    converter = magenta(steps_per_quarter=1, roll_input=roll_input, add_end_token=True)
    assert original.end_token is None
    assert converter.input_depth == original.input_depth + 1
    assert converter.end_token == original.output_depth and converter.output_depth == original.output_depth + 1
    expected = [np.append(l, [converter.end_token]) for l in EXPECTED_UNSLICED_LABELS]
    tensors = converter.to_tensors(sequence)
    assert_array_sets_equal(labels_to_inputs(expected, converter), tensors.inputs)
    assert_array_sets_equal(expected, [np.argmax(t, axis=-1) for t in tensors.outputs])
    example = converter.to_examples(sequence)[0]
    assert example["tokens"][-1] == 512
    assert len(converter.from_example(example).notes) > 0


def test_max_outputs_per_note_sequence(sequence):
    for limit, count in [(2, 2), (3, 3), (100, 5)]:
        converter = magenta(steps_per_quarter=1, slice_bars=1, max_tensors_per_notesequence=limit)
        assert len(converter.to_tensors(sequence).inputs) == count


def test_to_note_sequence(sequence):
    only_track_1 = note_seq.NoteSequence()
    only_track_1.CopyFrom(sequence)
    del only_track_1.notes[:]
    only_track_1.notes.extend(n for n in sequence.notes if n.instrument == 1)
    converter = magenta(steps_per_quarter=1, slice_bars=2, max_tensors_per_notesequence=1)
    (example,) = converter.to_examples(only_track_1)
    expected = note_seq.NoteSequence(ticks_per_quarter=220)
    expected.tempos.add(qpm=120)
    testing_lib.add_track_to_sequence(expected, 9, [(38, 80, 0.5, 1.0), (48, 80, 2.0, 2.5), (49, 80, 2.0, 2.5),
                                                    (51, 80, 3.5, 4.0)], is_drum=True)
    assert converter.from_example(example) == expected


@pytest.fixture
def roll_sequence():
    ns = note_seq.NoteSequence()
    ns.tempos.add(qpm=60)
    testing_lib.add_track_to_sequence(
        ns, 0, [(35, 100, 0, 10), (35, 55, 1, 2), (44, 55, 1, 2), (40, 45, 4, 5), (35, 45, 9, 10), (40, 45, 13, 13),
                (55, 120, 16, 18), (60, 100, 16, 17), (53, 99, 19, 20), (40, 45, 33, 34), (55, 120, 36, 37),
                (60, 100, 36, 37), (53, 99, 39, 42)], is_drum=True)
    testing_lib.add_track_to_sequence(ns, 1, [(35, 100, 5, 10), (35, 55, 6, 8), (44, 55, 7, 9)], is_drum=False)
    return ns


def test_roll_outputs_sliced(roll_sequence):
    expected_events = [([0], [0, 2], [], [], [1], [], [], []),
                       ([], [0], [], [], [], [1], [], []),
                       ([], [1], [], [], [5, 7], [], [], [8])]
    expected_silent = np.array([[0, 0, 1, 1, 0, 1, 1, 1], [1, 0, 1, 1, 1, 0, 1, 1], [1, 0, 1, 1, 0, 1, 1, 0]])
    expected_outputs = np.zeros((3, 8, 9), bool)
    for i, events in enumerate(expected_events):
        for j, e in enumerate(events):
            expected_outputs[i, j, e] = 1
    converter = DrumsConverter(drum_map="reduced", slice_bars=2, steps_per_quarter=1, roll_input=True,
                               roll_output=True, max_tensors_per_notesequence=None, max_bars=None)
    assert converter.input_depth == 10 and converter.output_depth == 9
    tensors = converter.to_tensors(roll_sequence)
    assert_array_sets_equal(list(np.append(expected_outputs, expected_silent[..., None], axis=2)), tensors.inputs)
    assert_array_sets_equal(list(expected_outputs), tensors.outputs)
    # tokens are the bit-packed rows of the roll
    for example, roll in zip(converter.to_examples(roll_sequence), tensors.outputs):
        np.testing.assert_array_equal(example["tokens"], roll.astype(np.int64) @ (2 ** np.arange(9)))


def test_roll_outputs_to_note_sequence(roll_sequence):
    converter = DrumsConverter(drum_map="reduced", slice_bars=None, gap_bars=None, steps_per_quarter=1,
                               roll_input=True, roll_output=True, max_tensors_per_notesequence=None, max_bars=None)
    (example,) = converter.to_examples(roll_sequence)
    expected = note_seq.NoteSequence(ticks_per_quarter=220)
    expected.tempos.add(qpm=120)
    testing_lib.add_track_to_sequence(
        expected, 0, [(36, 80, 0, 0.5), (42, 80, 0.5, 1.0), (36, 80, 0.5, 1.0), (38, 80, 2.0, 2.5),
                      (36, 80, 4.5, 5.0), (38, 80, 6.5, 7.0), (48, 80, 8.0, 8.5), (49, 80, 8.0, 8.5),
                      (51, 80, 9.5, 10.0), (38, 80, 16.5, 17.0), (48, 80, 18.0, 18.5), (49, 80, 18.0, 18.5),
                      (51, 80, 19.5, 20.0)], is_drum=True)
    for n in expected.notes:
        n.instrument = 9
    back = converter.from_example(example)
    assert back == expected


def _groove(pitches=(36, 38, 42), qpm=120.0, bars=2):
    """Kick on beats 1/3, snare on 2/4, hats on 8ths, on a 16th grid."""
    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=qpm)
    ns.time_signatures.add(numerator=4, denominator=4)
    kick, snare, hat = pitches
    sixteenth = 60.0 / qpm / 4
    notes = []
    for step in range(16 * bars):
        t = step * sixteenth
        if step % 8 == 0:
            notes.append((kick, 100, t, t + sixteenth))
        if step % 8 == 4:
            notes.append((snare, 100, t, t + sixteenth))
        if step % 2 == 0:
            notes.append((hat, 70, t, t + sixteenth))
    testing_lib.add_track_to_sequence(ns, 9, notes, is_drum=True)
    return ns


def _hits(ns):
    return sorted((round(n.start_time, 6), n.pitch) for n in ns.notes)


def test_round_trip_default_preset(tmp_path):
    converter = DrumsConverter()  # cat-drums_2bar_small
    assert converter == DrumsConverter.from_preset("cat-drums_2bar_small")
    ns = _groove()
    (example,) = converter.to_examples(ns)
    assert example["tokens"].shape == (32,)
    back = converter.from_example(example)
    assert _hits(back) == _hits(ns)
    assert converter.stats(example) == {"length": 32.0, "notes": float(len(ns.notes))}
    note_seq.sequence_proto_to_midi_file(back, str(tmp_path / "drums.mid"))


def test_drum_maps():
    assert len(REDUCED_DRUM_PITCH_CLASSES) == 9 and len(FULL_DRUM_PITCH_CLASSES) == 61
    full = DrumsConverter(drum_map="full")
    assert full.num_classes == 61 and full.output_depth == 2 ** 61 and full.input_depth == 62
    ns = _groove(pitches=(35, 40, 44))  # second-choice pitches: their own classes in the full map
    (example,) = full.to_examples(ns)
    assert _hits(full.from_example(example)) == _hits(ns)
    # the reduced map folds them onto the class exemplars
    assert _hits(DrumsConverter().from_example(DrumsConverter().to_examples(ns)[0])) == _hits(_groove())


def test_custom_json_drum_map(tmp_path):
    path = tmp_path / "kit.json"
    path.write_text(json.dumps({"classes": [[36, 35], [38, 40, 37], [42, 44, 46]]}))
    converter = DrumsConverter(drum_map=str(path))
    assert converter.num_classes == 3 and converter.num_tokens == 8 and converter.input_depth == 4
    ns = _groove(pitches=(35, 40, 46))
    (example,) = converter.to_examples(ns)
    assert set(example["tokens"].tolist()) <= set(range(8))
    assert _hits(converter.from_example(example)) == _hits(_groove(pitches=(36, 38, 42)))
    params = converter.params()
    json.dumps(params)
    assert params["drum_map"] == [[36, 35], [38, 40, 37], [42, 44, 46]]
    assert DrumsConverter(**params) == converter


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ('[[36], [38]]', "expected an object"),
    ('{"classes": []}', "non-empty list"),
    ('{"classes": [[36], []]}', "class 1 must be a non-empty list"),
    ('{"classes": [[36], [38, 200]]}', "pitches must be integers 0..127"),
    ('{"classes": [[36], ["snare"]]}', "pitches must be integers"),
    ('{"classes": [[36, 38], [38]]}', "pitch 38 is in class 0 and class 1"),
])
def test_malformed_json_drum_map(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as info:
        DrumsConverter(drum_map=str(path))
    assert str(path) in str(info.value)


def test_missing_drum_map_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_drum_map(str(tmp_path / "missing.json"))


def test_skip_input_reasons():
    converter = DrumsConverter()
    with pytest.raises(SkipInput, match="no notes"):
        converter.to_examples(note_seq.NoteSequence(id="empty"))
    melodic = _groove()
    for n in melodic.notes:
        n.is_drum = False
    with pytest.raises(SkipInput, match="drum map") as info:
        converter.to_examples(melodic)
    assert info.value.path == "<sequence>"
    with pytest.raises(SkipInput, match="slice_bars=2"):
        converter.to_examples(_groove(bars=1))
    assert converter.to_tensors(_groove(bars=1)).outputs == []


def test_params_and_registry():
    converter = DrumsConverter.from_preset("nade-drums_2bar_full")
    params = converter.params()
    json.dumps(params)
    assert params["drum_map"] == "full" and params["roll_output"] is True
    assert DrumsConverter(**params) == converter
    assert converter.feature_spec() == {"tokens": Feature("int64", (32,))}
    assert isinstance(get_converter("drums"), DrumsConverter)
    default = get_converter("drums")
    assert default.input_depth == 10 and default.output_depth == 512 and default.num_tokens == 512

"""GrooveConverter == Magenta's GrooveConverter (cases from music_vae/data_test.py GrooveConverterTest)."""

import json

import note_seq
import numpy as np
import pytest
from note_seq import testing_lib

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Feature
from musicgen_tf.music.drums import REDUCED_DRUM_PITCH_CLASSES, ROLAND_DRUM_PITCH_CLASSES
from musicgen_tf.music.groovae import FEATURES, GrooveConverter
from musicgen_tf.music.representations import get_converter

KICK, SNARE, CLOSED_HH, TAP = (REDUCED_DRUM_PITCH_CLASSES[i][0] for i in range(4))  # 36, 38, 42, 46


def _sequence(notes, is_drum=True):
    ns = note_seq.NoteSequence()
    ns.ticks_per_quarter = 240
    ns.tempos.add(qpm=120)
    ns.time_signatures.add(numerator=4, denominator=4)
    testing_lib.add_track_to_sequence(ns, 9, notes, is_drum=is_drum)
    return ns


# 0.125 s is a sixteenth note at 120 bpm.
ONE_BAR = [(KICK, 80, 0, 0.125), (CLOSED_HH, 72, 0, 0.125), (CLOSED_HH, 127, 0.26125, 0.375),
           (SNARE, 103, 0.5, 0.625), (CLOSED_HH, 107, 0.5, 0.625), (CLOSED_HH, 80, 0.75, 0.825),
           (KICK, 80, 1, 1.125), (CLOSED_HH, 80, 1, 1.125), (CLOSED_HH, 80, 1.25, 1.375),
           (SNARE, 82, 1.523, 1.625), (CLOSED_HH, 80, 1.5, 1.625), (CLOSED_HH, 80, 1.75, 1.825)]
TWO_BAR = [(KICK, 80, 0, 0.125), (CLOSED_HH, 72, 0, 0.125), (CLOSED_HH, 127, 0.26, 0.375),
           (SNARE, 103, 0.5, 0.625), (CLOSED_HH, 107, 0.5, 0.625), (CLOSED_HH, 80, 0.75, 0.825),
           (KICK, 80, 1, 1.125), (CLOSED_HH, 80, 1, 1.125), (CLOSED_HH, 80, 1.25, 1.375),
           (SNARE, 80, 1.5, 1.625), (CLOSED_HH, 80, 1.5, 1.625), (CLOSED_HH, 80, 1.75, 1.825),
           (KICK, 80, 2, 2.125), (CLOSED_HH, 72, 2, 2.125), (CLOSED_HH, 127, 2.25, 2.375),
           (SNARE, 103, 2.5, 2.625), (CLOSED_HH, 107, 2.5, 2.625), (CLOSED_HH, 80, 2.75, 2.825),
           (KICK, 80, 3.06, 3.125), (CLOSED_HH, 109, 3, 3.125), (CLOSED_HH, 80, 3.25, 3.375),
           (SNARE, 80, 3.5, 3.625), (CLOSED_HH, 80, 3.50, 3.625), (CLOSED_HH, 90, 3.75, 3.825)]
TAP_NOTES = [(TAP, 80, 0, 0.125), (TAP, 127, 0.26125, 0.375), (TAP, 107, 0.5, 0.625), (TAP, 80, 0.75, 0.825),
             (TAP, 80, 1, 1.125), (TAP, 80, 1.25, 1.375), (TAP, 82, 1.523, 1.625), (TAP, 80, 1.75, 1.825)]
QUANTIZED = [(p, 0, s, e) for p, _, s, e in ONE_BAR]
for _i in (2, 9):  # the off-grid notes land on their grid step
    QUANTIZED[_i] = (QUANTIZED[_i][0], 0, {2: 0.25, 9: 1.5}[_i], QUANTIZED[_i][3])
NO_CLOSED_HH = [n for n in ONE_BAR if n[0] != CLOSED_HH]
NO_SNARE = [n for n in ONE_BAR if n[0] != SNARE]


def converter(**kwargs):
    return GrooveConverter(**{"split_bars": None, "steps_per_quarter": 4, "quarters_per_bar": 4, **kwargs})


def split(tensor):
    """One Magenta [T, 3C] tensor -> our example dict."""
    return dict(zip(FEATURES, np.split(tensor, 3, axis=1)))


def assert_same_notes(expected, actual_ns, exact=True):
    """Magenta's compare_notes: zip, (pitch, start_time, velocity) equal."""
    for (pitch, velocity, start, _), note in zip(expected, actual_ns.notes):
        assert note.pitch == pitch and note.velocity == velocity
        if exact:
            assert note.start_time == start
        else:
            assert note.start_time == pytest.approx(start, abs=1e-6)


def test_to_tensor_and_note_sequence():
    conv = converter()
    tensors = conv.to_tensors(_sequence(ONE_BAR))
    assert tensors.outputs[0].shape == (16, 27)
    assert_same_notes(ONE_BAR, conv.from_example(split(tensors.outputs[0])))
    tensors = conv.to_tensors(_sequence(TWO_BAR))
    assert len(tensors.outputs) == 1 and tensors.outputs[0].shape == (32, 27)
    assert_same_notes(TWO_BAR, conv.from_example(split(tensors.outputs[0])))


def test_one_bar_tensor_literal():
    out = converter().to_tensors(_sequence(ONE_BAR)).outputs[0]
    hits, velocities, offsets = np.split(out, 3, axis=1)
    expected_hits = np.zeros((16, 9))
    expected_hits[[0, 8], 0] = 1
    expected_hits[[4, 12], 1] = 1
    expected_hits[[0, 2, 4, 6, 8, 10, 12, 14], 2] = 1
    np.testing.assert_array_equal(hits, expected_hits)
    assert velocities[2, 2] == 127 / 127 and velocities[4, 1] == 103 / 127 and velocities[0, 2] == 72 / 127
    assert offsets[2, 2] == pytest.approx(-0.18) and offsets[12, 1] == pytest.approx(-0.368)
    assert np.count_nonzero(offsets) == 2


def test_to_tensor_and_note_sequence_with_slicing():
    conv = converter(split_bars=1)
    tensors = conv.to_tensors(_sequence(ONE_BAR))
    assert len(tensors.outputs) == 1 and tensors.outputs[0].shape == (16, 27)
    assert_same_notes(ONE_BAR, conv.from_example(split(tensors.outputs[0])))
    tensors = conv.to_tensors(_sequence(TWO_BAR))
    assert [t.shape for t in tensors.outputs] == [(16, 27), (16, 27)]
    assert_same_notes([n for n in TWO_BAR if n[2] < 2], conv.from_example(split(tensors.outputs[0])))
    assert_same_notes([(p, v, s - 2, e - 2) for p, v, s, e in TWO_BAR if s >= 2],
                      conv.from_example(split(tensors.outputs[1])))


def test_tapify():
    conv = converter(tapify=True)
    tensors = conv.to_tensors(_sequence(ONE_BAR))
    assert_same_notes(ONE_BAR, conv.from_example(split(tensors.outputs[0])))
    assert_same_notes(TAP_NOTES, conv.from_example(split(tensors.inputs[0])))


def test_tap_with_fixed_velocity():
    conv = converter(tapify=True, fixed_velocities=True)
    tensors = conv.to_tensors(_sequence(ONE_BAR))
    assert_same_notes(ONE_BAR, conv.from_example(split(tensors.outputs[0])))
    assert_same_notes([(p, 0, s, e) for p, _, s, e in TAP_NOTES], conv.from_example(split(tensors.inputs[0])))


def test_tap_with_note_dropout():
    tap = converter(tapify=True, fixed_velocities=True)
    dropout = converter(tapify=True, fixed_velocities=True, max_note_dropout_probability=0.8)
    tap_inputs = tap.from_example(split(tap.to_tensors(_sequence(ONE_BAR)).inputs[0]))
    tensors = dropout.to_tensors(_sequence(ONE_BAR))
    assert_same_notes(ONE_BAR, dropout.from_example(split(tensors.outputs[0])))
    assert len(dropout.from_example(split(tensors.inputs[0])).notes) <= len(tap_inputs.notes)


def test_humanize():
    conv = converter(humanize=True)
    tensors = conv.to_tensors(_sequence(ONE_BAR))
    assert_same_notes(ONE_BAR, conv.from_example(split(tensors.outputs[0])))
    assert_same_notes(QUANTIZED, conv.from_example(split(tensors.inputs[0])))
    # the stored example is the output; make_inputs rebuilds Magenta's input from it
    (example,) = conv.to_examples(_sequence(ONE_BAR))
    np.testing.assert_allclose(np.concatenate(conv.make_inputs(*(example[f] for f in FEATURES)), axis=1),
                               tensors.inputs[0], atol=1e-7)


def test_add_instruments():
    for removed, expected in [(2, NO_CLOSED_HH), (1, NO_SNARE)]:
        conv = converter(add_instruments=[removed])
        tensors = conv.to_tensors(_sequence(ONE_BAR))
        assert_same_notes(ONE_BAR, conv.from_example(split(tensors.outputs[0])))
        assert_same_notes(expected, conv.from_example(split(tensors.inputs[0])))


def test_cycle_data():
    conv = converter(split_bars=1, hop_size=4)
    tensors = conv.to_tensors(_sequence(TWO_BAR))
    assert len(tensors.outputs) == 5 and all(t.shape == (16, 27) for t in tensors.outputs)
    assert len(conv.to_examples(_sequence(TWO_BAR))) == 5


def test_hits_as_controls():
    tensors = converter(hits_as_controls=True).to_tensors(_sequence(ONE_BAR))
    assert tensors.controls[0].shape == (16, 9) and tensors.controls[0].dtype == bool
    np.testing.assert_array_equal(tensors.controls[0], tensors.outputs[0][:, :9] > 0)


def test_small_drum_set():
    small = [REDUCED_DRUM_PITCH_CLASSES[0],
             REDUCED_DRUM_PITCH_CLASSES[1] + REDUCED_DRUM_PITCH_CLASSES[4] + REDUCED_DRUM_PITCH_CLASSES[5] +
             REDUCED_DRUM_PITCH_CLASSES[6],
             REDUCED_DRUM_PITCH_CLASSES[2] + REDUCED_DRUM_PITCH_CLASSES[8],
             REDUCED_DRUM_PITCH_CLASSES[3] + REDUCED_DRUM_PITCH_CLASSES[7]]
    conv = converter(pitch_classes=small, inference_pitch_classes=None)
    tensors = conv.to_tensors(_sequence(ONE_BAR))
    assert tensors.outputs[0].shape == (16, 12)
    assert_same_notes(ONE_BAR, conv.from_example(split(tensors.outputs[0])))


def test_mode_mappings():
    conv = converter(pitch_classes=[[0, 1], [2, 3]], inference_pitch_classes=[[1, 2], [3, 0]], drums_only=False)
    seq = _sequence([(0, 50, 0, 0), (1, 60, 0.25, 0.25), (2, 70, 0.5, 0.5), (3, 80, 0.75, 0.75)], is_drum=False)
    default = conv.from_example(split(conv.to_tensors(seq).outputs[0]))
    assert_same_notes([(0, 50, 0, 0), (0, 60, 0.25, 0), (2, 70, 0.5, 0), (2, 80, 0.75, 0)], default)
    infer = conv.from_example(split(conv.to_tensors(seq, inference=True).outputs[0]), inference=True)
    assert_same_notes([(3, 50, 0, 0), (1, 60, 0.25, 0), (1, 70, 0.5, 0), (3, 80, 0.75, 0)], infer)


def test_round_trip_examples(tmp_path):
    conv = GrooveConverter.from_preset("groovae_2bar_humanize")
    (example,) = conv.to_examples(_sequence(TWO_BAR))
    assert set(example) == set(FEATURES)
    assert all(example[f].dtype == np.float32 and example[f].shape == (32, 9) for f in FEATURES)
    back = conv.from_example(example)
    assert_same_notes(TWO_BAR, back, exact=False)
    assert conv.stats(example) == {"length": 32.0, "notes": float(len(TWO_BAR))}
    assert back.tempos[0].qpm == 120
    note_seq.sequence_proto_to_midi_file(back, str(tmp_path / "groove.mid"))
    # decoding with the inference (reduced GM) map only renames the toms
    assert [n.pitch for n in conv.from_example(example, inference=True).notes] == [n.pitch for n in back.notes]


def test_skip_input_reasons():
    conv = GrooveConverter()
    with pytest.raises(SkipInput, match="no notes"):
        conv.to_examples(note_seq.NoteSequence(filename="empty.mid"))
    with pytest.raises(SkipInput, match="split_bars=2") as info:
        conv.to_examples(_sequence(ONE_BAR))
    assert info.value.path == "<sequence>"
    assert conv.to_tensors(_sequence(ONE_BAR)).outputs == []
    with pytest.raises(SkipInput, match="drum map"):
        conv.to_examples(_sequence([(60, 80, 0, 0.125)]))
    with pytest.raises(SkipInput, match="drum map"):
        conv.to_examples(_sequence(TWO_BAR, is_drum=False))


def test_custom_json_map_params_and_registry(tmp_path):
    path = tmp_path / "kit.json"
    path.write_text(json.dumps({"classes": [[36], [38, 40], [42, 44], [46]]}))
    conv = GrooveConverter(pitch_classes=str(path), inference_pitch_classes=str(path), tapify=True)
    assert conv.feature_spec() == {f: Feature("float32", (32, 4)) for f in FEATURES}
    params = conv.params()
    json.dumps(params)
    assert GrooveConverter(**params) == conv
    (example,) = conv.to_examples(_sequence(TWO_BAR))
    assert_same_notes(TWO_BAR, conv.from_example(example), exact=False)
    with pytest.raises(ValueError, match="bad.json"):
        (tmp_path / "bad.json").write_text('{"classes": 3}')
        GrooveConverter(pitch_classes=str(tmp_path / "bad.json"))

    default = get_converter("groovae")
    assert isinstance(default, GrooveConverter) and not (default.humanize or default.tapify)
    assert default.pitch_classes == ROLAND_DRUM_PITCH_CLASSES
    assert GrooveConverter.from_preset("groovae_4bar").sequence_length == 64
    assert GrooveConverter(**default.params()) == default

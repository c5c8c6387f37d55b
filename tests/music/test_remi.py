"""REMI converter: exact tokens on hand-built NoteSequences, meters, chords, tempo and exact round trips."""

import json

import numpy as np
import pytest
from note_seq import testing_lib
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.remi import EOS_ID, PAD_ID, RemiConverter, parse_chord_label
from musicgen_tf.music.representations import get_converter

UNKNOWN = music_pb2.NoteSequence.TextAnnotation.UNKNOWN
CHORD_SYMBOL = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL


def sequence(notes, qpm=120.0, meters=((0.0, 4, 4),), markers=()):
    """notes: (pitch, velocity, start_s, end_s); meters: (time_s, n, d); markers: (time_s, text) as MIDI markers."""
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    ns.tempos.add(time=0.0, qpm=qpm)
    for time, numerator, denominator in meters:
        ns.time_signatures.add(time=time, numerator=numerator, denominator=denominator)
    for time, text in markers:
        ns.text_annotations.add(time=time, text=text, annotation_type=UNKNOWN)
    testing_lib.add_track_to_sequence(ns, 0, notes)
    return ns


def roundtrip(converter, tokens):
    ns = converter.decode(tokens)
    return converter.encode(ns)


def test_vocabulary_is_deterministic_and_params_rebuild_the_converter():
    converter = RemiConverter()
    assert converter.vocab.id_to_token(PAD_ID) == "PAD" and converter.vocab.id_to_token(EOS_ID) == "EOS"
    assert converter.vocab.tokens == RemiConverter().vocab.tokens
    assert converter.vocab_size == len(converter.vocab.tokens) == len(set(converter.vocab.tokens))
    for token in ["Bar_None", "Position_5/16", "Position_12/12", "Position_14/14", "TimeSig_7/8", "Chord_C:maj",
                  "Chord_N:N", "Tempo-Class_mid", "Tempo-Value_59", "Note-Velocity_31", "Note-On_60",
                  "Note-Duration_64"]:
        assert converter.vocab.id_to_token(converter.vocab.token_to_id(token)) == token
    assert "Note-Duration_65" not in converter.vocab and "Note-Velocity_32" not in converter.vocab
    params = json.loads(json.dumps(converter.params()))
    assert RemiConverter(**params) == converter
    assert get_converter("remi", **params).vocab.tokens == converter.vocab.tokens
    finer = RemiConverter(positions_per_quarter=12)
    assert "Position_48/48" in finer.vocab and "Position_36/36" in finer.vocab
    with pytest.raises(ValueError, match="not in the REMI vocabulary"):
        converter.vocab.token_to_id("Pitch_60")


def test_exact_tokens_4_4():
    ns = sequence([(60, 80, 0.0, 0.5), (64, 100, 0.0, 0.5), (62, 80, 0.5, 1.0), (67, 127, 2.5, 4.5)])
    tokens = RemiConverter(chords="none").encode(ns)
    assert tokens == [
        "Bar_None", "TimeSig_4/4",
        "Position_1/16", "Tempo-Class_mid", "Tempo-Value_30",
        "Note-Velocity_20", "Note-On_60", "Note-Duration_4",
        "Note-Velocity_25", "Note-On_64", "Note-Duration_4",
        "Position_5/16", "Note-Velocity_20", "Note-On_62", "Note-Duration_4",
        "Bar_None",
        "Position_5/16", "Note-Velocity_31", "Note-On_67", "Note-Duration_16",
        "EOS"]


def test_examples_are_ids_ending_with_eos_and_stats():
    converter = RemiConverter(chords="none")
    (example,) = converter.to_examples(sequence([(60, 80, 0.0, 0.5), (62, 80, 4.0, 4.5)]))
    assert set(example) == set(converter.feature_spec()) == {"tokens"}
    assert example["tokens"].dtype == np.int64 and example["tokens"].ndim == 1
    assert example["tokens"][-1] == EOS_ID
    assert converter.tokens_to_strings(example["tokens"])[:2] == ["Bar_None", "TimeSig_4/4"]
    assert converter.count_bars(example["tokens"]) == 3
    stats = converter.stats(example)
    assert stats["bars"] == 3 and stats["notes"] == 2 and stats["length"] == len(example["tokens"])


def test_unquantized_times_snap_to_grid_and_durations_clip():
    ns = sequence([(60, 80, 0.01, 0.49), (62, 80, 0.51, 0.52), (64, 80, 1.0, 60.0)])
    tokens = RemiConverter(chords="none").encode(ns)
    durations = [t for t in tokens if t.startswith("Note-Duration")]
    assert durations == ["Note-Duration_4", "Note-Duration_1", "Note-Duration_64"]
    assert tokens.count("Position_5/16") == 1 and tokens.count("Position_9/16") == 1


def test_three_four_and_seven_eight_bars():
    # 3/4 at 120 qpm: a bar is 1.5 s and 12 positions.
    waltz = sequence([(60, 80, 0.0, 0.5), (64, 80, 1.0, 1.5), (67, 80, 1.5, 2.0)], meters=[(0.0, 3, 4)])
    tokens = RemiConverter(chords="none").encode(waltz)
    assert tokens[:2] == ["Bar_None", "TimeSig_3/4"]
    assert [t for t in tokens if t.startswith(("Position", "Bar"))] == [
        "Bar_None", "Position_1/12", "Position_9/12", "Bar_None", "Position_1/12"]
    # 7/8: 3.5 quarters = 14 positions = 1.75 s.
    seven = sequence([(60, 80, 0.0, 0.25), (62, 80, 1.5, 1.75), (64, 80, 1.75, 2.0)], meters=[(0.0, 7, 8)])
    tokens = RemiConverter(chords="none").encode(seven)
    assert [t for t in tokens if t.startswith(("Position", "Bar", "TimeSig"))] == [
        "Bar_None", "TimeSig_7/8", "Position_1/14", "Position_13/14", "Bar_None", "Position_1/14"]
    converter = RemiConverter(chords="none")
    for ns in (waltz, seven):
        assert roundtrip(converter, converter.encode(ns)) == converter.encode(ns)


def test_meter_change_emits_timesig_at_the_bar_and_round_trips():
    # One 4/4 bar (2 s) then 3/4 bars; the 3/4 bar starts at 2 s.
    ns = sequence([(60, 80, 0.0, 1.0), (62, 80, 2.0, 2.5), (64, 80, 3.5, 4.0)], meters=[(0.0, 4, 4), (2.0, 3, 4)])
    converter = RemiConverter(chords="none")
    tokens = converter.encode(ns)
    assert [t for t in tokens if t.startswith(("Position", "Bar", "TimeSig"))] == [
        "Bar_None", "TimeSig_4/4", "Position_1/16", "Bar_None", "TimeSig_3/4", "Position_1/12",
        "Bar_None", "Position_1/12"]
    decoded = converter.decode(tokens)
    assert [(ts.time, ts.numerator, ts.denominator) for ts in decoded.time_signatures] == [(0.0, 4, 4), (2.0, 3, 4)]
    assert roundtrip(converter, tokens) == tokens


def test_meter_change_inside_a_bar_applies_at_the_next_bar_line():
    ns = sequence([(60, 80, 0.0, 1.0), (62, 80, 2.0, 2.5)], meters=[(0.0, 4, 4), (1.0, 3, 4)])
    tokens = RemiConverter(chords="none").encode(ns)
    assert tokens.index("TimeSig_3/4") == tokens.index("Bar_None", 1) + 1


def test_tempo_change_tokens_and_round_trip():
    ns = sequence([(60, 80, 0.0, 0.5), (62, 80, 2.0, 2.5)], qpm=120.0)
    ns.tempos.add(time=2.0, qpm=72.4)  # bar 2 at 72 qpm -> slow class, value 42
    ns.tempos.add(time=2.5, qpm=300.0)  # clipped to 209 (fast, 59), after the last onset -> dropped
    converter = RemiConverter(chords="none")
    tokens = converter.encode(ns)
    assert tokens[tokens.index("Bar_None", 1):][:4] == ["Bar_None", "Position_1/16", "Tempo-Class_slow",
                                                         "Tempo-Value_42"]
    assert "Tempo-Class_fast" not in tokens
    decoded = converter.decode(tokens)
    assert [(t.time, t.qpm) for t in decoded.tempos] == [(0.0, 120.0), (2.0, 72.0)]
    assert decoded.notes[1].start_time == pytest.approx(2.0)
    assert decoded.notes[1].end_time == pytest.approx(2.0 + 0.5 * 60 / 72)  # 0.6 quarter snapped to 2 steps
    assert roundtrip(converter, tokens) == tokens


def test_exact_round_trip_from_tokens_with_chords_tempi_and_meters():
    converter = RemiConverter()
    tokens = [
        "Bar_None", "TimeSig_4/4", "Position_1/16", "Chord_A:min7", "Tempo-Class_fast", "Tempo-Value_10",
        "Note-Velocity_12", "Note-On_45", "Note-Duration_16", "Note-Velocity_20", "Note-On_60", "Note-Duration_2",
        "Position_3/16", "Note-Velocity_20", "Note-On_64", "Note-Duration_64",
        "Position_9/16", "Chord_D:dom7", "Note-Velocity_31", "Note-On_66", "Note-Duration_7",
        "Bar_None", "Bar_None", "TimeSig_7/8", "Position_4/14", "Chord_N:N", "Tempo-Class_slow", "Tempo-Value_0",
        "Note-Velocity_1", "Note-On_21", "Note-Duration_1", "Note-Velocity_1", "Note-On_108", "Note-Duration_3",
        "Bar_None", "TimeSig_3/4", "Position_12/12", "Chord_G#:hdim7", "Note-Velocity_5", "Note-On_68",
        "Note-Duration_1", "EOS"]
    ns = converter.decode(tokens)
    assert [a.text for a in ns.text_annotations] == ["Am7", "D7", "N.C.", "G#m7b5"]
    assert all(a.annotation_type == CHORD_SYMBOL for a in ns.text_annotations)
    assert converter.encode(ns) == tokens
    ids = converter.strings_to_tokens(tokens)
    assert converter.to_examples(converter.from_example({"tokens": ids}))[0]["tokens"].tolist() == ids.tolist()


def test_decoder_tolerates_generated_noise():
    converter = RemiConverter()
    tokens = ["Note-On_60", "Position_3/16", "Bar_None", "Position_2/16", "Note-On_60", "Note-Duration_4",
              "Note-On_61", "Position_5/16", "PAD", "Tempo-Value_3", "EOS", "Bar_None", "Note-On_70"]
    ns = converter.decode(tokens)
    assert [(n.pitch, n.start_time, n.end_time) for n in ns.notes] == [(60, 0.125, 0.625)]
    assert converter.from_example({"tokens": np.array([0, 0], dtype=np.int64)}).notes == []


def test_marker_chords_are_read_and_other_markers_ignored():
    notes = [(60, 80, 0.0, 2.0), (64, 80, 0.0, 2.0), (57, 80, 2.0, 4.0), (60, 80, 2.0, 4.0), (55, 80, 3.0, 4.0)]
    markers = [(0.0, "global_bpm_120"), (0.0, "C_M"), (1.0, "A"), (2.0, "A_m"), (3.0, "Boundary_1"), (3.0, "G7"),
               (5.0, "F_M")]  # rehearsal mark "A" and non-chord markers ignored; F after the last onset dropped
    tokens = RemiConverter().encode(sequence(notes, markers=markers))
    assert [t for t in tokens if t.startswith("Chord_")] == ["Chord_C:maj", "Chord_A:min", "Chord_G:dom7"]
    assert tokens[tokens.index("Chord_G:dom7") - 1] == "Position_9/16"  # 3 s = 6 quarters = bar 2, step 9


def test_chords_are_inferred_when_there_are_no_markers():
    c_major = [(p, 80, 0.0, 2.0) for p in (48, 60, 64, 67)]
    f_major = [(p, 80, 2.0, 4.0) for p in (53, 60, 65, 69)]
    ns = sequence(c_major + f_major)
    tokens = RemiConverter().encode(ns)
    assert [t for t in tokens if t.startswith("Chord_")] == ["Chord_C:maj", "Chord_F:maj"]
    assert tokens.index("Chord_F:maj") == tokens.index("Bar_None", 1) + 2  # Bar, Position_1/16, Chord
    assert [t for t in RemiConverter(chords="markers").encode(ns) if t.startswith("Chord_")] == []
    assert ns.text_annotations == []  # the input is not modified


def test_no_recognisable_chord_gives_no_chord_tokens():
    tokens = RemiConverter().encode(sequence([(60, 80, 0.0, 1.0), (62, 80, 1.0, 2.0)]))
    assert not any(t.startswith("Chord_") for t in tokens)


@pytest.mark.parametrize("text, strict, expected", [
    ("C_M", True, "C:maj"), ("C:maj", True, "C:maj"), ("Am", True, "A:min"), ("Bb7", True, "A#:dom7"),
    ("B_/o7", True, "B:hdim7"), ("E_o7", True, "E:dim7"), ("D_+", True, "D:aug"), ("F#_sus4", True, "F#:sus4"),
    ("N_N", True, "N:N"), ("N.C.", True, "N:N"), ("Ebmaj7", True, "D#:maj7"), ("C:dom", True, "C:dom7"),
    ("A", True, None), ("A", False, "A:maj"), ("Verse", True, None), ("global_key_C", True, None),
])
def test_parse_chord_label(text, strict, expected):
    assert parse_chord_label(text, strict=strict) == expected


def test_repeat_position_follows_the_paper_code():
    ns = sequence([(60, 80, 0.0, 0.5), (64, 80, 0.0, 0.5)])
    converter = RemiConverter(chords="none", repeat_position=True)
    tokens = converter.encode(ns)
    assert tokens[2:] == ["Position_1/16", "Tempo-Class_mid", "Tempo-Value_30",
                          "Position_1/16", "Note-Velocity_20", "Note-On_60", "Note-Duration_4",
                          "Position_1/16", "Note-Velocity_20", "Note-On_64", "Note-Duration_4", "EOS"]
    assert roundtrip(converter, tokens) == tokens


def test_first_bars_prompt_and_count():
    converter = RemiConverter(chords="none")
    ns = sequence([(60, 80, 2.0 * bar, 2.0 * bar + 0.5) for bar in range(10)])
    ids = converter.to_examples(ns)[0]["tokens"]
    assert converter.count_bars(ids) == 10
    prompt = converter.first_bars(ids, 8)
    assert converter.count_bars(prompt) == 8 and EOS_ID not in prompt
    assert converter.tokens_to_strings(prompt)[-1] == "Note-Duration_4"


def test_skip_inputs():
    converter = RemiConverter()
    empty = music_pb2.NoteSequence(filename="empty.mid")
    with pytest.raises(SkipInput) as info:
        converter.to_examples(empty)
    assert info.value.reason == "no pitched notes" and info.value.path == "empty.mid"
    drums = sequence([(36, 80, 0.0, 0.1)])
    drums.notes[0].is_drum = True
    with pytest.raises(SkipInput, match="no pitched notes"):
        converter.to_examples(drums)
    odd = sequence([(60, 80, 0.0, 0.5)], meters=[(0.0, 11, 16)])
    with pytest.raises(SkipInput) as info:
        converter.to_examples(odd)
    assert info.value.reason == "unsupported time signature"

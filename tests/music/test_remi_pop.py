"""The Pop Music Transformer's REMI flavour (issue 17 part 1): its events, exactly, from hand-built pieces and
from MIDI files whose events the original's own `utils.py` extracted (tests/data/remi/events.json)."""

import json
from pathlib import Path

import numpy as np
import pytest
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.music.remi import RemiConverter
from musicgen_tf.music.remi_pop import FLAVOUR, PopMusicRemiConverter, default_vocabulary
from musicgen_tf.music.representations import converter_from_config

DATA = Path(__file__).resolve().parents[1] / "data" / "remi"


def pop(chords=False, order_seed=None):
    names = default_vocabulary(chords=chords)
    if order_seed is not None:
        names = [names[i] for i in np.random.default_rng(order_seed).permutation(len(names))]
    return RemiConverter(flavour=FLAVOUR, vocabulary=names)


def sequence(notes, tempos=((0.0, 120.0),)):
    """notes: (pitch, velocity, start beat, end beat) at the first tempo."""
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    for time, qpm in tempos:
        ns.tempos.add(time=time, qpm=qpm)
    spb = 60.0 / tempos[0][1]
    for pitch, velocity, start, end in notes:
        ns.notes.add(pitch=pitch, velocity=velocity, start_time=start * spb, end_time=end * spb)
    ns.total_time = max(n.end_time for n in ns.notes)
    return ns


def test_the_flavour_is_a_converter_parameter_and_ours_stays_the_default():
    assert type(RemiConverter()) is RemiConverter
    converter = pop()
    assert isinstance(converter, PopMusicRemiConverter)
    again = converter_from_config(converter.get_config())
    assert again == converter and again.vocab.tokens == converter.vocab.tokens
    with pytest.raises(ValueError, match="flavour"):
        RemiConverter(flavour="jazz")
    assert not any(t.startswith(("TimeSig", "PAD", "EOS")) for t in converter.vocab.tokens)


def test_events_of_a_hand_built_piece():
    # bar 1: C4 quarter + E4 eighth; bar 2 empty (dropped); bar 3: G4 whole note; 120 qpm throughout.
    ns = sequence([(60, 64, 0, 1), (64, 100, 1, 1.5), (67, 80, 8, 12), (72, 80, 8.5, 9)])
    events = pop().events(ns)
    assert events == [
        "Bar_None", "Position_1/16", "Tempo Class_mid", "Tempo Value_30",  # one Tempo pair: the last change is at 0
        "Position_1/16", "Note Velocity_16", "Note On_60", "Note Duration_7",  # 480 ticks = 8 32nds = bin 7
        "Position_5/16", "Note Velocity_25", "Note On_64", "Note Duration_3",
        "Bar_None", "Position_1/16", "Note Velocity_20", "Note On_67", "Note Duration_31",
        # the last onset (beat 8.5) snaps to the grid below it: the original's grid stops before the last onset
        "Position_2/16", "Note Velocity_20", "Note On_72", "Note Duration_3"]


def test_tempo_on_every_beat_up_to_the_last_change_and_classes():
    ns = sequence([(60, 64, 0, 1), (62, 64, 3, 4)], tempos=((0.0, 120.0), (1.5, 200.0)))  # change at beat 3
    events = pop().events(ns)
    tempo_pairs = [tuple(events[i + 1:i + 3]) for i, e in enumerate(events) if e.startswith("Position")
                   and events[i + 1].startswith("Tempo Class")]
    assert tempo_pairs == [("Tempo Class_mid", "Tempo Value_30")] * 3 + [("Tempo Class_fast", "Tempo Value_50")]


def test_chords_only_with_a_chord_dictionary_and_in_its_quality_names():
    g7 = [(43, 80, 0, 4), (59, 80, 0, 4), (62, 80, 0, 4), (65, 80, 0, 4), (67, 80, 4, 5)]
    assert not any(e.startswith("Chord") for e in pop().events(sequence(g7)))
    events = pop(chords=True).events(sequence(g7))
    assert events[:3] == ["Bar_None", "Position_1/16", "Chord_G:dom"]


def test_ids_follow_the_dictionarys_order_and_round_trip():
    shuffled, plain = pop(order_seed=3), pop()
    ns = sequence([(60, 64, 0, 1), (64, 100, 1, 1.5), (67, 80, 4, 6), (55, 30, 6.25, 7)])
    ids = shuffled.encode_ids(ns)
    assert shuffled.tokens_to_strings(ids) == plain.tokens_to_strings(plain.encode_ids(ns))
    assert not np.array_equal(ids, plain.encode_ids(ns))
    decoded = shuffled.from_example({"tokens": ids})  # 4/4 at 120 qpm: a beat is 0.5 s
    assert [(n.pitch, round(n.start_time, 4), round(n.end_time, 4)) for n in decoded.notes] == [
        (60, 0.0, 0.5), (64, 0.5, 0.75), (67, 2.0, 3.0), (55, 3.0, 3.375)]  # the last onset pulled back a 16th
    again = shuffled.tokens_to_strings(shuffled.encode_ids(decoded))
    first = shuffled.tokens_to_strings(ids)
    assert again[:-4] == first[:-4] and again[-3:] == first[-3:]  # ... and once more: only its Position moves


def test_an_event_missing_from_the_dictionary_is_named():
    names = [n for n in default_vocabulary(chords=False) if n != "Note On_61"]
    converter = RemiConverter(flavour=FLAVOUR, vocabulary=names)
    with pytest.raises(SkipInput, match="Note On_61"):
        converter.encode_ids(sequence([(61, 64, 0, 1), (60, 64, 1, 2)]))


@pytest.mark.parametrize("flavour", ["tempo", "tempo_chord"])
def test_events_equal_the_originals_utils(flavour):
    expected = json.loads((DATA / "events.json").read_text())
    converter = pop(chords=flavour == "tempo_chord")
    for name, by_flavour in expected.items():
        assert converter.events(midi_file_to_note_sequence(str(DATA / name))) == by_flavour[flavour], name


def test_our_remi_tokens_are_written_in_the_originals_event_names():
    ours = RemiConverter()
    ids = ours.strings_to_tokens(["Bar_None", "TimeSig_4/4", "Position_1/16", "Tempo-Class_mid", "Tempo-Value_30",
                                  "Note-Velocity_20", "Note-On_60", "Note-Duration_4"])
    assert ours.original_event_names(ids) == ["Bar_None", "TimeSig_4/4", "Position_1/16", "Tempo Class_mid",
                                              "Tempo Value_30", "Note Velocity_20", "Note On_60", "Note Duration_4"]

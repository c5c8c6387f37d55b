"""The symusic decoder must give the same NoteSequence as note_seq's own (pretty_midi) decoder."""

import mido
import note_seq
import numpy as np
import pytest
import symusic

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.midi_io import midi_file_to_note_sequence, score_to_note_sequence
from tests.fixtures import add_marker, drum_notes, melody_notes, write_bad_midis, write_midi


def _note_table(ns):
    return np.array(sorted((n.start_time, n.end_time, n.pitch, n.velocity, n.is_drum, n.program) for n in ns.notes))


def test_same_notes_tempos_and_signatures_as_note_seq(tmp_path):
    path = write_midi(tmp_path / "song.mid", melody_notes(4, 100.0), tempo=100.0,
                      time_signatures=((3, 4, 0.0), (7, 8, 4.8)))
    midi = mido.MidiFile(str(path))  # a tempo change mid-file
    midi.tracks[0].insert(1, mido.MetaMessage("set_tempo", tempo=400000, time=500))
    midi.save(str(path))
    ours, reference = midi_file_to_note_sequence(path), note_seq.midi_file_to_note_sequence(str(path))
    np.testing.assert_allclose(_note_table(ours), _note_table(reference), atol=1e-9)
    np.testing.assert_allclose([(t.time, t.qpm) for t in ours.tempos], [(t.time, t.qpm) for t in reference.tempos])
    assert [(t.numerator, t.denominator) for t in ours.time_signatures] == [(3, 4), (7, 8)]
    assert [t.time for t in ours.time_signatures] == pytest.approx([t.time for t in reference.time_signatures])
    assert ours.total_time == pytest.approx(reference.total_time)
    assert ours.ticks_per_quarter == reference.ticks_per_quarter


def test_drums_and_markers(tmp_path):
    path = write_midi(tmp_path / "drums.mid", drum_notes(1), is_drum=True)
    add_marker(path, "C_M", tick=0)
    ns = midi_file_to_note_sequence(path)
    assert all(n.is_drum for n in ns.notes) and len(ns.notes) == len(drum_notes(1))
    assert [a.text for a in ns.text_annotations] == ["C_M"]


def test_bad_files_raise_clear_reasons(tmp_path):
    expected = write_bad_midis(tmp_path)
    for name, reason in expected.items():
        with pytest.raises(SkipInput) as raised:
            midi_file_to_note_sequence(tmp_path / name)
        assert raised.value.reason == reason
        assert name in str(raised.value)


def test_track_fields_of_many_tracks():
    """Instrument indices past 127 take two-byte varints in the wire bytes the decoder writes."""
    score = symusic.Score(480)
    for index in range(130):
        track = symusic.Track(f"t{index}", program=index % 128, is_drum=index == 129)
        track.notes.append(symusic.Note(index * 10, 240, 40 + index % 80, 1 + index % 127))
        track.controls.append(symusic.ControlChange(index * 10, 7, index % 128))
        score.tracks.append(track)
    ns = score_to_note_sequence(score)
    assert [(n.instrument, n.program, n.is_drum, n.pitch, n.velocity) for n in ns.notes] == [
        (i, i % 128, i == 129, 40 + i % 80, 1 + i % 127) for i in range(130)]
    assert [(c.instrument, c.program, c.is_drum, c.control_number, c.control_value) for c in ns.control_changes] == [
        (i, i % 128, i == 129, 7, i % 128) for i in range(130)]
    assert ns.notes[129].start_time == pytest.approx(1290 / 480 * 0.5)

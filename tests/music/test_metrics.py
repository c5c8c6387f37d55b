"""MusDr-style metrics on hand-built pieces with known values."""

import json
import math

import numpy as np
import pytest
from note_seq import testing_lib
from note_seq.protobuf import music_pb2

from musicgen_tf.music import metrics
from musicgen_tf.music.remi import RemiConverter
from tests import fixtures

CONVERTER = RemiConverter(chords="none")


def sequence(notes, meters=((0.0, 4, 4),)):
    """notes: (pitch, start_quarter, end_quarter) at 120 qpm (0.5 s per quarter)."""
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    ns.tempos.add(qpm=120.0)
    for time, numerator, denominator in meters:
        ns.time_signatures.add(time=time, numerator=numerator, denominator=denominator)
    testing_lib.add_track_to_sequence(ns, 0, [(p, 80, s * 0.5, e * 0.5) for p, s, e in notes])
    return ns


def test_one_pitch_class_has_zero_entropy_and_identical_bars_groove_alike():
    notes = [(60 + 12 * (q % 2), q, q + 1) for q in range(16)]  # C in two octaves, quarters, 4 bars
    values = metrics.metrics_from_note_sequence(sequence(notes), CONVERTER)
    assert values["H1"] == 0.0 and values["H4"] == 0.0
    assert values["GS"] == 1.0
    assert values["bars"] == 4 and values["notes"] == 16


def test_twelve_equal_pitch_classes_give_log2_12():
    notes = [(60 + (i % 12), i / 3, i / 3 + 1 / 3) for i in range(48)]  # 12 per bar, 4 bars
    values = metrics.metrics_from_note_sequence(sequence(notes), CONVERTER)
    assert values["H1"] == pytest.approx(math.log2(12))
    assert values["H4"] == pytest.approx(math.log2(12))


def test_groove_similarity_counts_differing_onsets_on_the_grid():
    # bar 1: onsets at 16th steps 0, 4, 8, 12; bar 2: 0 and 8 -> 2 of 16 positions differ.
    notes = [(60, q, q + 1) for q in range(4)] + [(62, 4, 6), (62, 6, 8)]
    values = metrics.metrics_from_note_sequence(sequence(notes), CONVERTER)
    assert values["GS"] == pytest.approx(1 - 2 / 16)
    # 3/4 bars use their own 12-step grid.
    waltz = [(60, q, q + 1) for q in range(6)]
    assert metrics.metrics_from_note_sequence(sequence(waltz, ((0.0, 3, 4),)), CONVERTER)["GS"] == 1.0


def test_entropy_windows_slide_bar_by_bar():
    # bar 1 only C, bar 2 only C and G equally -> H1 = mean(0, 1) = 0.5; H4 falls back to the 2 bars.
    notes = [(60, q, q + 1) for q in range(4)] + [(60, 4, 5), (67, 5, 6), (60, 6, 7), (67, 7, 8)]
    values = metrics.metrics_from_note_sequence(sequence(notes), CONVERTER)
    assert values["H1"] == pytest.approx(0.5)
    assert values["H4"] == pytest.approx(metrics.histogram_entropy([6, 2]))


def test_chord_progression_irregularity_as_musdr():
    assert metrics.chord_progression_irregularity(["C", "G", "Am"]) == 1.0
    assert metrics.chord_progression_irregularity(["C", "G", "C", "G", "C", "G", "C"]) == pytest.approx(2 / 4)
    converter = RemiConverter()
    ids = converter.strings_to_tokens(["Bar_None"] + [t for c in ["C:maj", "G:maj", "A:min", "F:maj"] * 2
                                                      for t in ("Position_1/16", f"Chord_{c}")] + ["EOS"])
    assert metrics.metrics_from_ids(ids, converter)["CPI"] == pytest.approx(4 / 5)


def test_evaluate_midi_dir_reports_files_and_mean(tmp_path):
    fixtures.write_midi(tmp_path / "a.mid", fixtures.melody_notes(4))
    fixtures.write_midi(tmp_path / "sub" / "b.mid", [(60, i * 0.5, i * 0.5 + 0.5, 80) for i in range(8)])
    (tmp_path / "broken.mid").write_bytes(b"not midi")
    result = metrics.evaluate_midi_dir(tmp_path)
    assert set(result["files"]) == {"a.mid", "sub/b.mid"} and "broken.mid" in result["skipped"]
    assert result["files"]["sub/b.mid"]["H4"] == 0.0 and result["files"]["sub/b.mid"]["GS"] == 1.0
    assert result["mean"]["H4"] == pytest.approx(np.mean([f["H4"] for f in result["files"].values()]))
    json.dumps(result)

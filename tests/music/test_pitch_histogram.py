"""Pitch histogram (seed 000): normalisation, weighting, drums, skips and the audible sketch."""

import json

import numpy as np
import pytest
from note_seq import testing_lib
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.pitch_histogram import PitchHistogramConverter, entropy_bits
from musicgen_tf.music.representations import get_converter


def piece(notes, drums=()):
    ns = music_pb2.NoteSequence(filename="piece.mid")
    testing_lib.add_track_to_sequence(ns, 0, notes)
    testing_lib.add_track_to_sequence(ns, 9, list(drums), is_drum=True)
    return ns


NOTES = [(60, 80, 0.0, 1.0), (60, 80, 1.0, 1.5), (64, 80, 0.0, 3.0), (67, 80, 0.0, 0.5)]


def test_count_histogram_is_normalised():
    converter = PitchHistogramConverter()
    (example,) = converter.to_examples(piece(NOTES, drums=[(36, 100, 0.0, 0.1)] * 4))
    histogram = example["histogram"]
    assert set(example) == set(converter.feature_spec()) == {"histogram"}
    assert histogram.dtype == np.float32 and histogram.shape == (128,)
    assert histogram.sum() == pytest.approx(1.0)
    expected = np.zeros(128)
    expected[[60, 64, 67]] = [0.5, 0.25, 0.25]
    np.testing.assert_allclose(histogram, expected)


def test_duration_weighting_and_drums():
    (example,) = PitchHistogramConverter(weight="duration").to_examples(piece(NOTES))
    expected = np.zeros(128)
    expected[[60, 64, 67]] = np.array([1.5, 3.0, 0.5]) / 5.0
    np.testing.assert_allclose(example["histogram"], expected, rtol=1e-6)
    (with_drums,) = PitchHistogramConverter(include_drums=True).to_examples(piece(NOTES, drums=[(36, 100, 0, 1)]))
    assert with_drums["histogram"][36] == pytest.approx(0.2)


def test_skip_inputs():
    with pytest.raises(SkipInput) as info:
        PitchHistogramConverter().to_examples(piece([], drums=[(36, 100, 0.0, 0.1)]))
    assert info.value.reason == "no pitched notes" and info.value.path == "piece.mid"
    with pytest.raises(SkipInput, match="no pitched notes"):
        PitchHistogramConverter(weight="duration").to_examples(piece([(60, 80, 1.0, 1.0)]))
    with pytest.raises(ValueError, match="weight"):
        PitchHistogramConverter(weight="velocity")


def test_from_example_plays_the_top_pitches_deterministically():
    histogram = np.zeros(128, dtype=np.float32)
    histogram[[40, 60, 64, 67, 72]] = [0.1, 0.4, 0.2, 0.2, 0.1]
    converter = PitchHistogramConverter(render_top_k=3)
    ns = converter.from_example({"histogram": histogram})
    arpeggio = [(n.pitch, n.start_time, n.velocity) for n in ns.notes if n.start_time < 2.0]
    chord = sorted(n.pitch for n in ns.notes if n.start_time == 2.0)
    assert [p for p, _, _ in arpeggio] == [60, 64, 67] and chord == [60, 64, 67]  # ties -> lower pitch
    assert arpeggio[0][2] == 127 and arpeggio[1][2] < 127
    assert ns.total_time == 4.0
    assert converter.from_example({"histogram": histogram}) == ns
    assert len(converter.from_example({"histogram": np.zeros(128, np.float32)}).notes) == 0


def test_stats_and_params():
    converter = PitchHistogramConverter()
    (example,) = converter.to_examples(piece(NOTES))
    stats = converter.stats(example)
    assert stats["entropy_bits"] == pytest.approx(1.5)
    assert stats["distinct_pitches"] == 3.0
    assert stats["mean_pitch"] == pytest.approx(62.75)
    assert entropy_bits(np.full(128, 1 / 128)) == pytest.approx(7.0)
    params = json.loads(json.dumps(PitchHistogramConverter(weight="duration").params()))
    assert get_converter("pitch_histogram", **params) == PitchHistogramConverter(weight="duration")

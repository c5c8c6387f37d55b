"""SI (structureness indicator): the fitness scape plot against a plain loop transcription of Müller's algorithm,
an exact hand-computed case, and pieces built with and without repetition."""

import math

import numpy as np
import pytest
from note_seq import testing_lib
from note_seq.protobuf import music_pb2

from musicgen_tf.music import metrics, structure
from musicgen_tf.music.remi import RemiConverter


# ---- reference: Müller's accumulated score, backtracking and fitness, one segment at a time, plain loops
def _reference_segment(seg):
    n_rows, width = seg.shape[0], seg.shape[1] + 1
    d = np.full((n_rows, width), -math.inf)
    d[0, 0], d[0, 1] = 0.0, seg[0, 0]
    for n in range(1, n_rows):
        d[n, 0] = max(d[n - 1, 0], d[n - 1, -1])
        d[n, 1] = d[n, 0] + seg[n, 0]
        for m in range(2, width):
            d[n, m] = seg[n, m - 1] + max(d[n - 1, m - 1], d[n - 1, m - 2], d[n - 2, m - 1])
    score = max(d[-1, 0], d[-1, -1])
    paths, path, n = [], [], n_rows - 1
    if d[n, -1] < d[n, 0]:
        m = 0
    else:
        m = width - 1
        path.append((n, width - 2))
    while n > 0 or m > 0:
        preds = [(n - 1, m - 1)] + ([(n - 2, m - 1)] if n > 2 else []) + ([(n - 1, m - 2)] if m > 2 else [])
        if n == 0:
            cell = (0, m - 1)
        elif m == 0:
            if d[n - 1, -1] > d[n - 1, 0]:
                cell = (n - 1, width - 1)
                if path:
                    paths.append(path[::-1])
                path = [(n - 1, width - 2)]
            else:
                cell = (n - 1, 0)
        elif m == 1:
            cell = (n, 0)
        else:
            best = -math.inf
            for p in preds:
                if best < d[p]:
                    best, cell = d[p], p
            path.append((cell[0], cell[1] - 1))
        n, m = cell
    paths.append(path[::-1])
    length = seg.shape[1]
    score_n = (score - length) / (sum(len(p) for p in paths) + 1e-16)
    coverage_n = (sum(p[-1][0] - p[0][0] + 1 for p in paths) - length) / (n_rows + 1e-16)
    return 2 * score_n * coverage_n / (score_n + coverage_n + 1e-16)


def _reference_plot(ssm):
    n = ssm.shape[0]
    plot = np.zeros((n, n))
    for length in range(1, n + 1):
        for start in range(n - length + 1):
            plot[length - 1, start] = _reference_segment(ssm[:, start:start + length])
    return plot


@pytest.mark.parametrize("size", [4, 9, 17])
def test_scape_plot_matches_the_loop_reference_on_random_ssms(size):
    rng = np.random.default_rng(size)
    raw = rng.random((size, size))
    ssm = structure._threshold(raw + raw.T, keep=0.25, penalty=-2.0)
    np.testing.assert_allclose(structure.fitness_scape_plot(ssm), _reference_plot(ssm), atol=1e-12)


def test_an_exact_repeat_has_fitness_one_half_at_its_own_length():
    # AA: frame i is similar only to frames i +- K.  Segment A (length K): two paths of K cells each -> score 2K,
    # normalised score (2K - K) / 2K = 1/2, coverage (2K - K) / 2K = 1/2, fitness 1/2; any other segment is lower.
    half = 8
    frames = np.arange(2 * half)
    ssm = np.where((frames[:, None] - frames[None, :]) % half == 0, 1.0, -2.0)
    plot = structure.fitness_scape_plot(ssm)
    assert plot[half - 1, 0] == pytest.approx(0.5, abs=1e-12)
    assert plot[half - 1, half] == pytest.approx(0.5, abs=1e-12)
    assert plot.max() == pytest.approx(0.5, abs=1e-12)
    assert plot[2 * half - 1, 0] == pytest.approx(0.0, abs=1e-12)  # the whole piece: only its own diagonal
    assert structure.structureness_indicator(plot, half, half) == pytest.approx(0.5)
    assert structure.structureness_indicator(plot, 2 * half + 1) == 0.0  # longer than the piece (as MusDr)


def test_beat_chroma_counts_sounding_steps_per_pitch_class():
    chroma = structure.beat_chroma([(0, 4, 60), (2, 4, 72), (4, 2, 67)], steps_per_beat=4)
    assert chroma.shape == (12, 2)
    assert chroma[0].tolist() == [6.0, 2.0]  # C: steps 0-3 and 2-5
    assert chroma[7].tolist() == [0.0, 2.0]
    assert chroma.sum() == 10.0


def _piece(notes):
    """notes: (pitch, start_quarter, end_quarter) at 120 qpm in 4/4."""
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    ns.tempos.add(qpm=120.0)
    ns.time_signatures.add(time=0.0, numerator=4, denominator=4)
    testing_lib.add_track_to_sequence(ns, 0, [(p, 80, s * 0.5, e * 0.5) for p, s, e in notes])
    return ns


def test_a_repeated_phrase_is_more_structured_than_random_notes():
    rng = np.random.default_rng(7)
    phrase = [(int(rng.integers(55, 80)), q / 2, q / 2 + 0.5) for q in range(32)]  # 4 bars of eighth notes
    repeated = [(p, s + 16 * k, e + 16 * k) for k in range(6) for p, s, e in phrase]  # AAAAAA, 24 bars
    random_notes = [(int(rng.integers(55, 80)), q / 2, q / 2 + 0.5) for q in range(32 * 6)]
    converter = RemiConverter(chords="none")
    structured = metrics.metrics_from_note_sequence(_piece(repeated), converter)
    unstructured = metrics.metrics_from_note_sequence(_piece(random_notes), converter)
    for name in ("SI_mid", "SI_long"):  # the 16-beat phrase and its multiples
        assert structured[name] > unstructured[name] + 0.1, (name, structured, unstructured)
    # six exact copies of a 16-beat phrase: paths of 6 x 16 cells, score and coverage (96 - 16) / 96 -> 5/6
    assert structured["SI_mid"] == pytest.approx(5 / 6)
    # without notes there is no structure to measure
    assert math.isnan(structure.structure_from_notes([], 4)["SI_short"])


def test_remi_notes_reads_the_grid_positions_of_our_tokens():
    converter = RemiConverter(chords="none")
    ns = _piece([(60, 0, 1), (64, 5, 6.5)])  # bar 1 step 0 (4 steps long), bar 2 step 4 (6 steps)
    notes = structure.remi_notes(converter.encode(ns), converter.positions_per_quarter)
    assert notes == [(0, 4, 60), (20, 6, 64)]

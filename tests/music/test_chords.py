"""REMI's rule-based chord recognition: known chords, and equality with a direct (slow) reading of the rules."""

import numpy as np
import pytest

from musicgen_tf.music import chords
from musicgen_tf.music.chords import recognize_chords

PPQ = 4  # steps per beat


def _block(pitches, start_beat, beats):
    return [(start_beat * PPQ, (start_beat + beats) * PPQ, p) for p in pitches]


@pytest.mark.parametrize("pitches, label", [
    ((48, 60, 64, 67), "C:maj"), ((57, 60, 64), "A:min"), ((43, 59, 62, 65, 67), "G:dom7"),
    ((59, 62, 65), "B:dim"), ((60, 64, 68), "C:aug"), ((52, 55, 60), "C:maj"),  # first inversion: root C
])
def test_known_chords(pitches, label):
    assert recognize_chords(np.array(_block(pitches, 0, 4)), PPQ) == [(0, label)]


def test_progression_one_chord_per_bar_and_silence():
    notes = (_block((48, 60, 64, 67), 0, 4) + _block((53, 60, 65, 69), 4, 4) + _block((43, 59, 62, 67), 8, 4)
             + _block((48, 60, 64, 67), 16, 4))
    assert recognize_chords(np.array(notes), PPQ) == [(0, "C:maj"), (16, "F:maj"), (32, "G:maj"), (48, "N:N"),
                                                      (64, "C:maj")]


def test_nothing_recognisable_gives_no_chords():
    assert recognize_chords(np.array(_block((60, 62), 0, 4)), PPQ) == []  # no third above any root
    assert recognize_chords(np.zeros((0, 3)), PPQ) == []


# ---- a direct, loop-by-loop reading of the paper's rules, to check the vectorised version against
def _reference(notes, ppq):
    end = max(e for _, e, _ in notes)
    roll = np.zeros((end, 128), bool)
    for s, e, p in notes:
        roll[s:e, p] = True
    beats = -(-end // ppq)
    found = {}
    for length in (4, 2):
        for b in range(beats):
            window = roll[b * ppq:min((b + length) * ppq, end)]
            found.setdefault(b, {}).setdefault(min(b + length, beats), _find(window))
    result, start = [], 0
    while start < beats:
        end_beat, chord = sorted(found[start].items(), key=lambda kv: (kv[1][2], kv[0]))[-1]
        result.append([start, end_beat, chord[0], chord[1]])
        start = end_beat
    while result and result[0][3] == "None":
        if len(result) == 1:
            return []
        result[1][0] = result[0][0]
        del result[0]
    merged = []
    for chord in result:
        if chord[3] == "None":
            merged[-1][1] = chord[1]
        else:
            merged.append(chord)
    return [(s * ppq, f"{r}:{q}") for s, _, r, q in merged]


def _find(window):
    chroma = np.zeros(12, bool)
    for p in np.flatnonzero(window.any(axis=0)):
        chroma[p % 12] = True
    if not chroma.any():
        return ("N", "N", 0)
    names = {"maj": "maj", "min": "min", "dim": "dim", "aug": "aug", "dom": "dom7"}
    maps = {"maj": [0, 4], "min": [0, 3], "dim": [0, 3, 6], "aug": [0, 4, 8], "dom": [0, 4, 7, 10]}
    ins = {"maj": [7], "min": [7], "dim": [9], "aug": [], "dom": []}
    out1 = {"maj": [2, 5, 9], "min": [2, 5, 8], "dim": [2, 5, 10], "aug": [2, 5, 9], "dom": [2, 5, 9]}
    out2 = {"maj": [1, 3, 6, 8, 10], "min": [1, 4, 6, 9, 11], "dim": [1, 4, 7, 8, 11], "aug": [1, 3, 6, 7, 10],
            "dom": [1, 3, 6, 8, 11]}
    scores, qualities = {}, {}
    for root in np.flatnonzero(chroma):
        seq = list(np.flatnonzero(np.roll(chroma, -root)))
        if (3 in seq) == (4 in seq):
            scores[root], qualities[root] = -100, "None"
            continue
        q = ("dim" if 6 in seq else "min") if 3 in seq else (
            "aug" if 8 in seq else ("dom" if 7 in seq and 10 in seq else "maj"))
        score = 0
        for n in seq:
            if n in maps[q]:
                continue
            score += -1 if n in out1[q] else -2 if n in out2[q] else 1 if n in ins[q] else 0
        scores[root], qualities[root] = score, names[q]
    sorted_notes = [int(p % 12) for p in np.flatnonzero(window.any(axis=0))]
    best = max(scores.values())
    tied = [r for r, s in scores.items() if s == best]
    root = tied[0] if len(tied) == 1 else next(n for n in sorted_notes if n in tied)
    return (chords.PITCH_CLASSES[root], qualities[root], scores[root])


def test_vectorised_recogniser_equals_the_rules_on_random_pieces():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = rng.integers(5, 60)
        starts = rng.integers(0, 80, n)
        notes = np.stack([starts, starts + rng.integers(1, 12, n), rng.integers(36, 84, n)], axis=1)
        assert recognize_chords(notes, PPQ) == _reference(notes.tolist(), PPQ)

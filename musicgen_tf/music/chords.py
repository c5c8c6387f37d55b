"""Rule-based chord recognition of the Pop Music Transformer (REMI paper, `chord_recognition.py`), vectorised.

Why this and not note_seq's HMM chord inference: it is what REMI was defined with, and note_seq's Viterbi over
12 keys x 49 chords runs at a few hundred notes per second, which made REMI preprocessing 70x slower than MIDI
parsing.  This version scores every window and root at once with numpy (tens of thousands of bars per second).

The algorithm, as in the paper's code: for windows of 4 and of 2 beats starting at every beat, take the set of
sounding pitch classes; each present pitch class is a candidate root, whose quality follows from the intervals
present (min/dim if a minor third, maj/aug/dom if a major third, none if both or neither) and whose score
rewards chord tones and penalises outside tones; the best root wins (ties: the one sounding lowest).  A greedy
pass then walks from beat 0 taking at each point the best-scoring (then longest) window, and chords without a
quality are merged into their neighbours.  Bass notes (slash chords) are not kept, as in REMI's vocabulary.
"""

from __future__ import annotations

import numpy as np

PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
QUALITIES = ("maj", "min", "dim", "aug", "dom7")  # the paper's maj, min, dim, aug, dom
_MAJ, _MIN, _DIM, _AUG, _DOM, _NONE = range(6)
_CHORD_TONES = {_MAJ: [0, 4], _MIN: [0, 3], _DIM: [0, 3, 6], _AUG: [0, 4, 8], _DOM: [0, 4, 7, 10]}
_INSIDERS = {_MAJ: [7], _MIN: [7], _DIM: [9], _AUG: [], _DOM: []}  # +1
_OUTSIDERS_1 = {_MAJ: [2, 5, 9], _MIN: [2, 5, 8], _DIM: [2, 5, 10], _AUG: [2, 5, 9], _DOM: [2, 5, 9]}  # -1
_OUTSIDERS_2 = {_MAJ: [1, 3, 6, 8, 10], _MIN: [1, 4, 6, 9, 11], _DIM: [1, 4, 7, 8, 11], _AUG: [1, 3, 6, 7, 10],
                _DOM: [1, 3, 6, 8, 11]}  # -2
NO_QUALITY_SCORE = -100
WINDOW_BEATS = (4, 2)


def _weights() -> np.ndarray:
    """[quality, interval] score of a sounding interval above the root (the paper's elif order: -1, -2, +1)."""
    weights = np.zeros((6, 12), dtype=np.int64)
    for quality in _CHORD_TONES:
        for interval in range(12):
            if interval in _CHORD_TONES[quality]:
                continue
            if interval in _OUTSIDERS_1[quality]:
                weights[quality, interval] = -1
            elif interval in _OUTSIDERS_2[quality]:
                weights[quality, interval] = -2
            elif interval in _INSIDERS[quality]:
                weights[quality, interval] = 1
    return weights


_WEIGHTS = _weights()
_ROLL = (np.arange(12)[:, None] + np.arange(12)[None, :]) % 12  # [root, interval] -> pitch class


def _best_chords(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """active: bool [windows, 128] -> (root [w] (-1 = no notes), quality [w], score [w]) per window."""
    octaves = np.zeros((active.shape[0], 132), dtype=bool)
    octaves[:, :128] = active
    octaves = octaves.reshape(-1, 11, 12)  # [window, octave, pitch class]
    chroma = octaves.any(axis=1)
    # lowest sounding pitch of each pitch class (128 when silent), to break ties towards the bass
    lowest = np.where(chroma, np.argmax(octaves, axis=1) * 12 + np.arange(12), 128)
    rolled = chroma[:, _ROLL]  # [w, root, interval]
    has = {i: rolled[..., i] for i in (3, 4, 6, 7, 8, 10)}
    quality = np.where(has[3], np.where(has[6], _DIM, _MIN),
                       np.where(has[8], _AUG, np.where(has[7] & has[10], _DOM, _MAJ)))
    quality = np.where(has[3] == has[4], _NONE, quality)
    score = np.einsum("wri,wri->wr", rolled.astype(np.int64), _WEIGHTS[quality])
    score = np.where(quality == _NONE, NO_QUALITY_SCORE, score)
    score = np.where(chroma, score, np.iinfo(np.int64).min)  # only sounding pitch classes can be roots
    best = score.max(axis=1, keepdims=True)
    tie_break = np.where(score == best, lowest, 10_000)  # among equal scores, the root that sounds lowest
    root = np.argmin(tie_break, axis=1)
    rows = np.arange(active.shape[0])
    empty = ~chroma.any(axis=1)
    return (np.where(empty, -1, root), np.where(empty, _NONE, quality[rows, root]),
            np.where(empty, 0, score[rows, root]))


def recognize_chords(notes: np.ndarray, steps_per_beat: int) -> list[tuple[int, str]]:
    """Chords of a piece on a grid.

    Args:
      notes: int [n, 3] of (start_step, end_step, pitch), drums already removed.
      steps_per_beat: grid steps per quarter note.
    Returns:
      [(start_step, "root:quality")] in time order, with "N:N" where nothing sounds; [] when no chord is found.
    """
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 3)
    if notes.size == 0:
        return []
    end_step = int(notes[:, 1].max())
    beats = -(-end_step // steps_per_beat)
    first_beat = notes[:, 0] // steps_per_beat
    last_beat = np.maximum(-(-notes[:, 1] // steps_per_beat), first_beat + 1)
    size = (beats + 1) * 128  # difference array of notes sounding per (beat, pitch)
    sounding = (np.bincount(first_beat * 128 + notes[:, 2], minlength=size)
                - np.bincount(last_beat * 128 + notes[:, 2], minlength=size)).reshape(beats + 1, 128)
    per_beat = np.cumsum(sounding, axis=0)[:beats] > 0
    cumulative = np.concatenate([np.zeros((1, 128), np.int64), np.cumsum(per_beat, axis=0)])
    starts = np.arange(beats)
    ends = np.stack([np.minimum(starts + length, beats) for length in WINDOW_BEATS])  # [window kind, start beat]
    flat_ends = ends.reshape(-1)
    roots, qualities, scores = (array.reshape(len(WINDOW_BEATS), beats) for array in _best_chords(
        (cumulative[flat_ends] - cumulative[np.tile(starts, len(WINDOW_BEATS))]) > 0))
    # at each start the best score wins, then the longer window (the paper's sort by (score, end))
    longer = (scores[0] > scores[1]) | ((scores[0] == scores[1]) & (ends[0] >= ends[1]))
    pick = np.where(longer, 0, 1)
    chosen = [array[pick, starts].tolist() for array in (ends, roots, qualities)]
    chords = []  # greedy walk from beat 0
    start = 0
    while start < beats:
        end, root, quality = (column[start] for column in chosen)
        chords.append([start, end, root, quality])
        start = end
    # chords without a quality are merged into their neighbours (the paper's ":None" removal)
    while chords and chords[0][3] == _NONE and chords[0][2] != -1:
        if len(chords) == 1:
            return []
        chords[1][0] = chords[0][0]
        del chords[0]
    merged = []
    for chord in chords:
        if chord[3] == _NONE and chord[2] != -1 and merged:
            merged[-1][1] = chord[1]
        else:
            merged.append(chord)
    return [(start * steps_per_beat, "N:N" if root == -1 else f"{PITCH_CLASSES[root]}:{QUALITIES[quality]}")
            for start, _, root, quality in merged]

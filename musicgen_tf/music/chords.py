"""Rule-based chord recognition of the Pop Music Transformer (REMI paper, `chord_recognition.py`), vectorised.

Why this and not note_seq's HMM chord inference: it is what REMI was defined with, and note_seq's Viterbi over
12 keys x 49 chords runs at a few hundred notes per second, which made REMI preprocessing 70x slower than MIDI
parsing.  This version scores every window and root at once with numpy: a window's set of pitch classes, rotated
to each candidate root, indexes precomputed quality and score tables (tens of thousands of bars per second).

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
SILENT = 128  # "lowest pitch" of a pitch class that does not sound
_BITS = 1 << np.arange(12)


def _interval_set_tables() -> tuple[np.ndarray, np.ndarray]:
    """(quality, score) of a root for each of the 4096 sets of intervals sounding above it (bit i = interval i).

    Scoring a window is then two table lookups per root instead of [window, root, interval] array work.
    """
    has = (np.arange(4096)[:, None] & _BITS) > 0  # [set, interval]
    quality = np.where(has[:, 3], np.where(has[:, 6], _DIM, _MIN),
                       np.where(has[:, 8], _AUG, np.where(has[:, 7] & has[:, 10], _DOM, _MAJ)))
    quality = np.where(has[:, 3] == has[:, 4], _NONE, quality)
    score = np.where(quality == _NONE, NO_QUALITY_SCORE, (has * _WEIGHTS[quality]).sum(axis=1))
    return quality, np.where(has[:, 0], score, np.iinfo(np.int64).min)  # only sounding pitch classes can be roots


_QUALITY_OF_SET, _SCORE_OF_SET = _interval_set_tables()
_ROOTS = np.arange(12)


def _best_chords(lowest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lowest: int [windows, 12] lowest sounding pitch per pitch class (SILENT if none)
    -> (root [w] (-1 = no notes), quality [w], score [w]) per window."""
    chroma = (lowest < SILENT) @ _BITS  # [w] 12-bit pitch-class set
    intervals = ((chroma[:, None] >> _ROOTS) | (chroma[:, None] << (12 - _ROOTS))) & 0xFFF  # [w, root]
    quality, score = _QUALITY_OF_SET[intervals], _SCORE_OF_SET[intervals]
    best = score.max(axis=1, keepdims=True)
    root = np.argmin(np.where(score == best, lowest, 10_000), axis=1)  # equal scores: the root sounding lowest
    rows = np.arange(len(lowest))
    empty = chroma == 0
    return (np.where(empty, -1, root), np.where(empty, _NONE, quality[rows, root]),
            np.where(empty, 0, score[rows, root]))


def _lowest_per_beat(notes: np.ndarray, steps_per_beat: int, beats: int) -> np.ndarray:
    """int [beats, 12]: the lowest pitch of each pitch class sounding during each beat (SILENT if none)."""
    first_beat = notes[:, 0] // steps_per_beat
    lengths = np.maximum(-(-notes[:, 1] // steps_per_beat), first_beat + 1) - first_beat
    offsets = np.repeat(np.cumsum(lengths) - lengths - first_beat, lengths)
    beat = np.arange(len(offsets)) - offsets  # one row per (note, beat it sounds in)
    pitch = np.repeat(notes[:, 2], lengths)
    lowest = np.full((beats, 12), SILENT, dtype=np.int64)
    np.minimum.at(lowest, (beat, pitch % 12), pitch)
    return lowest


def _window_lowest(lowest: np.ndarray, length: int) -> np.ndarray:
    """[beats, 12] per beat -> [beats, 12] over the window of `length` beats starting there (cut at the end)."""
    padded = np.concatenate([lowest, np.full((length - 1, 12), SILENT, dtype=np.int64)])
    return np.minimum.reduce([padded[k:k + len(lowest)] for k in range(length)])


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
    beats = -(-int(notes[:, 1].max()) // steps_per_beat)
    lowest = _lowest_per_beat(notes, steps_per_beat, beats)
    starts = np.arange(beats)
    ends = np.stack([np.minimum(starts + length, beats) for length in WINDOW_BEATS])  # [window kind, start beat]
    roots, qualities, scores = (array.reshape(len(WINDOW_BEATS), beats) for array in _best_chords(
        np.concatenate([_window_lowest(lowest, length) for length in WINDOW_BEATS])))
    # at each start the best score wins, then the longer window (the paper's sort by (score, end))
    longer = (scores[0] > scores[1]) | ((scores[0] == scores[1]) & (ends[0] >= ends[1]))
    pick = np.where(longer, 0, 1)
    chosen_ends, chosen_roots, chosen_qualities = (array[pick, starts].tolist() for array in (ends, roots, qualities))
    chords = []  # greedy walk from beat 0
    start = 0
    while start < beats:
        end = chosen_ends[start]
        chords.append([start, end, chosen_roots[start], chosen_qualities[start]])
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

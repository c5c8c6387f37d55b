"""Which major scale (= its relative natural minor) fits a set of pitches best, and the shift that moves it to C.

Shared by the evaluation's scale consistency (MusPy's definition) and the melody converter's key normalisation, so
"in key" means the same thing in training data and in the metric.
"""

from __future__ import annotations

import numpy as np

MAJOR_SCALE = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
SCALES = np.stack([np.roll(MAJOR_SCALE, key) for key in range(12)])  # [12 tonics, 12 pitch classes]


def in_scale_counts(pitches) -> np.ndarray:
    """int [12]: for each major-scale tonic C, C#, ..., B, how many of `pitches` (MIDI numbers) lie in its scale."""
    return np.bincount(np.asarray(pitches, np.int64) % 12, minlength=12) @ SCALES.T


def shift_to_c(pitches) -> int:
    """Semitones (-6..5) that move the best-fitting major scale of `pitches` to C major (relative minor: A minor);
    among equally good scales, the smallest move.  0 for no pitches."""
    counts = in_scale_counts(pitches)
    shifts = (6 - np.arange(12)) % 12 - 6  # tonic k -> -k, folded into -6..5
    best = np.flatnonzero(counts == counts.max())
    return int(shifts[best[np.argmin(np.abs(shifts[best]))]])


__all__ = ["MAJOR_SCALE", "SCALES", "in_scale_counts", "shift_to_c"]

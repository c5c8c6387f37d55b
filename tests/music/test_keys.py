"""The best-fitting major scale and the move to C that the melody converter and the evaluation share."""

import numpy as np
import pytest

from musicgen_tf.music import keys

C_MAJOR = [60, 62, 64, 65, 67, 69, 71]


@pytest.mark.parametrize("tonic, shift", [(0, 0), (7, 5), (2, -2), (5, -5), (6, -6), (11, 1)])
def test_shift_to_c_of_each_major_scale(tonic, shift):
    pitches = [p + tonic for p in C_MAJOR]
    assert keys.shift_to_c(pitches) == shift
    assert keys.in_scale_counts([p + shift for p in pitches])[0] == len(pitches)


def test_minor_tunes_go_to_a_minor_and_ties_take_the_smallest_move():
    e_minor = [64, 66, 67, 69, 71, 72, 74]  # natural minor = G major's scale
    assert keys.shift_to_c(e_minor) == 5 and (np.array(e_minor) + 5 - 69).min() % 12 == 0
    assert keys.shift_to_c([60, 62, 64, 67, 69]) == 0  # pentatonic: C, F and G major all hold it
    assert keys.shift_to_c([]) == 0


def test_in_scale_counts():
    counts = keys.in_scale_counts([60, 61, 62])  # C, C#, D
    assert counts[0] == 2 and counts[1] == 2 and counts.max() == 2 and counts.shape == (12,)

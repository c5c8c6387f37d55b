"""SI, the structureness indicator (Wu & Yang 2020, "The Jazz Transformer on the Front Line", ISMIR; MusDr).

SI asks how strongly some segment of a piece repeats elsewhere in it.  The paper computes it from audio:

1. chroma features at 2 frames per second, smoothed and L2-normalised;
2. a self-similarity matrix (SSM) of dot products, transposition-invariant (max over the 12 cyclic chroma
   shifts), path-enhanced by averaging along diagonals forwards and backwards, thresholded relatively (the top 25%
   of cells kept and scaled to [0, 1], the rest set to a penalty of -2) with S(n, n) = 1;
3. the *fitness scape plot* of Müller, Jiang & Grosche ("A robust fitness measure for capturing repetitions in
   music recordings with applications to audio thumbnailing", IEEE TASLP 2013; FMP notebook C4S3): for every
   segment (start, length) an optimal family of warping paths through the SSM's columns of that segment,
   fitness = harmonic mean of the normalised score (score - length) / (path cells) and the normalised coverage
   (covered frames - length) / N;
4. SI(low, high) = the largest fitness over segments whose length lies in [low, high] frames (MusDr's
   `compute_structure_indicator`: seconds x 2 Hz, i.e. plot rows low*2-1 .. high*2-1).

Here the features come from the symbolic notes instead of audio: one frame per beat (a quarter note; at 120 qpm
that is MusDr's 2 Hz), each frame's chroma being how many grid steps each pitch class sounds in that beat.  So
MusDr's SI(3, 8), SI(8, 15) and SI(15, ) in seconds become lengths of 6-16, 16-30 and >= 30 beats
(`SI_short`, `SI_mid`, `SI_long`).  Path smoothing is over `smooth_beats` (4: one 4/4 bar) instead of the audio
setting's 8 s; tempo-invariant smoothing is left out (a symbolic grid has no tempo drift).

The scape plot costs O(N^4 / 6) cell updates for N frames (numpy-vectorised over every start of one length), so
pieces are cut to their first `max_beats` (128 = 32 bars of 4/4, Task 1's length) before it is computed.
"""

from __future__ import annotations

import numpy as np

SI_RANGES = {"SI_short": (6, 16), "SI_mid": (16, 30), "SI_long": (30, None)}  # segment lengths in beats
NEG_INF = -np.inf


# ------------------------------------------------------------------------------------------------ features, SSM
def beat_chroma(notes, steps_per_beat: int, num_beats: int | None = None) -> np.ndarray:
    """notes: iterable of (start step, duration steps, pitch) on the grid -> chroma float64 [12, beats].

    Cell (pc, b) = grid steps in beat b during which a note of pitch class pc sounds (overlaps counted)."""
    notes = [(int(s), max(int(d), 1), int(p)) for s, d, p in notes]
    end = max((s + d for s, d, _ in notes), default=0)
    beats = num_beats if num_beats is not None else -(-end // steps_per_beat)
    steps = np.zeros((12, max(beats, 0) * steps_per_beat + steps_per_beat))
    for start, duration, pitch in notes:
        if start < beats * steps_per_beat:
            steps[pitch % 12, start:min(start + duration, beats * steps_per_beat)] += 1.0
    return steps[:, :beats * steps_per_beat].reshape(12, beats, steps_per_beat).sum(axis=2)


def normalize_columns(features: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """L2-normalise each column of [K, N]; near-silent columns become the uniform unit vector (as Müller's code)."""
    norms = np.linalg.norm(features, axis=0)
    uniform = np.full(features.shape[0], 1.0 / np.sqrt(features.shape[0]))
    out = np.where(norms > threshold, features / np.maximum(norms, threshold), uniform[:, None])
    return out


def _smooth_diagonals(similarity: np.ndarray, length: int, backward: bool) -> np.ndarray:
    """Mean of `length` cells along each diagonal, forwards (n+i, m+i) or backwards (n-i, m-i), zero outside."""
    n, m = similarity.shape
    padded = np.zeros((n + length, m + length))
    if backward:
        padded[length:, length:] = similarity
        return sum(padded[length - i:length - i + n, length - i:length - i + m] for i in range(length)) / length
    padded[:n, :m] = similarity
    return sum(padded[i:i + n, i:i + m] for i in range(length)) / length


def self_similarity(chroma: np.ndarray, smooth: int = 4, keep: float = 0.25, penalty: float = -2.0) -> np.ndarray:
    """chroma [12, N] -> thresholded, transposition-invariant, path-enhanced SSM float64 [N, N] with S(n, n) = 1.

    Steps as MusDr's `compute_SM_from_filename` + `normalization_properties_SSM` (relative threshold `keep`,
    scaled to [0, 1], `penalty` below it)."""
    x = normalize_columns(chroma)
    best = None
    for shift in range(12):
        s = np.roll(x, shift, axis=0).T @ x  # S[n, m] = <x_m shifted, x_n>
        s = np.maximum(_smooth_diagonals(s, smooth, False), _smooth_diagonals(s, smooth, True))
        best = s if best is None else np.maximum(best, s)
    return _threshold(best, keep, penalty)


def _threshold(s: np.ndarray, keep: float, penalty: float) -> np.ndarray:
    """Keep the top `keep` fraction of cells scaled to [0, 1]; the rest get `penalty`; then S(n, n) = 1."""
    s = np.maximum(s, 0.0)
    below = int(np.round(s.size * (1 - keep)))
    out = s.copy()
    if below < s.size:
        out[out < np.sort(s, axis=None)[below]] = 0.0
    else:
        out[:] = 0.0
    positive = out > 0
    if positive.any():
        low, high = out[positive].min(), out.max()
        if high > low:
            out = np.where(positive, (out - low) / (high - low), penalty)
        else:
            out = np.where(positive, out, penalty)
    else:
        out = np.full_like(out, penalty)
    np.fill_diagonal(out, 1.0)
    return out


# -------------------------------------------------------------------------------------------- fitness scape plot
def fitness_scape_plot(ssm: np.ndarray) -> np.ndarray:
    """SSM float [N, N] (S <= 1, S(n, n) = 1) -> fitness float64 [N lengths, N starts]; row l-1 holds segments of
    length l (entries with start + l > N are 0), as Müller's `compute_fitness_scape_plot`.

    For one segment (columns start .. start+l-1) the accumulated score D [N, l + 1] (column 0 the "elevator"
    between paths) is filled row by row over all starts of one length at once.  Alongside D, each cell carries what
    the optimal path family's backtracking would collect on its way to it (cells on paths, frames covered by
    finished paths, the row where the current path began), with the backtracking's own predecessor rules and
    tie-breaks, so no per-segment backtracking loop is needed."""
    ssm = np.asarray(ssm, dtype=np.float64)
    n_frames = ssm.shape[0]
    plot = np.zeros((n_frames, n_frames))
    for length in range(1, n_frames + 1):
        starts = n_frames - length + 1
        # segs[s, n, j] = S[n, start_s + j]
        cols = np.arange(starts)[:, None] + np.arange(length)[None, :]
        segs = np.transpose(ssm[:, cols], (1, 0, 2))  # [starts, N, length]
        plot[length - 1, :starts] = _segment_fitness(segs, n_frames, length)
    return plot


def _segment_fitness(segs: np.ndarray, n_frames: int, length: int) -> np.ndarray:
    """segs [B, N, l] -> fitness [B] (Müller's accumulated score, optimal path family, fitness).

    Arrays are [N rows, B segments, l + 1 columns] so that one row of every segment is one contiguous slice."""
    segs = np.ascontiguousarray(np.transpose(segs, (1, 0, 2)))  # [N, B, l]
    width, last = length + 1, length
    shape = (n_frames, segs.shape[1], width)
    d = np.full(shape, NEG_INF)
    cells = np.zeros(shape)  # path cells collected back to the origin
    covered = np.zeros(shape)  # frames covered by the finished paths before this cell
    begin = np.zeros(shape)  # row where the current path started
    d[0, :, 0] = 0.0
    d[0, :, 1] = segs[0, :, 0]
    cells[0, :, 1] = 1.0
    horiz_allowed = np.arange(2, width) > 2  # the backtracking looks at (n-1, m-2) only for m > 2
    for n in range(1, n_frames):
        # elevator column: stay, or finish a path in the last column of the row above (strictly better)
        jump = d[n - 1, :, last] > d[n - 1, :, 0]
        d[n, :, 0] = np.maximum(d[n - 1, :, 0], d[n - 1, :, last])
        cells[n, :, 0] = np.where(jump, cells[n - 1, :, last], cells[n - 1, :, 0])
        covered[n, :, 0] = np.where(jump, covered[n - 1, :, last] + n - begin[n - 1, :, last],
                                    covered[n - 1, :, 0])
        # column 1: a new path starts at row n
        d[n, :, 1] = d[n, :, 0] + segs[n, :, 0]
        cells[n, :, 1] = cells[n, :, 0] + 1
        covered[n, :, 1] = covered[n, :, 0]
        begin[n, :, 1] = n
        if width <= 2:
            continue
        # columns m >= 2: the score takes the best of (n-1, m-1), (n-1, m-2), (n-2, m-1) (row n-2 is all -inf at
        # n = 1, as numpy's row -1 is still unfilled in Müller's code) ...
        diag, horiz = d[n - 1, :, 1:last], d[n - 1, :, 0:last - 1]
        vert = d[n - 2, :, 1:last] if n >= 2 else np.full_like(diag, NEG_INF)
        d[n, :, 2:] = segs[n, :, 1:] + np.maximum(np.maximum(diag, horiz), vert)
        # ... while the backtracking looks at (n-1, m-1), (n-2, m-1) [n > 2], (n-1, m-2) [m > 2] in that order and
        # keeps the first strictly larger one.
        use_vert = (vert > diag) if n > 2 else np.zeros(diag.shape, bool)
        best = np.where(use_vert, vert, diag)
        use_horiz = horiz_allowed & (horiz > best)
        use_vert &= ~use_horiz
        for track in (cells, covered, begin):
            picked = np.where(use_horiz, track[n - 1, :, 0:last - 1],
                              np.where(use_vert, track[n - 2, :, 1:last], track[n - 1, :, 1:last]))
            track[n, :, 2:] = picked + 1 if track is cells else picked
    end = n_frames - 1
    score = np.maximum(d[end, :, 0], d[end, :, last])
    in_last = ~(d[end, :, last] < d[end, :, 0])  # the backtracking ends in the last column unless strictly worse
    path_cells = np.where(in_last, cells[end, :, last], cells[end, :, 0])
    coverage = np.where(in_last, covered[end, :, last] + end - begin[end, :, last] + 1, covered[end, :, 0])
    eps = 1e-16
    score_n = (score - length) / (path_cells + eps)
    coverage_n = (coverage - length) / (n_frames + eps)
    return 2 * score_n * coverage_n / (score_n + coverage_n + eps)


def structureness_indicator(plot: np.ndarray, low: int, high: int | None = None) -> float:
    """Max fitness over segments of `low`..`high` frames (None: up to N); 0.0 when the piece is shorter than `low`
    (as MusDr)."""
    if low > plot.shape[0]:
        return 0.0
    return float(np.max(plot[low - 1:high if high is not None else plot.shape[0]]))


# ----------------------------------------------------------------------------------------------------- REMI ids
def remi_notes(tokens, positions_per_quarter: int = 4) -> list[tuple[int, int, int]]:
    """Our REMI token strings -> [(start step, duration steps, pitch)] on the grid, read as `RemiConverter.decode`
    reads them (bar lengths from the meter, 4/4 until a `TimeSig` token; stops at EOS)."""
    from musicgen_tf.music.remi import placed_tokens

    notes, pitch = [], None
    for position, kind, value in placed_tokens(tokens, positions_per_quarter):
        if kind == "Note-On":
            pitch = int(value)
        elif kind == "Note-Duration" and pitch is not None:
            notes.append((position, int(value), pitch))
            pitch = None
    return notes


def structure_from_notes(notes, steps_per_beat: int, max_beats: int = 128, smooth: int = 4) -> dict[str, float]:
    """Grid notes [(start, duration, pitch)] -> {"SI_short", "SI_mid", "SI_long"} (NaN without notes)."""
    if not notes:
        return {name: float("nan") for name in SI_RANGES}
    chroma = beat_chroma(notes, steps_per_beat)[:, :max_beats]
    plot = fitness_scape_plot(self_similarity(chroma, smooth=smooth))
    return {name: structureness_indicator(plot, low, high) for name, (low, high) in SI_RANGES.items()}


__all__ = ["SI_RANGES", "beat_chroma", "self_similarity", "fitness_scape_plot", "structureness_indicator",
           "structure_from_notes"]

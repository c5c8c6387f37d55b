"""Objective comparison of two sets of pieces (Yang & Lerch 2020, "On the evaluation of generative models in music").

The paper's method (its toolbox: github.com/RichardYang40148/mgeval):
1. one feature per piece (a scalar, or a histogram vector);
2. *intra-set* distances: Euclidean distance from each piece to every other piece of the same set (mgeval's
   leave-one-out loop: all ordered pairs i != j, n(n-1) values); *inter-set* distances: from each generated piece
   to every reference piece (n*m values);
3. a Gaussian KDE (scipy's, Scott's bandwidth) of each distance sample, and between the reference's intra-set
   density and the inter-set density the overlapping area `OA = integral of min(p, q)` (1 = the generated set sits
   among the reference as the reference sits among itself) and the KL divergence `KLD = KL(intra || inter)`.
   The same two figures for the generated set's own intra-set density are `oa_generated` / `kld_generated`
   (mgeval's `kl1`/`ol1`; ours `oa`/`kld` are its `kl2`/`ol2`, the comparison with the training data the paper
   reports).

Features (`FEATURES`), as mgeval's `core.metrics` computes them unless noted:
- `note_count` (total_used_note), `pitch_count` (total_used_pitch), `pitch_range` (highest - lowest pitch),
- `pitch_class_histogram` [12]: velocity x duration per pitch class, normalised (mgeval sums a 100 Hz piano roll
  of velocities; we sum the same product exactly instead of in 10 ms frames),
- `mean_interval` (avg_pitch_shift): mean |pitch difference| of consecutive notes in onset order,
- `mean_ioi` (avg_IOI): mean time in seconds between consecutive distinct onsets,
- `note_length_histogram` [12]: each note's length is given the nearest of mgeval's 12 classes (whole, half,
  quarter, 8th, 16th, dotted half/quarter/8th/16th, half/quarter/8th triplets; bar/96 units), normalised,
- `scale_consistency` (MusPy's; not in mgeval): the largest fraction of notes inside one major (= its relative
  minor) scale over the 12 keys,
- `H1`, `H4`, `GS` as `music/metrics.py` defines them (MusDr): pitch-class entropy of 1- and 4-bar windows and
  grooving similarity on a 4-steps-per-quarter grid.  A piece gets `H4` only with >= 4 bars and `GS` only with
  >= 2; a feature with fewer than 2 pieces in either set is left out (reported in `skipped_features`).

All non-drum tracks of a MIDI file are merged (mgeval reads the first instrument only).  Unlike mgeval's command,
which truncates both sets to the smaller one, every piece of each set is used.

Departures from mgeval's code, where its code disagrees with the paper's definitions:
- OA integrates over the whole real line, as the overlap of two densities is defined.  mgeval's `overlap_area`
  integrates only from the smallest to the largest distance of both samples, which drops half of the kernel mass
  of every distance near 0 from *both* densities: where many distances are exactly 0 (discrete features, and
  scale consistency, 1.0 for most folk tunes) two samples of one distribution overlap by little more than half
  (real Essen validation vs test melodies: scale consistency 0.52 there, 0.94 here).  mgeval's figure is kept as
  `oa_mgeval`, to compare with papers that report it.
- KLD evaluates both densities on one common grid over the range of both samples; mgeval's `kl_dist` samples each
  density on its *own* sample's range, so two distributions that differ only by a shift would score 0.  Where the
  inter density underflows, it is floored at 1e-10 of its peak so the value stays finite.
- The densities are scipy's `gaussian_kde` (same Scott bandwidth) evaluated by linear binning and an FFT
  convolution on a fine grid, and OA integrated with the trapezoid rule instead of `integrate.quad`: the same
  numbers to ~1e-3 (tested against gaussian_kde + quad), but fast on a million distances.
- A sample whose distances are all equal has no KDE (scipy's is singular): it counts as a point mass, OA 1 against
  the same point mass and 0 against anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from musicgen_tf.music import keys


SCALAR_FEATURES = ("note_count", "pitch_count", "pitch_range", "mean_interval", "mean_ioi", "scale_consistency",
                   "H1", "H4", "GS")
HISTOGRAM_FEATURES = ("pitch_class_histogram", "note_length_histogram")
FEATURES = ("note_count", "pitch_count", "pitch_class_histogram", "pitch_range", "mean_interval", "mean_ioi",
            "note_length_histogram", "scale_consistency", "H1", "H4", "GS")
# mgeval's note-length classes in units of bar/96: whole, half, quarter, 8th, 16th, dotted half/quarter/8th/16th,
# half/quarter/8th-note triplets.
NOTE_LENGTH_CLASSES = np.array([96, 48, 24, 12, 6, 72, 36, 18, 9, 32, 16, 8], np.float64)
GRID_STEPS_PER_QUARTER = 4  # GS grid, as RemiConverter's default (16 positions per 4/4 bar)
GS_MAX_PAIRS = 1000


@dataclass
class Piece:
    """One piece's notes (all non-drum tracks merged, sorted by onset then pitch), in ticks, with its meter and
    tempo maps.  Arrays: start/duration int64 ticks [N], pitch/velocity int64 [N]."""

    start: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    tpq: int
    tempos: list[tuple[int, float]] = field(default_factory=lambda: [(0, 120.0)])  # (tick, quarters per minute)
    time_signatures: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 4, 4)])  # (tick, num, den)


def read_piece(path) -> Piece:
    """A MIDI file -> Piece (symusic); raises ValueError naming the file when it is unreadable or has no notes."""
    import symusic

    try:
        score = symusic.Score(os.fspath(path))
    except Exception as error:  # symusic raises RuntimeError/ValueError subclasses for malformed files
        raise ValueError(f"{path}: not a readable MIDI file ({error})") from None
    columns = [track.notes.numpy() for track in score.tracks if not track.is_drum]
    columns = [c for c in columns if len(c["time"])]
    if not columns:
        raise ValueError(f"{path}: no pitched notes")
    start, duration, pitch, velocity = (np.concatenate([c[key].astype(np.int64) for c in columns])
                                        for key in ("time", "duration", "pitch", "velocity"))
    order = np.lexsort((pitch, start))
    tempos = [(int(t.time), float(t.qpm)) for t in score.tempos] or [(0, 120.0)]
    if tempos[0][0] > 0:
        tempos.insert(0, (0, 120.0))
    meters = [(int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures] or [(0, 4, 4)]
    if meters[0][0] > 0:
        meters.insert(0, (0, 4, 4))
    return Piece(start[order], duration[order], pitch[order], velocity[order], int(score.ticks_per_quarter),
                 tempos, meters)


def ticks_to_seconds(ticks: np.ndarray, tempos: list[tuple[int, float]], tpq: int) -> np.ndarray:
    """Ticks [N] -> seconds [N] through a piecewise-constant tempo map [(tick, qpm)] sorted by tick."""
    times = np.array([t for t, _ in tempos], np.float64)
    seconds_per_tick = np.array([60.0 / (q * tpq) for _, q in tempos])
    origins = np.concatenate([[0.0], np.cumsum(np.diff(times) * seconds_per_tick[:-1])])
    index = np.maximum(np.searchsorted(times, ticks, side="right") - 1, 0)
    return origins[index] + (ticks - times[index]) * seconds_per_tick[index]


def bar_starts(piece: Piece, last_tick: int) -> tuple[np.ndarray, np.ndarray]:
    """Bar start ticks covering [0, last_tick] and each bar's length in ticks (int64 [B] each)."""
    starts, lengths = [], []
    meters = piece.time_signatures
    for index, (tick, numerator, denominator) in enumerate(meters):
        length = max(int(round(piece.tpq * 4 * numerator / denominator)), 1)
        end = meters[index + 1][0] if index + 1 < len(meters) else last_tick + 1
        position = tick  # a meter change starts a bar
        while position < end:
            starts.append(position)
            lengths.append(length)
            position += length
    return np.array(starts, np.int64), np.array(lengths, np.int64)


def _entropies(counts: np.ndarray) -> np.ndarray:
    """Row-wise entropy in bits of count histograms [W, 12] (rows without notes -> NaN)."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / totals
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    values = terms.sum(axis=1) + 0.0
    values[totals[:, 0] == 0] = np.nan
    return values


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def bar_features(piece: Piece, max_pairs: int = GS_MAX_PAIRS) -> dict[str, float]:
    """H1, H4 (NaN under 4 bars) and GS (NaN under 2 bars), as music/metrics.py computes them on REMI ids: onsets
    rounded to the 4-per-quarter grid first, bars up to the last one holding a note."""
    step = piece.tpq / GRID_STEPS_PER_QUARTER
    onset_steps = np.rint(piece.start / step).astype(np.int64)
    starts, lengths = bar_starts(piece, int(np.ceil(onset_steps[-1] * step)))
    start_steps = np.rint(starts / step).astype(np.int64)
    sizes = np.maximum(np.rint(lengths / step).astype(np.int64), 1)
    bar = np.searchsorted(start_steps, onset_steps, side="right") - 1
    bars = int(bar.max()) + 1
    counts = np.zeros((bars, 12))
    np.add.at(counts, (bar, piece.pitch % 12), 1.0)
    h1 = _nanmean(_entropies(counts))
    h4 = float("nan")
    if bars >= 4:
        cumulative = np.concatenate([np.zeros((1, 12)), np.cumsum(counts, axis=0)])
        h4 = _nanmean(_entropies(cumulative[4:] - cumulative[:-4]))
    gs = float("nan")
    if bars >= 2:
        sizes = sizes[:bars]
        onsets = np.zeros((bars, int(sizes.max())), bool)
        onsets[bar, onset_steps - start_steps[bar]] = True
        pairs = np.array(np.triu_indices(bars, k=1)).T  # itertools.combinations order
        if len(pairs) > max_pairs:  # the same sample of pairs as metrics.groove_similarity
            pairs = pairs[np.sort(np.random.default_rng(0).choice(len(pairs), max_pairs, replace=False))]
        a, b = pairs[:, 0], pairs[:, 1]
        q = np.maximum(sizes[a], sizes[b])
        gs = float(np.mean(1.0 - (onsets[a] != onsets[b]).sum(axis=1) / q))
    return {"H1": h1, "H4": h4, "GS": gs}


def piece_features(piece: Piece) -> dict[str, object]:
    """Piece -> {feature name: float or float64 [12]} (`FEATURES`; NaN where a piece is too short for one)."""
    pitch, n = piece.pitch, len(piece.pitch)
    seconds_start = ticks_to_seconds(piece.start, piece.tempos, piece.tpq)
    seconds_end = ticks_to_seconds(piece.start + piece.duration, piece.tempos, piece.tpq)
    weights = piece.velocity * (seconds_end - seconds_start)
    pitch_classes = np.bincount(pitch % 12, weights=weights, minlength=12)
    total = pitch_classes.sum()
    onsets = np.unique(seconds_start)
    meter_index = np.searchsorted([t for t, _, _ in piece.time_signatures], piece.start, side="right") - 1
    bar_ticks = np.array([piece.tpq * 4 * num / den for _, num, den in piece.time_signatures])[meter_index]
    lengths = piece.duration / (bar_ticks / 96.0)
    classes = np.abs(lengths[:, None] - NOTE_LENGTH_CLASSES[None, :]).argmin(axis=1)
    note_lengths = np.bincount(classes, minlength=12).astype(np.float64)
    in_scale = keys.in_scale_counts(pitch)
    features = {
        "note_count": float(n),
        "pitch_count": float(len(np.unique(pitch))),
        "pitch_class_histogram": pitch_classes / total if total > 0 else np.zeros(12),
        "pitch_range": float(pitch.max() - pitch.min()),
        "mean_interval": float(np.abs(np.diff(pitch)).mean()) if n > 1 else float("nan"),
        "mean_ioi": float(np.diff(onsets).mean()) if len(onsets) > 1 else float("nan"),
        "note_length_histogram": note_lengths / note_lengths.sum(),
        "scale_consistency": float(in_scale.max() / n),
    }
    features.update(bar_features(piece))
    return features


def midi_files(folder) -> list[Path]:
    """Every .mid/.midi under a folder, sorted; a clear error for a missing or MIDI-less folder."""
    root = Path(os.path.expanduser(os.fspath(folder)))
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise ValueError(f"{root} holds no MIDI files (.mid/.midi)")
    return files


@dataclass
class FeatureSet:
    """Features of one folder: values[name] float64 [N] or [N, 12]; `skipped` maps file -> reason."""

    folder: str
    files: list[str]
    values: dict[str, np.ndarray]
    skipped: dict[str, str]


def extract_folder(folder, progress: bool = False) -> FeatureSet:
    """Every MIDI file of a folder -> FeatureSet (unreadable or note-less files skipped and named)."""
    paths = midi_files(folder)
    root = Path(os.path.expanduser(os.fspath(folder)))
    rows, names, skipped = [], [], {}
    iterator = paths
    if progress:
        from tqdm import tqdm

        iterator = tqdm(paths, desc=f"features {root.name}", unit="file", leave=False, disable=None)  # off if no tty
    for path in iterator:
        name = str(path.relative_to(root))
        try:
            rows.append(piece_features(read_piece(path)))
            names.append(name)
        except ValueError as error:
            skipped[name] = str(error).removeprefix(f"{path}: ")
    if not rows:
        raise ValueError(f"{root}: none of its {len(paths)} MIDI files has notes to evaluate "
                         f"(e.g. {next(iter(skipped.items()))})")
    values = {name: np.array([row[name] for row in rows], np.float64) for name in FEATURES}
    return FeatureSet(str(root), names, values, skipped)


# -- distances ------------------------------------------------------------------------------------------------------

def _as_matrix(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return values[:, None] if values.ndim == 1 else values


def intra_set_distances(values: np.ndarray) -> np.ndarray:
    """Features [N] or [N, D] -> Euclidean distances of all ordered pairs i != j, float64 [N * (N - 1)]."""
    from scipy.spatial.distance import cdist

    x = _as_matrix(values)
    d = cdist(x, x)
    return d[~np.eye(len(x), dtype=bool)]


def inter_set_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Features [N(, D)] and [M(, D)] -> Euclidean distances of every (a_i, b_j), float64 [N * M]."""
    from scipy.spatial.distance import cdist

    return cdist(_as_matrix(a), _as_matrix(b)).reshape(-1)


# -- densities ------------------------------------------------------------------------------------------------------

def scott_bandwidth(samples: np.ndarray) -> float:
    """The kernel standard deviation scipy's gaussian_kde uses in 1-D: n^(-1/5) * std(ddof=1)."""
    return float(len(samples) ** -0.2 * np.std(samples, ddof=1))


def kde_on_grid(samples: np.ndarray, lo: float, hi: float, points: int) -> np.ndarray:
    """Gaussian KDE (Scott bandwidth) of `samples` (all inside [lo, hi]) at `points` even grid points, float64.

    Linear binning onto the grid, then an FFT convolution with the Gaussian kernel sampled on the same grid."""
    from scipy.signal import fftconvolve

    dx = (hi - lo) / (points - 1)
    position = (np.asarray(samples, np.float64) - lo) / dx
    left = np.clip(np.floor(position).astype(np.int64), 0, points - 2)
    frac = position - left
    counts = np.bincount(left, weights=1.0 - frac, minlength=points) + \
        np.bincount(left + 1, weights=frac, minlength=points)
    h = scott_bandwidth(samples)
    offsets = np.arange(-(points - 1), points) * dx
    kernel = np.exp(-0.5 * (offsets / h) ** 2) / (h * np.sqrt(2 * np.pi))
    density = fftconvolve(counts, kernel, mode="valid") / len(samples)
    return np.maximum(density, 0.0)


def _grid_points(a: np.ndarray, b: np.ndarray, lo: float, hi: float) -> int:
    """Enough grid points for both bandwidths (>= 8 per bandwidth, at least 2049)."""
    h = min(scott_bandwidth(a), scott_bandwidth(b))
    return int(min(2 ** 21, max(2049, np.ceil(8 * (hi - lo) / h) + 1)))


def _degenerate(samples: np.ndarray) -> bool:
    return len(samples) < 2 or float(np.ptp(samples)) == 0.0


class Overlap(NamedTuple):
    oa: float  # integral of min(p, q) over the real line
    kld: float  # KL(p || q) on [min, max] of both samples
    oa_mgeval: float  # integral of min(p, q) on [min, max] of both samples (mgeval's overlap_area)


TAIL_BANDWIDTHS = 8.0  # the KDEs' mass beyond this many bandwidths outside the samples is below 1e-15


def overlap_and_kl(intra: np.ndarray, inter: np.ndarray) -> Overlap:
    """OA, KL(intra || inter) and mgeval's OA of the two samples' KDEs (see the module docstring)."""
    intra, inter = np.asarray(intra, np.float64), np.asarray(inter, np.float64)
    lo, hi = float(min(intra.min(), inter.min())), float(max(intra.max(), inter.max()))
    if _degenerate(intra) or _degenerate(inter):
        same = _degenerate(intra) and _degenerate(inter) and intra[0] == inter[0]
        return Overlap(1.0, 0.0, 1.0) if same else Overlap(0.0, float("inf"), 0.0)
    tail = TAIL_BANDWIDTHS * max(scott_bandwidth(intra), scott_bandwidth(inter))
    points = _grid_points(intra, inter, lo - tail, hi + tail)
    p, q = kde_on_grid(intra, lo - tail, hi + tail, points), kde_on_grid(inter, lo - tail, hi + tail, points)
    grid = np.linspace(lo - tail, hi + tail, points)
    oa = float(np.trapezoid(np.minimum(p, q), grid))
    inside = (grid >= lo) & (grid <= hi)
    # The samples' range on the same grid: its ends fall between grid points, so add the partial end intervals.
    p_ends, q_ends = np.interp([lo, hi], grid, p), np.interp([lo, hi], grid, q)
    x = np.concatenate([[lo], grid[inside], [hi]])
    p_in = np.concatenate([[p_ends[0]], p[inside], [p_ends[1]]])
    q_in = np.concatenate([[q_ends[0]], q[inside], [q_ends[1]]])
    oa_mgeval = float(np.trapezoid(np.minimum(p_in, q_in), x))
    p_mass, q_mass = p_in / p_in.sum(), np.maximum(q_in, 1e-10 * q_in.max())
    q_mass = q_mass / q_mass.sum()
    keep = p_mass > 0
    kl = float(np.sum(p_mass[keep] * np.log(p_mass[keep] / q_mass[keep])))
    return Overlap(oa, kl, oa_mgeval)


def _summary(values: np.ndarray) -> dict:
    mean, std = values.mean(axis=0), values.std(axis=0)
    return {"mean": mean.tolist() if np.ndim(mean) else float(mean),
            "std": std.tolist() if np.ndim(std) else float(std)}


def compare_feature(generated: np.ndarray, reference: np.ndarray) -> dict:
    """One feature of both sets (NaN rows dropped) -> OA/KLD and the statistics mgeval reports, plus the distance
    samples under "_distances" (for plots)."""
    generated = generated[~np.isnan(_as_matrix(generated)).any(axis=1)]
    reference = reference[~np.isnan(_as_matrix(reference)).any(axis=1)]
    if len(generated) < 2 or len(reference) < 2:
        raise ValueError(f"needs 2 pieces per set, has {len(generated)} generated and {len(reference)} reference")
    intra_generated, intra_reference = intra_set_distances(generated), intra_set_distances(reference)
    inter = inter_set_distances(generated, reference)
    reference_side, generated_side = overlap_and_kl(intra_reference, inter), overlap_and_kl(intra_generated, inter)
    return {"oa": reference_side.oa, "kld": reference_side.kld, "oa_mgeval": reference_side.oa_mgeval,
            "oa_generated": generated_side.oa, "kld_generated": generated_side.kld,
            "generated": _summary(generated), "reference": _summary(reference),
            "intra_generated": _summary(intra_generated), "intra_reference": _summary(intra_reference),
            "inter": _summary(inter), "pieces": {"generated": len(generated), "reference": len(reference)},
            "_distances": {"intra_generated": intra_generated, "intra_reference": intra_reference, "inter": inter}}


def compare_sets(generated: FeatureSet, reference: FeatureSet) -> dict:
    """Two FeatureSets -> {"features": {name: compare_feature(...)}, "mean_oa", "min_oa", "mean_oa_mgeval",
    "skipped_features",
    "generated"/"reference": {folder, pieces, skipped}}; features too short in a set are skipped and named."""
    features, skipped_features = {}, {}
    for name in FEATURES:
        try:
            features[name] = compare_feature(generated.values[name], reference.values[name])
        except ValueError as error:
            skipped_features[name] = str(error)
    oas = [f["oa"] for f in features.values()]
    mgeval_oas = [f["oa_mgeval"] for f in features.values()]
    return {"features": features, "mean_oa": float(np.mean(oas)) if oas else float("nan"),
            "min_oa": float(np.min(oas)) if oas else float("nan"),
            "mean_oa_mgeval": float(np.mean(mgeval_oas)) if mgeval_oas else float("nan"),
            "skipped_features": skipped_features,
            "generated": {"folder": generated.folder, "pieces": len(generated.files), "skipped": generated.skipped},
            "reference": {"folder": reference.folder, "pieces": len(reference.files), "skipped": reference.skipped}}


def evaluate_folders(generated_dir, reference_dir, progress: bool = False) -> dict:
    """Two folders of MIDI files -> compare_sets(...) result."""
    return compare_sets(extract_folder(generated_dir, progress), extract_folder(reference_dir, progress))


def json_ready(result: dict) -> dict:
    """compare_sets(...) result without the distance samples, NaN/inf as None (valid JSON)."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not k.startswith("_")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    return clean(result)


__all__ = ["FEATURES", "Piece", "read_piece", "piece_features", "bar_features", "extract_folder", "FeatureSet",
           "intra_set_distances", "inter_set_distances", "kde_on_grid", "overlap_and_kl", "compare_feature",
           "compare_sets", "evaluate_folders", "json_ready", "midi_files", "ticks_to_seconds"]

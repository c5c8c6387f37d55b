"""Objective metrics of symbolic music (MusDr, Wu & Yang 2020; used by the Pop Music Transformer assignment).

All metrics are computed on REMI ids, so bars and in-bar positions come from the converter's meter-aware grid
(time signatures and tempos of the NoteSequence); a NoteSequence or a MIDI file is encoded first.

- `H1`, `H4`: pitch-class histogram entropy (bits) of every 1- or 4-bar window (sliding by one bar; windows
  without notes skipped; a piece shorter than the window uses all its bars), averaged.  Note counts, not durations,
  as MusDr's `get_pitch_histogram`.  One pitch class -> 0; all 12 equally often -> log2(12).
- `GS`: grooving similarity, the mean over bar pairs (at most `max_pairs`, sampled with a fixed seed) of
  1 - |onsets_a XOR onsets_b| / Q, onsets being binary vectors over the Q grid positions of the bar (Q = the
  longer bar's positions when meters differ).  Identical rhythms -> 1.
- `CPI`: chord progression irregularity, unique chord trigrams / (chords - 3) as MusDr computes it (its
  denominator is one less than the number of trigrams; 1.0 when there are <= 3 chords).  Chords are REMI's chord
  tokens (from markers, or the paper's recogniser when the file has none).
- `SI_short`, `SI_mid`, `SI_long`: the structureness indicator (Wu & Yang 2020, the Jazz Transformer paper):
  the best fitness in the scape plot of a beat-chroma self-similarity matrix over segments of 6-16, 16-30 and
  >= 30 beats (MusDr's SI(3, 8), SI(8, 15), SI(15, ) in seconds at 2 frames/s); see `music/structure.py`.  It
  costs ~3 s for a 32-bar piece, so `structure=False` leaves it out.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.remi import BAR, EOS_ID, PAD_ID, RemiConverter
from musicgen_tf.music.structure import SI_RANGES, remi_notes, structure_from_notes

METRICS = ("H1", "H4", "GS", "CPI") + tuple(SI_RANGES)


def _bars(ids: np.ndarray, bar_id: int) -> list[np.ndarray]:
    """ids [L] -> one array per bar (from its Bar token to the next); tokens before the first bar dropped."""
    starts = np.flatnonzero(ids == bar_id)
    return [ids[a:b] for a, b in zip(starts, list(starts[1:]) + [len(ids)])]


def histogram_entropy(counts) -> float:
    """Entropy in bits of a histogram of counts (any scale)."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def pitch_class_entropy(bars: list[np.ndarray], window: int, note_on_pitch: dict[int, int]) -> float:
    """Mean entropy of the pitch-class histograms of all `window`-bar windows (NaN without notes)."""
    window = min(window, len(bars))
    values = []
    for start in range(0, len(bars) - window + 1):
        pitches = [note_on_pitch[i] for bar in bars[start:start + window] for i in bar.tolist() if i in note_on_pitch]
        if pitches:
            values.append(histogram_entropy(np.bincount(np.asarray(pitches) % 12, minlength=12)))
    return float(np.mean(values)) if values else float("nan")


def onset_vector(bar: np.ndarray, position_of: dict[int, tuple[int, int]], note_on_pitch: dict[int, int]):
    """One bar's ids -> (bool onsets [Q], Q): positions holding at least one Note-On."""
    size, current, onsets = 0, 0, set()
    for token in bar.tolist():
        if token in position_of:
            current, size = position_of[token]
        elif token in note_on_pitch:
            onsets.add(current)
    size = size or max(onsets, default=0) + 1
    vector = np.zeros(max(size, max(onsets, default=0) + 1), bool)
    vector[list(onsets)] = True
    return vector


def groove_similarity(bars: list[np.ndarray], position_of, note_on_pitch, max_pairs: int = 1000,
                      seed: int = 0) -> float:
    """Mean 1 - Hamming/Q over pairs of bars (NaN with fewer than 2 bars)."""
    vectors = [onset_vector(bar, position_of, note_on_pitch) for bar in bars]
    pairs = list(itertools.combinations(range(len(vectors)), 2))
    if not pairs:
        return float("nan")
    if len(pairs) > max_pairs:
        chosen = np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[i] for i in sorted(chosen)]
    sims = []
    for a, b in pairs:
        q = max(len(vectors[a]), len(vectors[b]))
        va, vb = (np.pad(v, (0, q - len(v))) for v in (vectors[a], vectors[b]))
        sims.append(1.0 - np.sum(va != vb) / q)
    return float(np.mean(sims))


def chord_progression_irregularity(chords: list, ngram: int = 3) -> float:
    """MusDr's CPI: unique n-grams / (len - n), 1.0 for len <= n."""
    if len(chords) <= ngram:
        return 1.0
    count = len(chords) - ngram
    return len({tuple(chords[i:i + ngram]) for i in range(count)}) / count


class _Tables:
    """Id lookups of one converter's vocabulary."""

    def __init__(self, converter: RemiConverter):
        tokens = converter.vocab.tokens
        self.bar_id = converter.vocab.token_to_id(BAR)
        self.note_on_pitch = {i: int(t.split("_")[1]) for i, t in enumerate(tokens) if t.startswith("Note-On_")}
        self.position_of = {}
        for i, t in enumerate(tokens):
            if t.startswith("Position_"):
                index, size = t.split("_")[1].split("/")
                self.position_of[i] = (int(index) - 1, int(size))
        self.chord_ids = {i for i, t in enumerate(tokens) if t.startswith("Chord_")}


_TABLES: dict[str, _Tables] = {}


def metrics_from_ids(ids, converter: RemiConverter | None = None, max_pairs: int = 1000,
                     structure: bool = True) -> dict[str, float]:
    """REMI ids [L] (PAD/EOS allowed) -> {"H1", "H4", "GS", "CPI", "SI_short", "SI_mid", "SI_long", "bars",
    "notes"} (the SI values NaN when `structure` is False)."""
    converter = converter or RemiConverter()
    key = repr(sorted(converter.params().items()))
    if key not in _TABLES:
        _TABLES[key] = _Tables(converter)
    tables = _TABLES[key]
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    ends = np.flatnonzero(ids == EOS_ID)
    ids = ids[: ends[0]] if len(ends) else ids
    ids = ids[ids != PAD_ID]
    bars = _bars(ids, tables.bar_id)
    while bars and len(bars[-1]) == 1:  # a trailing lone Bar marker (MusDr drops it too)
        bars.pop()
    chords = [int(i) for i in ids if int(i) in tables.chord_ids]
    if structure:
        notes = remi_notes(converter.tokens_to_strings(ids), converter.positions_per_quarter)
        si = structure_from_notes(notes, converter.positions_per_quarter)
    else:
        si = {name: float("nan") for name in SI_RANGES}
    return {"H1": pitch_class_entropy(bars, 1, tables.note_on_pitch),
            "H4": pitch_class_entropy(bars, 4, tables.note_on_pitch),
            "GS": groove_similarity(bars, tables.position_of, tables.note_on_pitch, max_pairs),
            "CPI": chord_progression_irregularity(chords), **si,
            "bars": float(len(bars)), "notes": float(sum(int(i) in tables.note_on_pitch for i in ids))}


def metrics_from_note_sequence(ns, converter: RemiConverter | None = None, structure: bool = True) -> dict[str, float]:
    """NoteSequence -> metrics (encoded to REMI on the converter's bar/position grid first)."""
    converter = converter or RemiConverter()
    return metrics_from_ids(converter.encode_ids(ns), converter, structure=structure)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else METRICS
    out = {}
    for key in keys:
        values = [row[key] for row in rows if not np.isnan(row[key])]
        out[key] = float(np.mean(values)) if values else float("nan")
    return out


def evaluate_midi_dir(folder, converter: RemiConverter | None = None, structure: bool = True) -> dict:
    """Every .mid/.midi under `folder` -> {"files": {relative name: metrics}, "mean": metrics,
    "skipped": {name: reason}}."""
    from musicgen_tf.music.midi_io import midi_file_to_note_sequence

    converter = converter or RemiConverter()
    root = Path(os.path.expanduser(os.fspath(folder)))
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    files, skipped = {}, {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi")):
        name = str(path.relative_to(root))
        try:
            files[name] = metrics_from_note_sequence(midi_file_to_note_sequence(str(path)), converter,
                                                     structure=structure)
        except SkipInput as error:
            skipped[name] = error.reason
    return {"files": files, "mean": _mean(list(files.values())), "skipped": skipped}


__all__ = ["METRICS", "metrics_from_ids", "metrics_from_note_sequence", "evaluate_midi_dir", "histogram_entropy",
           "groove_similarity", "pitch_class_entropy", "chord_progression_irregularity"]

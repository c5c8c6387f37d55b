"""A piece as its 128-bin MIDI pitch histogram (seed 000's β-VAE input).

The seed parsed each MIDI file with music21, counted the pitches of all notes and chord members, and divided by
the total so that the vector is a distribution.  We do the same from a NoteSequence: count (or, with
`weight="duration"`, seconds of) every non-drum note per MIDI pitch and normalise to sum 1.  The seed returned a
zero vector for unreadable or empty files; here such inputs raise `SkipInput` so they are counted, not trained on.

Example: `{"histogram": float32 [128]}`, one per piece.  `from_example` cannot recover the music, only make the
distribution audible: the `render_top_k` most likely pitches as a one-bar ascending arpeggio (eighth notes for k=8)
and then a one-bar chord, loudness following probability (deterministic, 120 qpm).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Converter, Feature

NUM_PITCHES = 128
DEFAULT_QPM = 120.0


def entropy_bits(histogram: np.ndarray) -> float:
    """Shannon entropy in bits of a (normalised) histogram; 0 for a single pitch, log2(128) = 7 at most."""
    p = np.asarray(histogram, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


class PitchHistogramConverter(Converter):
    """NoteSequence -> normalised pitch histogram float32 [128], and back to a short audible sketch.

    Args:
      weight: "count" (seed) or "duration" (seconds each pitch sounds).
      include_drums: drum "pitches" are instruments, not pitches, so they are left out by default.
      render_top_k: how many pitches `from_example` plays.
    """

    name = "pitch_histogram"
    schema_version = 1

    def __init__(self, weight: str = "count", include_drums: bool = False, render_top_k: int = 8):
        if weight not in ("count", "duration"):
            raise ValueError(f"weight must be 'count' or 'duration', got {weight!r}")
        self.weight = weight
        self.include_drums = bool(include_drums)
        self.render_top_k = int(render_top_k)

    def params(self) -> dict[str, Any]:
        return {"weight": self.weight, "include_drums": self.include_drums, "render_top_k": self.render_top_k}

    def feature_spec(self) -> dict[str, Feature]:
        return {"histogram": Feature("float32", (NUM_PITCHES,))}


    def to_examples(self, ns: music_pb2.NoteSequence) -> list[dict[str, np.ndarray]]:
        path = ns.filename or ns.id or "<sequence>"
        histogram = np.zeros(NUM_PITCHES, dtype=np.float64)
        for note in ns.notes:
            if note.is_drum and not self.include_drums:
                continue
            histogram[note.pitch] += 1.0 if self.weight == "count" else max(note.end_time - note.start_time, 0.0)
        total = histogram.sum()
        if total <= 0:
            raise SkipInput(path, "no pitched notes", "all notes have zero length" if len(ns.notes) else "")
        return [{"histogram": (histogram / total).astype(np.float32)}]

    def from_example(self, example: dict[str, np.ndarray]) -> music_pb2.NoteSequence:
        """Top-k pitches (by probability, ties to the lower pitch) as an arpeggio bar then a chord bar."""
        histogram = np.clip(np.asarray(example["histogram"], dtype=np.float64).reshape(NUM_PITCHES), 0.0, None)
        order = np.lexsort((np.arange(NUM_PITCHES), -histogram))  # by probability desc, then pitch asc
        top = sorted(int(p) for p in order[:self.render_top_k] if histogram[p] > 0)
        ns = music_pb2.NoteSequence(ticks_per_quarter=480)
        ns.tempos.add(time=0.0, qpm=DEFAULT_QPM)
        ns.time_signatures.add(time=0.0, numerator=4, denominator=4)
        if not top:
            return ns
        bar = 4 * 60.0 / DEFAULT_QPM
        step = bar / len(top)
        peak = histogram[top].max()

        def velocity(p: int) -> int:
            return int(round(40 + 87 * histogram[p] / peak))

        for i, pitch in enumerate(top):
            ns.notes.add(pitch=pitch, velocity=velocity(pitch), start_time=i * step, end_time=(i + 1) * step)
        for pitch in top:
            ns.notes.add(pitch=pitch, velocity=velocity(pitch), start_time=bar, end_time=2 * bar)
        ns.total_time = 2 * bar
        return ns

    def stats(self, example: dict[str, np.ndarray]) -> dict[str, float]:
        histogram = np.asarray(example["histogram"], dtype=np.float64)
        return {"entropy_bits": entropy_bits(histogram), "distinct_pitches": float((histogram > 0).sum()),
                "mean_pitch": float((histogram * np.arange(NUM_PITCHES)).sum() / max(histogram.sum(), 1e-12))}

"""Melody as a 16th-note time series of symbols ("60 _ _ r _ 62"), the preprocessing of seed 002.

Seed 002 follows Valerio Velardo's "generating melodies with RNN-LSTM" `preprocess.py`:

1. keep only songs whose every note and rest lasts one of ACCEPTABLE_DURATIONS quarters;
2. transpose to C major / A minor (key from the file, else estimated);
3. write one symbol per 16th (`time_step` = 0.25 quarter): the MIDI pitch at an onset, "r" at a rest onset and
   "_" while the previous event is held.  Songs are separated by "/" symbols when they are concatenated.

Differences from the seed, on purpose:
- The vocabulary is fixed, `[PAD, "/", "r", "_", "min_pitch" .. "max_pitch"]`, instead of the symbols found in the
  corpus (the seed's `mapping.json`), so TFRecords and models do not depend on which files were read.
- Transposition takes the nearest shift (-6..+5 semitones) to C / A instead of music21's octave-4 interval
  (which can move a song down 11 semitones); the key is estimated with Krumhansl-Kessler profiles when the
  NoteSequence has no key signature (music21's `analyze("key")` is the same family of method).
- Polyphonic input is reduced to its skyline: at each onset the highest note is kept and a note ends at the next
  onset.  Drums are ignored.
- Rests are the gaps between notes (including a leading one); they must be acceptable durations too.

One example per song: `{"tokens": int64 [length]}`.  Fixed-length windows are the dataset's job (`windows`).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Converter, Feature
from musicgen_tf.music.remi import seconds_to_quarters_fn

ACCEPTABLE_DURATIONS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)  # quarters (seed value)
PAD, DELIMITER, REST, HOLD = "<pad>", "/", "r", "_"
PAD_ID = 0
DEFAULT_QPM = 120.0
_TOLERANCE = 1e-3  # quarters; MIDI ticks give exact fractions up to float error
# Krumhansl-Kessler key profiles, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def vocabulary(min_pitch: int, max_pitch: int) -> list[str]:
    """Fixed symbol list; its index is the token id (PAD=0)."""
    return [PAD, DELIMITER, REST, HOLD] + [str(p) for p in range(min_pitch, max_pitch + 1)]


def estimate_key(pitches: Iterable[int], durations: Iterable[float]) -> tuple[int, bool]:
    """Duration-weighted pitch-class profile vs the 24 rotated Krumhansl-Kessler profiles -> (tonic, is_minor)."""
    profile = np.zeros(12)
    for pitch, duration in zip(pitches, durations):
        profile[pitch % 12] += duration
    best, best_score = (0, False), -np.inf
    for is_minor, template in ((False, _MAJOR_PROFILE), (True, _MINOR_PROFILE)):
        for tonic in range(12):
            score = np.corrcoef(profile, np.roll(template, tonic))[0, 1] if profile.std() > 0 else 0.0
            if score > best_score + 1e-12:
                best, best_score = (tonic, is_minor), score
    return best


def transposition_to_c(tonic: int, is_minor: bool) -> int:
    """Semitones that move `tonic` to C (major) or A (minor), nearest first: in -6..+5."""
    return (((0 if not is_minor else 9) - tonic + 6) % 12) - 6


def windows(tokens: np.ndarray, length: int, hop: int = 1) -> np.ndarray:
    """Every `length`-long window starting each `hop` symbols: int64 [num_windows, length] (0 rows if too short)."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if len(tokens) < length:
        return np.zeros((0, length), dtype=np.int64)
    starts = np.arange(0, len(tokens) - length + 1, hop)
    return tokens[starts[:, None] + np.arange(length)[None, :]]


class MelodyTimeSeriesConverter(Converter):
    """NoteSequence (one melody) <-> symbol ids on a 16th grid.  Example: `{"tokens": int64 [steps]}`.

    Args:
      min_pitch, max_pitch: pitch symbols in the vocabulary; songs outside after transposition are skipped.
      time_step: grid in quarters (0.25 = 16th, the seed's value).
      acceptable_durations: allowed note/rest lengths in quarters.
      transpose: move to C major / A minor (seed: always).
      use_key_signature: trust the NoteSequence's first key signature instead of estimating the key.
    """

    name = "melody_timeseries"
    schema_version = 1

    def __init__(self, min_pitch: int = 21, max_pitch: int = 108, time_step: float = 0.25,
                 acceptable_durations: Iterable[float] = ACCEPTABLE_DURATIONS, transpose: bool = True,
                 use_key_signature: bool = True):
        self.min_pitch, self.max_pitch = int(min_pitch), int(max_pitch)
        self.time_step = float(time_step)
        self.acceptable_durations = [float(d) for d in acceptable_durations]
        self.transpose = bool(transpose)
        self.use_key_signature = bool(use_key_signature)
        self.symbols = vocabulary(self.min_pitch, self.max_pitch)
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    def params(self) -> dict[str, Any]:
        return {"min_pitch": self.min_pitch, "max_pitch": self.max_pitch, "time_step": self.time_step,
                "acceptable_durations": list(self.acceptable_durations), "transpose": self.transpose,
                "use_key_signature": self.use_key_signature}

    def feature_spec(self) -> dict[str, Feature]:
        return {"tokens": Feature("int64", (None,))}

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)


    # -- symbols <-> ids (the CLI prompt "60 _ _ 62 _ 64")
    def encode_symbols(self, text: str) -> np.ndarray:
        """"60 _ _ r" -> int64 ids [n]; unknown symbols raise ValueError naming the allowed ones."""
        ids = []
        for symbol in text.split():
            if symbol not in self._ids or symbol == PAD:
                raise ValueError(f"unknown melody symbol {symbol!r}; use a MIDI pitch "
                                 f"{self.min_pitch}..{self.max_pitch}, '{REST}', '{HOLD}' or '{DELIMITER}'")
            ids.append(self._ids[symbol])
        return np.array(ids, dtype=np.int64)

    def decode_symbols(self, tokens: Iterable[int]) -> str:
        """int ids -> "60 _ _ r" (PAD dropped)."""
        return " ".join(self.symbols[int(t)] for t in np.asarray(tokens).reshape(-1) if int(t) != PAD_ID)

    def delimiter_ids(self, count: int) -> np.ndarray:
        """`count` song delimiters, int64 [count]; the seed puts sequence_length of them between songs."""
        return np.full(count, self._ids[DELIMITER], dtype=np.int64)

    # -- NoteSequence -> ids
    def to_examples(self, ns: music_pb2.NoteSequence) -> list[dict[str, np.ndarray]]:
        path = ns.filename or ns.id or "<sequence>"
        events = self._events(ns, path)  # [(pitch or None, quarters)]
        if self.transpose:
            shift = self._shift(ns, events)
            events = [(None if p is None else p + shift, d) for p, d in events]
        symbols = []
        for pitch, duration in events:
            if pitch is not None and not self.min_pitch <= pitch <= self.max_pitch:
                raise SkipInput(path, "pitch out of range", f"{pitch} not in {self.min_pitch}..{self.max_pitch}")
            steps = int(round(duration / self.time_step))
            symbols += [REST if pitch is None else str(pitch)] + [HOLD] * (steps - 1)
        return [{"tokens": np.array([self._ids[s] for s in symbols], dtype=np.int64)}]

    def _events(self, ns, path: str) -> list[tuple[int | None, float]]:
        """Skyline notes and the rests between them, in quarters; checks every duration is acceptable."""
        to_quarters = seconds_to_quarters_fn(ns)
        onsets: dict[float, tuple[int, float]] = {}
        for note in ns.notes:
            if note.is_drum:
                continue
            start, end = round(to_quarters(note.start_time), 6), round(to_quarters(note.end_time), 6)
            if start not in onsets or note.pitch > onsets[start][0]:
                onsets[start] = (note.pitch, end)
        if not onsets:
            raise SkipInput(path, "no pitched notes")
        events, time = [], 0.0
        starts = sorted(onsets)
        for i, start in enumerate(starts):
            pitch, end = onsets[start]
            if i + 1 < len(starts):
                end = min(end, starts[i + 1])
            if start > time + _TOLERANCE:
                events.append((None, start - time))
            events.append((pitch, end - start))
            time = end
        for _, duration in events:
            if not any(abs(duration - ok) < _TOLERANCE for ok in self.acceptable_durations):
                raise SkipInput(path, "unacceptable durations", f"{duration:g} quarters")
        return events

    def _shift(self, ns, events) -> int:
        if self.use_key_signature and ns.key_signatures:
            first = min(ns.key_signatures, key=lambda k: k.time)
            tonic, is_minor = first.key, first.mode == music_pb2.NoteSequence.KeySignature.MINOR
        else:
            notes = [(p, d) for p, d in events if p is not None]
            tonic, is_minor = estimate_key([p for p, _ in notes], [d for _, d in notes])
        return transposition_to_c(tonic, is_minor)

    # -- ids -> NoteSequence
    def from_example(self, example: dict[str, np.ndarray]) -> music_pb2.NoteSequence:
        """Symbols -> NoteSequence at 120 qpm; leading "/" are skipped and a later "/" ends the melody."""
        seconds_per_step = self.time_step * 60.0 / DEFAULT_QPM
        ns = music_pb2.NoteSequence(ticks_per_quarter=480)
        ns.tempos.add(time=0.0, qpm=DEFAULT_QPM)
        pitch, start, step, started = None, 0, 0, False
        for symbol in self.decode_symbols(example["tokens"]).split():
            if symbol == DELIMITER:
                if started:
                    break
                continue
            started = True
            if symbol != HOLD:
                if pitch is not None:
                    ns.notes.add(pitch=pitch, velocity=100, start_time=start * seconds_per_step,
                                 end_time=step * seconds_per_step)
                pitch, start = (None if symbol == REST else int(symbol)), step
            step += 1
        if pitch is not None:
            ns.notes.add(pitch=pitch, velocity=100, start_time=start * seconds_per_step,
                         end_time=step * seconds_per_step)
        ns.total_time = step * seconds_per_step
        return ns

    def stats(self, example: dict[str, np.ndarray]) -> dict[str, float]:
        tokens = np.asarray(example["tokens"]).reshape(-1)
        onsets = tokens >= self._ids[str(self.min_pitch)]
        rests = tokens == self._ids[REST]
        return {"length": float(len(tokens)), "notes": float(onsets.sum()), "rests": float(rests.sum())}


def encode_symbols(text: str, min_pitch: int = 21, max_pitch: int = 108) -> np.ndarray:
    """Module-level shortcut for `MelodyTimeSeriesConverter(min_pitch, max_pitch).encode_symbols(text)`."""
    return MelodyTimeSeriesConverter(min_pitch=min_pitch, max_pitch=max_pitch).encode_symbols(text)


def decode_symbols(tokens: Iterable[int], min_pitch: int = 21, max_pitch: int = 108) -> str:
    """Module-level shortcut for `MelodyTimeSeriesConverter(min_pitch, max_pitch).decode_symbols(tokens)`."""
    return MelodyTimeSeriesConverter(min_pitch=min_pitch, max_pitch=max_pitch).decode_symbols(tokens)

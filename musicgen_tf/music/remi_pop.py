"""REMI exactly as the Pop Music Transformer's code writes it (`YatingMusic/remi/utils.py`), for its checkpoints.

`RemiConverter(flavour="pop-music-transformer", vocabulary=[...])` builds this converter (`--param
flavour=pop-music-transformer`).  Our own REMI (`remi.py`: meter-aware, TimeSig/PAD/EOS tokens) stays the default
for training from scratch; this one reproduces the original's events token for token:

- event names as the original spells them: `Bar_None`, `Position_5/16`, `Chord_G:dom`, `Tempo Class_mid`,
  `Tempo Value_30`, `Note Velocity_20`, `Note On_60`, `Note Duration_7`; no TimeSig, PAD or EOS;
- times in ticks at 480 per quarter; onsets snapped to a 120-tick grid that stops before the last onset (so the
  last note is pulled back onto the grid below it, as the original does); every bar is 4/4 (16 positions);
- `Position` before every item; items at one tick: chord, tempo, then notes by (onset before snapping, pitch);
- durations in 64 bins of 60 ticks (32nd notes), the token value is the nearest bin's index (ties: the shorter);
- a Tempo pair at every beat from 0 up to the last tempo change (a change off the beat is not seen, a beat without
  a change repeats the previous tempo); tempo truncated to an integer qpm; below 30 -> slow 0, above 209 -> fast 59;
- chords from the paper's recogniser (`chords.py`) with its quality names (`dom`, not `dom7`), only when the
  vocabulary has `Chord_*` events (the tempo-only checkpoint has none);
- bars without a note are dropped; items after the bar of the last onset are dropped;
- ids are positions in `vocabulary` (the checkpoint's `dictionary.pkl` order, never assumed).

Decoding follows its `write_midi`: Position + Velocity + On + Duration makes a note, Position + Chord a chord,
Position + Tempo Class + Tempo Value a tempo; every `Bar_None` after the first starts the next 4/4 bar.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.chords import recognize_chords
from musicgen_tf.music.remi import (BAR, PITCH_CLASSES, RemiConverter, TokenVocabulary, _steps_to_seconds_fn,
                                    chord_figure, seconds_to_quarters_fn)

FLAVOUR = "pop-music-transformer"
TICKS_PER_BEAT = 480
TICKS_PER_BAR = 4 * TICKS_PER_BEAT
POSITIONS = 16
GRID = TICKS_PER_BAR // POSITIONS  # 120 ticks, a 16th note
VELOCITY_BINS = np.linspace(0, 128, 32 + 1, dtype=np.int64)
DURATION_BINS = np.arange(60, 3841, 60, dtype=np.int64)  # 64 bins of a 32nd note
TEMPO_CLASSES = (("slow", 30), ("mid", 90), ("fast", 150))  # each spans 60 qpm
CHORD_QUALITIES = ("maj", "min", "dim", "aug", "dom")
_QUALITY_NAMES = {"dom7": "dom"}  # chords.py's name -> the original's


def default_vocabulary(chords: bool = True) -> list[str]:
    """Every event the original can write (a released dictionary holds those of its training data, in its own
    order; importing a checkpoint always takes that one)."""
    names = [BAR] + [f"Position_{i}/{POSITIONS}" for i in range(1, POSITIONS + 1)]
    if chords:
        names += [f"Chord_{root}:{q}" for root in PITCH_CLASSES for q in CHORD_QUALITIES] + ["Chord_N:N"]
    names += [f"Tempo Class_{name}" for name, _ in TEMPO_CLASSES] + [f"Tempo Value_{v}" for v in range(60)]
    names += [f"Note Velocity_{v}" for v in range(32)] + [f"Note On_{p}" for p in range(128)]
    names += [f"Note Duration_{d}" for d in range(len(DURATION_BINS))]
    return names


def tempo_events(qpm: int) -> tuple[str, str]:
    """Integer qpm -> (`Tempo Class_x`, `Tempo Value_v`) as the original's `item2event` (210 counts as fast 59;
    the original repeats the previous tempo pair there)."""
    for name, start in TEMPO_CLASSES:
        if start <= qpm < start + 60:
            return f"Tempo Class_{name}", f"Tempo Value_{qpm - start}"
    return ("Tempo Class_slow", "Tempo Value_0") if qpm < 30 else ("Tempo Class_fast", "Tempo Value_59")


def nearest_index(bins: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest bin for each value (ties: the lower bin, as `np.argmin`); bins ascending."""
    values = np.asarray(values)
    hi = np.clip(np.searchsorted(bins, values), 0, len(bins) - 1)
    lo = np.clip(hi - 1, 0, len(bins) - 1)
    return np.where(np.abs(bins[lo] - values) <= np.abs(bins[hi] - values), lo, hi)


class DictionaryVocabulary(TokenVocabulary):
    """Event names <-> ids in a given order (the checkpoint's dictionary)."""

    where = "the checkpoint's dictionary"


class PopMusicRemiConverter(RemiConverter):
    """NoteSequence <-> the original's REMI ids.  Example: `{"tokens": int64 [length]}` (no EOS, no PAD).

    Args:
      vocabulary: event names in id order (default: `default_vocabulary()`); chords are written iff it has
        `Chord_*` events.
    """

    pad_id = eos_id = -1  # the original's vocabulary has neither

    def __init__(self, flavour: str = FLAVOUR, vocabulary: Sequence[str] | None = None):
        if flavour != FLAVOUR:
            raise ValueError(f"PopMusicRemiConverter is the {FLAVOUR!r} flavour, got {flavour!r}")
        self.flavour = FLAVOUR
        self.vocab = DictionaryVocabulary(default_vocabulary() if vocabulary is None else vocabulary)
        if BAR not in self.vocab:
            raise ValueError(f"the REMI vocabulary has no {BAR!r} event")
        self.with_chords = any(t.startswith("Chord_") for t in self.vocab.tokens)
        self.positions_per_quarter = POSITIONS // 4

    def params(self) -> dict[str, Any]:
        return {"flavour": self.flavour, "vocabulary": list(self.vocab.tokens)}

    # -- ids (no PAD/EOS: negative ids fill rows that ended early)
    def tokens_to_strings(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab.id_to_token(i) for i in np.asarray(ids).reshape(-1) if int(i) >= 0]

    def original_event_names(self, ids: Iterable[int]) -> list[str]:
        return self.tokens_to_strings(ids)

    def start_ids(self, rng: np.random.Generator) -> np.ndarray:
        """The opening the original's `generate` writes before sampling from scratch, int64 [4 or 6]: Bar_None,
        Position_1/16, (a random chord, Position_1/16,) a random Tempo Class and Tempo Value, each drawn uniformly
        among the dictionary's events of that type."""
        def any_of(prefix):
            return int(rng.choice([i for i, t in enumerate(self.vocab.tokens) if t.startswith(prefix)]))

        bar, first = self.vocab.token_to_id(BAR), self.vocab.token_to_id(f"Position_1/{POSITIONS}")
        chord = [any_of("Chord_"), first] if self.with_chords else []
        return np.array([bar, first] + chord + [any_of("Tempo Class_"), any_of("Tempo Value_")], dtype=np.int64)

    def continuation_prompt(self, ids: Iterable[int]) -> np.ndarray:
        """A prompt's ids as the original feeds them: its events followed by one Bar_None, int64 [P + 1]."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return np.concatenate([ids[ids >= 0], [self.vocab.token_to_id(BAR)]])

    def first_bars(self, ids: Iterable[int], num_bars: int) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        ids = ids[ids >= 0]
        bar_starts = np.flatnonzero(ids == self.vocab.token_to_id(BAR))
        return ids if len(bar_starts) <= num_bars else ids[:bar_starts[num_bars]]

    def stats(self, example: dict[str, np.ndarray]) -> dict[str, float]:
        ids = np.asarray(example["tokens"]).reshape(-1)
        ids = ids[ids >= 0]
        return {"length": float(len(ids)), "bars": float(np.sum(ids == self.vocab.token_to_id(BAR))),
                "notes": float(self.vocab.ids_of_type(ids, "Note On").sum()),
                "chords": float(self.vocab.ids_of_type(ids, "Chord").sum())}

    # -- NoteSequence -> events
    def encode_ids(self, ns: music_pb2.NoteSequence) -> np.ndarray:
        path = ns.filename or ns.id or "<sequence>"
        events = self.events(ns)
        missing = sorted({e for e in events if e not in self.vocab})
        if missing:
            raise SkipInput(path, "event not in the checkpoint's dictionary", ", ".join(missing[:5]))
        return np.array([self.vocab.token_to_id(e) for e in events], dtype=np.int64)

    def events(self, ns: music_pb2.NoteSequence) -> list[str]:
        """The original's `extract_events` on a NoteSequence -> event names."""
        path = ns.filename or ns.id or "<sequence>"
        to_quarters = seconds_to_quarters_fn(ns)

        def ticks(seconds):
            return np.rint(to_quarters(np.asarray(seconds, np.float64)) * TICKS_PER_BEAT).astype(np.int64)

        if not ns.notes:
            raise SkipInput(path, "no notes")
        first = min(n.instrument for n in ns.notes)  # the original reads the first instrument only
        notes = [n for n in ns.notes if n.instrument == first]
        starts = ticks([n.start_time for n in notes])
        ends = ticks([n.end_time for n in notes])
        pitches = np.array([n.pitch for n in notes], np.int64)
        velocities = np.array([n.velocity for n in notes], np.int64)
        order = np.lexsort((pitches, starts))  # (start, pitch), stable
        starts, ends, pitches, velocities = starts[order], ends[order], pitches[order], velocities[order]
        grid = np.arange(0, starts[-1], GRID, dtype=np.int64)  # stops before the last onset, as the original
        if len(grid) == 0:
            raise SkipInput(path, "all notes start at tick 0", "the original's quantiser needs a later onset")
        shift = grid[nearest_index(grid, starts)] - starts
        order = np.argsort(starts + shift, kind="stable")  # re-sorted by snapped onset, ties keep (start, pitch)
        starts, ends = (starts + shift)[order], (ends + shift)[order]
        pitches, velocities = pitches[order], velocities[order]
        max_time = int(ends[-1])

        items: list[tuple[int, str, Any]] = []  # (tick, kind, value) in the original's item order
        if self.with_chords:
            chords = recognize_chords(np.stack([starts, ends, pitches], 1), TICKS_PER_BEAT)
            for tick, label in chords:
                root, quality = label.split(":")
                items.append((int(tick), "Chord", f"{root}:{_QUALITY_NAMES.get(quality, quality)}"))
        for tick, qpm in self._beat_tempi(ns, ticks):
            items.append((tick, "Tempo", qpm))
        for s, p, v, e in zip(starts.tolist(), pitches.tolist(), velocities.tolist(), ends.tolist()):
            items.append((s, "Note", (p, v, e - s)))
        items.sort(key=lambda item: item[0])  # stable: chords, tempi, notes at one tick

        events: list[str] = []
        for bar_start in range(0, max_time, TICKS_PER_BAR):  # the original's downbeats before max_time
            inside = [item for item in items if bar_start <= item[0] < bar_start + TICKS_PER_BAR]
            if not any(kind == "Note" for _, kind, _ in inside):
                continue
            events.append(BAR)
            for tick, kind, value in inside:
                events.append(f"Position_{(tick - bar_start) // GRID + 1}/{POSITIONS}")
                if kind == "Note":
                    pitch, velocity, duration = value
                    events += [f"Note Velocity_{int(np.searchsorted(VELOCITY_BINS, velocity, side='right')) - 1}",
                               f"Note On_{pitch}", f"Note Duration_{int(nearest_index(DURATION_BINS, duration))}"]
                elif kind == "Chord":
                    events.append(f"Chord_{value}")
                else:
                    events += list(tempo_events(value))
        return events

    @staticmethod
    def _beat_tempi(ns, ticks) -> list[tuple[int, int]]:
        """[(beat tick, integer qpm)] from 0 to the last tempo change: the change exactly on that beat, else the
        previous beat's tempo (the original's `read_items`)."""
        tempos = sorted(((int(ticks(t.time)), int(round(t.qpm, 4))) for t in ns.tempos), key=lambda x: x[0])
        if not tempos:
            tempos = [(0, 120)]
        existing = dict(tempos)  # the last change at a tick wins
        out: list[tuple[int, int]] = []
        for tick in range(0, tempos[-1][0] + 1, TICKS_PER_BEAT):
            if tick in existing:
                out.append((tick, existing[tick]))
            elif out:
                out.append((tick, out[-1][1]))
            else:  # the original fails here (no tempo at tick 0); MIDI's default tempo
                out.append((tick, 120))
        return out

    # -- events -> NoteSequence
    def decode(self, tokens: Sequence[str]) -> music_pb2.NoteSequence:
        """Event names -> NoteSequence, as the original's `write_midi` reads them (4/4 bars of 1920 ticks)."""
        events = [t.split("_", 1) if "_" in t else (t, "") for t in tokens]
        notes, chords, tempos = [], [], []
        bar = 0
        for i, (name, value) in enumerate(events):
            if name == "Bar":
                bar += int(i > 0)
                continue
            if name != "Position":
                continue
            tick = bar * TICKS_PER_BAR + (int(value.split("/")[0]) - 1) * GRID
            following = [n for n, _ in events[i + 1:i + 4]]
            if following == ["Note Velocity", "Note On", "Note Duration"]:
                velocity = int(VELOCITY_BINS[int(events[i + 1][1])])
                duration = int(DURATION_BINS[int(events[i + 3][1])])
                notes.append((tick, int(events[i + 2][1]), duration, max(velocity, 1)))
            elif following[:1] == ["Chord"]:
                chords.append((tick, events[i + 1][1]))
            elif following[:2] == ["Tempo Class", "Tempo Value"]:
                start = dict(TEMPO_CLASSES)[events[i + 1][1]]
                tempos.append((tick, float(start + int(events[i + 2][1]))))

        ns = music_pb2.NoteSequence(ticks_per_quarter=TICKS_PER_BEAT)
        by_tick = {t: q for t, q in tempos}
        to_seconds = _steps_to_seconds_fn(list(by_tick.items()), TICKS_PER_BEAT)
        for t, qpm in sorted(by_tick.items()):
            ns.tempos.add(time=to_seconds(t), qpm=qpm)
        ns.time_signatures.add(time=0.0, numerator=4, denominator=4)
        for t, label in chords:
            root, _, quality = label.partition(":")
            figure = "N.C." if root == "N" else chord_figure(f"{root}:{'dom7' if quality == 'dom' else quality}")
            ns.text_annotations.add(time=to_seconds(t), text=figure,
                                    annotation_type=music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL)
        for t, pitch, duration, velocity in notes:
            ns.notes.add(pitch=pitch, velocity=velocity, start_time=to_seconds(t), end_time=to_seconds(t + duration))
            ns.total_time = max(ns.total_time, to_seconds(t + duration))
        return ns


__all__ = ["PopMusicRemiConverter", "DictionaryVocabulary", "default_vocabulary", "FLAVOUR", "tempo_events"]

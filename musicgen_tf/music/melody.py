"""Monophonic melodies as Magenta MusicVAE's `OneHotMelodyConverter` builds them (`cat-mel_2bar_small`, `*-mel_16bar`).

Port of `magenta/models/music_vae/data.py` (`LegacyEventListOneHotConverter` + `OneHotMelodyConverter`) and of
`magenta/pipelines/melody_pipelines.py:extract_melodies`, on top of the same note_seq primitives Magenta calls
(`Melody`, `MelodyOneHotEncoding`, `quantize_note_sequence`, `split_note_sequence_on_time_changes`).  Chord and key
conditioning are not ported.  Helpers shared with `drums.py` and `groovae.py` live in `magenta_common.py`.

Melody events: -2 = NO_EVENT (hold), -1 = NOTE_OFF, 0..127 = note-on pitch.  Token (one-hot class) of an event, from
`MelodyOneHotEncoding(min_pitch, max_pitch + 1)`: 0 = NO_EVENT, 1 = NOTE_OFF, `pitch - min_pitch + 2` = note-on; so
depth = max_pitch - min_pitch + 3 (90 for the piano range 21..108), plus one end-token class with `add_end_token`.
"""

from __future__ import annotations

import collections
import copy
from typing import Any

import note_seq
import numpy as np
from note_seq import sequences_lib

from musicgen_tf.errors import SkipInput
from musicgen_tf.music import keys
from musicgen_tf.music.converter import Converter, Feature
from musicgen_tf.music.magenta_common import (ConverterTensors, maybe_sample_items, np_onehot, quantize_or_reason,
                                              sequence_path, skip_reason, split_process_and_combine)

PIANO_MIN_MIDI_PITCH = 21
PIANO_MAX_MIDI_PITCH = 108
MEL_PROGRAMS = list(range(0, 32))  # piano, chromatic percussion, organ, guitar (Magenta's MEL_PROGRAMS)
OUTPUT_VELOCITY = 80  # velocity Magenta writes when decoding

# Data-converter arguments of the MusicVAE configs (magenta/models/music_vae/configs.py).
PRESETS: dict[str, dict[str, Any]] = {
    "cat-mel_2bar_small": dict(valid_programs=MEL_PROGRAMS, skip_polyphony=False, max_bars=100, slice_bars=2,
                               steps_per_quarter=4),
    "cat-mel_2bar_big": dict(valid_programs=MEL_PROGRAMS, skip_polyphony=False, max_bars=100, slice_bars=2,
                             steps_per_quarter=4),
    "hierdec-mel_16bar": dict(skip_polyphony=False, max_bars=100, slice_bars=16, steps_per_quarter=4),
    "flat-mel_16bar": dict(skip_polyphony=False, max_bars=100, slice_bars=16, steps_per_quarter=4),
}



def extract_melodies(quantized_sequence, min_bars=7, max_steps_truncate=None, gap_bars=1.0, min_unique_pitches=5,
                     ignore_polyphonic_notes=True, pad_end=False, filter_drums=True):
    """Port of `magenta.pipelines.melody_pipelines.extract_melodies` (search_start_step=0, no max_steps_discard).

    Returns (melodies, counts) where counts maps Magenta's statistic names to how often each filter fired.
    """
    sequences_lib.assert_is_relative_quantized_sequence(quantized_sequence)
    melodies, counts = [], collections.Counter()
    instruments = set(n.instrument for n in quantized_sequence.notes)
    steps_per_bar = int(sequences_lib.steps_per_bar_in_quantized_sequence(quantized_sequence))
    for instrument in instruments:
        search_start_step = 0
        while True:
            melody = note_seq.Melody()
            try:
                melody.from_quantized_sequence(
                    quantized_sequence, instrument=instrument, search_start_step=search_start_step,
                    gap_bars=gap_bars, ignore_polyphonic_notes=ignore_polyphonic_notes, pad_end=pad_end,
                    filter_drums=filter_drums)
            except note_seq.PolyphonicMelodyError:
                counts["polyphonic_tracks_discarded"] += 1
                break
            search_start_step = melody.end_step + (-melody.end_step) % steps_per_bar
            if not melody:
                break
            if len(melody) < melody.steps_per_bar * min_bars:
                counts["melodies_discarded_too_short"] += 1
                continue
            if max_steps_truncate is not None and len(melody) > max_steps_truncate:
                truncated_length = max_steps_truncate
                if pad_end:
                    truncated_length -= max_steps_truncate % melody.steps_per_bar
                melody.set_length(truncated_length)
                counts["melodies_truncated"] += 1
            if np.count_nonzero(melody.get_note_histogram()) < min_unique_pitches:
                counts["melodies_discarded_too_few_pitches"] += 1
                continue
            melodies.append(melody)
    return melodies, counts


def in_c(note_sequence, programs=None):
    """The NoteSequence transposed in place (pitched notes only) so that the best-fitting major scale of its notes
    of `programs` (None: all) is C major -- the key of the melody, not of a bass line the converter drops."""
    pitched = [note.pitch for note in note_sequence.notes
               if not note.is_drum and (programs is None or note.program in programs)]
    shift = keys.shift_to_c(pitched)
    if shift:
        note_sequence, _ = sequences_lib.transpose_note_sequence(note_sequence, shift, min_allowed_pitch=0,
                                                                 max_allowed_pitch=127, in_place=True)
    return note_sequence


class MelodyConverter(Converter):
    """NoteSequence <-> monophonic melody windows, exactly as Magenta's `OneHotMelodyConverter`.

    Parameters keep Magenta's names and defaults, except `max_bars=100, slice_bars=2` (the `cat-mel_2bar_small`
    data settings) so the default gives fixed-length examples; `PRESETS` / `from_preset` give the MusicVAE configs.
    `normalize_key` (not Magenta's): each piece is first transposed so that its best-fitting major scale is C major
    (`keys.shift_to_c`: -6..5 semitones; minor tunes land in A minor): a small model then learns melodies in one key
    instead of spreading its capacity over twelve.  Not ported: chord/key conditioning and training-mode random
    sampling (windows beyond `max_tensors_per_notesequence` are dropped deterministically, as Magenta does outside
    training).

    `to_tensors(ns)` -> `ConverterTensors` with inputs == outputs = bool one-hot [T, output_depth] per window,
    T = slice_bars * steps_per_bar (+1 with `add_end_token`), in Magenta's order (set order of unique windows).
    `to_examples(ns)` -> `[{"tokens": int64 [T]}]`, tokens = argmax of those one-hots (class ids described in the
    module docstring).  Models should embed the tokens (`tf.gather` / `Embedding(output_depth, ...)`) instead of
    multiplying one-hots: Magenta's encoder input is exactly `one_hot(tokens, input_depth)`.
    """

    name = "melody"
    presets = PRESETS

    def __init__(self, min_pitch: int = PIANO_MIN_MIDI_PITCH, max_pitch: int = PIANO_MAX_MIDI_PITCH,
                 valid_programs: list[int] | None = None, skip_polyphony: bool = False, max_bars: int | None = 100,
                 slice_bars: int | None = 2, gap_bars: float | None = 1.0, steps_per_quarter: int = 4,
                 quarters_per_bar: int = 4, add_end_token: bool = False, pad_to_total_time: bool = False,
                 max_tensors_per_notesequence: int | None = 5, presplit_on_time_changes: bool = True,
                 normalize_key: bool = False):
        if not 0 <= min_pitch <= max_pitch <= 127:
            raise ValueError(f"need 0 <= min_pitch <= max_pitch <= 127, got {min_pitch}..{max_pitch}")
        self.min_pitch, self.max_pitch = int(min_pitch), int(max_pitch)
        self.valid_programs = None if valid_programs is None else sorted(int(p) for p in valid_programs)
        self.skip_polyphony = bool(skip_polyphony)
        self.max_bars = max_bars
        self.slice_bars = slice_bars
        self.gap_bars = gap_bars
        self.steps_per_quarter = int(steps_per_quarter)
        self.quarters_per_bar = int(quarters_per_bar)
        self.add_end_token = bool(add_end_token)
        self.pad_to_total_time = bool(pad_to_total_time)
        self.max_tensors_per_notesequence = max_tensors_per_notesequence
        self.presplit_on_time_changes = bool(presplit_on_time_changes)
        self.normalize_key = bool(normalize_key)

        self.steps_per_bar = self.steps_per_quarter * self.quarters_per_bar
        self.slice_steps = self.steps_per_bar * slice_bars if slice_bars else None
        self.encoding = note_seq.MelodyOneHotEncoding(self.min_pitch, self.max_pitch + 1)
        self.end_token = self.encoding.num_classes if self.add_end_token else None


    # -- interface -----------------------------------------------------------------------------------------------

    def params(self):
        return {"min_pitch": self.min_pitch, "max_pitch": self.max_pitch, "valid_programs": self.valid_programs,
                "skip_polyphony": self.skip_polyphony, "max_bars": self.max_bars, "slice_bars": self.slice_bars,
                "gap_bars": self.gap_bars, "steps_per_quarter": self.steps_per_quarter,
                "quarters_per_bar": self.quarters_per_bar, "add_end_token": self.add_end_token,
                "pad_to_total_time": self.pad_to_total_time,
                "max_tensors_per_notesequence": self.max_tensors_per_notesequence,
                "presplit_on_time_changes": self.presplit_on_time_changes, "normalize_key": self.normalize_key}


    @property
    def input_depth(self) -> int:
        """Width of Magenta's encoder one-hot (= output_depth): max_pitch - min_pitch + 3 (+1 with end token)."""
        return self.encoding.num_classes + self.add_end_token

    @property
    def output_depth(self) -> int:
        """Number of token classes (90 for the default piano range)."""
        return self.input_depth

    @property
    def sequence_length(self) -> int | None:
        """Steps per example (None when `slice_bars` is None: whole melodies of varying length)."""
        return None if self.slice_steps is None else self.slice_steps + self.add_end_token

    def feature_spec(self):
        return {"tokens": Feature("int64", (self.sequence_length,))}

    def to_tensors(self, note_sequence) -> ConverterTensors:
        """Magenta's `OneHotMelodyConverter.to_tensors` (outside training)."""
        seqs = [np_onehot(tokens, self.output_depth, bool) for tokens in self._token_windows(note_sequence, [])]
        return ConverterTensors(inputs=seqs, outputs=seqs)

    def to_examples(self, note_sequence):
        reasons: list[str] = []
        if not len(note_sequence.notes):
            raise SkipInput(sequence_path(note_sequence), "sequence has no notes")
        windows = self._token_windows(note_sequence, reasons)
        if not windows:
            raise SkipInput(sequence_path(note_sequence),
                            skip_reason(reasons, "no melody survived extraction (min_bars/max_steps filter)"))
        return [{"tokens": np.asarray(w, np.int64)} for w in windows]

    def from_example(self, example):
        """tokens int64 [T] -> NoteSequence at 120 qpm, velocity 80 (Magenta's `from_tensors`)."""
        tokens = np.asarray(example["tokens"]).astype(np.int64).tolist()
        if self.end_token is not None and self.end_token in tokens:
            tokens = tokens[:tokens.index(self.end_token)]
        melody = note_seq.Melody(steps_per_bar=self.steps_per_bar, steps_per_quarter=self.steps_per_quarter)
        for token in tokens:
            melody.append(self.encoding.decode_event(token))
        return melody.to_sequence(velocity=OUTPUT_VELOCITY, qpm=note_seq.DEFAULT_QUARTERS_PER_MINUTE)

    def stats(self, example):
        tokens = np.asarray(example["tokens"])
        onsets = (tokens >= 2) & (tokens != (-1 if self.end_token is None else self.end_token))
        return {"length": float(tokens.shape[0]), "notes": float(np.sum(onsets))}

    # -- Magenta's pipeline ----------------------------------------------------------------------------------------

    def _token_windows(self, note_sequence, reasons: list[str]) -> list[list[int]]:
        """Class ids of every window Magenta would return, in Magenta's order; appends why windows were lost."""
        note_sequence = copy.deepcopy(note_sequence)
        if self.normalize_key:
            note_sequence = in_c(note_sequence, self.valid_programs)
        windows = split_process_and_combine(note_sequence, self.presplit_on_time_changes,
                                            self.max_tensors_per_notesequence,
                                            lambda ns: self._windows_one(ns, reasons))
        tail = [] if self.end_token is None else [self.end_token]
        return [[self.encoding.encode_event(e) for e in w] + tail for w in windows]

    def _windows_one(self, ns, reasons):
        """`OneHotMelodyConverter._to_tensors_fn` + `LegacyEventListOneHotConverter.to_tensors` for one split."""
        notes = [n for n in ns.notes if (self.valid_programs is None or n.program in self.valid_programs)
                 and self.min_pitch <= n.pitch <= self.max_pitch]
        del ns.notes[:]
        ns.notes.extend(notes)

        quantized, reason = quantize_or_reason(ns, self.steps_per_quarter, self.steps_per_bar)
        if quantized is None:
            reasons.append(reason)
            return []
        melodies, counts = extract_melodies(
            quantized, min_bars=1, gap_bars=self.gap_bars or float("inf"),
            max_steps_truncate=self.steps_per_bar * self.max_bars if self.max_bars else None,
            min_unique_pitches=1, ignore_polyphonic_notes=not self.skip_polyphony, pad_end=True)
        if self.pad_to_total_time:
            for m in melodies:
                m.set_length(len(m) + m.start_step, from_left=True)
                m.set_length(quantized.total_quantized_steps)
        if not melodies:
            if not notes:
                reasons.append("no notes in the pitch/program range")
            elif counts["polyphonic_tracks_discarded"]:
                reasons.append("only polyphonic tracks (skip_polyphony=True)")
            else:
                reasons.append("no melody survived extraction (min_bars/max_steps filter)")
            return []
        if self.slice_steps:
            sliced = [m[i - self.slice_steps:i] for m in melodies
                      for i in range(self.slice_steps, len(m) + 1, self.steps_per_bar)]
        else:
            sliced = melodies
        # Magenta (>= 2.1) dedupes tuples of 1-tuples (event,) (chords/keys would be zipped in); keep that exact
        # structure so that set order, and hence which windows survive max_tensors_per_notesequence, matches.
        unique = list(set(tuple(zip(list(s))) for s in sliced))
        unique = maybe_sample_items(unique, self.max_tensors_per_notesequence)
        windows = [[e for (e,) in t] for t in unique if t]
        if not windows:
            reasons.append(f"melody shorter than slice_bars={self.slice_bars} (no full window)")
        return windows

"""Drum patterns as Magenta MusicVAE's `DrumsConverter` builds them (`cat-drums_2bar_small`, `nade-drums_2bar_*`).

Port of `magenta/models/music_vae/data.py:DrumsConverter` and `magenta/pipelines/drum_pipelines.py:
extract_drum_tracks` on note_seq's `DrumTrack`, `MultiDrumOneHotEncoding` and `PianorollEncoderDecoder`.

Drum notes (`is_drum`) are mapped to C classes by a drum map; every step is the set of classes hit.  Its token is
the bit-packed class set `sum(2**c)` (Magenta's `MultiDrumOneHotEncoding` index), so there are 2**C token classes:
512 for the 9-class reduced map.  The drum map is `"reduced"` (Magenta's 9 classes), `"full"` (Magenta's 61
single-pitch classes), `"roland"` (GrooVAE's 9 Roland V-Drum classes) or a JSON file `{"classes": [[36, 35], ...]}`.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import note_seq
import numpy as np
from note_seq import drums_encoder_decoder, sequences_lib

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Converter, Feature
from musicgen_tf.music.magenta_common import (ConverterTensors, maybe_sample_items, np_onehot, quantize_or_reason,
                                              sequence_path, skip_reason, split_process_and_combine)
from musicgen_tf.music.melody import OUTPUT_VELOCITY

# 9 classes: kick, snare, closed hi-hat, open hi-hat, low tom, mid tom, high tom, crash, ride.
REDUCED_DRUM_PITCH_CLASSES = [list(c) for c in drums_encoder_decoder.DEFAULT_DRUM_TYPE_PITCHES]
# 61 classes: the full General MIDI set (Magenta's FULL_DRUM_PITCH_CLASSES).
FULL_DRUM_PITCH_CLASSES = [[p] for p in [
    36, 35, 38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85, 42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 46,
    67, 72, 74, 79, 81, 45, 29, 41, 61, 64, 84, 48, 47, 60, 63, 77, 86, 87, 50, 30, 43, 62, 76, 83, 49, 55, 57, 58,
    51, 52, 53, 59, 82]]
# 9 classes of the Roland TD-11 kit used by the Groove MIDI Dataset (Magenta's ROLAND_DRUM_PITCH_CLASSES).
ROLAND_DRUM_PITCH_CLASSES = [[36], [38, 37, 40], [42, 22, 44], [46, 26], [43, 58], [47, 45], [50, 48],
                             [49, 52, 55, 57], [51, 53, 59]]
DRUM_MAPS = {"reduced": REDUCED_DRUM_PITCH_CLASSES, "full": FULL_DRUM_PITCH_CLASSES,
             "roland": ROLAND_DRUM_PITCH_CLASSES}
MAX_DRUM_CLASSES = 62  # tokens sum(2**c) must fit in int64

PRESETS: dict[str, dict[str, Any]] = {
    "cat-drums_2bar_small": dict(max_bars=100, slice_bars=2, steps_per_quarter=4, roll_input=True),
    "cat-drums_2bar_big": dict(max_bars=100, slice_bars=2, steps_per_quarter=4, roll_input=True),
    "nade-drums_2bar_reduced": dict(max_bars=100, slice_bars=2, steps_per_quarter=4, roll_input=True,
                                    roll_output=True),
    "nade-drums_2bar_full": dict(max_bars=100, drum_map="full", slice_bars=2, steps_per_quarter=4,
                                 roll_input=True, roll_output=True),
}


def load_drum_map(drum_map) -> list[list[int]]:
    """`"reduced"`, `"full"`, `"roland"`, a JSON file path or a list of pitch lists -> validated list of classes.

    Raises ValueError naming the file (or the argument) and the problem.
    """
    if isinstance(drum_map, str) and drum_map in DRUM_MAPS:
        return [list(c) for c in DRUM_MAPS[drum_map]]
    if isinstance(drum_map, (str, os.PathLike)):
        where = f"drum map file {os.fspath(drum_map)!r}"
        if not os.path.isfile(drum_map):
            raise ValueError(f"{where}: no such file (or use one of {sorted(DRUM_MAPS)})")
        try:
            with open(drum_map, encoding="utf-8") as f:
                content = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(content, dict) or "classes" not in content:
            raise ValueError(f'{where}: expected an object {{"classes": [[36, 35], [38, 40], ...]}}')
        return _validate_classes(content["classes"], where)
    return _validate_classes(drum_map, "drum map")


def _validate_classes(classes, where: str) -> list[list[int]]:
    if not isinstance(classes, (list, tuple)) or not classes:
        raise ValueError(f"{where}: 'classes' must be a non-empty list of pitch lists")
    if len(classes) > MAX_DRUM_CLASSES:
        raise ValueError(f"{where}: {len(classes)} classes, at most {MAX_DRUM_CLASSES} are supported")
    seen: dict[int, int] = {}
    result = []
    for i, pitches in enumerate(classes):
        if not isinstance(pitches, (list, tuple)) or not pitches:
            raise ValueError(f"{where}: class {i} must be a non-empty list of MIDI pitches, got {pitches!r}")
        for p in pitches:
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 127:
                raise ValueError(f"{where}: class {i} has {p!r}, pitches must be integers 0..127")
            if p in seen:
                raise ValueError(f"{where}: pitch {p} is in class {seen[p]} and class {i}")
            seen[p] = i
        result.append([int(p) for p in pitches])
    return result


def extract_drum_tracks(quantized_sequence, min_bars=7, max_steps_truncate=None, gap_bars=1.0, pad_end=False):
    """Port of `magenta.pipelines.drum_pipelines.extract_drum_tracks` (search_start_step=0, no max_steps_discard)."""
    drum_tracks = []
    steps_per_bar = int(sequences_lib.steps_per_bar_in_quantized_sequence(quantized_sequence))
    search_start_step = 0
    while True:
        track = note_seq.DrumTrack()
        track.from_quantized_sequence(quantized_sequence, search_start_step=search_start_step, gap_bars=gap_bars,
                                      pad_end=pad_end)
        search_start_step = track.end_step + (search_start_step - track.end_step) % steps_per_bar
        if not track:
            break
        if len(track) < track.steps_per_bar * min_bars:
            continue
        if max_steps_truncate is not None and len(track) > max_steps_truncate:
            truncated_length = max_steps_truncate
            if pad_end:
                truncated_length -= max_steps_truncate % track.steps_per_bar
            track.set_length(truncated_length)
        drum_tracks.append(track)
    return drum_tracks


class DrumsConverter(Converter):
    """NoteSequence <-> drum pattern windows, exactly as Magenta's `DrumsConverter`.

    Defaults are the `cat-drums_2bar_small` data settings (reduced 9-class map, 2-bar windows, `roll_input=True`);
    `PRESETS` / `from_preset` give the other MusicVAE drum configs.  `drum_map` replaces Magenta's `pitch_classes`
    (see `load_drum_map`).  Not ported: training-mode random sampling.

    `to_tensors(ns)` -> Magenta's `ConverterTensors`, per window (T = slice_bars * steps_per_bar, +1 with end token):
    inputs bool [T, C + 1 (+1)] roll with a final "silent step" bit when `roll_input`, else one-hot [T, 2**C (+1)];
    outputs bool one-hot [T, 2**C (+1)], or roll [T, C (+1)] when `roll_output`.
    `to_examples(ns)` -> `[{"tokens": int64 [T]}]`, token = bit-packed class set (= argmax of Magenta's one-hot
    output).  Models: embed tokens (`output_depth` classes); the roll input is `(tokens[:, None] >> arange(C)) & 1`
    plus the bit `tokens == 0`.  For the 61-class full map 2**61 classes cannot be embedded (use the bits) and
    `to_tensors` needs `roll_output=True`, as in `nade-drums_2bar_full` (a 2**61-wide one-hot cannot be built).
    """

    name = "drums"
    presets = PRESETS

    def __init__(self, max_bars: int | None = 100, slice_bars: int | None = 2, gap_bars: float | None = 1.0,
                 drum_map="reduced", add_end_token: bool = False, steps_per_quarter: int = 4,
                 quarters_per_bar: int = 4, pad_to_total_time: bool = False, roll_input: bool = True,
                 roll_output: bool = False, max_tensors_per_notesequence: int | None = 5,
                 presplit_on_time_changes: bool = True):
        self.pitch_classes = load_drum_map(drum_map)
        # Keep names as names; a file is stored resolved so that params() is self-contained.
        self.drum_map = drum_map if isinstance(drum_map, str) and drum_map in DRUM_MAPS else self.pitch_classes
        self.pitch_class_map = {p: i for i, pitches in enumerate(self.pitch_classes) for p in pitches}
        self.max_bars = max_bars
        self.slice_bars = slice_bars
        self.gap_bars = gap_bars
        self.add_end_token = bool(add_end_token)
        self.steps_per_quarter = int(steps_per_quarter)
        self.quarters_per_bar = int(quarters_per_bar)
        self.pad_to_total_time = bool(pad_to_total_time)
        self.roll_input = bool(roll_input)
        self.roll_output = bool(roll_output)
        self.max_tensors_per_notesequence = max_tensors_per_notesequence
        self.presplit_on_time_changes = bool(presplit_on_time_changes)

        self.steps_per_bar = self.steps_per_quarter * self.quarters_per_bar
        self.slice_steps = self.steps_per_bar * slice_bars if slice_bars else None
        self.num_classes = len(self.pitch_classes)
        self.encoding = note_seq.MultiDrumOneHotEncoding(drum_type_pitches=[(i,) for i in range(self.num_classes)])
        self.roll_encoder = note_seq.PianorollEncoderDecoder(input_size=self.num_classes + self.add_end_token)
        self.end_token = self.output_depth - 1 if self.add_end_token else None
        self.token_end = 2 ** self.num_classes if self.add_end_token else None  # end token id among the tokens


    def params(self):
        return {"max_bars": self.max_bars, "slice_bars": self.slice_bars, "gap_bars": self.gap_bars,
                "drum_map": self.drum_map, "add_end_token": self.add_end_token,
                "steps_per_quarter": self.steps_per_quarter, "quarters_per_bar": self.quarters_per_bar,
                "pad_to_total_time": self.pad_to_total_time, "roll_input": self.roll_input,
                "roll_output": self.roll_output, "max_tensors_per_notesequence": self.max_tensors_per_notesequence,
                "presplit_on_time_changes": self.presplit_on_time_changes}


    @property
    def num_tokens(self) -> int:
        """Token classes: 2**C drum-set tokens (+1 end token)."""
        return 2 ** self.num_classes + self.add_end_token

    @property
    def input_depth(self) -> int:
        """Width of Magenta's encoder input: C + 1 (+1) with `roll_input`, else 2**C (+1)."""
        return (self.num_classes + 1 if self.roll_input else 2 ** self.num_classes) + self.add_end_token

    @property
    def output_depth(self) -> int:
        """Width of Magenta's decoder output: C (+1) with `roll_output`, else 2**C (+1) = `num_tokens`."""
        return (self.num_classes if self.roll_output else 2 ** self.num_classes) + self.add_end_token

    @property
    def sequence_length(self) -> int | None:
        return None if self.slice_steps is None else self.slice_steps + self.add_end_token

    def feature_spec(self):
        return {"tokens": Feature("int64", (self.sequence_length,))}

    # -- conversions ------------------------------------------------------------------------------------------------

    def to_tensors(self, note_sequence) -> ConverterTensors:
        """Magenta's `DrumsConverter.to_tensors` (outside training)."""
        windows = self._event_windows(note_sequence, [])
        rolls, oh_vecs = [], []
        for t in windows:
            if self.roll_input or self.roll_output:
                t_roll = list(t) + ([(self.roll_encoder.input_size - 1,)] if self.end_token is not None else [])
                rolls.append(np.vstack([self.roll_encoder.events_to_input(t_roll, i).astype(bool)
                                        for i in range(len(t_roll))]))
            if not (self.roll_input and self.roll_output):
                labels = [self.encoding.encode_event(e) for e in t]
                if self.end_token is not None:
                    labels.append(self.encoding.num_classes)
                oh_vecs.append(np_onehot(labels, self.encoding.num_classes + (self.end_token is not None), bool))
        if self.roll_input:
            inputs = [np.append(r, np.expand_dims(np.all(r == 0, axis=1), axis=1), axis=1) for r in rolls]
        else:
            inputs = oh_vecs
        return ConverterTensors(inputs=inputs, outputs=rolls if self.roll_output else oh_vecs)

    def to_examples(self, note_sequence):
        if not len(note_sequence.notes):
            raise SkipInput(sequence_path(note_sequence), "sequence has no notes")
        reasons: list[str] = []
        windows = self._event_windows(note_sequence, reasons)
        if not windows:
            raise SkipInput(sequence_path(note_sequence),
                            skip_reason(reasons, "no drum track survived extraction (min_bars/max_steps filter)"))
        tail = [] if self.token_end is None else [self.token_end]
        return [{"tokens": np.asarray([self.encoding.encode_event(e) for e in t] + tail, np.int64)}
                for t in windows]

    def from_example(self, example):
        """tokens int64 [T] -> drum NoteSequence at 120 qpm, velocity 80, first pitch of each class."""
        tokens = [int(t) for t in np.asarray(example["tokens"]).tolist()]
        if self.token_end is not None and self.token_end in tokens:
            tokens = tokens[:tokens.index(self.token_end)]
        events = [frozenset(self.pitch_classes[c][0] for c in self.encoding.decode_event(t)) for t in tokens]
        track = note_seq.DrumTrack(events=events, steps_per_bar=self.steps_per_bar,
                                   steps_per_quarter=self.steps_per_quarter)
        return track.to_sequence(velocity=OUTPUT_VELOCITY)

    def stats(self, example):
        tokens = np.asarray(example["tokens"]).astype(np.int64)
        if self.token_end is not None:
            tokens = tokens[tokens != self.token_end]
        hits = sum(bin(int(t)).count("1") for t in tokens)
        return {"length": float(np.asarray(example["tokens"]).shape[0]), "notes": float(hits)}

    # -- Magenta's pipeline ----------------------------------------------------------------------------------------

    def _event_windows(self, note_sequence, reasons: list[str]) -> list[tuple]:
        """Windows of class-index frozensets that Magenta would convert, in Magenta's order."""
        return split_process_and_combine(copy.deepcopy(note_sequence), self.presplit_on_time_changes,
                                         self.max_tensors_per_notesequence,
                                         lambda ns: self._windows_one(ns, reasons))

    def _windows_one(self, ns, reasons):
        quantized, reason = quantize_or_reason(ns, self.steps_per_quarter, self.steps_per_bar)
        if quantized is None:
            reasons.append(reason)
            return []
        new_notes = []
        for n in quantized.notes:
            if n.is_drum and n.pitch in self.pitch_class_map:
                n.pitch = self.pitch_class_map[n.pitch]
                new_notes.append(n)
        del quantized.notes[:]
        quantized.notes.extend(new_notes)
        tracks = extract_drum_tracks(
            quantized, min_bars=1, gap_bars=self.gap_bars or float("inf"),
            max_steps_truncate=self.steps_per_bar * self.max_bars if self.max_bars else None, pad_end=True)
        if not tracks:
            reasons.append("no drum notes (is_drum) with a pitch in the drum map" if not new_notes
                           else "no drum track survived extraction (min_bars/max_steps filter)")
            return []
        if self.pad_to_total_time:
            for e in tracks:
                e.set_length(len(e) + e.start_step, from_left=True)
                e.set_length(quantized.total_quantized_steps)
        if self.slice_steps:
            sliced = [tuple(t[i - self.slice_steps:i]) for t in tracks
                      for i in range(self.slice_steps, len(t) + 1, self.steps_per_bar)]
        else:
            sliced = [tuple(t) for t in tracks]
        unique = maybe_sample_items(list(set(sliced)), self.max_tensors_per_notesequence)
        if not unique:
            reasons.append(f"drum track shorter than slice_bars={self.slice_bars} (no full window)")
        return unique

"""Expressive drum grooves as Magenta's GrooVAE `GrooveConverter` builds them (`groovae_2bar_*`, `groovae_4bar`).

Port of `magenta/models/music_vae/data.py:GrooveConverter` (continuous outputs; the categorical-bins and
split-instrument variants are not ported).  On a grid of `steps_per_quarter` steps (16ths by default) and C drum
classes, every step and class holds
  hit      1.0 if the class is hit on that step (the loudest note wins when several are), else 0.0
  velocity velocity / 127 in [0, 1]
  offset   2 * (grid time - true onset) / step length in [-1, 1]  (a note is quantized to its nearest step)
The sequence is padded to whole bars and cut into windows of `split_bars` bars every `hop_size` steps.
"""

from __future__ import annotations

import collections
import copy
from typing import Any

import note_seq
import numpy as np
from note_seq import sequences_lib

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Converter, Feature
from musicgen_tf.music.drums import DRUM_MAPS, load_drum_map
from musicgen_tf.music.magenta_common import ConverterTensors, sequence_path

TAPIFY_CHANNEL = 3  # tapify squashes every step onto this class (open hi-hat in the 9-class maps)
OUTPUT_QPM = 120.0
QUANTIZE_ERRORS = (note_seq.BadTimeSignatureError, note_seq.NonIntegerStepsPerBarError, note_seq.NegativeTimeError,
                   note_seq.MultipleTimeSignatureError, note_seq.MultipleTempoError)
FEATURES = ("hits", "velocities", "offsets")

_GROOVE_COMMON = dict(steps_per_quarter=4, quarters_per_bar=4, pitch_classes="roland",
                      inference_pitch_classes="reduced")
# Data-converter arguments of the GrooVAE configs (max_tensors_per_notesequence=20 there is unused by Magenta).
PRESETS: dict[str, dict[str, Any]] = {
    "groovae_2bar_humanize": dict(split_bars=2, humanize=True, **_GROOVE_COMMON),
    "groovae_4bar": dict(split_bars=4, **_GROOVE_COMMON),
    "groovae_2bar_tap_fixed_velocity": dict(split_bars=2, tapify=True, fixed_velocities=True, **_GROOVE_COMMON),
    "groovae_2bar_add_closed_hh": dict(split_bars=2, add_instruments=[2], **_GROOVE_COMMON),
    "groovae_2bar_hits_control_tfds": dict(split_bars=2, hits_as_controls=True, **_GROOVE_COMMON),
}


def _map_spec(spec):
    """JSON-serialisable form of a drum map argument: its name, or its resolved classes."""
    return spec if isinstance(spec, str) and spec in DRUM_MAPS else load_drum_map(spec)


class GrooveConverter(Converter):
    """NoteSequence <-> (hits, velocities, offsets) windows, exactly as Magenta's `GrooveConverter`.

    `pitch_classes` / `inference_pitch_classes` take `"roland"`, `"reduced"`, `"full"`, a JSON drum map file or a
    list of pitch lists (see `musicgen_tf.music.drums.load_drum_map`); defaults are the GrooVAE configs' Roland
    (training) and reduced (decoding) maps.  Input corruptions (`humanize`, `tapify`, `fixed_velocities`,
    `add_instruments`, `max_note_dropout_probability`) are off by default and only shape the encoder inputs.

    Two deliberate differences, for inputs Magenta cannot handle: notes whose pitch is in no class are dropped
    (Magenta raises KeyError), and with `drums_only=True` (default) non-drum notes are ignored (Magenta maps them
    as drums).  Like Magenta, `max_tensors_per_notesequence` does not cap `to_tensors`; here it caps `to_examples`
    (first N windows) only when set (default None = Magenta's behaviour).

    `to_tensors(ns)` -> `ConverterTensors`: per window, outputs float64 [T, 3C] = [hits | velocities | offsets],
    inputs the same after the input corruptions, controls = hits (bool [T, C]) with `hits_as_controls`;
    T = split_bars * steps_per_bar (the whole padded sequence when split_bars is None).
    `to_examples(ns)` -> `[{"hits", "velocities", "offsets": float32 [T, C]}]` (the outputs); `make_inputs`
    rebuilds the encoder inputs from them.
    """

    name = "groovae"
    presets = PRESETS

    def __init__(self, split_bars: int | None = 2, steps_per_quarter: int = 4, quarters_per_bar: int = 4,
                 max_tensors_per_notesequence: int | None = None, pitch_classes="roland",
                 inference_pitch_classes="reduced", humanize: bool = False, tapify: bool = False,
                 add_instruments: list[int] | None = None, fixed_velocities: bool = False,
                 hop_size: int | None = None, hits_as_controls: bool = False,
                 max_note_dropout_probability: float | None = None, drums_only: bool = True):
        self.pitch_classes_spec = _map_spec(pitch_classes)
        self.inference_pitch_classes_spec = _map_spec(inference_pitch_classes or pitch_classes)
        self.pitch_classes = load_drum_map(self.pitch_classes_spec)
        self.inference_pitch_classes = load_drum_map(self.inference_pitch_classes_spec)
        if len(self.pitch_classes) != len(self.inference_pitch_classes):
            raise ValueError("Training and inference must have the same number of pitch classes. Got: "
                             f"{len(self.pitch_classes)} vs {len(self.inference_pitch_classes)}.")
        self.num_drums = len(self.pitch_classes)
        if split_bars is None and hop_size is not None:
            raise ValueError("Cannot set hop_size without setting split_bars")
        if tapify and self.num_drums <= TAPIFY_CHANNEL:
            raise ValueError(f"tapify needs more than {TAPIFY_CHANNEL} drum classes, got {self.num_drums}")
        self.add_instruments = None if not add_instruments else [int(i) for i in add_instruments]
        if self.add_instruments and not all(0 <= i < self.num_drums for i in self.add_instruments):
            raise ValueError(f"add_instruments {self.add_instruments} must be class indices < {self.num_drums}")
        self.split_bars = split_bars
        self.steps_per_quarter = int(steps_per_quarter)
        self.quarters_per_bar = int(quarters_per_bar)
        self.steps_per_bar = self.steps_per_quarter * self.quarters_per_bar
        self.max_tensors_per_notesequence = max_tensors_per_notesequence
        self.humanize = bool(humanize)
        self.tapify = bool(tapify)
        self.fixed_velocities = bool(fixed_velocities)
        self.hop_size = hop_size
        self.hits_as_controls = bool(hits_as_controls)
        self.max_note_dropout_probability = max_note_dropout_probability
        self.drums_only = bool(drums_only)


    def params(self):
        return {"split_bars": self.split_bars, "steps_per_quarter": self.steps_per_quarter,
                "quarters_per_bar": self.quarters_per_bar,
                "max_tensors_per_notesequence": self.max_tensors_per_notesequence,
                "pitch_classes": self.pitch_classes_spec, "inference_pitch_classes": self.inference_pitch_classes_spec,
                "humanize": self.humanize, "tapify": self.tapify, "add_instruments": self.add_instruments,
                "fixed_velocities": self.fixed_velocities, "hop_size": self.hop_size,
                "hits_as_controls": self.hits_as_controls,
                "max_note_dropout_probability": self.max_note_dropout_probability, "drums_only": self.drums_only}


    @property
    def input_depth(self) -> int:
        return 3 * self.num_drums

    @property
    def output_depth(self) -> int:
        return 3 * self.num_drums

    @property
    def control_depth(self) -> int:
        return self.num_drums if self.hits_as_controls else 0

    @property
    def sequence_length(self) -> int | None:
        return None if self.split_bars is None else self.split_bars * self.steps_per_bar

    def feature_spec(self):
        return {name: Feature("float32", (self.sequence_length, self.num_drums)) for name in FEATURES}

    # -- conversions ------------------------------------------------------------------------------------------------

    def make_inputs(self, hits, velocities, offsets, rng=None):
        """Magenta's encoder-input corruptions of output arrays [T, C] -> (hits, velocities, offsets) copies.

        Note dropout draws from `rng` (default: `np.random`, as Magenta does).
        """
        hits, velocities, offsets = (np.asarray(a) for a in (hits, velocities, offsets))
        in_hits, in_velocities, in_offsets = hits.copy(), velocities.copy(), offsets.copy()
        if self.max_note_dropout_probability is not None:
            rng = np.random if rng is None else rng
            probability = rng.uniform(0.0, self.max_note_dropout_probability)
            weights = np.maximum(0.2, (1 - in_velocities))
            keep = 1 - rng.binomial(1, weights * probability)
            in_hits, in_velocities, in_offsets = in_hits * keep, in_velocities * keep, in_offsets * keep
        if self.tapify:
            argmaxes = np.argmax(in_velocities, axis=1)
            steps = np.arange(len(hits))
            in_hits[:], in_velocities[:], in_offsets[:] = 0, 0, 0
            in_hits[:, TAPIFY_CHANNEL] = hits[steps, argmaxes]
            in_velocities[:, TAPIFY_CHANNEL] = velocities[steps, argmaxes]
            in_offsets[:, TAPIFY_CHANNEL] = offsets[steps, argmaxes]
        if self.humanize:
            in_velocities[:], in_offsets[:] = 0, 0
        if self.fixed_velocities:
            in_velocities[:] = 0
        if self.add_instruments:
            for t in (in_hits, in_velocities, in_offsets):
                t[:, self.add_instruments] = 0
        return in_hits, in_velocities, in_offsets

    def to_tensors(self, note_sequence, inference: bool = False) -> ConverterTensors:
        """Magenta's `GrooveConverter.to_tensors` (mode 'infer' uses the inference pitch classes)."""
        grid = self._grid(note_sequence, inference, [])
        if grid is None:
            return ConverterTensors()
        hits, velocities, offsets = grid
        outputs = np.concatenate([hits, velocities, offsets], axis=1)
        inputs = np.concatenate(self.make_inputs(hits, velocities, offsets), axis=1)
        controls = hits.astype(bool) if self.hits_as_controls else None
        starts = self._window_starts(len(hits))
        size = len(hits) if self.split_bars is None else self.split_bars * self.steps_per_bar
        return ConverterTensors(inputs=[inputs[s:s + size] for s in starts],
                                outputs=[outputs[s:s + size] for s in starts],
                                controls=None if controls is None else [controls[s:s + size] for s in starts])

    def to_examples(self, note_sequence):
        reasons: list[str] = []
        if not len(note_sequence.notes):
            raise SkipInput(sequence_path(note_sequence), "sequence has no notes")
        grid = self._grid(note_sequence, False, reasons)
        if grid is None:
            raise SkipInput(sequence_path(note_sequence), reasons[0])
        starts = self._window_starts(len(grid[0]))
        if not starts:
            raise SkipInput(sequence_path(note_sequence),
                            f"shorter than split_bars={self.split_bars} bars (no full window)")
        if self.max_tensors_per_notesequence:
            starts = starts[:self.max_tensors_per_notesequence]
        size = self.sequence_length or len(grid[0])
        return [{name: a[s:s + size].astype(np.float32) for name, a in zip(FEATURES, grid)} for s in starts]

    def from_example(self, example, inference: bool = False):
        """One example -> drum NoteSequence at 120 qpm (Magenta's continuous `from_tensors`).

        `inference=True` names the classes with the inference map (Magenta's 'infer' mode).
        """
        classes = self.inference_pitch_classes if inference else self.pitch_classes
        hits, velocities, offsets = (np.asarray(example[name], np.float64) for name in FEATURES)
        step_length = 60.0 / OUTPUT_QPM / self.steps_per_quarter
        ns = note_seq.NoteSequence()
        ns.tempos.add(qpm=OUTPUT_QPM)
        for i, j in zip(*np.nonzero(hits > 0.5)):
            note = ns.notes.add(instrument=9, is_drum=True, pitch=classes[j][0])
            note.velocity = int(np.clip(int(np.round(velocities[i, j] * 127)), 0, 127))
            offset = np.clip(offsets[i, j] / 2, -0.5, 0.5)
            note.start_time = (i - offset) * step_length
            note.end_time = note.start_time + step_length
        ns.total_time = max([n.end_time for n in ns.notes], default=0.0)
        return ns

    def render_output(self, example):
        """Model outputs are rendered in Magenta's inference mode: class i plays `inference_pitch_classes[i][0]`
        (the GrooVAE configs' reduced map: toms 45/48/50 instead of the Roland kit's 43/47/50)."""
        return self.from_example(example, inference=True)

    def stats(self, example):
        hits = np.asarray(example["hits"])
        return {"length": float(hits.shape[0]), "notes": float(np.sum(hits > 0.5))}

    # -- Magenta's pipeline ----------------------------------------------------------------------------------------

    def _window_starts(self, length: int) -> list[int]:
        if self.split_bars is None:
            return [0]
        window = self.split_bars * self.steps_per_bar
        return list(range(0, length - window + 1, self.hop_size or window))

    def _grid(self, note_sequence, inference: bool, reasons: list[str]):
        """(hits, velocities, offsets) float64 [bars * steps_per_bar, C] of the whole sequence, or None."""
        class_map = {p: i for i, pitches in enumerate(self.inference_pitch_classes if inference
                                                       else self.pitch_classes) for p in pitches}
        ns = copy.deepcopy(note_sequence)
        kept = [n for n in ns.notes if n.pitch in class_map and (n.is_drum or not self.drums_only)]
        del ns.notes[:]
        ns.notes.extend(kept)
        try:
            quantized = sequences_lib.quantize_note_sequence(ns, self.steps_per_quarter)
        except QUANTIZE_ERRORS as e:
            reasons.append(f"cannot quantize ({type(e).__name__}: {e})")
            return None
        if sequences_lib.steps_per_bar_in_quantized_sequence(quantized) != self.steps_per_bar:
            reasons.append(f"time signature does not have {self.steps_per_bar} steps per bar")
            return None
        if not quantized.notes:
            reasons.append("no drum notes with a pitch in the drum map")
            return None
        step_length = 60.0 / quantized.tempos[0].qpm / quantized.quantization_info.steps_per_quarter
        by_step = collections.defaultdict(lambda: collections.defaultdict(list))
        for note in quantized.notes:
            by_step[int(note.quantized_start_step)][class_map[note.pitch]].append(note)
        max_start_step = max(n.quantized_start_step for n in quantized.notes)
        max_step = self.steps_per_bar * int(np.ceil((max_start_step + 1) / self.steps_per_bar))
        hits, velocities, offsets = (np.zeros((max_step, self.num_drums)) for _ in FEATURES)
        for step, drums in by_step.items():
            for drum, notes in drums.items():
                note = max(notes, key=lambda n: n.velocity)  # first of the loudest, like Magenta
                hits[step, drum] = 1.0
                velocities[step, drum] = note.velocity / 127.0
                offsets[step, drum] = (step_length * note.quantized_start_step - note.start_time) / step_length * 2
        return hits, velocities, offsets

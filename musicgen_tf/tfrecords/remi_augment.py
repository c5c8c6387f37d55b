"""REMI training-input transforms for tf.data: fixed windows over pieces, and random pitch-shift / tempo-stretch.

Seed 003 trains on windows of 512 tokens taken every 256 tokens (`range(0, len - 512, 256)`), and plans pitch
shifting and time stretching.  Both are dataset stages here, kept apart from the converter and the model so
validation, evaluation and export never see them: the trainer applies `token_windows` to both splits and a
`RemiAugmentation` to the training split only.

- **Pitch shift** by k semitones, k uniform in [-max_shift, max_shift] per example but narrowed to the shifts that
  keep every Note-On of the example inside the vocabulary's pitch range (so a note never wraps or vanishes);
  `Chord_<root>:<quality>` moves its root by k mod 12 (`N:N` stays).  One [2 * max_shift + 1, V] id table does both.
- **Tempo stretch** by a factor s, log-uniform in [1/max_stretch, max_stretch]: every `Tempo-Class`/`Tempo-Value`
  pair is re-encoded for round(qpm * s) clipped to the vocabulary's 30..209 qpm.  Notes stay on their grid (REMI
  times are in beats), so only the tempo tokens change.

Random draws are stateless, from (seed, example index), so a run is reproducible and resumes identically.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from musicgen_tf.music.remi import (MAX_QPM, MIN_QPM, NO_CHORD, PAD_ID, PITCH_CLASSES, TEMPO_CLASSES,
                                    RemiConverter, tempo_tokens)


def token_windows(tokens: tf.Tensor, window: int, stride: int) -> tf.data.Dataset:
    """int64 [L] -> dataset of int64 [window]: the windows starting at 0, stride, ... that fit in the piece (the
    seed's slicing, which also drops the tail); a piece shorter than `window` gives one PAD-padded window."""
    length = tf.shape(tokens)[0]
    padded = tf.pad(tokens, [[0, tf.maximum(window - length, 0)]], constant_values=PAD_ID)
    return tf.data.Dataset.from_tensor_slices(tf.signal.frame(padded, window, stride, pad_end=False))


def window_dataset(ds: tf.data.Dataset, window: int, stride: int, feature: str = "tokens") -> tf.data.Dataset:
    """Examples {feature: int64 [L], ...} -> examples {feature: int64 [window]} (other features dropped)."""
    return ds.flat_map(lambda example: token_windows(example[feature], window, stride).map(
        lambda w: {feature: w}))


class RemiAugmentation:
    """Random pitch shift and tempo stretch of REMI ids (our converter's vocabulary), as tf ops.

    Args:
      converter: the RemiConverter whose vocabulary the ids use.
      max_shift: semitones each way (seed 003: 6); 0 turns pitch shifting off.
      max_stretch: largest tempo factor (and 1/that the smallest); 1.0 turns it off.
      seed: base of the stateless draws.
    """

    per_example = True  # applied to examples (windows) before batching

    def __init__(self, converter: RemiConverter, max_shift: int = 6, max_stretch: float = 1.2, seed: int = 0):
        if max_shift < 0 or max_stretch < 1.0:
            raise ValueError(f"max_shift must be >= 0 and max_stretch >= 1, got {max_shift}, {max_stretch}")
        self.max_shift, self.max_stretch, self.seed = int(max_shift), float(max_stretch), int(seed)
        vocab = converter.vocab
        size = vocab.vocab_size
        self.min_pitch, self.max_pitch = converter.min_pitch, converter.max_pitch
        pitch = np.full(size, -1, np.int64)
        shift_table = np.tile(np.arange(size, dtype=np.int64), (2 * self.max_shift + 1, 1))  # [2K+1, V]
        for i, token in enumerate(vocab.tokens):
            kind, _, value = token.partition("_")
            if kind == "Note-On":
                pitch[i] = int(value)
            for row, k in enumerate(range(-self.max_shift, self.max_shift + 1)):
                if kind == "Note-On" and self.min_pitch <= int(value) + k <= self.max_pitch:
                    shift_table[row, i] = vocab.token_to_id(f"Note-On_{int(value) + k}")
                elif kind == "Chord" and value != NO_CHORD:
                    root, quality = value.split(":")
                    new_root = PITCH_CLASSES[(PITCH_CLASSES.index(root) + k) % 12]
                    shift_table[row, i] = vocab.token_to_id(f"Chord_{new_root}:{quality}")
        # tempo: qpm of a (class, value) pair = class_start[class id] + value_of[value id]
        class_start = np.full(size, -1, np.int64)
        value_of = np.full(size, -1, np.int64)
        for name, start in TEMPO_CLASSES.items():
            class_start[vocab.token_to_id(f"Tempo-Class_{name}")] = start
        for i, token in enumerate(vocab.tokens):
            if token.startswith("Tempo-Value_"):
                value_of[i] = int(token.split("_")[1])
        qpm_pairs = np.array([[vocab.token_to_id(t) for t in tempo_tokens(q)] for q in range(MIN_QPM, MAX_QPM + 1)])
        self._pitch = tf.constant(pitch)
        self._shift_table = tf.constant(shift_table)
        self._class_start = tf.constant(class_start)
        self._value_of = tf.constant(value_of)
        self._qpm_pairs = tf.constant(qpm_pairs, tf.int64)  # [qpm - 30] -> (class id, value id)

    # -- the two transforms, with explicit parameters (tests call these)
    def allowed_shifts(self, ids: tf.Tensor):
        """int [L] -> (lowest, highest) shift int32 keeping every Note-On in range, within +-max_shift."""
        pitches = tf.gather(self._pitch, ids)
        sounding = pitches >= 0
        low = tf.reduce_min(tf.where(sounding, pitches, self.max_pitch))
        high = tf.reduce_max(tf.where(sounding, pitches, self.min_pitch))
        lowest = tf.maximum(-self.max_shift, tf.cast(self.min_pitch - low, tf.int32))
        highest = tf.minimum(self.max_shift, tf.cast(self.max_pitch - high, tf.int32))
        return lowest, tf.maximum(highest, lowest)

    def transpose(self, ids: tf.Tensor, shift) -> tf.Tensor:
        """int64 [L] shifted by `shift` semitones, clamped to `allowed_shifts` (notes never leave the range)."""
        lowest, highest = self.allowed_shifts(ids)
        shift = tf.clip_by_value(tf.cast(shift, tf.int32), lowest, highest)
        return tf.gather(self._shift_table[shift + self.max_shift], ids)

    def stretch_tempo(self, ids: tf.Tensor, factor) -> tf.Tensor:
        """int64 [L] with every Tempo-Class/Tempo-Value pair re-encoded for round(qpm * factor) in 30..209."""
        ids = tf.convert_to_tensor(ids, tf.int64)
        following = tf.concat([ids[1:], [PAD_ID]], 0)
        starts = tf.gather(self._class_start, ids)
        values = tf.gather(self._value_of, following)
        is_pair = (starts >= 0) & (values >= 0)
        qpm = tf.cast(starts + values, tf.float64) * tf.cast(factor, tf.float64)
        qpm = tf.clip_by_value(tf.cast(tf.round(qpm), tf.int64), MIN_QPM, MAX_QPM)
        pairs = tf.gather(self._qpm_pairs, qpm - MIN_QPM)  # [L, 2]
        value_slot = tf.concat([[False], is_pair[:-1]], 0)
        new_values = tf.concat([[PAD_ID], pairs[:-1, 1]], 0)
        ids = tf.where(is_pair, pairs[:, 0], ids)
        return tf.where(value_slot, new_values, ids)

    # -- random, per example
    def __call__(self, ids: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        """int64 [L], example index int64 scalar -> augmented int64 [L] (draws from (seed, index))."""
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(index, tf.int64)])
        if self.max_shift:
            lowest, highest = self.allowed_shifts(ids)
            shift = tf.random.stateless_uniform([], seed, lowest, highest + 1, dtype=tf.int32)
            ids = self.transpose(ids, shift)
        if self.max_stretch > 1.0:
            span = math.log(self.max_stretch)
            factor = tf.exp(tf.random.stateless_uniform([], seed + [0, 1 << 40], -span, span, dtype=tf.float64))
            ids = self.stretch_tempo(ids, factor)
        return ids

    def apply(self, ds: tf.data.Dataset, feature: str = "tokens") -> tf.data.Dataset:
        """Dataset of examples -> the same with `feature` augmented (element i drawn from (seed, i))."""
        def augment(index, example):
            return {**example, feature: self(example[feature], index)}

        return ds.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)


__all__ = ["RemiAugmentation", "token_windows", "window_dataset"]

"""Training-time augmentation: a preset's `augmentation` -> the object the training input pipeline applies.

Melody: Magenta's `NoteSequenceAugmenter(transpose_range)` on batches of tokens (here).  REMI: pitch shift and
tempo stretch of each example (`remi_augment.RemiAugmentation`).  Only the training split is augmented, so
validation, evaluation, generation and export never see it.  Draws are stateless, seeded by (seed, element index):
a resumed run that skips what it has seen gets the same draws as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf


class MelodyTransposer:
    """Transpose every melody window by its own k ~ uniform{lo, ..., hi} semitones (Magenta draws one k per
    NoteSequence with `random.randint(lo, hi)`, both ends included, 0 too).

    Tokens are `MelodyConverter`'s (`MelodyOneHotEncoding`): NO_EVENT, NOTE_OFF, then one id per pitch of the
    converter's range.  Magenta transposes the NoteSequence and the converter then drops every note outside
    [min_pitch, max_pitch]; the melody it extracts has silence where such a note was: a NOTE_OFF at its onset if
    another note was sounding, else nothing, and no NOTE_OFF at its end.  This does the same on the tokens.  What
    tokens cannot show is not reproduced: a dropped top note of a chord uncovering a lower one, notes outside the
    range that a transposition would bring in (preprocessing already removed them), and whether a note held from
    before the window's start was dropped (it is kept).

    `__call__({"tokens": int [B, T], ...}, seed int [2])` -> the same dict with transposed tokens.
    """

    per_example = False  # applied to batches

    def __init__(self, transpose_range, num_pitches: int, no_event: int = 0, note_off: int = 1,
                 first_pitch: int = 2, seed: int = 0):
        low, high = (int(v) for v in transpose_range)
        if low > high:
            raise ValueError(f"transpose_range must be (low, high) with low <= high, got {tuple(transpose_range)}")
        self.transpose_range = (low, high)
        self.num_pitches, self.no_event, self.note_off, self.first_pitch = num_pitches, no_event, note_off, first_pitch
        self.seed = int(seed)

    @classmethod
    def from_converter(cls, converter, transpose_range, seed: int = 0) -> "MelodyTransposer":
        """Token layout read from a `MelodyConverter` (its `MelodyOneHotEncoding`)."""
        encode = converter.encoding.encode_event
        return cls(transpose_range, num_pitches=converter.max_pitch - converter.min_pitch + 1,
                   no_event=encode(-2), note_off=encode(-1), first_pitch=encode(converter.min_pitch), seed=seed)

    def transpose(self, tokens, amounts):
        """tokens int [B, T], amounts int [B] semitones -> tokens [B, T] (same dtype), out-of-range notes dropped."""
        dtype = tokens.dtype
        tokens = tf.cast(tokens, tf.int32)
        amounts = tf.cast(amounts, tf.int32)
        onset = (tokens >= self.first_pitch) & (tokens < self.first_pitch + self.num_pitches)
        shifted = tokens + amounts[:, None]
        in_range = (shifted >= self.first_pitch) & (shifted < self.first_pitch + self.num_pitches)
        kept, dropped = onset & in_range, onset & ~in_range
        note_off = tokens == self.note_off

        def step(sounding, columns):
            """sounding int [B]: 1 a (kept) note sounds, 0 silence, -1 unknown (a note held from before the window)."""
            token, shift, keep, drop, off = columns
            ends = tf.where(drop, sounding == 1, sounding != 0)  # does a dropped onset / NOTE_OFF end a note?
            silence = tf.where(ends, self.note_off, self.no_event)
            out = tf.where(keep, shift, tf.where(drop | off, silence, token))
            sounding = tf.where(keep, 1, tf.where(drop | off, 0, sounding))
            return sounding, out

        columns = [tf.transpose(t) for t in (tokens, shifted, kept, dropped, note_off)]  # time-major [T, B]
        sounding = -tf.ones_like(amounts)

        def scan_step(carry, columns):
            return step(carry[0], columns)

        _, out = tf.scan(scan_step, columns, initializer=(sounding, tf.zeros_like(amounts)))
        return tf.cast(tf.transpose(out), dtype)

    def __call__(self, batch: Mapping[str, tf.Tensor], seed) -> dict:
        tokens = batch["tokens"]
        low, high = self.transpose_range
        amounts = tf.random.stateless_uniform(tf.shape(tokens)[:1], seed=seed, minval=low, maxval=high + 1,
                                              dtype=tf.int32)
        return {**batch, "tokens": self.transpose(tokens, amounts)}

    def apply(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """A batched training dataset -> the same, augmented; batch i draws from the stateless seed (seed, i)."""
        return dataset.enumerate().map(
            lambda index, batch: self(batch, tf.stack([tf.constant(self.seed, tf.int64), index])),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def get_config(self) -> dict[str, Any]:
        return {"transpose_range": list(self.transpose_range)}


_KEYS = {"melody": {"transpose_range"}, "remi": {"pitch_shift", "tempo_stretch"}}


def make_augmenter(augmentation: Mapping[str, Any] | None, representation: str, converter, seed: int = 0):
    """A preset's `augmentation` -> its augmenter (`per_example`: applied to examples before batching, else to
    batches; `apply(dataset)`), or None.  Refuses what the representation cannot do."""
    if not augmentation:
        return None
    if representation not in _KEYS:
        raise ValueError(f"augmentation {sorted(augmentation)} needs one of the representations {sorted(_KEYS)}, "
                         f"got {representation!r}")
    unknown = set(augmentation) - _KEYS[representation]
    if unknown:
        raise ValueError(f"unknown augmentation {sorted(unknown)} for {representation!r}; supported: "
                         f"{sorted(_KEYS[representation])}")
    if representation == "melody":
        return MelodyTransposer.from_converter(converter, augmentation["transpose_range"], seed=seed)
    from musicgen_tf.tfrecords.remi_augment import RemiAugmentation

    return RemiAugmentation(converter, max_shift=augmentation.get("pitch_shift", 0),
                            max_stretch=augmentation.get("tempo_stretch", 1.0), seed=seed)

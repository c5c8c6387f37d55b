"""GrooVAE's encoder-input corruptions as graph ops, so a model trained here sees what Magenta's encoder saw.

Magenta's `GrooveConverter` builds the encoder inputs of `groovae_2bar_humanize`, `..._tap_fixed_velocity` and
`..._add_closed_hh` by corrupting the groove it decodes (`GrooveConverter.make_inputs` here, in numpy, for files
that are encoded).  Training reads the uncorrupted groove from TFRecords, so the model applies the same
deterministic corruptions to the groove it encodes (`MusicVAE.call` / `encode`, hence training, validation and the
exported `encode` signature); inputs corrupted already (the CLI's, from the converter) enter through
`MusicVAE.encode_inputs`, which does not corrupt them again.  (Magenta's random note dropout is not supported: its
config is refused.)
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf

from musicgen_tf.music.groovae import TAPIFY_CHANNEL

CORRUPTIONS = ("humanize", "tapify", "fixed_velocities", "add_instruments")


def encoder_corruption(converter) -> dict[str, Any] | None:
    """The corruptions a `GrooveConverter` applies to encoder inputs, as a model parameter (None: none)."""
    corruption = {"humanize": bool(converter.humanize), "tapify": bool(converter.tapify),
                  "fixed_velocities": bool(converter.fixed_velocities),
                  "add_instruments": list(converter.add_instruments or [])}
    return corruption if any(corruption.values()) else None


def corrupt_groove(groove: tf.Tensor, corruption: Mapping[str, Any] | None) -> tf.Tensor:
    """[hits | velocities | offsets] float [B, T, 3C] -> the encoder input Magenta's converter makes from it, in
    `make_inputs`' order: tapify (every step onto one class, from its loudest hit), humanize (no velocities or
    offsets), fixed velocities, instruments removed."""
    if not corruption:
        return groove
    unknown = set(corruption) - set(CORRUPTIONS)
    if unknown:
        raise ValueError(f"unknown GrooVAE input corruption {sorted(unknown)}; supported: {list(CORRUPTIONS)}")
    hits, velocities, offsets = tf.split(groove, 3, axis=-1)
    num_classes = hits.shape[-1]
    if corruption.get("tapify"):
        loudest = tf.one_hot(tf.argmax(velocities, axis=-1), num_classes, dtype=groove.dtype)  # first on ties
        channel = tf.one_hot(TAPIFY_CHANNEL, num_classes, dtype=groove.dtype)
        hits, velocities, offsets = (tf.reduce_sum(t * loudest, axis=-1, keepdims=True) * channel
                                     for t in (hits, velocities, offsets))
    if corruption.get("humanize"):
        velocities, offsets = tf.zeros_like(velocities), tf.zeros_like(offsets)
    if corruption.get("fixed_velocities"):
        velocities = tf.zeros_like(velocities)
    removed = list(corruption.get("add_instruments") or [])
    if removed:
        keep = 1.0 - tf.reduce_sum(tf.one_hot(removed, num_classes, dtype=groove.dtype), axis=0)
        hits, velocities, offsets = hits * keep, velocities * keep, offsets * keep
    return tf.concat([hits, velocities, offsets], axis=-1)

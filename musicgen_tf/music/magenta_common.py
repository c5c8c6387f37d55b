"""Small helpers of Magenta's `music_vae/data.py` shared by the melody, drums and GrooVAE converters."""

from __future__ import annotations

import collections

import note_seq
import numpy as np
from note_seq import sequences_lib

QUANTIZE_ERRORS = (note_seq.BadTimeSignatureError, note_seq.NonIntegerStepsPerBarError, note_seq.NegativeTimeError)


class ConverterTensors(collections.namedtuple("ConverterTensors", ["inputs", "outputs", "controls", "lengths"])):
    """Magenta's tuple: lists (one entry per window) of inputs [T, input_depth], outputs [T, output_depth],
    controls [T, control_depth] (zero-width when unused) and lengths T."""

    def __new__(cls, inputs=None, outputs=None, controls=None, lengths=None):
        inputs = [] if inputs is None else inputs
        outputs = [] if outputs is None else outputs
        if lengths is None:
            lengths = [len(i) for i in inputs]
        if not controls:
            controls = [np.zeros([n, 0]) for n in lengths]
        return super().__new__(cls, inputs, outputs, controls, lengths)


def np_onehot(indices, depth, dtype=bool) -> np.ndarray:
    """1-D indices -> one-hot [len(indices), depth] (Magenta's `np_onehot`)."""
    onehot = np.zeros((len(indices), depth), dtype=dtype)
    onehot[np.arange(len(indices)), indices] = 1
    return onehot


def maybe_sample_items(seq, sample_size):
    """Magenta's `maybe_sample_items` outside training: the first `sample_size` items."""
    if not sample_size or len(seq) <= sample_size:
        return seq
    return seq[:sample_size]


def split_process_and_combine(note_sequence, split, sample_size, process_fn):
    """Magenta's `split_process_and_combine` for lists of per-window items (deterministic, i.e. not training)."""
    sequences = sequences_lib.split_note_sequence_on_time_changes(note_sequence) if split else [note_sequence]
    results = []
    for ns in sequences:
        results.extend(maybe_sample_items(list(process_fn(ns)), sample_size))
    return maybe_sample_items(results, sample_size)


def quantize_or_reason(note_sequence, steps_per_quarter, steps_per_bar):
    """Quantize like Magenta; returns (quantized, None) or (None, reason) for the filters that return no tensors."""
    try:
        quantized = note_seq.quantize_note_sequence(note_sequence, steps_per_quarter)
    except QUANTIZE_ERRORS as e:
        return None, f"cannot quantize ({type(e).__name__}: {e})"
    if sequences_lib.steps_per_bar_in_quantized_sequence(quantized) != steps_per_bar:
        return None, f"time signature does not have {steps_per_bar} steps per bar"
    return quantized, None


def sequence_path(ns) -> str:
    return ns.filename or ns.id or "<sequence>"


def skip_reason(reasons: list[str], default: str) -> str:
    """The most frequent reason a (split) sequence produced nothing."""
    return collections.Counter(reasons).most_common(1)[0][0] if reasons else default

"""Presets that copy a Magenta MusicVAE config keep its data settings (checked against magenta 2.1.4's configs.py)."""

import note_seq

from musicgen_tf.configs import get_preset
from musicgen_tf.music import keys
from musicgen_tf.music.representations import get_converter


def _two_track_sequence():
    """Program 0 plays C4..G4 quarter notes; program 33 (electric bass, not a MEL_PROGRAM) plays higher notes."""
    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=120)
    ns.time_signatures.add(numerator=4, denominator=4)
    for i in range(8):
        ns.notes.add(pitch=60 + i % 5, start_time=0.5 * i, end_time=0.5 * (i + 1), velocity=80, program=0,
                     instrument=0)
        ns.notes.add(pitch=84 + i % 3, start_time=0.5 * i, end_time=0.5 * (i + 1), velocity=80, program=33,
                     instrument=1)
    ns.total_time = 4.0
    return ns


def test_two_bar_melody_presets_keep_only_magentas_mel_programs():
    for name in ("cat-mel_2bar", "cat-mel_2bar_cpu"):
        converter = get_converter("melody", **get_preset(name).converter_params)
        assert converter.valid_programs == list(range(32))
        examples = converter.to_examples(_two_track_sequence())
        pitches = {int(t) + converter.min_pitch - 2 for e in examples for t in e["tokens"] if t >= 2}
        # The bass track (program 33) is gone, and the demo's preset moves the melody (its key alone) to C.
        melody = [note.pitch for note in _two_track_sequence().notes if note.program == 0]
        shift = keys.shift_to_c(melody) if converter.normalize_key else 0
        assert pitches == {60 + shift, 61 + shift, 62 + shift, 63 + shift, 64 + shift}, name
    # Magenta's 16-bar melody converter has no program filter
    assert get_converter("melody", **get_preset("hierdec-mel_16bar").converter_params).valid_programs is None

"""Melody time series (seed 002): symbols on a 16th grid, duration filter, transposition, skyline, windows."""

import json

import numpy as np
import pytest
from note_seq import testing_lib
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.melody_timeseries import (MelodyTimeSeriesConverter, decode_symbols, encode_symbols,
                                                 estimate_key, transposition_to_c, windows)
from musicgen_tf.music.representations import get_converter

MAJOR = music_pb2.NoteSequence.KeySignature.MAJOR
MINOR = music_pb2.NoteSequence.KeySignature.MINOR


def melody(notes, qpm=120.0, key=None):
    """notes: (pitch, start_quarter, end_quarter); key: (tonic pitch class, mode) or None."""
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    ns.tempos.add(time=0.0, qpm=qpm)
    if key is not None:
        ns.key_signatures.add(time=0.0, key=key[0], mode=key[1])
    spq = 60.0 / qpm
    testing_lib.add_track_to_sequence(ns, 0, [(p, 90, s * spq, e * spq) for p, s, e in notes])
    return ns


def symbols(converter, ns):
    return converter.decode_symbols(converter.to_examples(ns)[0]["tokens"])


def test_fixed_vocabulary_and_params():
    converter = MelodyTimeSeriesConverter()
    assert converter.symbols[:4] == ["<pad>", "/", "r", "_"]
    assert converter.symbols[4:] == [str(p) for p in range(21, 109)]
    assert converter.vocab_size == 4 + 88
    params = json.loads(json.dumps(converter.params()))
    assert MelodyTimeSeriesConverter(**params) == converter
    assert get_converter("melody_timeseries", **params) == converter


def test_exact_symbols_in_c_major():
    ns = melody([(60, 0, 1), (62, 1, 1.5), (64, 1.5, 2), (67, 3, 4.5), (65, 4.5, 4.75)], key=(0, MAJOR))
    converter = MelodyTimeSeriesConverter()
    (example,) = converter.to_examples(ns)
    assert example["tokens"].dtype == np.int64 and example["tokens"].ndim == 1
    assert symbols(converter, ns) == "60 _ _ _ 62 _ 64 _ r _ _ _ 67 _ _ _ _ _ 65"
    assert converter.stats(example) == {"length": 19.0, "notes": 5.0, "rests": 1.0}


def test_leading_rest_and_tempo_do_not_matter():
    converter = MelodyTimeSeriesConverter(transpose=False)
    assert symbols(converter, melody([(72, 0.5, 1.0)], qpm=90)) == "r _ 72 _"


def test_transposition_uses_the_key_signature():
    d_major = [(62, 0, 1), (66, 1, 2), (69, 2, 3), (74, 3, 4)]
    expected = "60 _ _ _ 64 _ _ _ 67 _ _ _ 72 _ _ _"
    assert symbols(MelodyTimeSeriesConverter(), melody(d_major, key=(2, MAJOR))) == expected
    e_minor = [(64, 0, 1), (67, 1, 2), (71, 2, 3)]
    assert symbols(MelodyTimeSeriesConverter(), melody(e_minor, key=(4, MINOR))) == "69 _ _ _ 72 _ _ _ 76 _ _ _"
    # Untransposed when asked; a wrong key signature can be ignored in favour of the estimate.
    assert symbols(MelodyTimeSeriesConverter(transpose=False), melody(d_major, key=(2, MAJOR))).startswith("62 ")
    estimated = MelodyTimeSeriesConverter(use_key_signature=False)
    g_major = [(67, 0, 1), (69, 1, 2), (71, 2, 3), (72, 3, 4), (74, 4, 5), (76, 5, 6), (78, 6, 7), (79, 7, 8)]
    assert symbols(estimated, melody(g_major, key=(0, MAJOR))).split()[::4] == [
        "72", "74", "76", "77", "79", "81", "83", "84"]


def test_key_estimation_without_key_signature():
    a_minor = [57, 60, 64, 69, 71, 72, 74, 76, 69, 64, 57]
    assert estimate_key(a_minor, [1.0] * len(a_minor)) == (9, True)
    f_major = [65, 69, 72, 77, 70, 67, 65, 60, 65]
    assert estimate_key(f_major, [1.0] * len(f_major)) == (5, False)
    ns = melody([(p, i, i + 1) for i, p in enumerate(f_major)])
    assert symbols(MelodyTimeSeriesConverter(), ns).split()[0] == "60"  # F -> C, nearest shift is -5


@pytest.mark.parametrize("tonic, minor, shift", [(0, False, 0), (2, False, -2), (7, False, 5), (11, False, 1),
                                                  (6, False, -6), (9, True, 0), (4, True, 5), (0, True, -3)])
def test_transposition_is_the_nearest_shift(tonic, minor, shift):
    assert transposition_to_c(tonic, minor) == shift


@pytest.mark.parametrize("notes, detail", [
    ([(60, 0, 1), (62, 1, 2.25)], "1.25 quarters"),  # note of 1.25 quarters
    ([(60, 0, 0.125)], "0.125 quarters"),  # 32nd note
    ([(60, 0, 1), (62, 6, 7)], "5 quarters"),  # rest of 5 quarters
])
def test_unacceptable_durations_are_skipped(notes, detail):
    ns = melody(notes, key=(0, MAJOR))
    ns.filename = "song.krn"
    with pytest.raises(SkipInput) as info:
        MelodyTimeSeriesConverter().to_examples(ns)
    assert info.value.reason == "unacceptable durations" and info.value.path == "song.krn"
    assert detail in info.value.detail


def test_polyphony_keeps_the_skyline():
    ns = melody([(60, 0, 2), (64, 0, 1), (55, 1, 2), (67, 2, 3)], key=(0, MAJOR))
    assert symbols(MelodyTimeSeriesConverter(), ns) == "64 _ _ _ 55 _ _ _ 67 _ _ _"


def test_other_skip_inputs():
    converter = MelodyTimeSeriesConverter()
    with pytest.raises(SkipInput, match="no pitched notes"):
        converter.to_examples(music_pb2.NoteSequence())
    drums = melody([(36, 0, 1)])
    drums.notes[0].is_drum = True
    with pytest.raises(SkipInput, match="no pitched notes"):
        converter.to_examples(drums)
    with pytest.raises(SkipInput) as info:
        MelodyTimeSeriesConverter(min_pitch=48, max_pitch=84).to_examples(melody([(96, 0, 1)], key=(0, MAJOR)))
    assert info.value.reason == "pitch out of range"


def test_symbols_text_round_trip_and_errors():
    ids = encode_symbols("60 _ _ 62 _ 64 r _")
    assert ids.dtype == np.int64 and len(ids) == 8
    assert decode_symbols(ids) == "60 _ _ 62 _ 64 r _"
    assert decode_symbols(np.concatenate([ids, [0, 0]])) == "60 _ _ 62 _ 64 r _"  # PAD dropped
    with pytest.raises(ValueError, match="unknown melody symbol 'x'"):
        encode_symbols("60 x")
    with pytest.raises(ValueError, match="unknown melody symbol '20'"):
        encode_symbols("20")


def test_from_example_round_trip():
    converter = MelodyTimeSeriesConverter()
    text = "60 _ _ _ 62 _ 64 r _ _ 67 _ _ _ _ _ 65"
    ns = converter.from_example({"tokens": converter.encode_symbols(text)})
    assert [(n.pitch, n.start_time, n.end_time) for n in ns.notes] == [
        (60, 0.0, 0.5), (62, 0.5, 0.75), (64, 0.75, 0.875), (67, 1.25, 2.0), (65, 2.0, 2.125)]
    assert ns.tempos[0].qpm == 120.0 and ns.total_time == 2.125
    assert symbols(converter, ns) == text
    # Delimiters: leading ones skipped, a later one ends the song.
    delimited = np.concatenate([converter.delimiter_ids(4), converter.encode_symbols("60 _ / 62 _")])
    assert [n.pitch for n in converter.from_example({"tokens": delimited}).notes] == [60]


def test_windows():
    tokens = np.arange(10, dtype=np.int64)
    out = windows(tokens, 4, hop=3)
    assert out.dtype == np.int64 and out.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert windows(tokens, 10).shape == (1, 10)
    assert windows(tokens, 11).shape == (0, 11)
    assert windows(tokens, 3).shape == (8, 3)

"""MIDI bytes <-> `note_seq.NoteSequence`, decoded with symusic's C++ parser.

Why not `note_seq.midi_file_to_note_sequence`: it goes through pretty_midi/mido (~15k notes/s); symusic parses
millions of notes/s.  We keep note_seq's NoteSequence as the interchange format and compute times exactly as
pretty_midi does (ticks -> seconds through the tempo map, in float64), so both decoders give the same sequence.
"""

from __future__ import annotations

import os

import note_seq
import numpy as np
import symusic
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput

DEFAULT_QPM = 120.0
# Tempos outside this range are corrupt files in practice (0 would mean an infinitely long beat).
MIN_QPM, MAX_QPM = 1.0, 1000.0
MAX_TRACKS = 256

NOTES_FIELD, CONTROL_CHANGES_FIELD = 8, 11  # field numbers in note_seq's music.proto


def midi_file_to_note_sequence(path: str, max_tracks: int = MAX_TRACKS) -> music_pb2.NoteSequence:
    """Decode one MIDI file; raise `SkipInput` with a clear reason when it is not usable."""
    path = os.fspath(path)
    try:
        score = symusic.Score(path)
    except Exception as error:  # symusic raises RuntimeError/ValueError with parser detail
        raise SkipInput(path, "not a readable MIDI file", str(error)[:200]) from None
    return score_to_note_sequence(score, path, max_tracks=max_tracks)


def midi_bytes_to_note_sequence(data: bytes, name: str = "<bytes>") -> music_pb2.NoteSequence:
    try:
        score = symusic.Score.from_midi(data)
    except Exception as error:
        raise SkipInput(name, "not a readable MIDI file", str(error)[:200]) from None
    return score_to_note_sequence(score, name)


def _tick_to_seconds_fn(score: symusic.Score, path: str):
    """Return a vectorised ticks -> seconds map that follows the tempo changes (pretty_midi's rule)."""
    tpq = score.ticks_per_quarter
    if tpq <= 0:
        raise SkipInput(path, "invalid MIDI header", f"ticks per quarter = {tpq}")
    tempos = score.tempos.numpy()
    ticks = tempos["time"].astype(np.int64)
    mspq = tempos["mspq"].astype(np.float64)
    if len(ticks):
        qpm = 60e6 / np.maximum(mspq, 1e-9)
        bad = (mspq <= 0) | (qpm < MIN_QPM) | (qpm > MAX_QPM)
        if bad.any():
            shown = 0.0 if mspq[bad][0] <= 0 else qpm[bad][0]
            raise SkipInput(path, "tempo out of range", f"{shown:.4g} qpm; allowed {MIN_QPM:g}..{MAX_QPM:g}")
    if len(ticks) == 0 or ticks[0] != 0:  # pretty_midi assumes 120 qpm until the first tempo event
        ticks = np.concatenate([[0], ticks])
        mspq = np.concatenate([[60e6 / DEFAULT_QPM], mspq])
    order = np.argsort(ticks, kind="stable")
    ticks, mspq = ticks[order], mspq[order]
    seconds_per_tick = mspq / 1e6 / tpq
    segment_start_seconds = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * seconds_per_tick[:-1])])

    def to_seconds(t):
        t = np.asarray(t, dtype=np.int64)
        index = np.searchsorted(ticks, t, side="right") - 1
        return segment_start_seconds[index] + (t - ticks[index]) * seconds_per_tick[index]

    return to_seconds, ticks, mspq


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _encode_messages(field: int, columns: list[tuple[int, str, object]], tail: bytes) -> bytes:
    """Serialize many small messages of one repeated NoteSequence field as protobuf wire bytes, with numpy.

    Adding notes one by one through the protobuf API costs ~1 us each and was the decoder's bottleneck.  Within
    one track every message has the same layout: `columns` are (field number, "u1" for a varint below 128 or
    "<f8" for a double, values) and `tail` holds the per-track fields (instrument, program, is_drum), so the wire
    bytes are one structured-array copy that protobuf then parses in C.  Tests compare with note_seq's decoder.
    """
    wire_type = {"u1": 0, "<f8": 1}
    layout = [("key", "u1"), ("length", "u1")]
    for number, kind, _ in columns:
        layout += [(f"key{number}", "u1"), (f"value{number}", kind)]
    dtype = np.dtype(layout + [("tail", f"V{len(tail)}")])
    records = np.zeros(len(columns[0][2]), dtype=dtype)
    records["key"], records["length"] = (field << 3) | 2, dtype.itemsize - 2
    for number, kind, values in columns:
        records[f"key{number}"] = (number << 3) | wire_type[kind]
        records[f"value{number}"] = np.asarray(values, np.int64) & 0x7F if kind == "u1" else values
    records["tail"] = np.frombuffer(tail, dtype=f"V{len(tail)}")[0]
    return records.tobytes()


def _track_tail(first_field: int, instrument: int, program: int, is_drum: bool) -> bytes:
    """Wire bytes of the consecutive instrument, program and is_drum fields starting at `first_field`."""
    return (bytes([first_field << 3]) + _varint(instrument) + bytes([(first_field + 1) << 3]) + _varint(program)
            + bytes([(first_field + 2) << 3, int(is_drum)]))


def score_to_note_sequence(score: symusic.Score, path: str = "<score>",
                           max_tracks: int = MAX_TRACKS) -> music_pb2.NoteSequence:
    """Build a NoteSequence from a tick-based symusic Score."""
    if len(score.tracks) > max_tracks:
        raise SkipInput(path, "too many tracks", f"{len(score.tracks)} > {max_tracks}")
    to_seconds, tempo_ticks, mspq = _tick_to_seconds_fn(score, path)
    ns = music_pb2.NoteSequence()
    ns.ticks_per_quarter = score.ticks_per_quarter
    ns.source_info.encoding_type = music_pb2.NoteSequence.SourceInfo.MIDI
    ns.source_info.parser = music_pb2.NoteSequence.SourceInfo.PRETTY_MIDI  # same timing semantics
    for tick, value in zip(tempo_ticks, mspq):
        ns.tempos.add(time=float(to_seconds(tick)), qpm=60e6 / value)
    sigs = score.time_signatures.numpy()
    for tick, num, den in zip(sigs["time"], sigs["numerator"], sigs["denominator"]):
        if num <= 0 or den <= 0:
            raise SkipInput(path, "invalid time signature", f"{num}/{den}")
        ns.time_signatures.add(time=float(to_seconds(tick)), numerator=int(num), denominator=int(den))
    keys = score.key_signatures.numpy()
    for tick, key, tonality in zip(keys["time"], keys["key"], keys["tonality"]):
        # MIDI stores sharps/flats (-7..7); NoteSequence stores the tonic pitch class.
        tonic = (int(key) * 7 + (9 if tonality else 0)) % 12
        ns.key_signatures.add(time=float(to_seconds(tick)), key=tonic,
                              mode=music_pb2.NoteSequence.KeySignature.MINOR if tonality
                              else music_pb2.NoteSequence.KeySignature.MAJOR)
    for marker in score.markers:
        # Markers carry analysed chords in Pop1K7's `midi_analyzed` release; the REMI converter reads them.
        ns.text_annotations.add(time=float(to_seconds(marker.time)), text=str(marker.text),
                                annotation_type=music_pb2.NoteSequence.TextAnnotation.UNKNOWN)
    total_time = 0.0
    encoded = []
    for instrument, track in enumerate(score.tracks):
        notes, controls = track.notes.numpy(), track.controls.numpy()
        program, is_drum = int(track.program), bool(track.is_drum)
        if len(notes["time"]):
            starts = to_seconds(notes["time"])
            ends = to_seconds(notes["time"].astype(np.int64) + notes["duration"])
            total_time = max(total_time, float(ends.max()))
            encoded.append(_encode_messages(NOTES_FIELD, [
                (1, "u1", notes["pitch"]), (2, "u1", notes["velocity"]), (3, "<f8", starts), (4, "<f8", ends)],
                _track_tail(7, instrument, program, is_drum)))
        if len(controls["time"]):
            encoded.append(_encode_messages(CONTROL_CHANGES_FIELD, [
                (1, "<f8", to_seconds(controls["time"])), (2, "u1", controls["number"]),
                (3, "u1", controls["value"])], _track_tail(4, instrument, program, is_drum)))
    ns.MergeFromString(b"".join(encoded))
    ns.total_time = total_time
    return ns


def note_sequence_to_midi_file(ns: music_pb2.NoteSequence, path: str) -> None:
    """Write a NoteSequence as a standard MIDI file (note_seq's writer, so any DAW opens it)."""
    note_seq.sequence_proto_to_midi_file(ns, os.fspath(path))

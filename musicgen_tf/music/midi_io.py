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
UNREADABLE_MIDI = "not a readable MIDI file"  # the skip reason, also for files a reader could not fetch

NOTES_FIELD, CONTROL_CHANGES_FIELD = 8, 11  # field numbers in note_seq's music.proto


def midi_file_to_note_sequence(path: str, max_tracks: int = MAX_TRACKS) -> music_pb2.NoteSequence:
    """Decode one MIDI file; raise `SkipInput` with a clear reason when it is not usable."""
    path = os.fspath(path)
    try:
        score = symusic.Score(path)
    except Exception as error:  # symusic raises RuntimeError/ValueError with parser detail
        raise SkipInput(path, UNREADABLE_MIDI, str(error)[:200]) from None
    return score_to_note_sequence(score, path, max_tracks=max_tracks)


def midi_bytes_to_note_sequence(data: bytes, name: str = "<bytes>") -> music_pb2.NoteSequence:
    try:
        score = symusic.Score.from_midi(data)
    except Exception as error:
        raise SkipInput(name, UNREADABLE_MIDI, str(error)[:200]) from None
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


def _encode_messages(field: int, columns: list[tuple[int, np.ndarray]]) -> bytes:
    """Serialize many small messages of one repeated NoteSequence field as protobuf wire bytes, with numpy.

    Adding notes one by one through the protobuf API costs ~1 us each and was the decoder's bottleneck.  Every
    message gets the same layout: `columns` are (field number, values) with float values written as doubles and
    non-negative ints as varints padded to the width of the largest one (parsers accept padded varints), so the
    wire bytes of all tracks are one structured-array copy that protobuf then parses in C.  Tests compare with
    note_seq's decoder.
    """
    layout, varints = [("key", "u1"), ("length", "u1")], {}
    for number, values in columns:
        if values.dtype.kind == "f":
            layout += [(f"key{number}", "u1"), (f"value{number}", "<f8")]
        else:
            varints[number] = max(1, -(-int(values.max()).bit_length() // 7))
            layout += [(f"key{number}", "u1"), (f"value{number}", "u1", (varints[number],))]
    dtype = np.dtype(layout)
    records = np.zeros(len(columns[0][1]), dtype=dtype)
    records["key"], records["length"] = (field << 3) | 2, dtype.itemsize - 2
    for number, values in columns:
        width = varints.get(number)
        records[f"key{number}"] = (number << 3) | (1 if width is None else 0)
        if width is None:
            records[f"value{number}"] = values
        else:
            groups = (values.astype(np.int64)[:, None] >> (7 * np.arange(width))) & 0x7F
            records[f"value{number}"] = groups | np.where(np.arange(width) < width - 1, 0x80, 0)
    return records.tobytes()


def _concatenated(tracks: list, events: str, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """One array per column of the `events` ("notes", "controls") of all tracks, with each event's track fields."""
    found = [(index, track, getattr(track, events).numpy()) for index, track in enumerate(tracks)
             if len(getattr(track, events))]
    if not found:
        return None
    counts = [len(columns["time"]) for _, _, columns in found]
    out = {name: np.concatenate([columns[name] for _, _, columns in found]) for name in names}
    out["instrument"] = np.repeat([index for index, _, _ in found], counts)
    out["program"] = np.repeat([int(track.program) for _, track, _ in found], counts)
    out["is_drum"] = np.repeat([int(track.is_drum) for _, track, _ in found], counts)
    return out


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
    for time, value in zip(to_seconds(tempo_ticks).tolist(), mspq.tolist()):
        ns.tempos.add(time=time, qpm=60e6 / value)
    sigs = score.time_signatures.numpy()
    for time, num, den in zip(to_seconds(sigs["time"]).tolist(), sigs["numerator"].tolist(),
                              sigs["denominator"].tolist()):
        if num <= 0 or den <= 0:
            raise SkipInput(path, "invalid time signature", f"{num}/{den}")
        ns.time_signatures.add(time=time, numerator=num, denominator=den)
    keys = score.key_signatures.numpy()
    for time, key, tonality in zip(to_seconds(keys["time"]).tolist(), keys["key"].tolist(), keys["tonality"].tolist()):
        # MIDI stores sharps/flats (-7..7); NoteSequence stores the tonic pitch class.
        ns.key_signatures.add(time=time, key=(key * 7 + (9 if tonality else 0)) % 12,
                              mode=music_pb2.NoteSequence.KeySignature.MINOR if tonality
                              else music_pb2.NoteSequence.KeySignature.MAJOR)
    markers = list(score.markers)
    for time, marker in zip(to_seconds([marker.time for marker in markers]).tolist(), markers):
        # Markers carry analysed chords in Pop1K7's `midi_analyzed` release; the REMI converter reads them.
        ns.text_annotations.add(time=time, text=str(marker.text),
                                annotation_type=music_pb2.NoteSequence.TextAnnotation.UNKNOWN)
    tracks = list(score.tracks)
    encoded = []
    notes = _concatenated(tracks, "notes", ("time", "duration", "pitch", "velocity"))
    if notes is not None:
        starts = notes["time"].astype(np.int64)
        seconds = to_seconds(np.concatenate([starts, starts + notes["duration"]]))
        starts, ends = seconds[:len(starts)], seconds[len(starts):]
        ns.total_time = float(ends.max())
        encoded.append(_encode_messages(NOTES_FIELD, [
            (1, notes["pitch"]), (2, notes["velocity"]), (3, starts), (4, ends), (7, notes["instrument"]),
            (8, notes["program"]), (9, notes["is_drum"])]))
    controls = _concatenated(tracks, "controls", ("time", "number", "value"))
    if controls is not None:
        encoded.append(_encode_messages(CONTROL_CHANGES_FIELD, [
            (1, to_seconds(controls["time"])), (2, controls["number"]), (3, controls["value"]),
            (4, controls["instrument"]), (5, controls["program"]), (6, controls["is_drum"])]))
    ns.MergeFromString(b"".join(encoded))
    return ns


def note_sequence_to_midi_file(ns: music_pb2.NoteSequence, path: str) -> None:
    """Write a NoteSequence as a standard MIDI file (note_seq's writer, so any DAW opens it)."""
    note_seq.sequence_proto_to_midi_file(ns, os.fspath(path))

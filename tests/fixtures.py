"""Builders of tiny corpora in the real on-disk layouts, with real MIDI (pretty_midi/mido) and WAV (soundfile) bytes.

Each builder returns the root folder and writes a few deliberately bad files next to good ones, so readers and the
pipeline are tested on what real corpora contain.
"""

from __future__ import annotations

import csv
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import soundfile

MELODY = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72, 67, 64, 60, 55]
DRUM_PATTERN = [(36, 0), (42, 0), (42, 2), (38, 4), (42, 4), (42, 6), (36, 8), (36, 10), (42, 10), (38, 12),
                (42, 14)]  # (pitch, 16th step) of one 4/4 bar


def write_midi(path, notes=(), tempo=120.0, time_signatures=((4, 4, 0.0),), is_drum=False, program=0,
               extra_tracks=0):
    """notes: (pitch, start_seconds, end_seconds, velocity)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for numerator, denominator, time in time_signatures:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, denominator, time))
    instrument = pretty_midi.Instrument(program=program, is_drum=is_drum)
    for pitch, start, end, velocity in notes:
        instrument.notes.append(pretty_midi.Note(velocity, pitch, start, end))
    pm.instruments.append(instrument)
    for index in range(extra_tracks):
        extra = pretty_midi.Instrument(program=index % 128)
        extra.notes.append(pretty_midi.Note(64, 60, 0.0, 0.5))
        pm.instruments.append(extra)
    pm.write(str(path))
    return path


def melody_notes(bars=4, qpm=120.0, pitches=MELODY):
    """Quarter-note melody over `bars` 4/4 bars."""
    quarter = 60.0 / qpm
    return [(pitches[i % len(pitches)], i * quarter, (i + 1) * quarter, 80) for i in range(bars * 4)]


def write_random_melodies(root, count, seed=0, name="melody_{:02d}.mid") -> Path:
    """`count` 4-bar quarter-note melodies drawn on the C major scale from `seed` (the file names decide the
    splits, so keep `name` where a test counts on one)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for index in range(count):
        pitches = list(rng.choice([60, 62, 64, 65, 67, 69, 71, 72], size=16))
        write_midi(root / name.format(index), melody_notes(4, pitches=pitches))
    return root


def drum_notes(bars=2, qpm=120.0):
    step = 60.0 / qpm / 4
    return [(pitch, (bar * 16 + s) * step, (bar * 16 + s) * step + step / 2, 100 - 10 * (s % 4 != 0))
            for bar in range(bars) for pitch, s in DRUM_PATTERN]


def write_tempo_midi(path, microseconds_per_quarter: int):
    """A one-note file whose only tempo event is `microseconds_per_quarter` (0 = corrupt tempo)."""
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=microseconds_per_quarter, time=0),
                            mido.Message("note_on", note=60, velocity=80, time=0),
                            mido.Message("note_off", note=60, velocity=0, time=480)])
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def add_marker(path, text: str, tick: int = 0):
    midi = mido.MidiFile(str(path))
    midi.tracks[0].insert(0, mido.MetaMessage("marker", text=text, time=tick))
    midi.save(str(path))


def write_bad_midis(folder: Path) -> dict[str, str]:
    """Write the classic bad inputs; returns {file name: expected skip reason}."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_midi(folder / "good_for_truncation.mid", melody_notes(2)).read_bytes()
    (folder / "good_for_truncation.mid").unlink()
    (folder / "garbage.mid").write_bytes(b"this is not a midi file at all")
    (folder / "truncated.mid").write_bytes(good[: len(good) // 2])
    write_midi(folder / "empty.mid", [])
    write_tempo_midi(folder / "tempo_zero.mid", 0)
    write_tempo_midi(folder / "tempo_huge.mid", 1)
    write_midi(folder / "many_tracks.mid", melody_notes(1), extra_tracks=300)
    return {"garbage.mid": "not a readable MIDI file", "truncated.mid": "not a readable MIDI file",
            "tempo_zero.mid": "tempo out of range", "tempo_huge.mid": "tempo out of range",
            "many_tracks.mid": "too many tracks"}


def make_groove(root: Path, bars: int = 4) -> Path:
    """groove/info.csv + drummerN/sessionM/*.mid (`bars` bars of a beat each), one file per split plus a missing and
    a garbage file."""
    rows = []
    specs = [("drummer1", "drummer1/session1", "funk/groove1", 120, "train"),
             ("drummer1", "drummer1/session1", "rock", 100, "train"),
             ("drummer2", "drummer2/session2", "jazz/swing", 110, "validation"),
             ("drummer3", "drummer3/eval_session", "latin", 90, "test")]
    for index, (drummer, session, style, bpm, split) in enumerate(specs, start=1):
        name = f"{session}/{index}_{style.split('/')[0]}_{bpm}_beat_4-4.mid"
        write_midi(root / name, drum_notes(bars, bpm), tempo=bpm, is_drum=True)
        rows.append([drummer, session, f"{session}/{index}", style, bpm, "beat", "4-4", name,
                     name.replace(".mid", ".wav"), 8.0, split])
    (root / "drummer1/session1").mkdir(parents=True, exist_ok=True)
    (root / "drummer1/session1/9_garbage_120_fill_4-4.mid").write_bytes(b"MThd garbage")
    rows.append(["drummer1", "drummer1/session1", "drummer1/session1/9", "funk", 120, "fill", "4-4",
                 "drummer1/session1/9_garbage_120_fill_4-4.mid", "", 1.0, "train"])
    with open(root / "info.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["drummer", "session", "id", "style", "bpm", "beat_type", "time_signature",
                         "midi_filename", "audio_filename", "duration", "split"])
        writer.writerows(rows)
    return root



def groove_records(folder: Path, bars: int = 4, preset: str | None = None, num_shards: int | None = None) -> Path:
    """A Groove-layout corpus in `folder/groove` preprocessed by `musicgen preprocess` into `folder/records`."""
    from musicgen_tf.cli import main

    corpus, records = make_groove(Path(folder) / "groove", bars=bars), Path(folder) / "records"
    command = ["preprocess", "--dataset", "groove", "--input", str(corpus), "--output", str(records)]
    command += ["--preset", preset] if preset else []
    command += ["--num-shards", str(num_shards)] if num_shards else []
    if main(command) != 0:
        raise RuntimeError(f"musicgen {' '.join(command)} failed")
    return records

def make_pop1k7(root: Path, songs: int = 4) -> Path:
    for index in range(songs):
        path = write_midi(root / "midi_analyzed" / f"src_{index + 1:03d}" / f"{index}.mid",
                          melody_notes(4, 100.0), tempo=100.0)
        add_marker(path, "C_M")
        write_midi(root / "midi_transcribed" / f"{index}.mid", melody_notes(4, 100.0), tempo=100.0)
    return root


KERN_SONG = """!!!OTL: Kleines Lied
**kern
*M3/4
*k[f#]
*G:
=1-
4g
4a
4b
=2
2cc
4b
=3
4a
4g
4f#
=4
2.g
==
*-
"""

ABC_BOOK = """% a tiny tunebook in Essen's ABC style
X:1
T:Erstes Lied
M:2/4
L:1/8
K:G
GA Bc | d2 d2 | BG AF | G4 |]

X:2
T:Zweites Lied
M:3/4
L:1/4
K:Dm
D F A | d2 A | F E D | D3 |]

X:3
T:Leer
M:4/4
L:1/4
K:C

X:4
T:Viertes Lied (key H: abc2midi refuses it, music21 reads it)
M:4/4
L:1/8
K:H
G2G2G2G2 | c2c2d4 | G2G2G2G2 | d8 |]
"""


def make_esac(root: Path) -> Path:
    (root / "deutschl" / "kinder").mkdir(parents=True, exist_ok=True)
    (root / "deutschl" / "kinder" / "kind0001.krn").write_text(KERN_SONG, encoding="utf-8")
    (root / "deutschl" / "kinder" / "kaputt.krn").write_text("**kern\n*M3/4\n=1\n4q\n*-\n", encoding="utf-8")
    (root / "abc").mkdir(parents=True, exist_ok=True)
    (root / "abc" / "lieder_äöü.abc").write_text(ABC_BOOK, encoding="latin-1")
    return root


def write_wav(path: Path, seconds: float = 2.0, rate: int = 22050, frequency: float = 220.0, amplitude=0.3,
              subtype: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate,
                    subtype=subtype)
    return path


def make_gtzan(root: Path) -> Path:
    """genres/<genre>/<genre>.000NN.wav (one .au), plus a silent and a corrupt file like GTZAN's jazz.00054."""
    for genre, base in (("jazz", 220.0), ("rock", 330.0)):
        for index in range(3):
            write_wav(root / "genres" / genre / f"{genre}.{index:05d}.wav", frequency=base + 40 * index)
    write_wav(root / "genres" / "rock" / "rock.00003.au", frequency=500.0)
    write_wav(root / "genres" / "jazz" / "jazz.00053.wav", amplitude=0.0)
    (root / "genres" / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return root


def h5_weights(path) -> dict[str, np.ndarray]:
    """Every array of a Keras `.weights.h5` file by its path inside the file (for comparing two runs' weights)."""
    import h5py

    values = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: values.setdefault(name, item[()]) if isinstance(item, h5py.Dataset)
                          else None)
    return values

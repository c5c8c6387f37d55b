"""Groove MIDI Dataset (Gillick et al., 2019): `info.csv` + `drummerN/sessionM/*.mid`, splits from the csv."""

from __future__ import annotations

import csv
import io

from musicgen_tf.errors import LayoutError
from musicgen_tf.preprocessing import files
from musicgen_tf.preprocessing.readers.base import SPLITS, Reader, Source
from musicgen_tf.preprocessing.readers.midi_dir import load_midi

INFO_COLUMNS = ("drummer", "session", "id", "style", "bpm", "beat_type", "time_signature", "midi_filename",
                "audio_filename", "duration", "split")


class GrooveReader(Reader):
    name = "groove"
    default_representation = "groovae"
    expected_layout = ("the Groove MIDI Dataset folder (groove/): info.csv with columns " + ",".join(INFO_COLUMNS)
                       + " and the MIDI files it names, e.g. drummer1/session1/1_funk_80_beat_4-4.mid")

    def list_sources(self, input_dir):
        root = files.require_dir(input_dir, self.expected_layout)
        info = files.join(root, "info.csv")
        if not files.is_file(info):
            raise LayoutError(f"{info} not found; expected {self.expected_layout}")
        rows = list(csv.DictReader(io.StringIO(files.read_text(info), newline="")))
        missing = [c for c in INFO_COLUMNS if rows and c not in rows[0]] if rows else list(INFO_COLUMNS)
        if missing:
            raise LayoutError(f"{info} lacks columns {missing}; expected {self.expected_layout}")
        sources = []
        for line, row in enumerate(rows, start=2):
            split = row["split"].strip()
            if split not in SPLITS:
                raise LayoutError(f"{info}:{line}: split {split!r} is not one of {SPLITS}")
            style = row["style"].strip()
            features = {
                "style": style,
                "primary_style": style.split("/")[0],
                "bpm": int(float(row["bpm"] or 0)),
                "beat_type": row["beat_type"].strip(),
                "time_signature": row["time_signature"].strip(),
                "drummer": row["drummer"].strip(),
            }
            key = row["midi_filename"].strip()
            sources.append(Source(path=files.join(root, key), key=key, split=split, features=features))
        return sources

    def load(self, source):
        return load_midi(source)

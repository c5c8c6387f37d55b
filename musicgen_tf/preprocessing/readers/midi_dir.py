"""Any folder tree of `.mid` / `.midi` files; deterministic hash split."""

from __future__ import annotations

from musicgen_tf.errors import LayoutError, SkipInput
from musicgen_tf.music.midi_io import UNREADABLE_MIDI, midi_bytes_to_note_sequence
from musicgen_tf.preprocessing import files
from musicgen_tf.preprocessing.readers.base import MIDI_SUFFIXES, Reader, Source, hash_split, read_source


def load_midi(source: Source):
    """Decode a MIDI source; a file without a single note is skipped here, before any converter sees it."""
    ns = midi_bytes_to_note_sequence(read_source(source, UNREADABLE_MIDI), source.key)
    if not ns.notes:
        raise SkipInput(source.key, "no notes")
    ns.filename = source.key
    ns.id = source.key
    return ns


class MidiDirReader(Reader):
    name = "midi-dir"
    default_representation = "remi"
    expected_layout = "a folder containing .mid/.midi files (any depth)"

    def list_sources(self, input_dir):
        root = files.require_dir(input_dir, self.expected_layout)
        keys = files.list_files(root, MIDI_SUFFIXES)
        if not keys:
            raise LayoutError(f"no .mid/.midi files under {root}; expected {self.expected_layout}")
        return [Source(path=files.join(root, key), key=key, split=hash_split(key)) for key in keys]

    def load(self, source):
        return load_midi(source)

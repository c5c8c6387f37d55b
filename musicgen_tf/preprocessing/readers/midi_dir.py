"""Any folder tree of `.mid` / `.midi` files; deterministic hash split."""

from __future__ import annotations

from musicgen_tf.errors import LayoutError, SkipInput
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.preprocessing.readers.base import MIDI_SUFFIXES, Reader, Source, find_files, hash_split, require_dir


def load_midi(source: Source):
    """Decode a MIDI source; a file without a single note is skipped here, before any converter sees it."""
    ns = midi_file_to_note_sequence(source.path)
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
        root = require_dir(input_dir, self.expected_layout)
        files = find_files(root, MIDI_SUFFIXES)
        if not files:
            raise LayoutError(f"no .mid/.midi files under {root}; expected {self.expected_layout}")
        sources = []
        for path in files:
            key = path.relative_to(root).as_posix()
            sources.append(Source(path=str(path), key=key, split=hash_split(key)))
        return sources

    def load(self, source):
        return load_midi(source)

"""Pop1K7 (Hsiao et al., 2021): `midi_analyzed/`, `midi_transcribed/`, `midi_synchronized/` of numbered `.mid`.

`midi_analyzed` carries tempo and chord markers (used for REMI chord tokens), so it is the default variant.
The release has no split file: a `split.json` (`{"train": [relative paths], "validation": [...], "test": [...]}`)
beside the folders is used when present, else a deterministic hash split.
"""

from __future__ import annotations

import json

from musicgen_tf.errors import LayoutError
from musicgen_tf.preprocessing import files
from musicgen_tf.preprocessing.readers.base import MIDI_SUFFIXES, SPLITS, Reader, Source, hash_split
from musicgen_tf.preprocessing.readers.midi_dir import load_midi

VARIANTS = ("midi_analyzed", "midi_transcribed", "midi_synchronized")


class Pop1k7Reader(Reader):
    name = "pop1k7"
    default_representation = "remi"
    expected_layout = ("the Pop1K7 release folder holding " + ", ".join(f"{v}/" for v in VARIANTS)
                       + " with numbered .mid files (e.g. midi_analyzed/src_001/0.mid)")

    def __init__(self, variant: str = "midi_analyzed"):
        if variant not in VARIANTS:
            raise ValueError(f"unknown Pop1K7 variant {variant!r}; choose one of {VARIANTS}")
        self.variant = variant

    def list_sources(self, input_dir):
        root = files.require_dir(input_dir, self.expected_layout)
        folder = files.join(root, self.variant)
        if not files.is_dir(folder):
            present = [v for v in VARIANTS if files.is_dir(files.join(root, v))]
            hint = f" (found {present}; choose one with --pop1k7-variant)" if present else ""
            raise LayoutError(f"{folder} not found{hint}; expected {self.expected_layout}")
        names = files.list_files(folder, MIDI_SUFFIXES)  # relative to the variant folder
        if not names:
            raise LayoutError(f"no .mid files under {folder}; expected {self.expected_layout}")
        split_of = self._split_file(root)
        sources = []
        for name in names:
            key = f"{self.variant}/{name}"
            split = split_of.get(key) or split_of.get(name) or hash_split(key)
            sources.append(Source(path=files.join(root, key), key=key, split=split))
        return sources

    @staticmethod
    def _split_file(root):
        path = files.join(root, "split.json")
        if not files.is_file(path):
            return {}
        try:
            listing = json.loads(files.read_text(path))
            return {name: split for split in SPLITS for name in listing.get(split, [])}
        except (ValueError, AttributeError) as error:
            raise LayoutError(f"{path}: expected {{\"train\": [...], \"validation\": [...], \"test\": [...]}} "
                              f"({error})") from None

    def load(self, source):
        return load_midi(source)

"""Pop1K7 (Hsiao et al., 2021): `midi_analyzed/`, `midi_transcribed/`, `midi_synchronized/` of numbered `.mid`.

`midi_analyzed` carries tempo and chord markers (used for REMI chord tokens), so it is the default variant.
The release has no split file: a `split.json` (`{"train": [relative paths], "validation": [...], "test": [...]}`)
beside the folders is used when present, else a deterministic hash split.
"""

from __future__ import annotations

import json

from musicgen_tf.errors import LayoutError
from musicgen_tf.preprocessing.readers.base import (MIDI_SUFFIXES, SPLITS, Reader, Source, find_files, hash_split,
                                                     require_dir)
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
        root = require_dir(input_dir, self.expected_layout)
        folder = root / self.variant
        if not folder.is_dir():
            present = [v for v in VARIANTS if (root / v).is_dir()]
            hint = f" (found {present}; choose one with --pop1k7-variant)" if present else ""
            raise LayoutError(f"{folder} not found{hint}; expected {self.expected_layout}")
        files = find_files(folder, MIDI_SUFFIXES)
        if not files:
            raise LayoutError(f"no .mid files under {folder}; expected {self.expected_layout}")
        split_of = self._split_file(root)
        sources = []
        for path in files:
            key = path.relative_to(root).as_posix()
            split = split_of.get(key) or split_of.get(path.relative_to(folder).as_posix()) or hash_split(key)
            sources.append(Source(path=str(path), key=key, split=split))
        return sources

    @staticmethod
    def _split_file(root):
        path = root / "split.json"
        if not path.is_file():
            return {}
        try:
            listing = json.loads(path.read_text(encoding="utf-8"))
            return {name: split for split in SPLITS for name in listing.get(split, [])}
        except (ValueError, AttributeError) as error:
            raise LayoutError(f"{path}: expected {{\"train\": [...], \"validation\": [...], \"test\": [...]}} "
                              f"({error})") from None

    def load(self, source):
        return load_midi(source)

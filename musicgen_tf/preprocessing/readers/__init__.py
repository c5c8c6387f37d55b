"""One reader per dataset layout, and the registry `--dataset NAME` picks from."""

from __future__ import annotations

from musicgen_tf.preprocessing.readers.base import Reader, Source
from musicgen_tf.preprocessing.readers.esac import EsacReader, Music21EssenReader
from musicgen_tf.preprocessing.readers.groove import GrooveReader
from musicgen_tf.preprocessing.readers.gtzan import GtzanReader
from musicgen_tf.preprocessing.readers.midi_dir import MidiDirReader
from musicgen_tf.preprocessing.readers.pop1k7 import Pop1k7Reader

READERS: dict[str, type[Reader]] = {cls.name: cls for cls in (
    GrooveReader, Pop1k7Reader, EsacReader, GtzanReader, MidiDirReader, Music21EssenReader)}


def get_reader(name: str, **options) -> Reader:
    """Build the reader for `--dataset name`; `options` are reader-specific (genres, variant)."""
    try:
        cls = READERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(READERS)}") from None
    return cls(**options)


__all__ = ["READERS", "Reader", "Source", "get_reader"]

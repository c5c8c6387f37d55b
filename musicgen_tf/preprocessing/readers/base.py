"""What every dataset reader does: list the inputs of a corpus (with split and labels), then load one of them.

Listing is cheap and runs in the driver, so a wrong `--input` fails at once with the expected layout; loading is
the expensive part and runs inside Beam workers, where a bad file raises `SkipInput` and is recorded, not fatal.
`--input` is a local folder or any URI Beam's filesystems read (gs://, s3://, ...): readers go through `files`.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from typing import Any, ClassVar

from musicgen_tf.errors import SkipInput
from musicgen_tf.preprocessing import files

SPLITS = ("train", "validation", "test")
MIDI_SUFFIXES = (".mid", ".midi")


@dataclasses.dataclass(frozen=True)
class Source:
    """One input: a file (or a tune inside a tunebook file), its split and per-example labels.

    `key` is stable across machines (relative path, plus `#<tune>` inside tunebooks) so manifests and hash splits
    do not depend on where the corpus lives.
    """

    path: str  # local path or URI
    key: str
    split: str = "train"
    features: dict[str, Any] = dataclasses.field(default_factory=dict)
    tune: str | None = None


def hash_split(key: str, validation: float = 0.05, test: float = 0.05) -> str:
    """Deterministic split from the key alone: the same file lands in the same split on every run and machine."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < test:
        return "test"
    if bucket < test + validation:
        return "validation"
    return "train"


def read_source(source: Source, reason: str) -> bytes:
    """The bytes of `source` (local or remote); a file that cannot be read is skipped with its decoder's `reason`."""
    try:
        return files.read_bytes(source.path)
    except Exception as error:  # OSError locally; each Beam filesystem raises its own type
        raise SkipInput(source.key, reason, f"{type(error).__name__}: {str(error)[:200]}") from None


class Reader(abc.ABC):
    """A dataset reader.  `output_kind` is "note_sequence" or "waveform" and must match the converter's input."""

    name: ClassVar[str]
    default_representation: ClassVar[str]
    output_kind: ClassVar[str] = "note_sequence"
    expected_layout: ClassVar[str]

    @abc.abstractmethod
    def list_sources(self, input_dir: str | None) -> list[Source]:
        """Every input of the corpus, sorted; raise `LayoutError` naming `expected_layout` when it is not there."""

    @abc.abstractmethod
    def load(self, source: Source):
        """Decode one input into a NoteSequence or Waveform; raise `SkipInput` with a clear reason if unusable."""

    def parsed_with(self, item) -> str | None:
        """Name of the parser that decoded `item` when a reader has more than one (counted in the manifest)."""
        return None

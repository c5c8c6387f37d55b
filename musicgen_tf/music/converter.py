"""The converter interface: the only place that knows a representation, and it works both ways.

A converter turns one decoded input (a `NoteSequence`, or a `Waveform` for audio) into zero or more training
examples, each a dict of named numpy arrays (`to_examples`), and turns one example back into music
(`from_example`).  The TFRecord schema, the tf.data parser and the models read the feature names, dtypes and
shapes from `feature_spec()`, and the manifest stores `params()` so that readers refuse TFRecords written with
other parameters.  Magenta-style converters additionally expose `to_tensors` with Magenta's exact tensors.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import numpy as np


@dataclasses.dataclass(frozen=True)
class Feature:
    """One stored feature: dtype is "int64", "float32" or "bytes"; a `None` first dim means variable length."""

    dtype: str
    shape: tuple

    def __post_init__(self):
        if self.dtype not in ("int64", "float32", "bytes"):
            raise ValueError(f"unsupported feature dtype {self.dtype!r}")
        if any(d is None for d in self.shape[1:]):
            raise ValueError(f"only the first dimension may be variable, got {self.shape}")


@dataclasses.dataclass
class Waveform:
    """Mono audio: `samples` float32 [time] in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int


class Converter(abc.ABC):
    """Base class: subclasses set `name`, `input_kind`, `schema_version` and implement the four methods."""

    name: ClassVar[str]
    input_kind: ClassVar[str] = "note_sequence"  # or "waveform"
    schema_version: ClassVar[int] = 1
    presets: ClassVar[dict[str, dict[str, Any]]] = {}  # named parameter sets, e.g. Magenta's config names

    @classmethod
    def from_preset(cls, preset: str, **overrides) -> "Converter":
        """The converter of a named configuration, e.g. `MelodyConverter.from_preset("cat-mel_2bar_small")`."""
        if preset not in cls.presets:
            raise ValueError(f"unknown {cls.name} preset {preset!r}; choose one of {sorted(cls.presets)}")
        return cls(**{**cls.presets[preset], **overrides})

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.params() == self.params()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.params().items())))

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments; `type(self)(**params())` rebuilds the converter."""

    @abc.abstractmethod
    def feature_spec(self) -> dict[str, Feature]:
        """Names, dtypes and shapes of what `to_examples` returns."""

    @abc.abstractmethod
    def to_examples(self, item) -> list[dict[str, np.ndarray]]:
        """One input -> its training examples.  Raise `SkipInput` (with the filter's name) when none survive."""

    @abc.abstractmethod
    def from_example(self, example: dict[str, np.ndarray]):
        """One example (as returned by `to_examples` or parsed from a TFRecord) -> NoteSequence or Waveform."""

    def render_output(self, example: dict[str, np.ndarray]):
        """A model's output example -> music as the model's users get it (Magenta's 'infer' mode); by default
        `from_example`.  GrooVAE names its drum classes with the inference map here."""
        return self.from_example(example)

    def stats(self, example: dict[str, np.ndarray]) -> dict[str, float]:
        """Per-example numbers aggregated into the manifest (length, note count, ...). Override to add more."""
        first = next(iter(self.feature_spec()))
        return {"length": float(np.asarray(example[first]).shape[0]) if np.ndim(example[first]) else 1.0}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "schema_version": self.schema_version, "params": self.params()}

"""One registry of representations: `--representation NAME` -> converter class (imported lazily)."""

from __future__ import annotations

import importlib

from musicgen_tf.music.converter import Converter

REPRESENTATIONS: dict[str, str] = {
    "melody": "musicgen_tf.music.melody:MelodyConverter",
    "melody_timeseries": "musicgen_tf.music.melody_timeseries:MelodyTimeSeriesConverter",
    "drums": "musicgen_tf.music.drums:DrumsConverter",
    "groovae": "musicgen_tf.music.groovae:GrooveConverter",
    "remi": "musicgen_tf.music.remi:RemiConverter",
    "pitch_histogram": "musicgen_tf.music.pitch_histogram:PitchHistogramConverter",
    "waveform": "musicgen_tf.music.waveform:WaveformConverter",
}


def converter_class(name: str) -> type[Converter]:
    try:
        module_name, class_name = REPRESENTATIONS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown representation {name!r}; choose one of {sorted(REPRESENTATIONS)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def get_converter(name: str, **params) -> Converter:
    """Build the converter for `name` with its defaults, overridden by `params`."""
    return converter_class(name)(**params)


def converter_from_config(config: dict) -> Converter:
    """Inverse of `Converter.get_config()` (used when reading a manifest)."""
    return get_converter(config["name"], **config.get("params", {}))

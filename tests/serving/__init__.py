"""Tiny trained runs (real fixture MIDI -> preprocess -> train) shared by the serving tests.

Each kind is trained once per test session (`trained_run` is memoised), in a temporary folder removed at exit, so
test_export.py and test_client.py reuse the same runs and exports.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


from tests import fixtures

# kind -> (preset, representation, corpus)
RUNS = {
    "melody": ("cat-mel_2bar", "melody", "melodies"),
    "groove": ("groovae_2bar", "groovae", "groove"),
    "beta_melody": ("beta_vae_melody", "melody_timeseries", "melodies"),
}


@functools.lru_cache(maxsize=None)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="musicgen-serving-tests-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@functools.lru_cache(maxsize=None)
def corpus(kind: str) -> Path:
    """Real MIDI files in the layout the reader expects: 12 four-bar melodies, or the Groove MIDI layout."""
    root = _root() / kind
    if kind == "groove":
        return fixtures.make_groove(root)
    return fixtures.write_random_melodies(root, 12)


@functools.lru_cache(maxsize=None)
def trained_run(kind: str) -> str:
    """A run directory of a tiny `kind` model trained 3 steps on the fixture corpus."""
    from musicgen_tf.configs import get_preset
    from musicgen_tf.music.representations import get_converter
    from musicgen_tf.preprocessing.pipeline import run_preprocess
    from musicgen_tf.preprocessing.readers import get_reader
    from musicgen_tf.train.trainer import TrainOptions, train

    preset, representation, source = RUNS[kind]
    data = _root() / f"{kind}-records"
    converter = get_converter(representation, **get_preset(preset).converter_params)
    reader = get_reader("groove" if source == "groove" else "midi-dir")
    run_preprocess(reader, converter, str(data), input_dir=str(corpus(source)), num_shards=1)
    run_dir = _root() / f"{kind}-run"
    train(TrainOptions(preset=preset, data=str(data), run_dir=str(run_dir), tiny=True, epochs=1, steps_per_epoch=3,
                       batch_size=4, verbose=0))
    return str(run_dir)


@functools.lru_cache(maxsize=None)
def exported(kind: str) -> tuple[str, str]:
    """(export_dir, version folder) of `kind` exported as model `kind`, version 1."""
    from musicgen_tf.serving.export import export

    export_dir = _root() / "models"
    return str(export_dir), export(trained_run(kind), str(export_dir), kind.replace("_", "-"), version=1)

"""GTZAN genre collection: `genres/<genre>/<genre>.000NN.{wav,au}` (also Kaggle's `genres_original/`).

Audio is decoded with soundfile (WAV and Sun AU both go through libsndfile), mixed to mono; resampling to the
representation's rate is the waveform converter's job.  The genre is the example's label.
"""

from __future__ import annotations

import numpy as np
import soundfile

from musicgen_tf.errors import LayoutError, SkipInput
from musicgen_tf.music.converter import Waveform
from musicgen_tf.preprocessing.readers.base import Reader, Source, find_files, hash_split, require_dir

AUDIO_SUFFIXES = (".wav", ".au")
GENRE_FOLDERS = ("genres", "genres_original")


class GtzanReader(Reader):
    name = "gtzan"
    default_representation = "waveform"
    output_kind = "waveform"
    expected_layout = ("the GTZAN folder: genres/<genre>/<genre>.000NN.wav|.au "
                       "(or genres_original/<genre>/..., or the genre folders directly)")

    def __init__(self, genres: list[str] | None = None):
        self.genres = [g.strip() for g in genres if g.strip()] if genres else None

    def _genres_root(self, root):
        for name in GENRE_FOLDERS:
            if (root / name).is_dir():
                return root / name
        return root

    def list_sources(self, input_dir):
        root = self._genres_root(require_dir(input_dir, self.expected_layout))
        available = sorted(p.name for p in root.iterdir() if p.is_dir() and find_files(p, AUDIO_SUFFIXES))
        if not available:
            raise LayoutError(f"no genre folders with .wav/.au files under {root}; expected {self.expected_layout}")
        wanted = self.genres or available
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            raise LayoutError(f"genres {unknown} not found under {root}; available: {available}")
        sources = []
        for genre in wanted:
            for path in find_files(root / genre, AUDIO_SUFFIXES):
                key = path.relative_to(root).as_posix()
                sources.append(Source(path=str(path), key=key, split=hash_split(key), features={"genre": genre}))
        return sources

    def load(self, source):
        try:
            samples, rate = soundfile.read(source.path, dtype="float32", always_2d=True)
        except Exception as error:  # soundfile raises LibsndfileError / RuntimeError on corrupt files
            raise SkipInput(source.key, "unreadable audio", str(error)[:200]) from None
        if samples.shape[0] == 0:
            raise SkipInput(source.key, "empty audio", "0 samples")
        return Waveform(samples=np.mean(samples, axis=1), sample_rate=int(rate))

"""GTZAN genre collection: `genres/<genre>/<genre>.000NN.{wav,au}` (also Kaggle's `genres_original/`).

Audio is decoded with soundfile (WAV and Sun AU both go through libsndfile), mixed to mono; resampling to the
representation's rate is the waveform converter's job.  The genre is the example's label.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile

from musicgen_tf.errors import LayoutError, SkipInput
from musicgen_tf.music.converter import Waveform
from musicgen_tf.preprocessing import files
from musicgen_tf.preprocessing.readers.base import Reader, Source, hash_split, read_source

AUDIO_SUFFIXES = (".wav", ".au")
GENRE_FOLDERS = ("genres", "genres_original")
UNREADABLE_AUDIO = "unreadable audio"


class GtzanReader(Reader):
    name = "gtzan"
    default_representation = "waveform"
    output_kind = "waveform"
    expected_layout = ("the GTZAN folder: genres/<genre>/<genre>.000NN.wav|.au "
                       "(or genres_original/<genre>/..., or the genre folders directly)")

    def __init__(self, genres: list[str] | None = None):
        self.genres = [g.strip() for g in genres if g.strip()] if genres else None

    @staticmethod
    def _genres_root(root):
        for name in GENRE_FOLDERS:
            if files.is_dir(files.join(root, name)):
                return files.join(root, name)
        return root

    def list_sources(self, input_dir):
        root = self._genres_root(files.require_dir(input_dir, self.expected_layout))
        by_genre: dict[str, list[str]] = {}
        for key in files.list_files(root, AUDIO_SUFFIXES):
            if "/" in key:  # files beside the genre folders belong to no genre
                by_genre.setdefault(key.split("/")[0], []).append(key)
        available = sorted(by_genre)
        if not available:
            raise LayoutError(f"no genre folders with .wav/.au files under {root}; expected {self.expected_layout}")
        wanted = self.genres or available
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            raise LayoutError(f"genres {unknown} not found under {root}; available: {available}")
        return [Source(path=files.join(root, key), key=key, split=hash_split(key), features={"genre": genre})
                for genre in wanted for key in by_genre[genre]]

    def load(self, source):
        data = read_source(source, UNREADABLE_AUDIO)
        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as error:  # soundfile raises LibsndfileError / RuntimeError on corrupt files
            # error_string leaves out the in-memory buffer's address, so the detail is the same on every run
            raise SkipInput(source.key, UNREADABLE_AUDIO, getattr(error, "error_string", str(error))[:200]) from None
        if samples.shape[0] == 0:
            raise SkipInput(source.key, "empty audio", "0 samples")
        return Waveform(samples=np.mean(samples, axis=1), sample_rate=int(rate))

"""Audio waveform frames (seed 004: GTZAN resampled to 3000 Hz, clips of 90001 samples)."""

from __future__ import annotations

import librosa
import numpy as np

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Converter, Feature, Waveform

SILENCE_RMS = 1e-4  # below this a clip is silence (or digital zeros), not music worth training on


class WaveformConverter(Converter):
    """Waveform -> fixed-length mono frames at `sample_rate`.

    Each example is `{"audio": float32 [frame_length]}` in [-1, 1].  `hop_length` (default: `frame_length`, i.e. no
    overlap) chooses how many frames one clip yields; `max_frames_per_clip` bounds it.  A final partial frame is
    dropped, unless it is the only one and at least half a frame long, in which case it is zero-padded.
    """

    name = "waveform"
    input_kind = "waveform"

    def __init__(self, sample_rate: int = 3000, frame_length: int = 90001, hop_length: int | None = None,
                 max_frames_per_clip: int = 1, res_type: str = "soxr_hq"):
        self.sample_rate = int(sample_rate)
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length or frame_length)
        self.max_frames_per_clip = int(max_frames_per_clip)
        self.res_type = res_type

    def params(self):
        return {"sample_rate": self.sample_rate, "frame_length": self.frame_length, "hop_length": self.hop_length,
                "max_frames_per_clip": self.max_frames_per_clip, "res_type": self.res_type}

    def feature_spec(self):
        return {"audio": Feature("float32", (self.frame_length,))}

    def resample(self, waveform: Waveform) -> np.ndarray:
        samples = np.asarray(waveform.samples, dtype=np.float32)
        if waveform.sample_rate != self.sample_rate:
            samples = librosa.resample(samples, orig_sr=waveform.sample_rate, target_sr=self.sample_rate,
                                       res_type=self.res_type)
        return np.clip(samples, -1.0, 1.0).astype(np.float32)

    def to_examples(self, waveform: Waveform, path: str = "<audio>"):
        samples = self.resample(waveform)
        if not np.all(np.isfinite(samples)):
            raise SkipInput(path, "audio contains NaN or infinite samples")
        if samples.size == 0 or float(np.sqrt(np.mean(samples ** 2))) < SILENCE_RMS:
            raise SkipInput(path, "silent audio", f"RMS below {SILENCE_RMS:g}")
        if samples.size < self.frame_length:
            if samples.size * 2 < self.frame_length:
                raise SkipInput(path, "audio too short",
                                f"{samples.size / self.sample_rate:.2f}s < half a frame "
                                f"({self.frame_length / self.sample_rate / 2:.2f}s)")
            samples = np.pad(samples, (0, self.frame_length - samples.size))
        starts = range(0, samples.size - self.frame_length + 1, self.hop_length)
        return [{"audio": samples[start:start + self.frame_length]}
                for start in list(starts)[:self.max_frames_per_clip]]

    def from_example(self, example) -> Waveform:
        return Waveform(np.asarray(example["audio"], dtype=np.float32), self.sample_rate)

    def stats(self, example):
        audio = np.asarray(example["audio"])
        return {"length": float(audio.size), "rms": float(np.sqrt(np.mean(audio ** 2)))}

"""Sample and reconstruct with a trained audio run (the Resnet1D CVAE), writing WAV + waveform PNG + spectrogram PNG.

The audio counterpart of `generation.py`: the model works in-graph, the run's `WaveformConverter` decides the sample
rate and frame length, `music.render` draws the pictures.  Each result is `{"wav", "waveform_png", "spectrogram_png"}`
(paths), named `<prefix>-NN.*`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

from musicgen_tf.errors import MusicgenError, SkipInput
from musicgen_tf.music.converter import Waveform
from musicgen_tf.train.trainer import load_trained_model


def _write_clip(samples, sample_rate: int, out: Path, stem: str, title: str) -> dict:
    from musicgen_tf.music import render

    samples = np.clip(np.nan_to_num(np.asarray(samples, np.float32).reshape(-1)), -1.0, 1.0)
    wav = out / f"{stem}.wav"
    soundfile.write(str(wav), samples, int(sample_rate), subtype="PCM_16")  # model scale, not normalised
    return {"wav": str(wav),
            "waveform_png": render.waveform_png(samples, sample_rate, out / f"{stem}.waveform.png", title),
            "spectrogram_png": render.spectrogram_png(samples, sample_rate, out / f"{stem}.spectrogram.png", title)}


def _audio_run(run_dir: str, checkpoint: str | None):
    run = load_trained_model(run_dir, checkpoint)
    if run.converter.name != "waveform" or not hasattr(run.model, "reconstruct"):
        raise MusicgenError(f"{run_dir} holds a {run.preset.name} run on {run.converter.name!r} data; audio "
                            "generation needs an audio model such as resnet_cvae_gtzan")
    return run


def _label_ids(run, genre: str | None, num: int):
    """Genre name -> int64 ids [num] for a conditioned model; None when the model is not conditioned."""
    conditioned = getattr(run.model, "num_labels", 0) > 0
    vocabulary = run.schema.get("labels", {}).get(run.preset.label or "", {}).get("vocabulary", [])
    if genre is None:
        return None
    if not conditioned:
        if genre in vocabulary:  # a one-genre run: that genre is all it knows
            return None
        raise MusicgenError(f"this model ({run.preset.name}) is not conditioned on a genre"
                            + (f"; it was trained on {vocabulary} only" if vocabulary else "") + ": drop --genre")
    try:
        return run.label_ids(genre, num)
    except ValueError as error:
        raise MusicgenError(str(error)) from None


def generate_audio(run_dir: str, out_dir: str, num: int = 4, genre: str | None = None, temperature: float = 1.0,
                   seed: int | None = None, checkpoint: str | None = None) -> list[dict]:
    """Sample `num` clips from the prior (of `genre` for a genre-conditioned run; else cycling through genres)."""
    run = _audio_run(run_dir, checkpoint)
    labels = _label_ids(run, genre, num)
    outputs = run.model.sample(num, temperature=temperature, seed=None if seed is None else [seed, 0],
                               labels=labels)
    out = Path(os.path.expanduser(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    rate = run.converter.sample_rate
    suffix = f" ({genre})" if genre else ""
    return [_write_clip(row, rate, out, f"sample-{index:02d}", f"sample {index}{suffix}")
            for index, row in enumerate(np.asarray(outputs["audio"]))]


def load_clip(path: str, converter) -> np.ndarray:
    """An audio file -> its first frame at the converter's rate and length: float32 [frame_length]."""
    try:
        samples, rate = soundfile.read(os.path.expanduser(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError / RuntimeError; fall back to librosa (mp3 etc.)
        try:
            import librosa

            samples, rate = librosa.load(os.path.expanduser(path), sr=None, mono=True)
            samples = samples[:, None]
        except Exception:
            raise MusicgenError(f"{path}: not a readable audio file ({str(error)[:120]})") from None
    try:
        examples = converter.to_examples(Waveform(np.mean(samples, axis=1), int(rate)), path)
    except SkipInput as error:
        raise MusicgenError(f"{path}: cannot be encoded: {error.reason}") from None
    return np.asarray(examples[0]["audio"], np.float32)


def _genre_for(run, path: str, genre: str | None) -> str | None:
    """The genre to condition on: the one asked for, else one named by the file (GTZAN's `jazz.00012.wav`), else the
    first one the model knows."""
    if genre is not None or getattr(run.model, "num_labels", 0) == 0:
        return genre
    vocabulary = run.schema["labels"][run.preset.label]["vocabulary"]
    name = Path(path).name.lower()
    named = [g for g in vocabulary if name.startswith(f"{g.lower()}.")]
    chosen = named[0] if named else vocabulary[0]
    if not named:
        print(f"  no --genre given; conditioning on {chosen!r}")
    return chosen


def reconstruct_audio(run_dir: str, wav_path: str, out_dir: str, genre: str | None = None,
                      checkpoint: str | None = None) -> list[dict]:
    """Encode the first frame of `wav_path` (resampled/framed like the training data), decode its posterior mean;
    writes `reconstruction-00.*` (the original frame) and `reconstruction-01.*` (the model's version)."""
    run = _audio_run(run_dir, checkpoint)
    clip = load_clip(wav_path, run.converter)
    genre = _genre_for(run, wav_path, genre)
    labels = _label_ids(run, genre, 1)
    decoded = np.asarray(run.model.reconstruct(clip[None], labels=labels)["audio"])[0]
    out = Path(os.path.expanduser(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    rate = run.converter.sample_rate
    return [_write_clip(clip, rate, out, "reconstruction-00", "original"),
            _write_clip(decoded, rate, out, "reconstruction-01", "reconstruction")]

"""Resnet1D CVAE (seed 004) on CPU: train-step time float32 vs `jit_compile=True`, and input pipeline vs model.

1. The `resnet_cvae_gtzan` preset at full size (3000 Hz, 90001-sample frames, the notebook's layers, latent 2) is
   built by the project's builder and trained through Keras' own train function (`model.make_train_function()` over
   a `tf.data` iterator, what `fit` runs per step) at batch B (default 16), once with `jit_compile=False` and once
   with `jit_compile=True`.  Steps are timed in interleaved rounds so load from other jobs hits both alike; the
   reported time is the median step after warm-up.
2. The input pipeline: synthetic-but-real WAV clips (31 s, chords at different pitches, 22050 Hz) are written in
   the GTZAN layout, converted by the real preprocessing pipeline (reader -> WaveformConverter(3000, 90001) ->
   TFRecords + manifest) into a temp folder, then `make_dataset` (parse, shuffle, batch, prefetch, endless) is
   timed in samples/s and compared with the model's consumption (B / the faster step time).

    python bench/cvae_step.py [--batch 16] [--rounds 4] [--steps 3] [--warmup 2] [--clips 24]

Last lines: `RESULT cvae_xla_vs_float32_step <float32_ms / xla_ms>x (target >= 1.0x)` and
`RESULT cvae_input_pipeline_vs_model <pipeline samples/s / model samples/s>x (target >= 10x)`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import tensorflow as tf  # noqa: E402

from musicgen_tf.configs import get_preset  # noqa: E402
from musicgen_tf.models.builders import build_model  # noqa: E402
from musicgen_tf.train.schedules import make_optimizer  # noqa: E402
from timing import median_ms  # noqa: E402  (bench/timing.py, beside this script)

PRESET = "resnet_cvae_gtzan"


def write_gtzan(root: Path, clips: int, seconds: float = 31.0, rate: int = 22050) -> Path:
    """GTZAN layout, two genres, chords with a slow tremolo at different pitches (real 16-bit WAV bytes)."""
    t = np.arange(int(seconds * rate)) / rate
    for index in range(clips):
        genre = ("jazz", "rock")[index % 2]
        base = 110.0 * 2 ** (index / 12)
        wave = sum(np.sin(2 * np.pi * base * ratio * t) for ratio in (1.0, 1.25, 1.5)) / 3
        wave *= 0.4 * (0.75 + 0.25 * np.sin(2 * np.pi * 0.5 * t))
        path = root / "genres" / genre / f"{genre}.{index:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), wave.astype(np.float32), rate, subtype="PCM_16")
    return root


def make_step(batch_size: int, jit_compile: bool):
    """() -> loss float: one train step of the full-size seed preset through Keras' train function."""
    preset = get_preset(PRESET)
    manifest = {"features": {"audio": {"dtype": "float32", "shape": [90001]}},
                "labels": {"genre": {"dtype": "bytes", "vocabulary": ["jazz"]}}}  # one genre, as the seed
    model = build_model(preset, manifest)
    model.compile(optimizer=make_optimizer(preset.train), jit_compile=jit_compile)
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (batch_size, 90001)).astype(np.float32)
    iterator = iter(tf.data.Dataset.from_tensors({"audio": tf.constant(audio)}).repeat().prefetch(2))
    model.make_train_function()

    def step():
        return float(model.train_function(iterator)["loss"])

    return step, model.count_params()


def pipeline_rate(data_dir: str, batch_size: int, batches: int) -> float:
    """Samples/s that `make_dataset` delivers (parse, shuffle, batch, prefetch) after a warm-up batch."""
    from musicgen_tf.tfrecords.dataset import make_dataset

    dataset = make_dataset(data_dir, "train", batch_size, representation="waveform", shuffle=True,
                           shuffle_buffer=1000, repeat=True, drop_remainder=True, labels=("genre",), seed=0,
                           with_source_key=False)
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        assert batch["audio"].shape == (batch_size, 90001)
    return batches * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--clips", type=int, default=24, help="WAV clips written for the pipeline measurement")
    parser.add_argument("--pipeline-batches", type=int, default=60)
    args = parser.parse_args()

    print(f"preset {PRESET}: 3000 Hz, 90001-sample frames, batch {args.batch}; CPU, "
          f"TF {tf.__version__}, {os.cpu_count()} cores")
    float32_step, params = make_step(args.batch, jit_compile=False)
    xla_step, _ = make_step(args.batch, jit_compile=True)
    print(f"model parameters: {params:,}")
    medians = median_ms({"float32": float32_step, "xla": xla_step}, args.rounds, args.steps, args.warmup)
    for name, ms in medians.items():
        print(f"  train step {name:8s}: {ms:8.1f} ms  ({1000 * args.batch / ms:7.1f} samples/s)")
    model_rate = 1000 * args.batch / min(medians.values())

    from musicgen_tf.music.representations import get_converter
    from musicgen_tf.preprocessing.pipeline import run_preprocess
    from musicgen_tf.preprocessing.readers import get_reader

    with tempfile.TemporaryDirectory() as tmp:
        root = write_gtzan(Path(tmp) / "gtzan", args.clips)
        start = time.perf_counter()
        manifest = run_preprocess(get_reader("gtzan"), get_converter("waveform", sample_rate=3000, frame_length=90001),
                                  str(Path(tmp) / "data"), input_dir=str(root), num_shards=4)
        print(f"preprocess: {manifest['splits']['train']['examples']} train frames from {args.clips} WAV clips in "
              f"{time.perf_counter() - start:.1f} s")
        input_rate = pipeline_rate(str(Path(tmp) / "data"), args.batch, args.pipeline_batches)
    print(f"  input pipeline      : {input_rate:9.1f} samples/s")
    print(f"  model consumption   : {model_rate:9.1f} samples/s (faster step)")
    print(f"RESULT cvae_xla_vs_float32_step {medians['float32'] / medians['xla']:.2f}x (target >= 1.0x)")
    print(f"RESULT cvae_input_pipeline_vs_model {input_rate / model_rate:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()

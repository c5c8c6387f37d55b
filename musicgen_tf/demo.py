"""`musicgen demo`: the whole path on real data that ships with music21, ending with a number for its quality.

Essen folksongs -> melody TFRecords -> the `cat-mel_2bar_cpu` MusicVAE -> eight samples (MIDI, WAV, piano roll)
-> a TF Serving export in `<output>/models/` (what `musicgen studio` opens by default) -> Yang & Lerch's comparison
of 512 samples with the held-out test melodies (`musicgen evaluate --reference`, table and distribution plot).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import time
from pathlib import Path

DEMO_TUNES = 0  # all 8,514 Essen tunes (2,307 in 4/4): symusic reads them in well under a minute
DEMO_PRESET = "cat-mel_2bar_cpu"
DEMO_MODEL_NAME = "melody"
TEMPERATURE = 1.0  # the samples and the quality table use the model as it is, unsharpened
# About the size of the reference (577 test melodies): at 128, 128 *real* melodies score only ~0.90 mean OA against
# the test set (the KDEs of a small sample are noisy); at 512 they score 0.97, so the figure measures the model.
EVAL_SAMPLES = 512


def write_split_midis(records: str, split: str, out_dir: str, limit: int | None = None) -> int:
    """Every example of one split of a TFRecord folder -> `<out_dir>/<split>-NNNN.mid`; returns how many."""
    from musicgen_tf.models.builders import outputs_to_examples
    from musicgen_tf.music.render import write_midi
    from musicgen_tf.music.representations import converter_from_config
    from musicgen_tf.tfrecords.dataset import make_dataset
    from musicgen_tf.tfrecords.manifest import read_manifest

    converter = converter_from_config(read_manifest(records)["representation"])
    count = 0
    for batch in make_dataset(records, split, batch_size=256, shuffle=False, with_source_key=False):
        for example in outputs_to_examples({name: value.numpy() for name, value in batch.items()}):
            if limit is not None and count >= limit:
                return count
            write_midi(converter.from_example(example), Path(out_dir) / f"{split}-{count:04d}.mid")
            count += 1
    return count


def write_sample_midis(run_dir: str, out_dir: str, num: int, temperature: float, seed: int = 0) -> int:
    """`num` pieces sampled from the prior -> `<out_dir>/sample-NNNN.mid` (MIDI only: the evaluation reads MIDI)."""
    from musicgen_tf.models.builders import outputs_to_examples
    from musicgen_tf.music.render import write_midi
    from musicgen_tf.train.trainer import load_trained_model

    run = load_trained_model(run_dir)
    outputs = run.model.sample(num, temperature=temperature, seed=[seed, 0])
    for index, example in enumerate(outputs_to_examples(outputs)):
        write_midi(run.converter.render_output(example), Path(out_dir) / f"sample-{index:04d}.mid")
    return num


def quality_report(run_dir: str, records: str, out_dir: str, num: int = EVAL_SAMPLES,
                   temperature: float = TEMPERATURE) -> dict:
    """Samples vs held-out test melodies: prints the `evaluate --reference` table, writes `distributions.png`."""
    from musicgen_tf.music.evaluation_report import evaluate_reference_command

    generated, reference = os.path.join(out_dir, "generated"), os.path.join(out_dir, "test_melodies")
    write_sample_midis(run_dir, generated, num, temperature)
    held_out = write_split_midis(records, "test", reference)
    print(f"\nquality: {num} samples at temperature {temperature:g} vs the {held_out} held-out test melodies "
          f"(Yang & Lerch overlapping area, 1 = same distribution)")
    plot = os.path.join(out_dir, "distributions.png")
    document = evaluate_reference_command(generated, reference, plot=plot, progress=False)
    return document


class _Stopwatch:
    """Wall seconds per demo stage, printed at the end (the demo promises <= 10 minutes on 2 cores)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start

    def summary(self) -> str:
        stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.seconds.items())
        return f"demo took {sum(self.seconds.values()) / 60:.1f} min ({stages})"


def run_demo(args: argparse.Namespace, extra: list[str], preprocess) -> None:
    """Preprocess (`preprocess(namespace, extra)`, the CLI's), train, sample, export, evaluate; print the studio
    command."""
    from musicgen_tf import generation
    from musicgen_tf.configs import get_preset
    from musicgen_tf.serving.export import export
    from musicgen_tf.train.trainer import TrainOptions, train

    output, clock = args.output, _Stopwatch()
    records, run_dir = os.path.join(output, "tfrecords"), os.path.join(output, "run")
    with clock.stage("preprocess"):
        preprocess(argparse.Namespace(
            dataset="music21-essen", input=None, output=records, representation=None, preset=DEMO_PRESET, param=[],
            limit=args.limit or None, num_shards=4, workers=args.workers, genres=None,
            pop1k7_variant="midi_analyzed", overwrite=True), extra)
    print(f"\ntraining {DEMO_PRESET} (TensorBoard: tensorboard --logdir {run_dir}/logs)")
    per_epoch = None if args.steps is None else min(args.steps, get_preset(DEMO_PRESET).train.steps_per_epoch)
    with clock.stage("train"):
        train(TrainOptions(preset=DEMO_PRESET, data=records, run_dir=run_dir, steps=args.steps,
                           steps_per_epoch=per_epoch))

    samples = os.path.join(output, "samples")
    with clock.stage("samples"):
        results = generation.generate(run_dir, samples, num=8, temperature=TEMPERATURE, seed=0)
    print(f"\n{len(results)} samples in {samples}/ (MIDI, WAV, piano-roll PNG), e.g.")
    print("  " + "  ".join(str(path) for path in results[0].values()))

    models = os.path.join(output, "models")
    with clock.stage("export"):
        path = export(run_dir, models, DEMO_MODEL_NAME, overwrite=True)
    print(f"\nexported for TF Serving and the studio: {path}")

    with clock.stage("evaluate"):
        quality_report(run_dir, records, os.path.join(output, "evaluation"), num=args.eval_samples)

    print(f"\n{clock.summary()}")
    studio = "musicgen studio" if os.path.normpath(models) == os.path.join("demo_out", "models") else \
        f"musicgen studio --models {shlex.quote(models)}"
    print(f"\nlisten, sample, interpolate in the browser:\n  {studio}")


__all__ = ["DEMO_PRESET", "DEMO_TUNES", "quality_report", "run_demo", "write_sample_midis", "write_split_midis"]

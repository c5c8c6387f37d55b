"""Serving latency: each signature of an exported MusicVAE loaded from the SavedModel in-process, next to Keras.

The model is the `cat-mel_2bar` preset at full size (bi-LSTM 512 encoder, 2 x 256 LSTM decoder, latent 256,
32 steps, 90 melody classes) built by the project's builder with random weights: latency does not depend on the
weights' values, so no training is needed.  It is exported with the same serving module `musicgen export` uses,
reloaded with `tf.saved_model.load`, and every signature is called at batch 1 and batch 32 (interpolate: 1 and 32
steps; encode: 1 and 32 windows).  Next to it, the same call on the Keras model:
- "keras eager": the model method called directly, as `musicgen generate` does;
- "keras tf.function": the same Python function wrapped in `tf.function` in-process (what the export traces).
p50/p95 are over `--calls` timed calls after `--warmup` calls; throughput = batch / p50.

    python bench/serving.py [--calls 30] [--warmup 3]

Last lines: `RESULT savedmodel_vs_keras_sample_p50 <keras eager p50 / SavedModel p50, batch 1>x (target >= 1.0x)`
and `RESULT musicvae_2bar_sample_p50_ms <SavedModel sample p50 at batch 1> (target < 20)`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from musicgen_tf.configs import get_preset  # noqa: E402
from musicgen_tf.models.builders import build_model  # noqa: E402
from musicgen_tf.music.representations import get_converter  # noqa: E402
from musicgen_tf.serving.export import make_serving_module  # noqa: E402
from musicgen_tf.train.trainer import TrainedRun  # noqa: E402

PRESET = "cat-mel_2bar"


def build_run() -> TrainedRun:
    preset = get_preset(PRESET).resolved()
    converter = get_converter(preset.representation, **preset.converter_params)
    schema = {"representation": converter.get_config(),
              "features": {name: {"dtype": f.dtype, "shape": list(f.shape)}
                           for name, f in converter.feature_spec().items()}, "labels": {}}
    keras_model = build_model(preset, schema)  # random initial weights
    return TrainedRun(keras_model, preset, converter, schema)


def inputs_for(name: str, batch: int, module, rng) -> dict:
    model = module.run.model
    tokens = lambda *shape: tf.constant(rng.integers(0, model.vocab_size, shape), tf.int64)  # noqa: E731
    seed = tf.constant([1, 2], tf.int64)
    if name == "sample":
        return {"num": tf.constant(batch, tf.int32), "temperature": tf.constant(1.0), "seed": seed}
    if name == "encode":
        return {"tokens": tokens(batch, model.seq_len)}
    if name == "decode":
        return {"z": tf.constant(rng.standard_normal((batch, model.latent_dim)), tf.float32),
                "temperature": tf.constant(1.0), "seed": seed}
    if name == "interpolate":
        return {"a_tokens": tokens(model.seq_len), "b_tokens": tokens(model.seq_len),
                "steps": tf.constant(batch, tf.int32)}
    raise KeyError(name)


def time_calls(fn, inputs, calls: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--eager-calls", type=int, default=10, help="timed calls of the (slow) eager Keras path")
    args = parser.parse_args()

    run = build_run()
    module = make_serving_module(run)
    signatures = module.signatures()
    print(f"{PRESET}: {run.model.count_params():,} parameters (random weights), seq_len {run.model.seq_len}, "
          f"latent {run.model.latent_dim}; TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        tf.saved_model.save(module, folder, signatures=module.concrete_functions())
        loaded = tf.saved_model.load(folder)
        print(f"export + reload: {time.perf_counter() - start:.1f} s\n")
        rng = np.random.default_rng(0)
        header = f"{'signature':<12}{'batch':>6}  {'path':<18}{'p50 ms':>9}{'p95 ms':>9}{'items/s':>10}"
        print(header + "\n" + "-" * len(header))
        results = {}
        for name in ("sample", "decode", "encode", "interpolate"):
            graph_fn = tf.function(signatures[name].fn)
            for batch in (1, 32):
                inputs = inputs_for(name, batch, module, rng)
                paths = {"savedmodel": (lambda x, f=loaded.signatures[name]: f(**x), args.calls),
                         "keras tf.function": (graph_fn, args.calls),
                         "keras eager": (signatures[name].fn, args.eager_calls)}
                for path, (fn, calls) in paths.items():
                    times = time_calls(fn, inputs, calls, args.warmup if path != "keras eager" else 1)
                    p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
                    results[name, batch, path] = p50
                    print(f"{name:<12}{batch:>6}  {path:<18}{p50:>9.2f}{p95:>9.2f}{batch / p50 * 1000:>10.0f}")
    sample_saved = results["sample", 1, "savedmodel"]
    print(f"\nsample batch 1: SavedModel vs keras tf.function "
          f"{results['sample', 1, 'keras tf.function'] / sample_saved:.2f}x, vs keras eager "
          f"{results['sample', 1, 'keras eager'] / sample_saved:.2f}x")
    print(f"RESULT savedmodel_vs_keras_sample_p50 {results['sample', 1, 'keras eager'] / sample_saved:.2f}x "
          f"(target >= 1.0x)")
    print(f"RESULT musicvae_2bar_sample_p50_ms {sample_saved:.2f} (target < 20)")


if __name__ == "__main__":
    main()

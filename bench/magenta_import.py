"""Encode + greedy decode speed of an imported Magenta model: ours (Keras, in `tf.function`) vs Magenta's TF1 graph.

    python bench/magenta_import.py [--magenta-python PY --magenta-src DIR] [--batch 64] [--repeats 10]

Magenta (2.1.4) cannot be installed beside this project (it pins TF 2.9), so its side runs in a subprocess with
another Python: `--magenta-python` (or `$MAGENTA_PYTHON`), an environment with TF 2.21, tf-keras, tf-slim,
tensorflow-probability, dm-sonnet and tensorflow-datasets, and `--magenta-src` (or `$MAGENTA_SRC`), the unpacked
magenta wheel (`unzip magenta-2.1.4-py3-none-any.whl -d DIR`), as for `tools/make_magenta_fixtures.py`.
Without them only our side runs and the comparison is skipped with a line saying so.

Workload (cat-mel_2bar_small sizes: encoder 512, z 256, decoder 2 x 256, 32 steps, 90 classes): the same `--batch`
random 2-bar melodies encoded (mu, sigma) and the same `--batch` z vectors decoded greedily (Magenta: its
`TrainedModel.encode_tensors` and `decode_to_tensors(temperature=1e-5)`; ours: `MusicVAE.encode_inputs` and
`decode(temperature=0)`, each in a `tf.function`).  Magenta's side writes a checkpoint with random weights, which
ours imports with `musicgen_tf.interop.magenta`, so both run the same weights and the script also checks that the
greedy decodes agree.  Times are the median of `--repeats` calls after one warm-up call; Magenta's side runs first,
then ours, on the same cores.  Last line: `RESULT magenta_decode_speed <magenta_ms / our_ms>x (target >= 1.0x)`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CONFIG = "cat-mel_2bar_small"
SEQ_LEN, VOCAB = 32, 90
HERE = os.path.dirname(os.path.abspath(__file__))


def median_ms(fn, repeats):
    fn()  # warm-up (graph building / tracing)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def make_inputs(batch, seed=0):
    """Random melodies (tokens int [B, T] in [0, 90)) and z float32 [B, 256]."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, size=(batch, SEQ_LEN)), rng.normal(size=(batch, 256)).astype(np.float32)


# -- Magenta's side (runs under --magenta-python) ---------------------------------------------------------------------

def magenta_side(workdir, magenta_src, repeats):
    """Write `workdir/model.ckpt` (random weights) and `workdir/magenta.json` (times, mu, greedy tokens)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    sys.path[:0] = [os.path.abspath(magenta_src), os.path.join(HERE, "..", "tools")]
    import copy

    import tensorflow.compat.v1 as tf
    from magenta.models.music_vae import TrainedModel, configs
    from make_magenta_fixtures import write_random_checkpoint

    tf.disable_v2_behavior()
    tf.logging.set_verbosity(tf.logging.ERROR)
    data = np.load(os.path.join(workdir, "inputs.npz"))
    tokens, z = data["tokens"], data["z"]
    batch = len(tokens)
    config = copy.deepcopy(configs.CONFIG_MAP[CONFIG])
    prefix = os.path.join(workdir, "model.ckpt")
    write_random_checkpoint(config, batch, prefix, seed=0, bias_shift=1.2)
    trained = TrainedModel(config, batch_size=batch, checkpoint_dir_or_path=prefix)
    one_hot = list(np.eye(VOCAB, dtype=np.float32)[tokens])
    lengths = [SEQ_LEN] * batch
    encode_ms = median_ms(lambda: trained.encode_tensors(one_hot, lengths), repeats)
    decode_ms = median_ms(lambda: trained.decode_to_tensors(z, length=SEQ_LEN, temperature=1e-5), repeats)
    _, mu, _ = trained.encode_tensors(one_hot, lengths)
    decoded = np.argmax(np.asarray(trained.decode_to_tensors(z, length=SEQ_LEN, temperature=1e-5)), axis=-1)
    with open(os.path.join(workdir, "magenta.json"), "w") as f:
        json.dump({"encode_ms": encode_ms, "decode_ms": decode_ms, "mu": np.asarray(mu).tolist(),
                   "tokens": decoded.tolist()}, f)


def run_magenta(workdir, python, magenta_src, repeats):
    """Magenta's side in a subprocess -> its results, or None (with the reason printed) when it cannot run."""
    if not (python and magenta_src):
        print("SKIP magenta comparison: Magenta is not importable here; pass --magenta-python and --magenta-src "
              "(or set MAGENTA_PYTHON / MAGENTA_SRC) to time Magenta's TF1 graph")
        return None
    command = [python, os.path.abspath(__file__), "--magenta-side", workdir, "--magenta-src", magenta_src,
               "--repeats", str(repeats)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    if result.returncode != 0:
        print(f"SKIP magenta comparison: Magenta's side failed ({python}):\n{result.stderr[-2000:]}")
        return None
    with open(os.path.join(workdir, "magenta.json")) as f:
        return json.load(f)


# -- our side ---------------------------------------------------------------------------------------------------------

def our_model(workdir, imported):
    """Our MusicVAE: the checkpoint Magenta's side wrote, imported; else the preset's sizes with random weights."""
    from musicgen_tf.interop import magenta

    if imported:
        run_dir = os.path.join(workdir, "run")
        magenta.import_checkpoint(CONFIG, os.path.join(workdir, "model.ckpt"), run_dir)
        from musicgen_tf.train.trainer import load_trained_model

        return load_trained_model(run_dir).model
    from musicgen_tf.configs import get_preset

    sizes = {key: get_preset(CONFIG).model[key] for key in ("encoder_units", "decoder_units", "latent_dim")}
    return magenta.build_model_for(CONFIG, sizes)[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--magenta-python", default=os.environ.get("MAGENTA_PYTHON"))
    parser.add_argument("--magenta-src", default=os.environ.get("MAGENTA_SRC"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--magenta-side", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.magenta_side:
        return magenta_side(args.magenta_side, args.magenta_src, args.repeats)

    import tensorflow as tf

    from cpuinfo import cpu_line  # bench/cpuinfo.py, beside this script

    with tempfile.TemporaryDirectory() as workdir:
        tokens, z = make_inputs(args.batch)
        np.savez(os.path.join(workdir, "inputs.npz"), tokens=tokens, z=z)
        theirs = run_magenta(workdir, args.magenta_python, args.magenta_src, args.repeats)
        model = our_model(workdir, theirs is not None)
        one_hot = tf.constant(np.eye(VOCAB, dtype=np.float32)[tokens])
        encode = tf.function(lambda x: model.encode_inputs(x))
        decode = tf.function(lambda z: model.decode(z, temperature=0.0, seed=[0, 0]))
        ours = {"encode_ms": median_ms(lambda: [t.numpy() for t in encode(one_hot)], args.repeats),
                "decode_ms": median_ms(lambda: decode(z).numpy(), args.repeats)}

    print(f"{CONFIG} sizes, batch {args.batch}, {SEQ_LEN} steps; median of {args.repeats} calls after a warm-up")
    print(cpu_line())
    print(f"  ours (Keras, tf.function)  encode {ours['encode_ms']:8.1f} ms   greedy decode {ours['decode_ms']:8.1f} ms")
    if theirs is None:
        return None
    print(f"  Magenta (TF1 graph)        encode {theirs['encode_ms']:8.1f} ms   greedy decode "
          f"{theirs['decode_ms']:8.1f} ms")
    mu_ours = np.asarray(encode(one_hot)[0])
    same = np.mean(np.all(np.asarray(decode(z)) == np.asarray(theirs["tokens"]), axis=1))
    print(f"  same weights: max |mu ours - mu Magenta| {np.max(np.abs(mu_ours - np.asarray(theirs['mu']))):.2e}; "
          f"greedy decodes identical for {same:.0%} of the batch")
    ratio = (theirs["encode_ms"] + theirs["decode_ms"]) / (ours["encode_ms"] + ours["decode_ms"])
    print(f"RESULT magenta_decode_speed {ratio:.2f}x (target >= 1.0x)")
    return ratio


if __name__ == "__main__":
    main()

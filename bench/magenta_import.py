"""Encode + greedy decode speed of an imported Magenta model: ours (Keras, in `tf.function`) vs Magenta's TF1 graph.

    python bench/magenta_import.py [--magenta-python PY --magenta-src DIR] [--batch 64] [--rounds 4] [--repeats 5]

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
greedy decodes agree.  Magenta's side stays running while `--rounds` rounds alternate between the two (Magenta,
ours, Magenta, ...) on the same cores, so load from other jobs hits both alike; a round times `--repeats` calls
after one warm-up call and keeps the median; each side's figures are its best round (the least disturbed by other
jobs), with the CPU time its process used.
Last line: `RESULT magenta_decode_speed <magenta_ms / our_ms (encode + decode)>x (target >= 1.0x)`.
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


def timed(fn, repeats, name):
    """{name + "_ms": median wall time, name + "_cpu_ms": median CPU time of this process} of `repeats` calls after
    a warm-up call (graph building / tracing)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {f"{name}_ms": 1000 * statistics.median(wall), f"{name}_cpu_ms": 1000 * statistics.median(cpu)}


def make_inputs(batch, seed=0):
    """Random melodies (tokens int [B, T] in [0, 90)) and z float32 [B, 256]."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, size=(batch, SEQ_LEN)), rng.normal(size=(batch, 256)).astype(np.float32)


# -- Magenta's side (runs under --magenta-python) ---------------------------------------------------------------------

def magenta_side(workdir, magenta_src, repeats):
    """Write `workdir/model.ckpt` (random weights) and `workdir/magenta.json` (mu, greedy tokens), print "ready",
    then time one round per "round" line on stdin, answering with a JSON line {"encode_ms", "decode_ms"}."""
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
    _, mu, _ = trained.encode_tensors(one_hot, lengths)
    decoded = np.argmax(np.asarray(trained.decode_to_tensors(z, length=SEQ_LEN, temperature=1e-5)), axis=-1)
    with open(os.path.join(workdir, "magenta.json"), "w") as f:
        json.dump({"mu": np.asarray(mu).tolist(), "tokens": decoded.tolist()}, f)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "round":
            times = {**timed(lambda: trained.encode_tensors(one_hot, lengths), repeats, "encode"),
                     **timed(lambda: trained.decode_to_tensors(z, length=SEQ_LEN, temperature=1e-5), repeats,
                             "decode")}
            print(json.dumps(times), flush=True)


class MagentaProcess:
    """Magenta's side as a subprocess that times a round of calls whenever asked (so rounds can alternate with
    ours and both see the same load)."""

    def __init__(self, workdir, python, magenta_src, repeats):
        self.log = open(os.path.join(workdir, "magenta.log"), "w+")
        command = [python, os.path.abspath(__file__), "--magenta-side", workdir, "--magenta-src", magenta_src,
                   "--repeats", str(repeats)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
        for line in self.process.stdout:
            if line.strip() == "ready":
                break
        else:
            self.close()
            self.log.seek(0)
            raise RuntimeError(f"Magenta's side failed ({python}):\n{self.log.read()[-2000:]}")
        with open(os.path.join(workdir, "magenta.json")) as f:
            self.results = json.load(f)

    def time_round(self) -> dict:
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self):
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        self.process.wait()
        self.log.close()


def start_magenta(workdir, python, magenta_src, repeats):
    """A running MagentaProcess, or None (with the reason printed) when Magenta cannot run."""
    if not (python and magenta_src):
        print("SKIP magenta comparison: Magenta is not importable here; pass --magenta-python and --magenta-src "
              "(or set MAGENTA_PYTHON / MAGENTA_SRC) to time Magenta's TF1 graph")
        return None
    try:
        return MagentaProcess(workdir, python, magenta_src, repeats)
    except (OSError, RuntimeError) as error:
        print(f"SKIP magenta comparison: {error}")
        return None


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
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (Magenta, ours, Magenta, ...)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round")
    parser.add_argument("--magenta-side", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.magenta_side:
        return magenta_side(args.magenta_side, args.magenta_src, args.repeats)

    import tensorflow as tf

    from cpuinfo import cpu_line  # bench/cpuinfo.py, beside this script

    with tempfile.TemporaryDirectory() as workdir:
        tokens, z = make_inputs(args.batch)
        np.savez(os.path.join(workdir, "inputs.npz"), tokens=tokens, z=z)
        magenta = start_magenta(workdir, args.magenta_python, args.magenta_src, args.repeats)
        model = our_model(workdir, magenta is not None)
        one_hot = tf.constant(np.eye(VOCAB, dtype=np.float32)[tokens])
        encode = tf.function(lambda x: model.encode_inputs(x))
        decode = tf.function(lambda z: model.decode(z, temperature=0.0, seed=[0, 0]))
        rounds = {"ours": [], "magenta": []}
        try:
            for _ in range(args.rounds):
                if magenta is not None:
                    rounds["magenta"].append(magenta.time_round())
                rounds["ours"].append({**timed(lambda: [t.numpy() for t in encode(one_hot)], args.repeats, "encode"),
                                       **timed(lambda: decode(z).numpy(), args.repeats, "decode")})
        finally:
            if magenta is not None:
                magenta.close()

    print(f"{CONFIG} sizes, batch {args.batch}, {SEQ_LEN} steps; {args.rounds} alternating rounds, each the median "
          f"of {args.repeats} calls after a warm-up; the best round of each (CPU time: its process's, in that round)")
    print(cpu_line())
    ms = {side: min(results, key=lambda r: r["encode_ms"] + r["decode_ms"])
          for side, results in rounds.items() if results}
    for side, label in (("ours", "ours (Keras, tf.function)"), ("magenta", "Magenta (TF1 graph)")):
        if side in ms:
            m = ms[side]
            print(f"  {label:<26} encode {m['encode_ms']:7.1f} ms (CPU {m['encode_cpu_ms']:7.1f} ms)   greedy decode "
                  f"{m['decode_ms']:7.1f} ms (CPU {m['decode_cpu_ms']:7.1f} ms)")
    if magenta is None:
        return None
    theirs = magenta.results
    mu_ours = np.asarray(encode(one_hot)[0])
    same = np.mean(np.all(np.asarray(decode(z)) == np.asarray(theirs["tokens"]), axis=1))
    print(f"  same weights: max |mu ours - mu Magenta| {np.max(np.abs(mu_ours - np.asarray(theirs['mu']))):.2e}; "
          f"greedy decodes identical for {same:.0%} of the batch")
    per_round = [(m["encode_ms"] + m["decode_ms"]) / (o["encode_ms"] + o["decode_ms"])
                 for m, o in zip(rounds["magenta"], rounds["ours"])]
    ratio = (ms["magenta"]["encode_ms"] + ms["magenta"]["decode_ms"]) / (ms["ours"]["encode_ms"] +
                                                                          ms["ours"]["decode_ms"])
    cpu_ratio = ((ms["magenta"]["encode_cpu_ms"] + ms["magenta"]["decode_cpu_ms"])
                 / (ms["ours"]["encode_cpu_ms"] + ms["ours"]["decode_cpu_ms"]))
    print(f"  wall-time ratio per round: {', '.join(f'{r:.2f}x' for r in per_round)}; CPU-time ratio of the best "
          f"rounds {cpu_ratio:.2f}x")
    print(f"RESULT magenta_decode_speed {ratio:.2f}x (target >= 1.0x)")
    return ratio


if __name__ == "__main__":
    main()

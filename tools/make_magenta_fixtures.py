"""Build the Magenta MusicVAE/GrooVAE reference fixtures in tests/data/magenta/ with Magenta's own code.

    TF_USE_LEGACY_KERAS=1 /work/ref/venv/bin/python tools/make_magenta_fixtures.py /work/ref/magenta \
        [--out tests/data/magenta] [--only NAME ...]

The first argument is an unpacked magenta 2.1.4 wheel (`unzip magenta-2.1.4-py3-none-any.whl -d DIR`); it runs on
TF 2.21 with tf-keras, tensorflow-probability, tf-slim, dm-sonnet and tensorflow-datasets installed.  Nothing of
the package is patched.

For each config in FIXTURES (a Magenta config with its network shrunk to tiny sizes, converter unchanged):
  1. builds the inference graph exactly as `TrainedModel.__init__` does, fills every variable with seeded random
     values (larger than Magenta's initialisers, so that every weight, z included, moves the outputs) and saves a
     TF1 checkpoint `model.ckpt` (plus `global_step`, as Magenta's released checkpoints);
  2. writes the input MIDI files (small hand-written melodies / grooves with microtiming);
  3. loads the checkpoint with Magenta's `TrainedModel` and records, in `expected.json` / `expected.npz`:
       encode: every converter window of every input file (`data_converter.to_tensors` in 'infer' mode, in
               order) -> `TrainedModel.encode_tensors` mu and sigma;
       decode: fixed z vectors -> `TrainedModel.decode(z, length, temperature=1e-5)` notes (pitch, start, end,
               velocity, is_drum) and the decoder's raw outputs (`decode_to_tensors(return_full_results=True)`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TEMPERATURE = 1e-5
NUM_Z = 4
MIN_MARGIN = 2e-3

# name -> (Magenta config, shrunk hparams, input kind, output bias shift)
FIXTURES = {
    "cat-mel_2bar_small": ("cat-mel_2bar_small", dict(enc_rnn_size=[16], dec_rnn_size=[12, 12], z_size=8), "melody",
                           1.2),
    "cat-mel_2bar_big": ("cat-mel_2bar_big", dict(enc_rnn_size=[12], dec_rnn_size=[8, 8, 8], z_size=6), "melody", 1.6),
    "hierdec-mel_16bar": ("hierdec-mel_16bar", dict(enc_rnn_size=[10, 10], dec_rnn_size=[8, 8], z_size=6),
                          "long_melody", 1.4),
    "cat-drums_2bar_small": ("cat-drums_2bar_small", dict(enc_rnn_size=[16], dec_rnn_size=[12, 12], z_size=8),
                             "drums", 1.2),
    "groovae_2bar_humanize": ("groovae_2bar_humanize", dict(enc_rnn_size=[16], dec_rnn_size=[12, 12], z_size=8),
                              "groove", 0.5),
    "groovae_2bar_tap_fixed_velocity": ("groovae_2bar_tap_fixed_velocity",
                                        dict(enc_rnn_size=[12], dec_rnn_size=[10, 10], z_size=6), "groove", 0.5),
    "groovae_2bar_add_closed_hh": ("groovae_2bar_add_closed_hh",
                                   dict(enc_rnn_size=[12], dec_rnn_size=[10, 10], z_size=6), "groove", 0.5),
    "groovae_4bar": ("groovae_4bar", dict(enc_rnn_size=[12], dec_rnn_size=[10, 10], z_size=6), "long_groove", 0.5),
}


# -- input MIDI files -------------------------------------------------------------------------------------------------

def melody_midis(bars: int, seed: int, count: int = 2):
    """`count` PrettyMIDI melodies (program 0) of `bars` 4/4 bars at 120 qpm, 16th-note grid, some rests."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    midis = []
    for _ in range(count):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
        pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
        piano = pretty_midi.Instrument(program=0)
        step, pitch, total = 0, int(rng.integers(55, 72)), bars * 16
        while step < total:
            length = int(rng.choice([1, 2, 2, 4, 4, 8]))
            if rng.random() < 0.15:  # a rest
                step += length
                continue
            pitch = int(np.clip(pitch + rng.choice([-4, -2, -1, 0, 1, 2, 3, 5]), 48, 84))
            end = min(step + length, total)
            piano.notes.append(pretty_midi.Note(velocity=int(rng.integers(60, 110)), pitch=pitch,
                                                start=step * 0.125, end=end * 0.125))
            step += length
        pm.instruments.append(piano)
        midis.append(pm)
    return midis


def drum_midis(bars: int, seed: int, count: int = 2):
    """`count` drum grooves (kick/snare/hats/toms/cymbals, General MIDI and Roland pitches) with velocities and
    microtiming off the 16th grid."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    midis = []
    for _ in range(count):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
        pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        for step in range(bars * 16):
            hits = []
            if step % 8 == 0 or rng.random() < 0.1:
                hits.append(36)
            if step % 8 == 4 or rng.random() < 0.08:
                hits.append(38)
            if step % 2 == 0:
                hits.append(int(rng.choice([42, 42, 44, 46])))
            if rng.random() < 0.06:
                hits.append(int(rng.choice([43, 45, 48, 50, 49, 51, 22, 26])))
            for pitch in hits:
                start = max(0.0, step * 0.125 + rng.normal(0, 0.012))
                kit.notes.append(pretty_midi.Note(velocity=int(rng.integers(30, 127)), pitch=pitch, start=start,
                                                  end=start + 0.1))
        pm.instruments.append(kit)
        midis.append(pm)
    return midis


# -- Magenta ------------------------------------------------------------------------------------------------------------

def shrunk_config(configs, name, hparams):
    config = copy.deepcopy(configs.CONFIG_MAP[name])
    for key, value in hparams.items():
        setattr(config.hparams, key, value)
    return config


def output_bias_shift(output_depth, amount):
    """A shift of the output bias so that random decoders write varied music rather than a note-on (or a hit)
    at every step: melody towards hold / note-off, drums towards silence, GrooVAE towards fewer hits."""
    shift = np.zeros(output_depth, np.float32)
    if output_depth == 90:
        shift[:2] = amount
    elif output_depth == 512:
        shift[0] = amount
    else:
        shift[:output_depth // 3] = -amount
    return shift


def write_random_checkpoint(config, batch_size, prefix, seed, bias_shift):
    """Build TrainedModel's graph, give every variable seeded random values, save a TF1 checkpoint."""
    import tensorflow.compat.v1 as tf

    rng = np.random.default_rng(seed)
    config = copy.deepcopy(config)
    config.data_converter.set_mode("infer")
    config.hparams.batch_size = batch_size
    hparams, converter = config.hparams, config.data_converter
    with tf.Graph().as_default():
        model = config.model
        model.build(hparams, converter.output_depth, is_training=False)
        z = tf.placeholder(tf.float32, shape=[batch_size, hparams.z_size])
        model.sample(batch_size, max_length=tf.placeholder(tf.int32, shape=()), z=z,
                     temperature=tf.placeholder(tf.float32, shape=()))
        model.encode(tf.placeholder(tf.float32, shape=[batch_size, None, converter.input_depth]),
                     tf.placeholder(tf.int32, shape=[batch_size] + list(converter.length_shape)),
                     tf.placeholder(tf.float32, shape=[batch_size, None, converter.control_depth]))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            shapes = {}
            for variable in tf.global_variables():
                name, shape = variable.op.name, variable.shape.as_list()
                shapes[name] = shape
                if name == "global_step":
                    variable.load(12345, session)
                    continue
                scale = 1.5 / np.sqrt(shape[0]) if len(shape) == 2 else 0.5
                value = rng.normal(0.0, scale, shape).astype(np.float32)
                if name.endswith("output_projection/bias"):
                    value += output_bias_shift(converter.output_depth, bias_shift)
                variable.load(value, session)
            tf.train.Saver().save(session, prefix)
    return shapes


def decoder_outputs(trained, z, length):
    """The decoder's raw outputs (logits / pre-activations) float32 [n, T, D] of a greedy decode of z."""
    batch_size = trained._config.hparams.batch_size
    padded = np.pad(z, [(0, -len(z) % batch_size), (0, 0)])
    outputs = []
    for i in range(0, len(padded), batch_size):
        outputs.append(trained._sess.run(trained._decoder_results.rnn_output, {
            trained._temperature: TEMPERATURE, trained._z_input: padded[i:i + batch_size],
            trained._max_length: length}))
    return np.concatenate(outputs)[:len(z)].astype(np.float32)


def decision_margins(rnn_output, kind):
    """float [n, T, D] decoder outputs -> float [n]: the smallest top-2 logit gap (categorical) or |hit logit|
    (GrooVAE) over all steps."""
    if kind == "groove":
        return np.min(np.abs(np.split(rnn_output, 3, axis=-1)[0]), axis=(1, 2))
    top2 = np.sort(rnn_output, axis=-1)[..., -2:]
    return np.min(top2[..., 1] - top2[..., 0], axis=1)


def notes_of(ns):
    return [{"pitch": n.pitch, "start": round(n.start_time, 6), "end": round(n.end_time, 6), "velocity": n.velocity,
             "is_drum": bool(n.is_drum)} for n in sorted(ns.notes, key=lambda n: (n.start_time, n.pitch))]


def make_fixture(name, out_dir, magenta_config, hparams, kind, bias_shift, seed):
    import note_seq
    from magenta.models.music_vae import TrainedModel, configs

    os.makedirs(out_dir, exist_ok=True)
    config = shrunk_config(configs, magenta_config, hparams)
    batch_size = 3
    prefix = os.path.join(out_dir, "model.ckpt")
    shapes = write_random_checkpoint(config, batch_size, prefix, seed, bias_shift)
    for leftover in ("checkpoint", "model.ckpt.meta"):
        if os.path.exists(os.path.join(out_dir, leftover)):
            os.remove(os.path.join(out_dir, leftover))

    midis = {"melody": lambda: melody_midis(3, seed), "long_melody": lambda: melody_midis(17, seed),
             "drums": lambda: drum_midis(3, seed), "groove": lambda: drum_midis(3, seed),
             "long_groove": lambda: drum_midis(5, seed)}[kind]()
    trained = TrainedModel(config, batch_size=batch_size, checkpoint_dir_or_path=prefix)
    converter = trained._config.data_converter  # in 'infer' mode, as TrainedModel uses it

    files, window_inputs, mus, sigmas = [], [], [], []
    for i, pm in enumerate(midis):
        path = os.path.join(out_dir, f"input-{i}.mid")
        pm.write(path)
        ns = note_seq.midi_file_to_note_sequence(path)
        tensors = converter.to_tensors(ns)
        if not tensors.inputs:
            raise RuntimeError(f"{name}: {path} gives no windows")
        _, mu, sigma = trained.encode_tensors(list(tensors.inputs), list(tensors.lengths),
                                              list(tensors.controls))
        files.append({"midi": os.path.basename(path), "windows": len(tensors.inputs)})
        window_inputs.extend(np.asarray(t, np.float32) for t in tensors.inputs)
        mus.append(mu)
        sigmas.append(sigma)

    length = config.hparams.max_seq_len
    # z: the first window's posterior mean (a reconstruction) and random draws, kept only when no greedy choice is
    # nearly tied (top-2 logit gap / |hit logit| >= MIN_MARGIN), so that float rounding cannot flip a decision.
    candidates = np.random.default_rng(seed + 1).normal(size=(24, config.hparams.z_size)).astype(np.float32) * 1.5
    candidates = np.concatenate([np.concatenate(mus)[:1], candidates])
    margins = decision_margins(decoder_outputs(trained, candidates, length), kind)
    z = candidates[margins >= MIN_MARGIN][:NUM_Z]
    if len(z) < NUM_Z:
        raise RuntimeError(f"{name}: only {len(z)} z with decision margins >= {MIN_MARGIN}")
    decoded = trained.decode(z, length=length, temperature=TEMPERATURE)
    rnn_output = decoder_outputs(trained, z, length)
    samples = np.asarray(trained.decode_to_tensors(z, length=length, temperature=TEMPERATURE), np.float32)

    expected = {
        "name": name, "magenta_config": magenta_config, "hparams": hparams,
        "max_seq_len": length, "temperature": TEMPERATURE, "checkpoint": "model.ckpt",
        "variables": shapes, "inputs": files,
        "decode": [{"notes": notes_of(ns)} for ns in decoded],
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    arrays = {"window_inputs": np.stack(window_inputs), "mu": np.concatenate(mus), "sigma": np.concatenate(sigmas),
              "z": z, "samples": samples}
    arrays["rnn_output"] = rnn_output.astype(np.float16)  # (half precision keeps the fixture small)
    np.savez_compressed(os.path.join(out_dir, "expected.npz"), **arrays)
    return expected, arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("magenta", help="folder holding the unpacked magenta package (magenta/models/music_vae/...)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "magenta"))
    parser.add_argument("--only", nargs="*", help="fixture names (default: all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.magenta))
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    tf.logging.set_verbosity(tf.logging.ERROR)
    for index, (name, (magenta_config, hparams, kind, bias_shift)) in enumerate(FIXTURES.items()):
        if args.only and name not in args.only:
            continue
        out_dir = os.path.join(args.out, name)
        expected, arrays = make_fixture(name, out_dir, magenta_config, hparams, kind, bias_shift, seed=100 + index)
        size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
        margin = np.min(decision_margins(arrays["rnn_output"].astype(np.float32), kind))
        notes = [len(d["notes"]) for d in expected["decode"]]
        print(f"{name}: {len(arrays['mu'])} windows, decoded notes {notes}, decision margin >= {margin:.1e}, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

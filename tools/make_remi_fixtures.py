"""Fixtures from the Pop Music Transformer's own code (github:YatingMusic/remi), for tests/data/remi/.

Run with the reference venv (TF 2.21 + tf-keras, miditoolkit 0.1.16), never with the package's:

    TF_USE_LEGACY_KERAS=1 /work/ref/venv/bin/python tools/make_remi_fixtures.py /path/to/remi [--out tests/data/remi]

What it does, with the original's files imported unchanged (the shims below only restore names that newer
TensorFlow/NumPy removed; `miditoolkit==0.1.16` and matplotlib must be installed in that venv):
1. writes two small MIDI prompts with miditoolkit and records the events its `utils.py` extracts from them, with
   and without chords (`events.json`);
2. for each flavour (`REMI-tempo-checkpoint`, `REMI-tempo-chord-checkpoint`: the original picks chords by the
   folder name) writes a shuffled `dictionary.pkl` (event2word, word2event), builds its `model.py` graph at a tiny
   size (2 layers, d 32, 2 heads, d_inner 48, memory 16) with random weights and saves the TF1 checkpoint `model`
   (trainable variables, Adam slots, global step, as the released ones);
3. reloads that checkpoint in a fresh graph and runs its `PopMusicTransformer.generate` greedily (top-k 1) on the
   first prompt, recording every `sess.run`'s logits and the words chosen (`generation_<flavour>.npz` / `.json`),
   until TARGET_BARS bar lines or MAX_STEPS tokens, and once more until its first bar line (`one_bar`).  Greedy
   decoding of random weights tends to repeat one token, so seeds are tried until a run is varied; the output bias
   of Bar_None is then raised just enough that one bar line appears mid-run (the tokens before it stay the same).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

np.int = int  # removed in NumPy 1.24; utils.py and miditoolkit 0.1.x still use it
import tensorflow as tf  # noqa: E402

tf.matrix_band_part = tf.linalg.band_part  # TF1 name used by modules.py (same_length branch)
tf.compat.v1.disable_v2_behavior()

TINY = dict(n_layer=2, d_model=32, d_embed=32, n_head=2, d_ff=48, mem_len=16, x_len=16)
PITCHES = range(21, 109)  # Note On events in the fixture dictionaries (a real dictionary also lacks some)
QUALITIES = ("maj", "min", "dim", "aug", "dom")
ROOTS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
TARGET_BARS = 3  # their generate stops after this many generated Bar_None
MAX_STEPS = 40  # ... or, here, after this many tokens
SEEDS = 20
EMBEDDING_STD, KERNEL_GAIN = 0.1, 2.0


def event_names(chords: bool) -> list[str]:
    names = ["Bar_None"] + [f"Position_{i}/16" for i in range(1, 17)]
    names += [f"Note Velocity_{v}" for v in range(32)] + [f"Note On_{p}" for p in PITCHES]
    names += [f"Note Duration_{d}" for d in range(64)]
    names += [f"Tempo Class_{c}" for c in ("slow", "mid", "fast")] + [f"Tempo Value_{v}" for v in range(60)]
    if chords:
        names += [f"Chord_{r}:{q}" for r in ROOTS for q in QUALITIES] + ["Chord_N:N"]
    return names


def write_prompts(folder: str) -> list[str]:
    """Two MIDI files exercising quantisation, tempo changes on and off the beat, an empty bar, long notes."""
    import miditoolkit

    paths = []
    # prompt 0: 2 bars, C major then G7 arpeggio-ish, unquantized onsets, a tempo change on beat 5.
    midi = miditoolkit.midi.parser.MidiFile()
    midi.ticks_per_beat = 480
    piano = miditoolkit.midi.containers.Instrument(0, is_drum=False, name="piano")
    notes = [(60, 0, 470, 80), (64, 5, 460, 70), (67, 118, 600, 90), (72, 490, 950, 100), (48, 0, 1900, 60),
             (55, 960, 1400, 64), (62, 1445, 1700, 110), (43, 1920, 3800, 55), (59, 1925, 2300, 75),
             (65, 2410, 2650, 85), (67, 2880, 3350, 95), (71, 3365, 3700, 40), (74, 3600, 3840, 127)]
    piano.notes = [miditoolkit.midi.containers.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in notes]
    midi.instruments.append(piano)
    midi.tempo_changes = [miditoolkit.midi.containers.TempoChange(120, 0),
                          miditoolkit.midi.containers.TempoChange(96, 1920)]
    paths.append(os.path.join(folder, "prompt.mid"))
    midi.dump(paths[-1])
    # prompt 1: empty second bar, a tempo change off the beat (ignored by the original), fast and slow tempi,
    # A minor and a diminished chord, a note longer than 64 32nds, a velocity in the lowest bin.  (No two notes of
    # one pitch overlap: miditoolkit 0.1 ends all of them at the first note-off, our MIDI reader pairs them in order.)
    midi = miditoolkit.midi.parser.MidiFile()
    midi.ticks_per_beat = 480
    piano = miditoolkit.midi.containers.Instrument(0, is_drum=False, name="piano")
    notes = [(57, 0, 900, 70), (60, 0, 900, 72), (64, 0, 900, 74), (45, 0, 5000, 3),
             (59, 3840, 4300, 90), (62, 3850, 4300, 88), (65, 3900, 4300, 86), (68, 4330, 4800, 100),
             (69, 5280, 5500, 30), (72, 5290, 5770, 64), (76, 5300, 6000, 96), (79, 5300, 5400, 20)]
    piano.notes = [miditoolkit.midi.containers.Note(velocity=v, pitch=p, start=s, end=e) for p, s, e, v in notes]
    midi.instruments.append(piano)
    midi.tempo_changes = [miditoolkit.midi.containers.TempoChange(170, 0),
                          miditoolkit.midi.containers.TempoChange(85, 1000),
                          miditoolkit.midi.containers.TempoChange(63, 2400),
                          miditoolkit.midi.containers.TempoChange(93, 3840)]
    paths.append(os.path.join(folder, "prompt_tempo.mid"))
    midi.dump(paths[-1])
    return paths


def original_events(utils, path: str, chords: bool) -> list[str]:
    """The events `model.py`'s extract_events builds (it reads chords when 'chord' is in the checkpoint path)."""
    note_items, tempo_items = utils.read_items(path)
    note_items = utils.quantize_items(note_items)
    max_time = note_items[-1].end
    items = (utils.extract_chords(note_items) if chords else []) + tempo_items + note_items
    groups = utils.group_items(items, max_time)
    return [f"{e.name}_{e.value}" for e in utils.item2event(groups)]


def randomize(sess, rng, bar_word: int, bar_boost: float) -> None:
    """Give every trainable variable values with some spread, so that each one changes the logits; add
    `bar_boost` to the output bias of Bar_None so that greedy decoding writes bar lines (random weights rarely
    pick it)."""
    for variable in tf.compat.v1.trainable_variables():
        shape = variable.shape.as_list()
        name = variable.op.name
        if name.endswith("gamma"):
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(("beta", "bias")) or "r_w_bias" in name or "r_r_bias" in name:
            value = 0.3 * rng.standard_normal(shape)
        elif name.endswith("lookup_table"):  # small: else the tied softmax mostly repeats the input token
            value = EMBEDDING_STD * rng.standard_normal(shape)
        else:  # Dense kernels [fan_in, fan_out]
            value = KERNEL_GAIN * rng.standard_normal(shape) / np.sqrt(shape[0])
        if name.endswith("normal_softmax/bias"):
            value[bar_word] += bar_boost
        variable.load(value.astype(np.float32), sess)


def build(model, checkpoint_dir: str, fresh_seed: int | None = None, bar_boost: float = 0.0):
    """Their PopMusicTransformer at the tiny size: `__init__` minus its hard-coded sizes, then its `load_model`.
    With `fresh_seed`, the restore is replaced by random values (the checkpoint does not exist yet)."""
    obj = model.PopMusicTransformer.__new__(model.PopMusicTransformer)
    obj.dictionary_path = f"{checkpoint_dir}/dictionary.pkl"
    with open(obj.dictionary_path, "rb") as f:
        obj.event2word, obj.word2event = pickle.load(f)  # our own file, written just before
    obj.x_len, obj.mem_len, obj.n_layer = TINY["x_len"], TINY["mem_len"], TINY["n_layer"]
    obj.d_embed, obj.d_model, obj.dropout, obj.n_head = TINY["d_embed"], TINY["d_model"], 0.1, TINY["n_head"]
    obj.d_head = obj.d_model // obj.n_head
    obj.d_ff = TINY["d_ff"]
    obj.n_token = len(obj.event2word)
    obj.learning_rate = 0.0002
    obj.is_training, obj.batch_size = False, 1
    obj.checkpoint_path = f"{checkpoint_dir}/model"
    saver_class = tf.compat.v1.train.Saver
    if fresh_seed is not None:
        class FreshSaver(saver_class):
            def restore(self, sess, save_path):
                sess.run(tf.compat.v1.global_variables_initializer())
                randomize(sess, np.random.default_rng(fresh_seed), obj.event2word["Bar_None"], bar_boost)

        tf.compat.v1.train.Saver = FreshSaver
    try:
        obj.load_model()
    finally:
        tf.compat.v1.train.Saver = saver_class
    return obj


class RecordingSession:
    """Wraps their session: keeps the logits of every run (first: the whole prompt; then one row per token)."""

    def __init__(self, sess):
        self.sess, self.logits = sess, []

    def run(self, fetches, feed_dict=None):
        out = self.sess.run(fetches, feed_dict=feed_dict)
        self.logits.append(np.array(out[0][:, 0, :]))  # [qlen, V]
        return out

    def close(self):
        self.sess.close()


class EnoughTokens(Exception):
    """Raised from the sampler after MAX_STEPS tokens: their loop only ends on bar lines."""


def run_generation(model, checkpoint_dir: str, prompt: str, output: str, target_bars: int = TARGET_BARS):
    """Reload the saved checkpoint in a fresh graph and run their `generate` greedily (top-k 1) on `prompt`, for
    `target_bars` bar lines or MAX_STEPS tokens -> (logits of each run, prompt words, chosen words, ended_by)."""
    tf.compat.v1.reset_default_graph()
    obj = build(model, checkpoint_dir)
    obj.sess = RecordingSession(obj.sess)
    chosen = []
    sampler = obj.temperature_sampling

    def greedy(logits, temperature, topk):
        chosen.append(int(sampler(logits, temperature, topk)))
        if len(chosen) >= MAX_STEPS:
            raise EnoughTokens
        return chosen[-1]

    obj.temperature_sampling = greedy
    ended_by = "bars"
    try:
        obj.generate(n_target_bar=target_bars, temperature=1.0, topk=1, output_path=output, prompt=prompt)
    except EnoughTokens:
        ended_by = "max_tokens"
    finally:
        obj.sess.close()
    prompt_words = [obj.event2word[e] for e in original_events_for(obj, prompt)] + [obj.event2word["Bar_None"]]
    return obj.sess.logits, prompt_words, chosen, ended_by


def generate_with(model, checkpoint_dir: str, prompt: str, seed: int, bar_boost: float):
    """Random weights (seed, Bar_None output bias + bar_boost) saved as the checkpoint, then `run_generation`."""
    tf.compat.v1.reset_default_graph()
    obj = build(model, checkpoint_dir, seed, bar_boost)
    obj.saver.save(obj.sess, obj.checkpoint_path, write_meta_graph=False)
    obj.sess.close()
    with tempfile.TemporaryDirectory() as tmp:
        run = run_generation(model, checkpoint_dir, prompt, os.path.join(tmp, "out.mid"))
    names = {w: e for e, w in obj.event2word.items()}
    print(f"seed {seed}, Bar_None bias +{bar_boost:.3f}: {run[3]}: {[names[w] for w in run[2]]}")
    return run


def bar_bias_boost(logits, bar: int, first: int = 6):
    """An output-bias boost for Bar_None that makes it the greedy choice first at a step >= `first` and at no step
    before (the latest step whose margin is a record low), or None.  Only that bias changes, so the tokens before
    that step stay the same."""
    rows = np.stack([logits[0][-1]] + [row[-1] for row in logits[1:]])
    gaps = np.delete(rows, bar, axis=1).max(axis=1) - rows[:, bar]
    lows = [t for t in range(first, len(gaps)) if gaps[t] < gaps[:t].min() - 0.05]
    return float(gaps[lows[-1]] + 0.02) if lows else None


def original_events_for(obj, prompt):
    return [f"{e.name}_{e.value}" for e in obj.extract_events(prompt)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("remi_repo", help="a checkout of github:YatingMusic/remi")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "remi"))
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.remi_repo))
    import model  # noqa: E402  (their model.py; imports their modules.py and utils.py)
    import utils  # noqa: E402

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    prompts = write_prompts(out)
    events = {os.path.basename(p): {"tempo": original_events(utils, p, False),
                                    "tempo_chord": original_events(utils, p, True)} for p in prompts}
    with open(os.path.join(out, "events.json"), "w") as f:
        json.dump(events, f, indent=1)

    for flavour, folder, chords in (("tempo", "REMI-tempo-checkpoint", False),
                                    ("tempo_chord", "REMI-tempo-chord-checkpoint", True)):
        checkpoint_dir = os.path.join(out, folder)
        os.makedirs(checkpoint_dir, exist_ok=True)
        names = event_names(chords)
        rng = np.random.default_rng(17 + chords)
        order = rng.permutation(len(names))
        event2word = {names[i]: int(w) for w, i in enumerate(order)}
        word2event = {w: e for e, w in event2word.items()}
        with open(os.path.join(checkpoint_dir, "dictionary.pkl"), "wb") as f:
            pickle.dump((event2word, word2event), f, protocol=3)
        bar = event2word["Bar_None"]
        for seed in range(SEEDS):
            run = generate_with(model, checkpoint_dir, prompts[0], seed, 0.0)
            if len(set(run[2])) < 5:  # greedy decoding of random weights often repeats one token
                continue
            bar_boost = bar_bias_boost(run[0], bar)
            if bar_boost is None:
                continue
            run = generate_with(model, checkpoint_dir, prompts[0], seed, bar_boost)
            if bar in run[2][:-1]:  # a varied run that writes a bar line before its end
                break
        else:
            raise SystemExit(f"{flavour}: no varied greedy run with a bar line among the weights tried")
        logits, prompt_words, chosen, ended_by = run
        with tempfile.TemporaryDirectory() as tmp:  # the same weights, their loop ended by its bar count
            one_bar = run_generation(model, checkpoint_dir, prompts[0], os.path.join(tmp, "out.mid"), 1)
        if one_bar[3] != "bars":
            raise SystemExit(f"{flavour}: the one-bar run did not end on a bar line")
        os.remove(os.path.join(checkpoint_dir, "checkpoint"))  # bookkeeping file naming the absolute path
        np.savez_compressed(os.path.join(out, f"generation_{flavour}.npz"),
                            prompt_logits=logits[0].astype(np.float32),
                            step_logits=np.stack([row[-1] for row in logits[1:]]).astype(np.float32),
                            prompt_words=np.array(prompt_words), generated_words=np.array(chosen))
        with open(os.path.join(out, f"generation_{flavour}.json"), "w") as f:
            json.dump({"checkpoint": folder, "weights_seed": seed, "bar_bias_boost": bar_boost, "sizes": TINY,
                       "target_bars": TARGET_BARS, "max_tokens": MAX_STEPS, "ended_by": ended_by,
                       "prompt": os.path.basename(prompts[0]),
                       "prompt_events": [word2event[w] for w in prompt_words],
                       "generated_events": [word2event[w] for w in chosen],
                       "one_bar": {"target_bars": 1, "ended_by": one_bar[3],
                                   "generated_events": [word2event[w] for w in one_bar[2]]},
                       "variables": {name: shape for name, shape in tf.train.list_variables(
                           os.path.join(checkpoint_dir, "model"))}}, f, indent=1)
        print(f"{flavour}: seed {seed}, prompt {len(prompt_words)} words, generated {len(chosen)}")


if __name__ == "__main__":
    main()

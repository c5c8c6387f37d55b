"""Sample, interpolate and reconstruct with a trained run, writing MIDI + WAV + piano-roll PNG per result.

Thin on purpose: the CLI and the studio call these; models do the work in-graph, converters turn tensors back
into music, `music.render` writes the files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from musicgen_tf.errors import MusicgenError, SkipInput
from musicgen_tf.models.builders import outputs_to_examples
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.train.trainer import load_trained_model


MONOPHONIC = ("melody", "melody_timeseries")  # representations whose results also get sheet music


def render_pieces(pieces, out_dir: str, prefix: str, representation: str = "") -> list[dict]:
    """Write `<prefix>-NN.{mid,wav,png}` (+ `.musicxml` for monophonic representations) per piece."""
    from musicgen_tf.music import render

    from tqdm import tqdm

    out = Path(os.path.expanduser(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    progress = tqdm(list(enumerate(pieces)), desc=f"writing {prefix}s", unit="piece", leave=False,
                    disable=len(pieces) < 4)
    return [render.render_all(piece, out, f"{prefix}-{index:02d}", musicxml=representation in MONOPHONIC)
            for index, piece in progress]


def generate(run_dir: str, out_dir: str, num: int = 8, temperature: float = 1.0, seed: int | None = None,
             checkpoint: str | None = None, label: str | None = None) -> list[dict]:
    """Sample `num` pieces from the prior; returns one {"midi", "wav", "png"} dict of paths per piece."""
    run = load_trained_model(run_dir, checkpoint)
    seed_pair = None if seed is None else [seed, 0]
    outputs = run.model.sample(num, temperature=temperature, seed=seed_pair, labels=run.label_ids(label, num))
    pieces = [run.converter.render_output(example) for example in outputs_to_examples(outputs)]
    return render_pieces(pieces, out_dir, "sample", run.preset.representation)


def continue_melody(run_dir: str, prompt: str, out_dir: str, steps: int = 64, temperature: float = 1.0,
                    seed: int | None = None, checkpoint: str | None = None) -> list[dict]:
    """Continue a typed melody ("60 _ _ 62 _ 64", seed 002's symbols) with a model that can (the melody β-VAE)."""
    run = load_trained_model(run_dir, checkpoint)
    if not hasattr(run.model, "continue_melody") or not hasattr(run.converter, "encode_symbols"):
        raise MusicgenError(f"--prompt needs a melody model that continues melodies (beta_vae_melody); "
                            f"{run.preset.name} cannot")
    tokens = run.model.continue_melody(run.converter.encode_symbols(prompt), steps, temperature=temperature,
                                       seed=None if seed is None else [seed, 0])
    piece = run.converter.from_example({"tokens": np.asarray(tokens)})
    print(f"  {run.converter.decode_symbols(tokens)}")
    return render_pieces([piece], out_dir, "continuation", run.preset.representation)


def _first_example(converter, midi_path: str) -> dict[str, np.ndarray]:
    """The first training window the converter makes of a MIDI file (what the model can encode)."""
    ns = midi_file_to_note_sequence(midi_path)
    try:
        examples = converter.to_examples(ns)
    except SkipInput as error:
        raise MusicgenError(f"{midi_path}: the {converter.name} representation cannot use this file: "
                            f"{error.reason}") from None
    return examples[0]


def _batch(examples: list[dict]) -> dict:
    return {name: np.stack([example[name] for example in examples]) for name in examples[0]}


def _groove_z_mean(run, midi_path: str):
    """GrooVAE: z_mean float32 [1, latent] of a MIDI file's first window as Magenta's inference mode encodes it:
    the converter's encoder input (read with the inference drum map, corrupted as the config says: humanize,
    tap, added instrument), not the groove itself."""
    from musicgen_tf.latent import encoder_windows

    windows = encoder_windows(run.converter, midi_file_to_note_sequence(midi_path))
    if not windows:
        raise MusicgenError(f"{midi_path}: the groovae representation finds no window in this file")
    return run.model.encode_inputs(np.asarray(windows[:1], np.float32))[0]


def interpolate(run_dir: str, midi_a: str, midi_b: str, out_dir: str, steps: int = 7,
                checkpoint: str | None = None) -> list[dict]:
    """Decode `steps` points on the latent path from A to B (endpoints included)."""
    run = load_trained_model(run_dir, checkpoint)
    if run.converter.name == "groovae":
        from musicgen_tf.models.music_vae import slerp

        z_a, z_b = (_groove_z_mean(run, path)[0] for path in (midi_a, midi_b))
        outputs = run.model.decode(slerp(z_a, z_b, np.linspace(0.0, 1.0, steps)), temperature=0.0, seed=[0, 0])
    else:
        a, b = (_batch([_first_example(run.converter, path)]) for path in (midi_a, midi_b))
        outputs = run.model.interpolate(a, b, steps)
    pieces = [run.converter.render_output(example) for example in outputs_to_examples(outputs)]
    return render_pieces(pieces, out_dir, "interpolation", run.preset.representation)


def reconstruct(run_dir: str, midi: str, out_dir: str, temperature: float = 0.0,
                checkpoint: str | None = None) -> list[dict]:
    """Encode the first window of `midi` and decode it back (temperature 0 = most likely decoding)."""
    run = load_trained_model(run_dir, checkpoint)
    example = _batch([_first_example(run.converter, midi)])
    z_mean = _groove_z_mean(run, midi) if run.converter.name == "groovae" else run.model.encode(example)[0]
    outputs = run.model.decode(z_mean, temperature=temperature)
    pieces = [run.converter.render_output(example) for example in outputs_to_examples(outputs)]
    original = run.converter.from_example({k: v[0] for k, v in example.items()})
    return render_pieces([original] + pieces, out_dir, "reconstruction", run.preset.representation)

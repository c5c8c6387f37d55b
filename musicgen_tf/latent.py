"""`musicgen encode` / `musicgen decode`: MusicVAE latent vectors in and out of a run directory, as Magenta's
`TrainedModel.encode_tensors` / `TrainedModel.decode` do.

    encode:  MIDI -> every converter window (`to_tensors` in Magenta's inference mode, in order, none dropped)
             -> mu, sigma float32 [latent_dim] per window
    decode:  {"z": [[...], ...]} -> one MIDI file per vector (temperature 0: argmax / hits > 0.5)

GrooVAE runs in Magenta's inference mode: windows are read, and decodes rendered, with the reduced drum map.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from musicgen_tf.errors import MusicgenError
from musicgen_tf.models.builders import outputs_to_examples
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.train.trainer import load_trained_model


def _music_vae(run):
    if run.preset.family != "music_vae" or not hasattr(run.converter, "to_tensors"):
        raise MusicgenError(f"encode/decode need a MusicVAE or GrooVAE run; {run.preset.name} is a "
                            f"{run.preset.family} model")
    return run


def encoder_windows(converter, note_sequence) -> list[np.ndarray]:
    """The encoder inputs of every window of a NoteSequence, as Magenta's `to_tensors` in inference mode returns
    them (bool or float32 [T, F] each) and in its order, but without its cap of `max_tensors_per_notesequence`
    windows (Magenta's `TrainedModel` keeps the first 5)."""
    params = converter.params()
    if params.get("max_tensors_per_notesequence") is not None:
        converter = type(converter)(**{**params, "max_tensors_per_notesequence": None})
    kwargs = {"inference": True} if converter.name == "groovae" else {}
    return [np.asarray(t) for t in converter.to_tensors(note_sequence, **kwargs).inputs]


def encode_windows(model, inputs: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """float32 [W, T, F] encoder inputs -> (mu, sigma), float32 [W, latent_dim], in batches."""
    mus, sigmas = [], []
    for start in range(0, len(inputs), batch_size):
        mu, sigma = model.encode_inputs(inputs[start:start + batch_size])
        mus.append(np.asarray(mu))
        sigmas.append(np.asarray(sigma))
    return np.concatenate(mus), np.concatenate(sigmas)


def encode_file(run_dir: str, midi: str, checkpoint: str | None = None) -> dict:
    """A MIDI file -> {"windows": [{"input": nested lists [T, F], "mu": [latent], "sigma": [latent]}, ...]}."""
    run = _music_vae(load_trained_model(run_dir, checkpoint))
    inputs = encoder_windows(run.converter, midi_file_to_note_sequence(midi))
    if not inputs:
        raise MusicgenError(f"{midi}: the {run.converter.name} converter finds no window to encode in this file")
    mu, sigma = encode_windows(run.model, np.stack(inputs).astype(np.float32))
    return {"windows": [{"input": window.tolist(), "mu": m.tolist(), "sigma": s.tolist()}
                        for window, m, s in zip(inputs, mu, sigma)]}


def read_z(path: str, latent_dim: int) -> np.ndarray:
    """`{"z": [[...], ...]}` -> float32 [N, latent_dim], or a clear error naming the file."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            z = np.asarray(json.load(f)["z"], np.float32)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MusicgenError(f"{path}: expected JSON {{\"z\": [[...], ...]}} ({type(error).__name__}: {error})") \
            from None
    if z.ndim != 2 or z.shape[1] != latent_dim or not len(z):
        raise MusicgenError(f"{path}: z has shape {list(z.shape)}, the model needs [N, {latent_dim}]")
    return z


def decode_pieces(run, z: np.ndarray, temperature: float = 0.0, seed: int | None = None) -> list:
    """z float32 [N, latent] -> N NoteSequences, rendered as Magenta's inference mode (GrooVAE: reduced map)."""
    outputs = run.model.decode(z, temperature=temperature, seed=None if seed is None else [seed, 0])
    return [run.converter.render_output(example) for example in outputs_to_examples(outputs)]


def decode_file(run_dir: str, z_path: str, out_dir: str, temperature: float = 0.0, seed: int | None = None,
                checkpoint: str | None = None) -> list[Path]:
    """Write `decode-NN.mid` per vector of `z_path` into `out_dir`; returns the paths in order."""
    import note_seq

    run = _music_vae(load_trained_model(run_dir, checkpoint))
    pieces = decode_pieces(run, read_z(z_path, run.model.latent_dim), temperature, seed)
    out = Path(os.path.expanduser(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, piece in enumerate(pieces):
        path = out / f"decode-{index:02d}.mid"
        note_seq.sequence_proto_to_midi_file(piece, str(path))
        paths.append(path)
    return paths


def run_encode_command(args) -> dict:
    """`musicgen encode`: JSON on stdout with --json, else one line of mu and one of sigma per window."""
    result = encode_file(args.run_dir, args.midi, args.checkpoint)
    if args.json:
        print(json.dumps(result))
        return result
    print(f"{args.midi}: {len(result['windows'])} window(s)")
    for index, window in enumerate(result["windows"]):
        for name in ("mu", "sigma"):
            values = np.array2string(np.asarray(window[name]), precision=4, max_line_width=10 ** 6, threshold=10 ** 6)
            print(f"  window {index} {name:<5} {values}")
    return result


def run_decode_command(args) -> list[Path]:
    paths = decode_file(args.run_dir, args.z, args.out, temperature=args.temperature, seed=args.seed,
                        checkpoint=args.checkpoint)
    print(f"{len(paths)} MIDI file(s) in {args.out}: " + ", ".join(p.name for p in paths))
    return paths

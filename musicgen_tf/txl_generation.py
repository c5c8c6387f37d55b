"""REMI Transformer-XL generation (Task 1: from scratch; Task 2: continue a MIDI prompt) and `evaluate` (metrics).

Thin on purpose: the model samples in-graph with cached memories, the REMI converter turns ids back into music,
`music.render` writes MIDI + WAV + piano-roll PNG, `music.metrics` scores folders of MIDI.
"""

from __future__ import annotations

import json
import math
import os


from musicgen_tf.errors import MusicgenError, SkipInput
from musicgen_tf.generation import render_pieces
from musicgen_tf.train.trainer import load_trained_model

TOKENS_PER_BAR_CAP = 256  # default max_tokens = bars * this (+ the prompt)


def _txl_run(run_dir: str, checkpoint: str | None):
    run = load_trained_model(run_dir, checkpoint)
    if not hasattr(run.model, "continue_tokens") or run.preset.representation != "remi":
        raise MusicgenError(f"{run.preset.name} is not a REMI Transformer-XL run; use `musicgen generate` without "
                            "--bars/--prompt-bars for it")
    return run


def _seed(seed: int | None, index: int):
    return None if seed is None else [int(seed), int(index)]


def generate_remi(run_dir: str, out_dir: str, num: int = 1, bars: int = 32, temperature: float = 1.2,
                  top_k: int = 5, seed: int | None = None, max_tokens: int | None = None,
                  checkpoint: str | None = None, beam: int = 0) -> list[dict]:
    """Task 1: `num` pieces of `bars` bars from a lone Bar token.  Returns one {"mid", "wav", "png"} per piece.
    Defaults follow the paper's code (temperature 1.2, top-k 5); `beam` > 0: the `num` best of that many beams
    (temperature and top-k unused)."""
    run = _txl_run(run_dir, checkpoint)
    max_tokens = max_tokens or bars * TOKENS_PER_BAR_CAP
    if beam:
        from musicgen_tf.models import txl_beam

        tokens = txl_beam.generate(run.model, bars, beam, max_tokens=max_tokens, num=num)
    else:
        tokens = run.model.generate(bars, temperature=temperature, top_k=top_k, seed=_seed(seed, 0),
                                    max_tokens=max_tokens, num=num)
    pieces = [run.converter.from_example({"tokens": row}) for row in tokens]
    return render_pieces(pieces, out_dir, "sample")


def continue_remi(run_dir: str, prompt_midi: str, out_dir: str, prompt_bars: int = 8, bars: int = 24,
                  num: int = 1, temperature: float = 1.2, top_k: int = 5, seed: int | None = None,
                  max_tokens: int | None = None, checkpoint: str | None = None, beam: int = 0) -> list[dict]:
    """Task 2: the first `prompt_bars` bars of `prompt_midi`, kept exactly, then `bars` generated bars (`beam` > 0:
    beam search).  Writes the prompt alone (`prompt-00`) and each continuation (`continuation-NN`, prompt
    included)."""
    from musicgen_tf.music.midi_io import midi_file_to_note_sequence

    run = _txl_run(run_dir, checkpoint)
    try:
        ids = run.converter.encode_ids(midi_file_to_note_sequence(os.path.expanduser(prompt_midi)))
    except SkipInput as error:
        raise MusicgenError(f"{prompt_midi}: cannot be used as a REMI prompt: {error.reason}") from None
    prompt = run.converter.first_bars(ids, prompt_bars)
    max_tokens = max_tokens or len(prompt) + bars * TOKENS_PER_BAR_CAP
    if beam:
        from musicgen_tf.models import txl_beam

        tokens = txl_beam.continue_tokens(run.model, prompt, bars, beam, max_tokens=max_tokens, num=num)
    else:
        tokens = run.model.continue_tokens(prompt, bars, temperature=temperature, top_k=top_k,
                                           seed=_seed(seed, 1), max_tokens=max_tokens, num=num)
    prompt_piece = run.converter.from_example({"tokens": prompt})
    pieces = [run.converter.from_example({"tokens": row}) for row in tokens]
    return render_pieces([prompt_piece], out_dir, "prompt") + render_pieces(pieces, out_dir, "continuation")


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def evaluate_command(midi_dir: str, json_out: bool = False, structure: bool = True) -> dict:
    """Print H1/H4/GS/CPI/SI per file and their mean (or, with `json_out`, one JSON document); returns the result."""
    from musicgen_tf.music.metrics import METRICS, evaluate_midi_dir

    try:
        result = evaluate_midi_dir(midi_dir, structure=structure)
    except FileNotFoundError as error:
        raise MusicgenError(str(error)) from None
    if not result["files"]:
        raise MusicgenError(f"no readable MIDI files under {midi_dir} ({len(result['skipped'])} skipped)")
    result = {"files": {name: {k: _clean(v) for k, v in values.items()} for name, values in result["files"].items()},
              "mean": {k: _clean(v) for k, v in result["mean"].items()}, "skipped": result["skipped"]}
    if json_out:
        print(json.dumps(result, indent=2))
        return result
    width = max(len(name) for name in result["files"]) + 2

    def row(name, values):
        cells = "".join(f"{'-' if values.get(m) is None else format(values[m], '.4f'):>9}" for m in METRICS)
        return f"{name:<{width}}{cells}{int(values.get('bars') or 0):>7}"

    print(f"{'file':<{width}}" + "".join(f"{m:>9}" for m in METRICS) + f"{'bars':>7}")
    for name, values in result["files"].items():
        print(row(name, values))
    print(row("mean", result["mean"]))
    for name, reason in result["skipped"].items():
        print(f"skipped {name}: {reason}")
    return result


__all__ = ["generate_remi", "continue_remi", "evaluate_command"]

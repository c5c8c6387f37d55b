"""REMI Transformer-XL generation (Task 1: from scratch; Task 2: continue a MIDI prompt) and `evaluate` (metrics).

Thin on purpose: the model samples in-graph with cached memories, the REMI converter turns ids back into music,
`music.render` writes MIDI + WAV + piano-roll PNG, `music.metrics` scores folders of MIDI.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from musicgen_tf.errors import MusicgenError, SkipInput
from musicgen_tf.generation import render_pieces
from musicgen_tf.train.trainer import load_trained_model

TOKENS_PER_BAR_CAP = 256  # default max_tokens = bars * this


def _txl_run(run_dir: str, checkpoint: str | None, beam: int = 0):
    run = load_trained_model(run_dir, checkpoint)
    if not hasattr(run.model, "continue_tokens") or run.preset.representation != "remi":
        raise MusicgenError(f"{run.preset.name} is not a REMI Transformer-XL run; use `musicgen generate` without "
                            "--bars/--prompt-bars for it")
    if beam and run.model.generation_memory != "segments":
        raise MusicgenError("--beam needs our own Transformer-XL's segment memory; this run (an imported Pop Music "
                            "Transformer) decodes with the original's sliding memory: use --temperature 0 for "
                            "greedy decoding")
    return run


def _seed(seed: int | None, index: int):
    return None if seed is None else [int(seed), int(index)]


def _original_flavour(converter) -> bool:
    """True for the Pop Music Transformer's own REMI (an imported checkpoint): prompts are fed as its code does."""
    return hasattr(converter, "continuation_prompt")


def write_events(path: str, converter, prompt, rows) -> None:
    """`{"prompt_events": [...], "generated_events": [...]}` in the original's event names (one piece)."""
    if len(rows) != 1:
        raise MusicgenError(f"--events-out writes one piece's events, got {len(rows)} pieces: pass --num 1")
    prompt = np.asarray(prompt).reshape(-1)
    document = {"prompt_events": converter.original_event_names(prompt),
                "generated_events": converter.original_event_names(np.asarray(rows[0])[len(prompt):])}
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def _continue_original(run, prompts, bars, temperature, top_k, seed, max_tokens):
    """The original's `generate` on each prompt (ending with the Bar_None that opens the first new bar): it stops
    at the `bars`-th Bar_None it writes, kept.  One row per prompt; `max_tokens` counts new tokens."""
    if bars < 1:
        raise MusicgenError("--bars must be at least 1")
    rows = []
    for index, prompt in enumerate(prompts):
        cap = len(prompt) + (max_tokens or bars * TOKENS_PER_BAR_CAP)
        rows += list(run.model.continue_tokens(prompt, bars - 1, temperature=temperature, top_k=top_k,
                                               seed=_seed(seed, index), max_tokens=cap, num=1))
    return rows


def generate_remi(run_dir: str, out_dir: str, num: int = 1, bars: int = 32, temperature: float = 1.2,
                  top_k: int = 5, seed: int | None = None, max_tokens: int | None = None,
                  checkpoint: str | None = None, beam: int = 0, events_out: str | None = None) -> list[dict]:
    """Task 1: `num` pieces of `bars` bars from a lone Bar token (an imported Pop Music Transformer: from its
    random opening, Bar + Position + tempo (+ chord)).  `max_tokens`: new tokens at most per piece.  Returns one
    {"mid", "wav", "png"} per piece.  Defaults follow the paper's code (temperature 1.2, top-k 5; 0 = greedy);
    `beam` > 0: the `num` best of that many beams (temperature and top-k unused)."""
    run = _txl_run(run_dir, checkpoint, beam)
    if _original_flavour(run.converter):
        rng = np.random.default_rng(seed)
        prompts = [run.converter.start_ids(rng) for _ in range(num)]
        tokens = _continue_original(run, prompts, bars, temperature, top_k, seed, max_tokens)
        prompt = prompts[0]
    else:
        prompt = np.array([run.model.bar_id])
        total = 1 + (max_tokens or bars * TOKENS_PER_BAR_CAP)
        if beam:
            from musicgen_tf.models import txl_beam

            tokens = txl_beam.generate(run.model, bars, beam, max_tokens=total, num=num)
        else:
            tokens = run.model.generate(bars, temperature=temperature, top_k=top_k, seed=_seed(seed, 0),
                                        max_tokens=total, num=num)
    if events_out:
        write_events(events_out, run.converter, prompt, tokens)
    pieces = [run.converter.from_example({"tokens": row}) for row in tokens]
    return render_pieces(pieces, out_dir, "sample")


def continue_remi(run_dir: str, prompt_midi: str, out_dir: str, prompt_bars: int = 8, bars: int = 24,
                  num: int = 1, temperature: float = 1.2, top_k: int = 5, seed: int | None = None,
                  max_tokens: int | None = None, checkpoint: str | None = None, beam: int = 0,
                  events_out: str | None = None) -> list[dict]:
    """Task 2: the first `prompt_bars` bars of `prompt_midi`, kept exactly, then `bars` generated bars (`beam` > 0:
    beam search; `max_tokens`: new tokens at most).  An imported Pop Music Transformer gets the prompt as its code
    feeds it: the events, one Bar_None, all in one pass.  Writes the prompt alone (`prompt-00`) and each
    continuation (`continuation-NN`, prompt included)."""
    from musicgen_tf.music.midi_io import midi_file_to_note_sequence

    run = _txl_run(run_dir, checkpoint, beam)
    try:
        ids = run.converter.encode_ids(midi_file_to_note_sequence(os.path.expanduser(prompt_midi)))
    except SkipInput as error:
        raise MusicgenError(f"{prompt_midi}: cannot be used as a REMI prompt: {error.reason}"
                            + (f" ({error.detail})" if error.detail else "")) from None
    prompt = run.converter.first_bars(ids, prompt_bars)
    if _original_flavour(run.converter):
        prompt = run.converter.continuation_prompt(prompt)
        tokens = _continue_original(run, [prompt] * num, bars, temperature, top_k, seed, max_tokens)
    else:
        total = len(prompt) + (max_tokens or bars * TOKENS_PER_BAR_CAP)
        if beam:
            from musicgen_tf.models import txl_beam

            tokens = txl_beam.continue_tokens(run.model, prompt, bars, beam, max_tokens=total, num=num)
        else:
            tokens = run.model.continue_tokens(prompt, bars, temperature=temperature, top_k=top_k,
                                               seed=_seed(seed, 1), max_tokens=total, num=num)
    if events_out:
        write_events(events_out, run.converter, prompt, tokens)
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

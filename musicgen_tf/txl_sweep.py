"""`musicgen evaluate --sweep`: sampling settings of a REMI Transformer-XL run against the training pieces.

Seed 003 plans 20 pieces for each temperature in {0.8, 1.0, 1.2} x top-k in {20, 40, 60}, compared on the MusDr
metrics.  For every setting this generates the pieces (Task 1, `bars` bars each, in one batch), keeps their MIDI
under `<out>/t<T>_k<K>/`, and scores the token ids directly (`metrics_from_ids`, no MIDI round trip); the reference
folder (the training MIDI) is scored with `evaluate_midi_dir`.  The table holds each setting's mean H1/H4/GS/CPI/SI
and, per metric, the absolute distance to the reference mean; the last column is the mean of those distances
(lower = closer to the training pieces).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from musicgen_tf.errors import MusicgenError

TEMPERATURES = (0.8, 1.0, 1.2)
TOP_KS = (20, 40, 60)
PIECES = 20


def _mean(rows: list[dict], names) -> dict:
    out = {}
    for name in names:
        values = [row[name] for row in rows if not math.isnan(row[name])]
        out[name] = float(np.mean(values)) if values else float("nan")
    return out


def sweep(run_dir: str, reference_dir: str, out_dir: str, temperatures=TEMPERATURES, top_ks=TOP_KS,
          num: int = PIECES, bars: int = 32, seed: int = 0, max_tokens: int | None = None,
          structure: bool = True, checkpoint: str | None = None) -> dict:
    """-> {"reference": {metric: mean, "files": n}, "settings": [{"temperature", "top_k", "mean", "distance",
    "mean_distance", "pieces"}]} and MIDI files under `out_dir`."""
    from musicgen_tf.music.metrics import METRICS, evaluate_midi_dir, metrics_from_ids
    from musicgen_tf.music.midi_io import note_sequence_to_midi_file
    from musicgen_tf.txl_generation import TOKENS_PER_BAR_CAP, _txl_run

    names = [m for m in METRICS if structure or not m.startswith("SI")]
    try:
        reference = evaluate_midi_dir(reference_dir, structure=structure)
    except FileNotFoundError as error:
        raise MusicgenError(str(error)) from None
    if not reference["files"]:
        raise MusicgenError(f"no readable MIDI files under {reference_dir} to compare with")
    reference_mean = {name: reference["mean"][name] for name in names}
    run = _txl_run(run_dir, checkpoint)
    out = Path(os.path.expanduser(out_dir))
    settings = []
    for t_index, temperature in enumerate(temperatures):
        for k_index, top_k in enumerate(top_ks):
            tokens = run.model.generate(bars, temperature=float(temperature), top_k=int(top_k),
                                        seed=[int(seed), t_index * 1000 + k_index],
                                        max_tokens=max_tokens or bars * TOKENS_PER_BAR_CAP, num=num)
            folder = out / f"t{temperature:g}_k{top_k}"
            folder.mkdir(parents=True, exist_ok=True)
            rows = []
            for index, row in enumerate(tokens):
                note_sequence_to_midi_file(run.converter.from_example({"tokens": row}),
                                           str(folder / f"sample-{index:02d}.mid"))
                rows.append(metrics_from_ids(row, run.converter, structure=structure))
            mean = _mean(rows, names)
            distance = {name: abs(mean[name] - reference_mean[name]) for name in names}
            finite = [d for d in distance.values() if not math.isnan(d)]
            settings.append({"temperature": float(temperature), "top_k": int(top_k), "pieces": len(rows),
                             "mean": mean, "distance": distance,
                             "mean_distance": float(np.mean(finite)) if finite else float("nan")})
    return {"reference": {**reference_mean, "files": len(reference["files"])}, "settings": settings,
            "metrics": names}


def _cell(value) -> str:
    return f"{'-' if value is None or math.isnan(value) else format(value, '.3f'):>9}"


def print_sweep(result: dict, json_out: bool = False) -> None:
    """One table: the reference row, then one row per setting (means, then the mean distance)."""
    if json_out:
        def clean(value):
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        print(json.dumps(clean(result), indent=2))
        return
    names = result["metrics"]
    print(f"{'setting':<16}" + "".join(f"{m:>9}" for m in names) + f"{'|diff|':>9}")
    reference = result["reference"]
    print(f"{'reference':<16}" + "".join(_cell(reference[m]) for m in names) + f"{'':>9}"
          + f"   ({reference['files']} training pieces)")
    for setting in sorted(result["settings"], key=lambda s: s["mean_distance"]):
        label = f"T={setting['temperature']:g} k={setting['top_k']}"
        print(f"{label:<16}" + "".join(_cell(setting["mean"][m]) for m in names)
              + _cell(setting["mean_distance"]))


__all__ = ["sweep", "print_sweep", "TEMPERATURES", "TOP_KS", "PIECES"]

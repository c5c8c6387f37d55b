"""`musicgen evaluate --reference` on 1,000 generated and 1,000 reference 16-bar pieces, and per-piece features
against MusPy on the same files.

The pieces are written once as real MIDI files (symusic) into bench/.cache/evaluate: random 16-bar 4/4 melodies
on a 16th grid, the "generated" set a little narrower in range than the "reference" set.  Then:
1. the whole command (`python -m musicgen_tf.cli evaluate --midi gen --reference ref --json` in a fresh process:
   imports, reading 2,000 files, features, 3 x 1M distances and KDEs per feature) - target < 30 s on 2 cores;
2. per-piece features alone, side by side in turns (best of 3 rounds): ours (symusic + numpy) against MusPy
   (`muspy.read_midi` + its metrics where it has one: n_pitches_used, pitch_range, scale_consistency,
   pitch_class_entropy per bar window for H1, groove_consistency for GS; the others from its note list with numpy).

Last lines: `RESULT evaluate_total_seconds <s> (target < 30)` and
`RESULT evaluate_vs_muspy_speed <muspy s / ours s>x (target > 1x)`.  Timings on a shared machine are noisy.

    python bench/evaluate.py [--pieces 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).parent / ".cache" / "evaluate"


def write_pieces(folder: Path, count: int, seed: int, low: int, high: int, bars: int = 16) -> list[Path]:
    """`count` random monophonic 4/4 melodies of `bars` bars as MIDI files (kept between runs)."""
    import symusic

    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("*.mid"))
    if len(paths) >= count:
        return paths[:count]
    rng = np.random.default_rng(seed)
    tpq, sixteenth = 480, 120
    for index in range(count):
        score = symusic.Score(tpq)
        score.tempos.append(symusic.Tempo(0, 120.0))
        score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
        track = symusic.Track(program=0)
        step, total = 0, bars * 16
        while step < total:
            length = min(int(rng.choice([1, 2, 2, 4, 4, 4, 8])), total - step)
            track.notes.append(symusic.Note(step * sixteenth, length * sixteenth, int(rng.integers(low, high + 1)),
                                            80))
            step += length + int(rng.choice([0, 0, 0, 1]))
        score.tracks.append(track)
        score.dump_midi(str(folder / f"piece_{index:04d}.mid"))
    return sorted(folder.glob("*.mid"))[:count]


def ours(paths: list[Path]) -> None:
    from musicgen_tf.music.evaluation import piece_features, read_piece

    for path in paths:
        piece_features(read_piece(path))


def muspy_features(paths: list[Path]) -> None:
    """The same per-piece features with MusPy: its reader, its metrics where it has them, numpy for the rest."""
    import muspy

    lengths = np.array([96, 48, 24, 12, 6, 72, 36, 18, 9, 32, 16, 8], np.float64)
    for path in paths:
        music = muspy.read_midi(str(path))
        notes = sorted((n for t in music.tracks if not t.is_drum for n in t.notes), key=lambda n: (n.time, n.pitch))
        pitch = np.array([n.pitch for n in notes])
        start = np.array([n.time for n in notes])
        duration = np.array([n.duration for n in notes])
        velocity = np.array([n.velocity for n in notes])
        seconds_per_tick = 60.0 / (music.tempos[0].qpm if music.tempos else 120.0) / music.resolution
        len(notes)
        muspy.n_pitches_used(music)
        muspy.pitch_range(music)
        muspy.scale_consistency(music)
        np.bincount(pitch % 12, weights=velocity * duration * seconds_per_tick, minlength=12)
        np.abs(np.diff(pitch)).mean()
        np.diff(np.unique(start * seconds_per_tick)).mean()
        np.bincount(np.abs(duration[:, None] / (4 * music.resolution / 96) - lengths).argmin(1), minlength=12)
        bar = 4 * music.resolution
        for first in range(0, int(start.max()) + 1, bar):  # H1 over 1-bar windows, H4 over 4-bar windows
            for width in (1, 4):
                window = muspy.Music(resolution=music.resolution, tracks=[muspy.Track(notes=[
                    n for n in notes if first <= n.time < first + width * bar])])
                if window.tracks[0].notes:
                    muspy.pitch_class_entropy(window)
        muspy.groove_consistency(music, bar)


def best_of_turns(contenders: dict, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    generated = write_pieces(CACHE / "generated", args.pieces, seed=1, low=60, high=76)
    reference = write_pieces(CACHE / "reference", args.pieces, seed=2, low=55, high=79)
    print(f"{len(generated)} generated and {len(reference)} reference 16-bar pieces in {CACHE}")

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "musicgen_tf.cli", "evaluate", "--midi", str(CACHE / "generated"),
                           "--reference", str(CACHE / "reference"), "--json"], env=env, capture_output=True,
                          text=True)
    total = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"evaluate failed:\n{done.stderr}")
    import json

    print(f"musicgen evaluate --reference: {total:.1f} s in a fresh process, mean OA "
          f"{json.loads(done.stdout)['mean_oa']:.3f}")

    sample = generated[: min(200, len(generated))]
    times = best_of_turns({"ours": lambda: ours(sample), "muspy": lambda: muspy_features(sample)}, args.rounds)
    for name, seconds in times.items():
        print(f"  per-piece features, {name:<6} {len(sample) / seconds:8.0f} pieces/s")
    print(f"RESULT evaluate_total_seconds {total:.1f} (target < 30)")
    print(f"RESULT evaluate_vs_muspy_speed {times['muspy'] / times['ours']:.1f}x (target > 1x)")


if __name__ == "__main__":
    main()

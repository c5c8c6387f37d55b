"""The README's picture for "Magenta's pretrained models": our greedy decode of an imported Magenta checkpoint above
Magenta's own decode of the same z (the fixture's recorded notes), drawn with the project's piano-roll code.

    python tools/make_magenta_readme_figure.py [--fixture groovae_2bar_humanize] [--index 0] [--out docs/...png]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def magenta_sequence(notes):
    """The fixture's recorded notes (Magenta's `TrainedModel.decode`) as a NoteSequence at 120 qpm, 4/4."""
    import note_seq

    ns = note_seq.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=120.0)
    ns.time_signatures.add(numerator=4, denominator=4)
    for n in notes:
        ns.notes.add(pitch=n["pitch"], velocity=n["velocity"], start_time=n["start"], end_time=n["end"],
                     is_drum=n["is_drum"])
    ns.total_time = max((n["end"] for n in notes), default=0.0)
    return ns


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixture", default="groovae_2bar_humanize")
    parser.add_argument("--index", type=int, default=0, help="which of the fixture's z vectors")
    parser.add_argument("--out", default=str(ROOT / "docs" / "magenta_decode_groovae_2bar_humanize.png"))
    args = parser.parse_args()

    import matplotlib.image

    from musicgen_tf.interop import magenta
    from musicgen_tf.latent import decode_pieces
    from musicgen_tf.music.render import piano_roll_image
    from musicgen_tf.train.trainer import load_trained_model

    folder = ROOT / "tests" / "data" / "magenta" / args.fixture
    expected = json.loads((folder / "expected.json").read_text())
    z = np.load(folder / "expected.npz")["z"][args.index:args.index + 1]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        magenta.import_checkpoint(expected["magenta_config"], str(folder / "model.ckpt"), run_dir)
        ours = decode_pieces(load_trained_model(run_dir), z, temperature=0.0)[0]
    theirs = magenta_sequence(expected["decode"][args.index]["notes"])
    what = f"{args.fixture} (shrunk test checkpoint), greedy decode of z #{args.index}"
    image = np.vstack([piano_roll_image(ours, f"musicgen_tf: {what}"),
                       piano_roll_image(theirs, f"Magenta TrainedModel.decode: {what}")])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(args.out, image)
    print(f"{args.out}: ours {len(ours.notes)} notes, Magenta's {len(theirs.notes)} notes")


if __name__ == "__main__":
    main()

"""README pictures from a finished `make demo`: the first four samples' piano rolls stacked, and the distribution
plot of the quality table.

    python tools/demo_figures.py [demo_out] [docs]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def stack_vertically(paths: list[Path], target: Path) -> None:
    images = [Image.open(path).convert("RGB") for path in paths]
    width = max(image.width for image in images)
    canvas = np.full((sum(image.height for image in images), width, 3), 255, np.uint8)
    top = 0
    for image in images:
        canvas[top:top + image.height, :image.width] = np.asarray(image)
        top += image.height
    Image.fromarray(canvas).save(target, optimize=True)


def main(demo_out: str = "demo_out", docs: str = "docs") -> None:
    demo, out = Path(demo_out), Path(docs)
    rolls = [demo / "samples" / f"sample-{index:02d}.png" for index in range(4)]
    missing = [str(path) for path in rolls + [demo / "evaluation" / "distributions.png"] if not path.is_file()]
    if missing:
        raise SystemExit(f"run `make demo` first: missing {', '.join(missing)}")
    out.mkdir(exist_ok=True)
    stack_vertically(rolls, out / "demo_samples.png")
    shutil.copyfile(demo / "evaluation" / "distributions.png", out / "demo_distributions.png")
    print(f"wrote {out / 'demo_samples.png'} and {out / 'demo_distributions.png'}")


if __name__ == "__main__":
    main(*sys.argv[1:3])

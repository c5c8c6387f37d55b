"""Sheet music as SVG, with Verovio (a pip wheel): no MuseScore or LilyPond needed, so it works headless.

- `musicxml_to_svg(path_or_text) -> str`: a MusicXML file (or its text) engraved as one `<svg>` document per page,
  concatenated (short pieces fit on one page).
- `note_sequence_to_svg(ns) -> str`: a NoteSequence -> MusicXML (`render.write_musicxml`, music21 quantizes and
  spells the notes) -> SVG.

Verovio draws noteheads as SMuFL glyphs (`<use xlink:href="#E0A4-...">` for a black notehead) inside
`<g class="note">` groups, so a caller (or a test) can count the engraved notes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from musicgen_tf.errors import MusicgenError

# Verovio layout: page width in tenths of a staff space-ish units at `scale` percent; the page height grows to fit.
SVG_OPTIONS = {"pageWidth": 2100, "pageHeight": 60000, "adjustPageHeight": True, "scale": 40, "breaks": "auto",
               "footer": "none", "header": "none", "pageMarginTop": 50, "pageMarginBottom": 50,
               "pageMarginLeft": 50, "pageMarginRight": 50,
               "xmlIdSeed": 1}  # element ids from a fixed seed: the same MusicXML always gives the same SVG


class SheetError(MusicgenError):
    """MusicXML that Verovio cannot read, or no notation to draw."""


def _musicxml_text(path_or_text) -> str:
    if isinstance(path_or_text, bytes):
        return path_or_text.decode("utf-8")
    text = os.fspath(path_or_text)
    if text.lstrip().startswith("<"):
        return text
    path = Path(os.path.expanduser(text))
    if not path.is_file():
        raise SheetError(f"{path}: no such MusicXML file")
    return path.read_text(encoding="utf-8")


def musicxml_to_svg(path_or_text, options: dict | None = None) -> str:
    """MusicXML (a path, or the XML text/bytes) -> SVG markup (`<svg ...>...</svg>`, one per page, joined);
    deterministic (the same input gives the same SVG).

    options: Verovio options overriding `SVG_OPTIONS` (e.g. {"scale": 60}).  Raises SheetError when Verovio
    cannot load the data.
    """
    import verovio

    text = _musicxml_text(path_or_text)
    toolkit = verovio.toolkit()
    toolkit.setOptions({**SVG_OPTIONS, **(options or {})})
    if not toolkit.loadData(text) or toolkit.getPageCount() < 1:
        log = toolkit.getLog().strip()
        raise SheetError("Verovio could not read the MusicXML" + (f": {log}" if log else ""))
    # renderToSVG's xmlDeclaration=False keeps the output embeddable in HTML.
    return "\n".join(toolkit.renderToSVG(page, False) for page in range(1, toolkit.getPageCount() + 1))


def note_sequence_to_svg(ns, options: dict | None = None) -> str:
    """A NoteSequence -> sheet music SVG (via `render.write_musicxml` and `musicxml_to_svg`)."""
    from musicgen_tf.music.render import write_musicxml

    if not len(ns.notes):
        raise SheetError("the piece has no notes to engrave")
    with tempfile.TemporaryDirectory(prefix="musicgen-sheet-") as folder:
        path = write_musicxml(ns, Path(folder) / "score.musicxml")
        return musicxml_to_svg(path, options)

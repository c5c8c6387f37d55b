"""Sheet music SVG with Verovio: MusicXML text/path -> <svg> with one notehead glyph per note; clear errors."""

from __future__ import annotations

import re

import pytest
from note_seq.protobuf import music_pb2

from musicgen_tf.music import render
from musicgen_tf.music.sheet import SheetError, musicxml_to_svg, note_sequence_to_svg

PITCHES = [60, 62, 64, 65, 67, 69, 71, 72]  # eight quarter notes = two 4/4 bars at 120 qpm, no ties


def _melody() -> music_pb2.NoteSequence:
    ns = music_pb2.NoteSequence(ticks_per_quarter=220)
    ns.tempos.add(qpm=120.0)
    ns.time_signatures.add(numerator=4, denominator=4)
    for index, pitch in enumerate(PITCHES):
        ns.notes.add(pitch=pitch, velocity=90, start_time=index * 0.5, end_time=(index + 1) * 0.5)
    ns.total_time = len(PITCHES) * 0.5
    return ns


def _noteheads(svg: str) -> int:
    return len(re.findall(r'xlink:href="#E0A4', svg))  # SMuFL U+E0A4 noteheadBlack


def test_note_sequence_to_svg_draws_every_note():
    svg = note_sequence_to_svg(_melody())
    assert svg.lstrip().startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert len(re.findall(r'class="note"', svg)) == len(PITCHES)
    assert _noteheads(svg) == len(PITCHES)
    assert len(re.findall(r'class="measure"', svg)) == 2


def test_musicxml_path_and_text_give_the_same_svg(tmp_path):
    path = render.write_musicxml(_melody(), tmp_path / "melody.musicxml")
    from_path = musicxml_to_svg(path)
    from_text = musicxml_to_svg((tmp_path / "melody.musicxml").read_text())
    from_bytes = musicxml_to_svg((tmp_path / "melody.musicxml").read_bytes())
    assert from_path == from_text == from_bytes
    assert _noteheads(from_path) == len(PITCHES)


def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(SheetError, match="no such MusicXML file"):
        musicxml_to_svg(tmp_path / "missing.musicxml")
    with pytest.raises(SheetError, match="Verovio could not read"):
        musicxml_to_svg("<not-music/>")
    with pytest.raises(SheetError, match="no notes"):
        note_sequence_to_svg(music_pb2.NoteSequence())

"""symusic's ABC reader against music21's on real Essen tunes (music21's corpus): the same notes, quietly."""

import pytest
from music21 import converter

from musicgen_tf.music.abc_io import abc_to_note_sequence
from musicgen_tf.music.music21_io import score_to_note_sequence
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.preprocessing.readers.esac import read_text, split_tunebook

# Tunes where an accidental is followed by the same letter in its bar, or a tune without bar lines
# (ballad60#2): the ABC standard would carry the accidental on; the Essen tunes (and music21) do not.
ACCIDENTAL_TUNES = ("erk30.abc#219", "ballad60.abc#2", "altdeu20.abc#61", "zuccal0.abc#274")


def _notes(ns):
    return [(round(n.start_time, 6), round(n.end_time, 6), n.pitch) for n in ns.notes]


@pytest.fixture(scope="module")
def essen_sample():
    sources = get_reader("music21-essen").list_sources(None)
    picked = [s for s in sources if s.key in ACCIDENTAL_TUNES] + sources[::len(sources) // 16]
    books = {}
    for source in picked:
        books.setdefault(source.path, split_tunebook(read_text(source.path)))
    return [(source.key, books[source.path][source.tune]) for source in picked]


def test_symusic_and_music21_read_the_same_notes(essen_sample):
    assert len(essen_sample) >= 20
    for key, text in essen_sample:
        ours = abc_to_note_sequence(text)
        theirs = score_to_note_sequence(converter.parse(text, format="abc", forceSource=True))
        assert _notes(ours) == _notes(theirs), key
        assert ours.tempos[0].qpm == theirs.tempos[0].qpm
        first_key = [[(k.key, k.mode) for k in ns.key_signatures][:1] for ns in (ours, theirs)]
        assert first_key[0] == first_key[1], key


def test_bar_length_warnings_stay_off_stdout(capfd):
    # abc2midi prints "Warning in line-char 6-19 : Track 0 Bar 2 has 5/2 time units ..." for this tune
    ns = abc_to_note_sequence("X:1\nT:short bars\nM:4/4\nL:1/8\nK:C\nC2 D2 | D8 | E3 F2 | G8 |]\n")
    assert [n.pitch for n in ns.notes] == [60, 62, 62, 64, 65, 67]
    out, _ = capfd.readouterr()
    assert out == ""


def test_unreadable_tune_raises_value_error():
    with pytest.raises(ValueError, match="symusic could not read"):
        abc_to_note_sequence("X:1\nT:bad key\nM:4/4\nL:1/8\nK:H\nG2G2G2G2 |]\n")
    with pytest.raises(ValueError, match="no notes"):
        abc_to_note_sequence("X:1\nT:empty\nM:4/4\nL:1/8\nK:C\nz8 |]\n")

"""Each reader on a tiny corpus in its real on-disk layout (real MIDI/kern/ABC/WAV bytes)."""

import json

import pytest

from musicgen_tf.errors import LayoutError, SkipInput
from musicgen_tf.music.converter import Waveform
from musicgen_tf.preprocessing.readers import READERS, get_reader
from musicgen_tf.preprocessing.readers.base import hash_split
from musicgen_tf.preprocessing.readers.esac import split_tunebook
from tests import fixtures


def test_registry_names_match_the_cli():
    assert set(READERS) == {"groove", "pop1k7", "esac", "gtzan", "midi-dir", "music21-essen"}


def test_hash_split_is_deterministic_and_roughly_90_5_5():
    splits = [hash_split(f"song_{i}.mid") for i in range(4000)]
    assert splits == [hash_split(f"song_{i}.mid") for i in range(4000)]
    assert 0.87 < splits.count("train") / 4000 < 0.93
    assert splits.count("validation") > 100 and splits.count("test") > 100


def test_groove_uses_info_csv_splits_and_labels(tmp_path):
    reader = get_reader("groove")
    sources = reader.list_sources(fixtures.make_groove(tmp_path))
    assert [s.split for s in sources] == ["train", "train", "validation", "test", "train"]
    first = sources[0]
    assert first.features == {"style": "funk/groove1", "primary_style": "funk", "bpm": 120, "beat_type": "beat",
                              "time_signature": "4-4", "drummer": "drummer1"}
    ns = reader.load(first)
    assert ns.notes and all(n.is_drum for n in ns.notes)
    assert ns.filename == first.key == "drummer1/session1/1_funk_120_beat_4-4.mid"
    with pytest.raises(SkipInput, match="not a readable MIDI file"):
        reader.load(sources[-1])


def test_groove_wrong_layout_names_what_was_expected(tmp_path):
    with pytest.raises(LayoutError, match="info.csv"):
        get_reader("groove").list_sources(tmp_path)
    (tmp_path / "info.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LayoutError, match="lacks columns"):
        get_reader("groove").list_sources(tmp_path)
    with pytest.raises(LayoutError, match="does not exist"):
        get_reader("groove").list_sources(tmp_path / "missing")


def test_pop1k7_variants_hash_split_and_split_file(tmp_path):
    root = fixtures.make_pop1k7(tmp_path)
    analyzed = get_reader("pop1k7").list_sources(root)
    assert [s.key for s in analyzed] == [f"midi_analyzed/src_{i + 1:03d}/{i}.mid" for i in range(4)]
    assert [s.split for s in analyzed] == [hash_split(s.key) for s in analyzed]
    ns = get_reader("pop1k7").load(analyzed[0])
    assert [a.text for a in ns.text_annotations] == ["C_M"]
    assert len(get_reader("pop1k7", variant="midi_transcribed").list_sources(root)) == 4
    (root / "split.json").write_text(json.dumps({"test": ["midi_analyzed/src_001/0.mid"]}))
    assert get_reader("pop1k7").list_sources(root)[0].split == "test"
    with pytest.raises(LayoutError, match="midi_synchronized"):
        get_reader("pop1k7", variant="midi_synchronized").list_sources(root)


def test_esac_reads_kern_and_abc_tunebooks(tmp_path):
    reader = get_reader("esac")
    sources = reader.list_sources(fixtures.make_esac(tmp_path))
    keys = [s.key for s in sources]
    assert keys == ["abc/lieder_äöü.abc#1", "abc/lieder_äöü.abc#2", "abc/lieder_äöü.abc#3",
                    "abc/lieder_äöü.abc#4", "deutschl/kinder/kaputt.krn", "deutschl/kinder/kind0001.krn"]
    kern = reader.load(sources[5])
    assert reader.parsed_with(kern) == "music21"
    assert [n.pitch for n in kern.notes] == [67, 69, 71, 72, 71, 69, 67, 66, 67]
    assert (kern.time_signatures[0].numerator, kern.time_signatures[0].denominator) == (3, 4)
    assert kern.key_signatures[0].key == 7  # G major
    # monophonic: no two notes overlap
    assert all(a.end_time <= b.start_time + 1e-9 for a, b in zip(kern.notes, kern.notes[1:]))
    minor = reader.load(sources[1])
    assert reader.parsed_with(minor) == "symusic"
    assert minor.key_signatures[0].key == 2 and minor.key_signatures[0].mode == 1  # D minor
    assert [n.pitch for n in minor.notes][:4] == [62, 65, 69, 74]
    fallback = reader.load(sources[3])  # symusic cannot read it: music21 does
    assert reader.parsed_with(fallback) == "music21 fallback"
    assert [n.pitch for n in fallback.notes][:6] == [67, 67, 67, 67, 72, 72]
    for empty in (sources[2], sources[4]):
        with pytest.raises(SkipInput):
            reader.load(empty)


def test_split_tunebook_keeps_header_and_numbers_duplicates():
    tunes = split_tunebook("%header\nX:1\nT:a\nK:C\nC|\nX:1\nT:b\nK:C\nD|\n")
    assert list(tunes) == ["1", "1.2"]
    assert tunes["1.2"].startswith("%header\nX:1\nT:b")


def test_music21_essen_needs_no_input():
    sources = get_reader("music21-essen").list_sources(None)
    assert len(sources) > 8000
    ns = get_reader("music21-essen").load(sources[0])
    assert len(ns.notes) > 10 and ns.key_signatures


def test_gtzan_genres_labels_and_bad_audio(tmp_path):
    root = fixtures.make_gtzan(tmp_path)
    reader = get_reader("gtzan")
    sources = reader.list_sources(root)
    assert {s.features["genre"] for s in sources} == {"jazz", "rock"}
    assert any(s.key.endswith(".au") for s in sources)
    audio = reader.load(next(s for s in sources if s.key.endswith(".au")))
    assert isinstance(audio, Waveform) and audio.sample_rate == 22050 and audio.samples.ndim == 1
    with pytest.raises(SkipInput, match="unreadable audio"):
        reader.load(next(s for s in sources if s.key.endswith("00054.wav")))
    only_jazz = get_reader("gtzan", genres=["jazz"]).list_sources(root)
    assert {s.features["genre"] for s in only_jazz} == {"jazz"}
    with pytest.raises(LayoutError, match="blues"):
        get_reader("gtzan", genres=["blues"]).list_sources(root)


def test_midi_dir_finds_nested_non_ascii_files_and_skips_empty_ones(tmp_path):
    fixtures.write_midi(tmp_path / "a" / "b" / "Lied_Ä.MID", fixtures.melody_notes(1))
    fixtures.write_midi(tmp_path / "empty.midi", [])
    reader = get_reader("midi-dir")
    sources = reader.list_sources(tmp_path)
    assert [s.key for s in sources] == ["a/b/Lied_Ä.MID", "empty.midi"]
    assert len(reader.load(sources[0]).notes) == 4
    with pytest.raises(SkipInput, match="no notes"):
        reader.load(sources[1])
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(LayoutError, match="no .mid/.midi files"):
        reader.list_sources(tmp_path / "empty_folder")

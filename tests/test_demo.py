"""`musicgen demo` end to end on a slice of the Essen tunes: export, quality table, studio hint."""

import json

import pytest

from musicgen_tf import cli
from musicgen_tf.music.evaluation import midi_files


@pytest.mark.slow
def test_demo_exports_evaluates_and_names_the_studio_command(tmp_path, capsys):
    out = tmp_path / "demo_out"
    assert cli.main(["demo", "--output", str(out), "--limit", "250", "--steps", "4", "--eval-samples", "12",
                     "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert (out / "models" / "melody" / "1" / "saved_model.pb").is_file()
    assert (out / "models" / "models.config").is_file()
    manifest = json.loads((out / "tfrecords" / "manifest.json").read_text())
    test_examples = manifest["splits"]["test"]["examples"]
    assert len(midi_files(out / "evaluation" / "generated")) == 12
    assert len(midi_files(out / "evaluation" / "test_melodies")) == test_examples > 0
    assert (out / "evaluation" / "distributions.png").stat().st_size > 10_000
    assert f"12 samples at temperature 1 vs the {test_examples} held-out test melodies" in printed
    assert "mean OA" in printed and "scale_consistency" in printed
    assert f"musicgen studio --models {out / 'models'}" in printed
    assert "demo took" in printed


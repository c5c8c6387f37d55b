"""The `musicgen` command: clear errors and the end-of-run summary."""

import json
import os
import subprocess
import sys

import pytest

from musicgen_tf.cli import main
from tests import fixtures


def test_wrong_input_fails_at_once_naming_the_expected_layout(tmp_path, capsys):
    code = main(["preprocess", "--dataset", "groove", "--input", str(tmp_path), "--output", str(tmp_path / "o")])
    assert code == 2
    error = capsys.readouterr().err
    assert "info.csv" in error and "drummer1/session1" in error
    assert not (tmp_path / "o").exists()


def test_unknown_representation_and_bad_param_are_reported(tmp_path, capsys):
    assert main(["preprocess", "--dataset", "midi-dir", "--input", str(tmp_path), "--output", str(tmp_path),
                 "--representation", "piano"]) == 2
    assert "unknown representation 'piano'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["preprocess", "--dataset", "midi-dir", "--output", str(tmp_path), "--param", "novalue"])


@pytest.mark.slow
def test_console_script_groove_end_to_end(tmp_path):
    root = fixtures.make_groove(tmp_path / "groove")
    out = tmp_path / "records"
    result = subprocess.run([sys.executable, "-m", "musicgen_tf.cli", "preprocess", "--dataset", "groove",
                             "--input", str(root), "--output", str(out), "--num-shards", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "groove -> groovae TFRecords" in result.stdout
    assert "1  not a readable MIDI file" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["converted"] == 4
    assert {s: manifest["splits"][s]["files"] for s in manifest["splits"]} == {"train": 2, "validation": 1,
                                                                               "test": 1}
    assert manifest["labels"]["primary_style"]["vocabulary"] == ["funk", "jazz", "latin", "rock"]
    assert manifest["features"].keys() == {"hits", "velocities", "offsets"}
    # A fresh process shares the CPU cores among MusicVAE's two concurrent recurrences before TensorFlow starts.
    env = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    result = subprocess.run([sys.executable, "-m", "musicgen_tf.cli", "train", "--preset", "groovae_2bar", "--tiny",
                             "--data", str(out), "--run-dir", str(tmp_path / "run"), "--epochs", "1",
                             "--steps-per-epoch", "2", "--batch-size", "2"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["intra_op_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)


@pytest.mark.slow
def test_groovae_preprocess_train_generate_reconstruct(tmp_path, capsys):
    records = str(fixtures.groove_records(tmp_path, preset="groovae_2bar", num_shards=1))
    run = str(tmp_path / "run")
    assert main(["train", "--preset", "groovae_2bar", "--tiny", "--data", records, "--run-dir", run,
                 "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "2"]) == 0
    assert main(["generate", "--run-dir", run, "--num", "2", "--seed", "1", "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        f"sample-{i:02d}.{ext}" for i in range(2) for ext in ("mid", "png", "wav")]
    groove_midi = next((tmp_path / "groove").glob("drummer1/session1/1_*.mid"))  # the corpus groove_records wrote
    assert main(["reconstruct", str(groove_midi), "--run-dir", run, "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "reconstruction-01.mid").is_file()
    assert main(["generate", "--run-dir", run, "--prompt", "60 _ 62", "--out", str(tmp_path / "p")]) == 2
    assert "--prompt needs a melody model" in capsys.readouterr().err


@pytest.mark.slow
def test_remi_transformer_xl_train_generate_continue_evaluate(tmp_path, capsys):
    songs = tmp_path / "songs"
    for index in range(6):
        fixtures.write_midi(songs / f"song_{index}.mid", fixtures.melody_notes(4, pitches=fixtures.MELODY[index:]))
    records, run = str(tmp_path / "records"), str(tmp_path / "run")
    assert main(["preprocess", "--dataset", "midi-dir", "--input", str(songs), "--output", records,
                 "--num-shards", "1"]) == 0
    assert main(["train", "--preset", "remi_txl_pop", "--tiny", "--data", records, "--run-dir", run,
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2"]) == 0
    assert main(["generate", "--run-dir", run, "--num", "1", "--bars", "2", "--seed", "3",
                 "--out", str(tmp_path / "gen")]) == 0
    assert main(["generate", "--run-dir", run, "--prompt", str(songs / "song_0.mid"), "--prompt-bars", "2",
                 "--bars", "1", "--out", str(tmp_path / "cont")]) == 0
    assert (tmp_path / "cont" / "prompt-00.mid").is_file() and (tmp_path / "cont" / "continuation-00.mid").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--midi", str(tmp_path / "gen"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["mean"]) >= {"H4", "GS"}

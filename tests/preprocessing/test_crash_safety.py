"""A killed `musicgen preprocess` never leaves a folder that looks finished, and rerunning it completes the job."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from musicgen_tf.music.representations import get_converter
from musicgen_tf.preprocessing.pipeline import run_preprocess
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.tfrecords.dataset import make_dataset
from tests import fixtures

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("created", "seconds")  # the only manifest fields allowed to differ between two runs


@pytest.fixture(scope="module")
def melody_folder(tmp_path_factory):
    """150 four-bar melodies: enough work that the job is still converting when it is killed."""
    return fixtures.write_random_melodies(tmp_path_factory.mktemp("melodies"), 150, name="melody_{:03d}.mid")


def _command(input_dir, output_dir, *extra):
    return [sys.executable, "-m", "musicgen_tf.cli", "preprocess", "--dataset", "midi-dir", "--input",
            str(input_dir), "--output", str(output_dir), "--representation", "melody", "--num-shards", "2", *extra]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _records(folder: Path) -> dict[str, list[bytes]]:
    """Every record per split, sorted: shard boundaries and order may differ between two runs, contents may not."""
    by_split = {}
    for shard in folder.glob("*.tfrecord"):
        split = shard.name.split("-")[0]
        by_split.setdefault(split, []).extend(r.numpy() for r in tf.data.TFRecordDataset(str(shard)))
    return {split: sorted(records) for split, records in by_split.items()}


def _manifest(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {key: value for key, value in manifest.items() if key not in VOLATILE}


def _kill_mid_run(input_dir, output_dir):
    """Start the job, SIGKILL it as soon as Beam has opened its temporary output folders."""
    process = subprocess.Popen(_command(input_dir, output_dir), env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            if output_dir.is_dir() and any(p.name.startswith("beam-temp-") for p in output_dir.iterdir()):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, "the job finished before it could be killed mid-run"


@pytest.fixture(scope="module")
def straight_run(melody_folder, tmp_path_factory):
    """An uninterrupted run (in-process: the same pipeline the command runs)."""
    output = tmp_path_factory.mktemp("straight")
    run_preprocess(get_reader("midi-dir"), get_converter("melody"), str(output), input_dir=str(melody_folder),
                   num_shards=2, dataset_name="midi-dir")
    return output


def _assert_finished_like(folder: Path, straight: Path):
    assert not [p.name for p in folder.iterdir() if p.name.startswith(("beam-temp-", "_", "manifest.json."))]
    assert _records(folder) == _records(straight)
    assert _manifest(folder) == _manifest(straight)


@pytest.mark.slow
def test_killed_run_leaves_no_manifest_and_the_same_command_completes_it(melody_folder, straight_run, tmp_path):
    killed = tmp_path / "killed"
    _kill_mid_run(melody_folder, killed)
    assert not (killed / "manifest.json").exists()
    assert any(p.name.startswith("beam-temp-") for p in killed.iterdir())
    with pytest.raises(FileNotFoundError, match="did not finish .*rerun the same `musicgen preprocess`"):
        make_dataset(str(killed), "train")

    rerun = subprocess.run(_command(melody_folder, killed), env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "unfinished run" in rerun.stderr
    _assert_finished_like(killed, straight_run)


@pytest.mark.slow
def test_killed_run_completed_with_overwrite(melody_folder, straight_run, tmp_path):
    killed = tmp_path / "killed"
    _kill_mid_run(melody_folder, killed)
    run_preprocess(get_reader("midi-dir"), get_converter("melody"), str(killed), input_dir=str(melody_folder),
                   num_shards=2, dataset_name="midi-dir", overwrite=True)
    _assert_finished_like(killed, straight_run)


def test_leftover_shards_and_temp_files_of_an_unfinished_run_are_removed(melody_folder, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in sorted(melody_folder.glob("*.mid"))[:6]:
        (inputs / path.name).write_bytes(path.read_bytes())
    output = tmp_path / "out"
    output.mkdir()
    (output / "train-00003-of-00004.tfrecord").write_bytes(b"half a shard")  # from a run with other sharding
    (output / "beam-temp-train-0123").mkdir()
    (output / "beam-temp-train-0123" / "part").write_bytes(b"x")
    (output / "manifest.json.tmp").write_text("{")
    manifest = run_preprocess(get_reader("midi-dir"), get_converter("melody"), str(output), input_dir=str(inputs),
                              num_shards=2)
    names = sorted(p.name for p in output.iterdir())
    assert names == ["manifest.json"] + sorted(sum((s["shards"] for s in manifest["splits"].values()), []))
    assert "train-00003-of-00004.tfrecord" not in names


def test_a_finished_run_is_replaced_only_with_overwrite(melody_folder, tmp_path):
    from musicgen_tf.errors import MusicgenError

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in sorted(melody_folder.glob("*.mid"))[:3]:
        (inputs / path.name).write_bytes(path.read_bytes())
    run = lambda **kw: run_preprocess(get_reader("midi-dir"), get_converter("melody"), str(tmp_path / "out"),  # noqa
                                      input_dir=str(inputs), num_shards=1, **kw)
    run()
    with pytest.raises(MusicgenError, match="finished preprocessing run .*--overwrite"):
        run()
    assert run(overwrite=True)["files"]["converted"] == 3

"""`musicgen train --strategy multi-worker` with two worker processes on localhost ports (TF_CONFIG), as on N hosts.

Checked: both workers exit 0 and only the chief's run directory holds checkpoints (the other's temporary folder is
gone); the first step's loss equals a one-process run's with the same global batch; a worker killed mid-epoch and
the same command rerun on both ends at the same step with the same weights as an uninterrupted two-worker run.
"""

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.cli import main
from musicgen_tf.train.distributed import free_ports, local_tf_config
from musicgen_tf.train.run_dir import RunDir
from musicgen_tf.train.trainer import TrainOptions, train
from tests import fixtures

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def groove_records(tmp_path_factory):
    return fixtures.groove_records(tmp_path_factory.mktemp("groove"), bars=8)


@pytest.fixture(scope="module")
def remi_records(tmp_path_factory):
    songs = tmp_path_factory.mktemp("songs")
    for index in range(4):
        fixtures.write_midi(songs / f"song_{index}.mid", fixtures.melody_notes(4, pitches=fixtures.MELODY[index:]))
    records = tmp_path_factory.mktemp("remi_records")
    assert main(["preprocess", "--dataset", "midi-dir", "--input", str(songs), "--output", str(records),
                 "--num-shards", "1"]) == 0
    return records


def _start_workers(args, tmp_dir, count=2):
    """`musicgen train ARGS --strategy multi-worker` in `count` processes; worker i logs to tmp_dir/worker-i.log."""
    ports = free_ports(count)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(tmp_dir)}  # the non-chief's temporary run folder goes here
    tmp_dir.mkdir(exist_ok=True)
    processes = []
    for index in range(count):
        log = open(tmp_dir.parent / f"worker-{index}.log", "w")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "musicgen_tf.cli", "train", *args, "--strategy", "multi-worker"],
            env={**env, "TF_CONFIG": local_tf_config(ports, index)}, stdout=log, stderr=subprocess.STDOUT))
    return processes


def _wait(processes, tmp_dir, timeout=600):
    codes = [process.wait(timeout=timeout) for process in processes]
    if codes != [0] * len(codes):
        logs = "\n".join(Path(p).read_text()[-3000:] for p in sorted(glob.glob(str(tmp_dir.parent / "worker-*.log"))))
        pytest.fail(f"workers exited {codes}:\n{logs}")


def _kill(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()


def _logged(run_dir, tag, step):
    """A scalar the chief logged to TensorBoard: `batch_loss` at step 1 is what the first train step reported
    (the mean of the workers' means), `epoch_loss` at step 0 the first epoch's (from the summed metric state)."""
    for path in glob.glob(str(Path(run_dir) / "logs" / "train" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag and event.step == step:
                    return float(tf.make_ndarray(value.tensor))
    raise AssertionError(f"no {tag} at step {step} in {run_dir}/logs/train")


def _one_process_first_loss(preset, data, run_dir, **kwargs):
    history = train(TrainOptions(preset=preset, data=str(data), run_dir=str(run_dir), tiny=True, steps=1,
                                 steps_per_epoch=1, verbose=0, **kwargs))
    return history.history["loss"][0]


def test_groovae_two_workers_match_one_and_resume_exactly_after_a_kill(groove_records, tmp_path):
    args = ["--preset", "groovae_2bar", "--tiny", "--data", str(groove_records), "--steps", "20",
            "--steps-per-epoch", "10"]
    straight = tmp_path / "straight"
    _wait(_start_workers(args + ["--run-dir", str(straight)], tmp_path / "tmp"), tmp_path / "tmp")
    run = RunDir(straight)
    assert sorted(p.name for p in run.checkpoints_dir.glob("*.weights.h5")) == [
        "epoch-0001.weights.h5", "epoch-0002.weights.h5"]
    assert run.final_weights.is_file() and run.resume_epoch() == 2
    assert not os.listdir(tmp_path / "tmp")  # the non-chief's temporary run folder was removed

    # Same global batch (the tiny preset's 16) in one process: the same first-step loss.
    one = _one_process_first_loss("groovae_2bar", groove_records, tmp_path / "one")
    # (GrooVAE's loss is summed over 32 steps, ~270: float32 resolution there is ~3e-5, so relative 1e-5.)
    np.testing.assert_allclose(_logged(straight, "batch_loss", 1), one, rtol=1e-5, atol=0)

    # Kill worker 1 during epoch 2 (after epoch 1's checkpoint), then the chief, which now waits for it.
    killed = tmp_path / "killed"
    processes = _start_workers(args + ["--run-dir", str(killed)], tmp_path / "tmp")
    first_checkpoint = killed / "checkpoints" / "epoch-0001.weights.h5"
    deadline = time.monotonic() + 600
    while not first_checkpoint.is_file() and time.monotonic() < deadline and processes[0].poll() is None:
        time.sleep(0.02)
    _kill(processes[1:])
    _kill(processes[:1])
    assert RunDir(killed).resume_epoch() == 1, "the kill should land in epoch 2"
    assert not RunDir(killed).final_weights.exists()

    _wait(_start_workers(args + ["--run-dir", str(killed)], tmp_path / "tmp"), tmp_path / "tmp")  # same command
    assert RunDir(killed).resume_epoch() == 2
    expected, resumed = fixtures.h5_weights(run.final_weights), fixtures.h5_weights(RunDir(killed).final_weights)
    assert expected.keys() == resumed.keys()
    for name in expected:
        np.testing.assert_array_equal(expected[name], resumed[name], err_msg=name)


def test_transformer_xl_two_workers_first_step_loss_equals_one_process(remi_records, tmp_path):
    args = ["--preset", "remi_txl_pop", "--tiny", "--data", str(remi_records), "--steps", "2",
            "--steps-per-epoch", "1", "--batch-size", "4"]
    run_dir = tmp_path / "two"
    _wait(_start_workers(args + ["--run-dir", str(run_dir)], tmp_path / "tmp"), tmp_path / "tmp")
    assert len(list(RunDir(run_dir).checkpoints_dir.glob("epoch-*.weights.h5"))) == 2
    assert not os.listdir(tmp_path / "tmp")
    one = _one_process_first_loss("remi_txl_pop", remi_records, tmp_path / "one", batch_size=4)
    # Pieces differ in length, so the workers' token counts differ: the exact global loss is the epoch's (one step).
    np.testing.assert_allclose(_logged(run_dir, "epoch_loss", 0), one, rtol=0, atol=1e-5)

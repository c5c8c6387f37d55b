"""The shared training stack on a tiny MusicVAE: train, exact resume, XLA and mixed precision, generation."""

import json
import os

import keras
import numpy as np
import pytest

from musicgen_tf import generation
from musicgen_tf.configs import get_preset
from musicgen_tf.music.representations import get_converter
from musicgen_tf.preprocessing.pipeline import run_preprocess
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.train.run_dir import RunDir
from musicgen_tf.train.trainer import TrainOptions, load_trained_model, train
from tests import fixtures

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def melody_records(tmp_path_factory):
    """Melody TFRecords from 24 real 4-bar MIDI melodies (two 2-bar windows each)."""
    root = fixtures.write_random_melodies(tmp_path_factory.mktemp("melodies"), 24)
    output = tmp_path_factory.mktemp("melody_records")
    converter = get_converter("melody", **get_preset("cat-mel_2bar").converter_params)
    manifest = run_preprocess(get_reader("midi-dir"), converter, str(output), input_dir=str(root), num_shards=2)
    assert manifest["splits"]["train"]["examples"] >= 30
    return output


def _options(data, run_dir, **kwargs):
    defaults = dict(preset="cat-mel_2bar", data=str(data), run_dir=str(run_dir), tiny=True, steps_per_epoch=5,
                    epochs=4, batch_size=8, verbose=0)
    return TrainOptions(**{**defaults, **kwargs})


class _Crash(keras.callbacks.Callback):
    """Stands in for a killed process: stops the job right after the backup of epoch `after`."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt("simulated kill")


def _weights(run_dir):
    return load_trained_model(str(run_dir)).model.get_weights()


def test_train_writes_run_dir_and_loss_falls(melody_records, tmp_path):
    history = train(_options(melody_records, tmp_path / "run", epochs=6))
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    run = RunDir(tmp_path / "run")
    config = json.loads(run.config_path.read_text())
    assert config["preset"]["name"] == "cat-mel_2bar" and config["preset"]["model"]["latent_dim"] == 16
    assert run.final_weights.is_file() and len(list(run.checkpoints_dir.glob("*.weights.h5"))) == 6
    assert list((run.logs_dir / "train").glob("events.out.tfevents.*"))
    assert list(run.samples_dir.glob("epoch-*/sample-*.mid"))  # sampled during training


def test_interrupted_run_resumes_to_the_same_weights(melody_records, tmp_path):
    train(_options(melody_records, tmp_path / "straight"))
    with pytest.raises(KeyboardInterrupt):
        train(_options(melody_records, tmp_path / "killed", callbacks=[_Crash(after=2)]))
    assert RunDir(tmp_path / "killed").resume_epoch() == 2
    train(_options(melody_records, tmp_path / "killed"))  # the same command again
    for straight, resumed in zip(_weights(tmp_path / "straight"), _weights(tmp_path / "killed")):
        np.testing.assert_array_equal(straight, resumed)


@pytest.mark.parametrize("flags", [{"xla": True}, {"mixed_precision": True}])
def test_xla_and_mixed_precision_train_without_nan(melody_records, tmp_path, flags):
    try:
        history = train(_options(melody_records, tmp_path / "run", epochs=2, **flags))
        model = history.model
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(history.history["loss"]))
    assert model.jit_compile == flags.get("xla", False)  # Keras silently drops XLA under op determinism
    if flags.get("mixed_precision"):
        assert model.compute_dtype == "float16"


def test_rerun_with_another_preset_is_refused(melody_records, tmp_path):
    train(_options(melody_records, tmp_path / "run", epochs=1))
    with pytest.raises(ValueError, match="different preset"):
        train(_options(melody_records, tmp_path / "run", epochs=1, tiny=False))


def test_generate_interpolate_reconstruct_write_music(melody_records, tmp_path):
    train(_options(melody_records, tmp_path / "run", epochs=2))
    samples = generation.generate(str(tmp_path / "run"), str(tmp_path / "samples"), num=3, temperature=0.5, seed=7)
    kinds = ("mid", "wav", "png", "musicxml")  # melodies also get sheet music
    assert len(samples) == 3 and all(os.path.isfile(p[kind]) for p in samples for kind in kinds)
    again = generation.generate(str(tmp_path / "run"), str(tmp_path / "again"), num=3, temperature=0.5, seed=7)
    assert [open(p["mid"], "rb").read() for p in samples] == [open(p["mid"], "rb").read() for p in again]
    melodies = sorted((melody_records.parent).glob("melodies*/melody_0[01].mid"))
    steps = generation.interpolate(str(tmp_path / "run"), str(melodies[0]), str(melodies[1]),
                                   str(tmp_path / "interp"), steps=5)
    assert len(steps) == 5
    rebuilt = generation.reconstruct(str(tmp_path / "run"), str(melodies[0]), str(tmp_path / "rec"))
    assert len(rebuilt) == 2  # the original window and its reconstruction


def test_checkpoint_shard_paths_get_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="one shard of a TensorFlow checkpoint"):
        RunDir(tmp_path).weights_path(str(tmp_path / "model.ckpt-100.data-00000-of-00001"))


def test_truncated_shard_is_named_when_training(melody_records, tmp_path):
    import shutil

    from musicgen_tf.tfrecords.integrity import CorruptShardError

    data = tmp_path / "records"
    shutil.copytree(melody_records, data)
    shard = sorted(data.glob("train-*.tfrecord"))[-1]
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(CorruptShardError, match=rf"{shard}: truncated record at record \d+ \(byte \d+\)"):
        train(_options(data, tmp_path / "run", epochs=1))

"""`musicgen train` augments the training batches of a preset with `augmentation`, and nothing else."""

import pytest

from musicgen_tf.configs import get_preset
from musicgen_tf.music.representations import get_converter
from musicgen_tf.preprocessing.pipeline import run_preprocess
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.tfrecords import augment
from musicgen_tf.train import trainer
from musicgen_tf.train.trainer import TrainOptions, train
from tests import fixtures

pytestmark = pytest.mark.slow


def test_only_the_training_batches_are_transposed(tmp_path, monkeypatch):
    root = fixtures.write_random_melodies(tmp_path / "melodies", 16)  # melody_15 hashes into the validation split
    records = tmp_path / "records"
    converter = get_converter("melody", **get_preset("cat-mel_2bar").converter_params)
    manifest = run_preprocess(get_reader("midi-dir"), converter, str(records), input_dir=str(root), num_shards=1)
    assert manifest["splits"]["validation"]["examples"] > 0

    made, augmented = {}, []
    real_make_dataset, real_apply = trainer.make_dataset, augment.MelodyTransposer.apply

    def make_dataset(data_dir, split, *args, **kwargs):
        made[split] = real_make_dataset(data_dir, split, *args, **kwargs)
        return made[split]

    def apply(self, dataset):
        augmented.append((dataset, self.transpose_range))
        return real_apply(self, dataset)

    monkeypatch.setattr(trainer, "make_dataset", make_dataset)
    monkeypatch.setattr(augment.MelodyTransposer, "apply", apply)
    history = train(TrainOptions(preset="cat-mel_2bar", data=str(records), run_dir=str(tmp_path / "run"), tiny=True,
                                 steps_per_epoch=2, epochs=1, batch_size=4, verbose=0))
    assert set(made) == {"train", "validation"} and "val_loss" in history.history
    assert [(d is made["train"], r) for d, r in augmented] == [(True, (-5, 5))]

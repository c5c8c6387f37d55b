"""A truncated or corrupt shard is named (file, record, byte) instead of TensorFlow's bare `corrupted record at N`."""

import shutil

import pytest
import tensorflow as tf

from musicgen_tf.music.representations import get_converter
from musicgen_tf.preprocessing.pipeline import run_preprocess
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.tfrecords.dataset import make_dataset, shard_paths
from musicgen_tf.tfrecords.integrity import CorruptShardError, find_damaged_record, naming_damaged_shards
from tests import fixtures


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = fixtures.write_random_melodies(tmp_path_factory.mktemp("melodies"), 12, seed=1)
    output = tmp_path_factory.mktemp("records")
    run_preprocess(get_reader("midi-dir"), get_converter("melody"), str(output), input_dir=str(root), num_shards=2)
    return output


def _damaged_copy(records, tmp_path, damage):
    folder = tmp_path / "records"
    shutil.copytree(records, folder)
    shard = folder / "train-00001-of-00002.tfrecord"
    data = bytearray(shard.read_bytes())
    shard.write_bytes(damage(data))
    lengths = [len(r.numpy()) + 16 for r in tf.data.TFRecordDataset(str(records / shard.name))]
    return folder, shard, lengths


def test_truncated_shard_is_named_with_its_record(records, tmp_path):
    folder, shard, lengths = _damaged_copy(records, tmp_path, lambda data: bytes(data[:-10]))
    damaged = find_damaged_record(shard_paths(str(folder), "train"))
    assert damaged.path == str(shard) and damaged.reason == "truncated record"
    assert damaged.record == len(lengths) - 1 and damaged.offset == sum(lengths[:-1])
    with pytest.raises(CorruptShardError, match=rf"{shard}: truncated record at record {len(lengths) - 1} "):
        with naming_damaged_shards(shard_paths(str(folder), "train")):
            for _ in make_dataset(str(folder), "train", batch_size=4):
                pass


def test_corrupt_byte_is_named_and_whole_shards_pass(records, tmp_path):
    def flip(data):
        data[lengths_before + 20] ^= 0xFF  # inside the payload of the third record
        return bytes(data)

    lengths_before = sum(len(r.numpy()) + 16 for r in list(
        tf.data.TFRecordDataset(str(records / "train-00001-of-00002.tfrecord")))[:2])
    folder, shard, _ = _damaged_copy(records, tmp_path, flip)
    damaged = find_damaged_record(shard_paths(str(folder), "train"))
    assert (damaged.path, damaged.record, damaged.reason) == (str(shard), 2, "corrupted record")
    assert find_damaged_record(shard_paths(str(records), "train")) is None


def test_other_data_loss_errors_pass_through(records):
    with pytest.raises(tf.errors.DataLossError):
        with naming_damaged_shards(shard_paths(str(records), "train")):
            raise tf.errors.DataLossError(None, None, "from somewhere else")

"""Examples written as wire bytes without TensorFlow parse as the `tf.train.Example` TensorFlow would build."""

import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.music.converter import Feature
from musicgen_tf.tfrecords.schema import serialize_example


def tf_example(features: dict, labels: dict, key: str) -> tf.train.Example:
    def feature(value):
        if isinstance(value, (str, bytes)):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode() if isinstance(value, str)
                                                                         else value]))
        array = np.asarray(value).reshape(-1)
        if array.dtype.kind in "iub":
            return tf.train.Feature(int64_list=tf.train.Int64List(value=array.astype(np.int64).tolist()))
        return tf.train.Feature(float_list=tf.train.FloatList(value=array.astype(np.float32).tolist()))

    out = {name: feature(value) for name, value in features.items()}
    out.update({f"label/{name}": feature(value) for name, value in labels.items()})
    out["source/key"] = feature(key)
    return tf.train.Example(features=tf.train.Features(feature=out))


@pytest.mark.parametrize("tokens", [
    np.arange(300), np.array([], np.int64), np.array([0, 127, 128, 16383, 16384, 2**35, 2**63 - 1]),
    np.array([-1, -300, -2**63, 5])])
def test_int64_features_match_tensorflow(tokens):
    spec = {"tokens": Feature("int64", (None,))}
    labels = {"bpm": 120, "style": "funk/groove", "swing": 0.25}
    serialized = serialize_example({"tokens": tokens}, spec, labels, key="a/b.mid")
    assert tf.train.Example.FromString(serialized) == tf_example({"tokens": tokens}, labels, "a/b.mid")


def test_float_and_bytes_features_match_tensorflow():
    spec = {"hits": Feature("float32", (4, 3)), "names": Feature("bytes", (2,))}
    hits = np.linspace(-1, 1, 12).reshape(4, 3)
    serialized = serialize_example({"hits": hits, "names": ["kick", b"snare"]}, spec, key="ü.mid")
    parsed = tf.train.Example.FromString(serialized).features.feature
    np.testing.assert_array_equal(parsed["hits"].float_list.value, hits.reshape(-1).astype(np.float32))
    assert parsed["names"].bytes_list.value == [b"kick", b"snare"]
    assert parsed["source/key"].bytes_list.value == ["ü.mid".encode()]


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="does not match"):
        serialize_example({"hits": np.zeros(3)}, {"hits": Feature("float32", (4,))})

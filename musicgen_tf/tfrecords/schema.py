"""Versioned `tf.train.Example` schema: representation features + per-example labels + the source key.

Layout of one Example:
- the converter's features under their own names (`tokens`, `hits`, `audio`, ...), flattened row-major;
- `label/<name>` for reader labels (Groove style/bpm, GTZAN genre): bytes, int64 or float;
- `source/key`: the stable key of the input file, so every example can be traced back to its file.
`SCHEMA_VERSION` changes whenever this layout changes; the manifest records it and readers refuse a mismatch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from musicgen_tf.music.converter import Feature

SCHEMA_VERSION = 1
LABEL_PREFIX = "label/"
SOURCE_KEY = "source/key"


def label_feature(value) -> Feature:
    """The stored type of one label value."""
    if isinstance(value, (bool, int, np.integer)):
        return Feature("int64", ())
    if isinstance(value, (float, np.floating)):
        return Feature("float32", ())
    return Feature("bytes", ())


def _to_feature(value, feature: Feature) -> tf.train.Feature:
    if feature.dtype == "bytes":
        values = [value] if isinstance(value, (str, bytes)) else list(value)
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode("utf-8") if isinstance(v, str) else v for v in values]))
    array = np.asarray(value)
    expected = feature.shape
    if len(expected) != array.ndim or any(e is not None and e != a for e, a in zip(expected, array.shape)):
        raise ValueError(f"feature shape {array.shape} does not match the schema's {expected}")
    flat = array.reshape(-1)
    if feature.dtype == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=flat.astype(np.int64)))
    return tf.train.Feature(float_list=tf.train.FloatList(value=flat.astype(np.float32)))


def serialize_example(features: dict, spec: dict[str, Feature], labels: dict | None = None,
                      key: str = "") -> bytes:
    """Numpy feature dict (+ labels, source key) -> serialized tf.train.Example."""
    out = {name: _to_feature(features[name], feature) for name, feature in spec.items()}
    for name, value in (labels or {}).items():
        out[LABEL_PREFIX + name] = _to_feature(value, label_feature(value))
    out[SOURCE_KEY] = _to_feature(key, Feature("bytes", ()))
    return tf.train.Example(features=tf.train.Features(feature=out)).SerializeToString()


def _tf_dtype(dtype: str):
    return {"int64": tf.int64, "float32": tf.float32, "bytes": tf.string}[dtype]


def parsing_spec(spec: dict[str, Feature], label_spec: dict[str, Feature] | None = None) -> dict:
    """tf.io parsing spec: fixed shapes -> FixedLenFeature, variable first dim -> RaggedFeature (made dense later)."""
    parsing = {}
    for name, feature in spec.items():
        if feature.shape and feature.shape[0] is None:
            parsing[name] = tf.io.RaggedFeature(_tf_dtype(feature.dtype))
        else:
            parsing[name] = tf.io.FixedLenFeature([int(np.prod(feature.shape))], _tf_dtype(feature.dtype))
    for name, feature in (label_spec or {}).items():
        parsing[LABEL_PREFIX + name] = tf.io.FixedLenFeature([], _tf_dtype(feature.dtype))
    parsing[SOURCE_KEY] = tf.io.FixedLenFeature([], tf.string)
    return parsing


def parse_examples(serialized: tf.Tensor, spec: dict[str, Feature],
                   label_spec: dict[str, Feature] | None = None) -> dict[str, tf.Tensor]:
    """Parse one serialized Example into tensors with the schema's shapes (variable dims stay variable)."""
    parsed = tf.io.parse_single_example(serialized, parsing_spec(spec, label_spec))
    out = {}
    for name, feature in spec.items():
        value = parsed[name]
        if feature.shape and feature.shape[0] is None:
            inner = [int(d) for d in feature.shape[1:]]
            out[name] = tf.reshape(value, [-1] + inner)
        else:
            out[name] = tf.reshape(value, [int(d) for d in feature.shape])
    for name in label_spec or {}:
        out[LABEL_PREFIX + name] = parsed[LABEL_PREFIX + name]
    out[SOURCE_KEY] = parsed[SOURCE_KEY]
    return out


def example_to_numpy(serialized: bytes, spec: dict[str, Feature]) -> dict[str, np.ndarray]:
    """Eager helper for tools and tests: serialized Example -> numpy feature dict for `Converter.from_example`."""
    parsed = parse_examples(tf.constant(serialized), spec)
    return {name: parsed[name].numpy() for name in spec}

"""Versioned `tf.train.Example` schema: representation features + per-example labels + the source key.

Layout of one Example:
- the converter's features under their own names (`tokens`, `hits`, `audio`, ...), flattened row-major;
- `label/<name>` for reader labels (Groove style/bpm, GTZAN genre): bytes, int64 or float;
- `source/key`: the stable key of the input file, so every example can be traced back to its file.
`SCHEMA_VERSION` changes whenever this layout changes; the manifest records it and readers refuse a mismatch.

Examples are written as protobuf wire bytes without TensorFlow: Beam workers import this module, and importing
TensorFlow cost every worker seconds of start-up.  The tf.io parsing side lives in `dataset.py`.
"""

from __future__ import annotations

import numpy as np

from musicgen_tf.music.converter import Feature

SCHEMA_VERSION = 1
LABEL_PREFIX = "label/"
SOURCE_KEY = "source/key"
# Field numbers in tensorflow/core/example/{example,feature}.proto: Example.features, Features.feature (a map of
# key = 1, value = 2), the Feature oneof (bytes_list, float_list, int64_list) and each list's `value`.
_FEATURES, _FEATURE_MAP, _MAP_KEY, _MAP_VALUE, _LIST_VALUE = 1, 1, 1, 2, 1
_KIND_FIELD = {"bytes": 1, "float32": 2, "int64": 3}


def _varint(value: int) -> bytes:
    """One non-negative int as a base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _packed_varints(values: np.ndarray) -> bytes:
    """int64 values -> their varints back to back (a packed `repeated int64`); negatives take 10 bytes, as in proto."""
    values = np.asarray(values, np.int64).reshape(-1).view(np.uint64)
    if not values.size:
        return b""
    width = -(-max(int(values.max()).bit_length(), 1) // 7)  # bytes of the longest varint
    shifted = values[:, None] >> np.arange(0, 7 * width + 1, 7, dtype=np.uint64)  # [n, width + 1]
    more = (shifted[:, 1:] != 0).view(np.uint8) << 7  # high bit: another byte follows
    groups = (shifted[:, :-1] & 0x7F).astype(np.uint8) | more
    present = shifted[:, :-1] != 0
    present[:, 0] = True
    return groups[present].tobytes()


def _length_delimited(field: int, payload: bytes) -> bytes:
    """One length-delimited field (a string, bytes, packed values or an embedded message)."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def label_feature(value) -> Feature:
    """The stored type of one label value."""
    if isinstance(value, (bool, int, np.integer)):
        return Feature("int64", ())
    if isinstance(value, (float, np.floating)):
        return Feature("float32", ())
    return Feature("bytes", ())


def _list_payload(value, feature: Feature) -> bytes:
    """Wire bytes of the BytesList / FloatList / Int64List holding `value` (packed numbers, as TensorFlow writes)."""
    if feature.dtype == "bytes":
        values = [value] if isinstance(value, (str, bytes)) else list(value)
        return b"".join(_length_delimited(_LIST_VALUE, v.encode("utf-8") if isinstance(v, str) else v)
                        for v in values)
    array = np.asarray(value)
    expected = feature.shape
    if len(expected) != array.ndim or any(e is not None and e != a for e, a in zip(expected, array.shape)):
        raise ValueError(f"feature shape {array.shape} does not match the schema's {expected}")
    packed = (_packed_varints(array) if feature.dtype == "int64"
              else array.reshape(-1).astype("<f4").tobytes())
    return _length_delimited(_LIST_VALUE, packed) if packed else b""


def _entry(name: str, value, feature: Feature) -> bytes:
    """One `Features.feature` map entry: name -> Feature."""
    kind = _length_delimited(_KIND_FIELD[feature.dtype], _list_payload(value, feature))
    return _length_delimited(_FEATURE_MAP, _length_delimited(_MAP_KEY, name.encode("utf-8"))
                            + _length_delimited(_MAP_VALUE, kind))


def serialize_example(features: dict, spec: dict[str, Feature], labels: dict | None = None,
                      key: str = "") -> bytes:
    """Numpy feature dict (+ labels, source key) -> serialized tf.train.Example."""
    entries = [_entry(name, features[name], feature) for name, feature in spec.items()]
    entries += [_entry(LABEL_PREFIX + name, value, label_feature(value)) for name, value in (labels or {}).items()]
    entries.append(_entry(SOURCE_KEY, key, Feature("bytes", ())))
    return _length_delimited(_FEATURES, b"".join(entries))

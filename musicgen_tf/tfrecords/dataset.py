"""`make_dataset`: TFRecords written by `musicgen preprocess` -> batched tf.data pipeline of feature dicts.

The tf.io parsing of the Example schema (`schema.py` writes it without TensorFlow) lives here too.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from musicgen_tf.tfrecords.manifest import check_representation, feature_spec_from_json, read_manifest
from musicgen_tf.tfrecords.schema import LABEL_PREFIX, SOURCE_KEY
from musicgen_tf.music.converter import Feature


class EmptyDatasetError(ValueError):
    """A split has no examples; the message says which filters dropped the inputs."""


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


def _empty_split_message(data_dir: str, split: str, manifest: dict) -> str:
    files = manifest["files"]
    reasons = ", ".join(f"{count}x {reason}" for reason, count in manifest.get("skip_reasons", {}).items())
    return (f"0 examples in split {split!r} of {data_dir}: {files['read']} files read, {files['converted']} "
            f"converted, {files['skipped']} skipped" + (f" ({reasons})" if reasons else "")
            + f"; representation {manifest['representation']['name']!r}. See manifest.json 'skipped' for each file.")


def label_lookup(manifest: dict, name: str) -> tf.lookup.StaticHashTable:
    """String label -> index in the manifest's sorted vocabulary (unknown -> -1)."""
    vocabulary = manifest["labels"][name]["vocabulary"]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)),
        default_value=-1)


def shard_paths(data_dir: str, split: str, manifest: dict | None = None) -> list[str]:
    """The split's TFRecord files, as listed in the manifest."""
    data_dir = os.path.expanduser(data_dir)
    manifest = manifest or read_manifest(data_dir)
    return [os.path.join(data_dir, shard) for shard in manifest["splits"].get(split, {}).get("shards", [])]


def make_dataset(data_dir: str, split: str = "train", batch_size: int = 32, representation: str | None = None,
                 params: dict | None = None, shuffle: bool | None = None, shuffle_buffer: int = 10_000,
                 repeat: bool = False, drop_remainder: bool = False, labels: tuple[str, ...] = (),
                 bucket_boundaries: list[int] | None = None, seed: int | None = None,
                 cache: bool = False, with_source_key: bool = True, transform=None) -> tf.data.Dataset:
    """Parse, (shuffle), batch and prefetch one split.

    Yields dicts of tensors named as the converter's `feature_spec` (variable-length features are zero-padded per
    batch, or bucketed by length when `bucket_boundaries` is given), plus `<label>_id` int64 [batch] for each
    requested string label and `label/<name>` for numeric ones, and `source/key` (the input file; strings cannot
    enter an XLA-compiled step, so training drops it).  Refuses data of another representation or parameters.
    `transform`: dataset -> dataset applied to parsed examples before batching (token windows, augmentation).
    Iterate it under `integrity.naming_damaged_shards(shard_paths(data_dir, split))` to get a damaged shard named
    (TensorFlow's own error names no file).
    """
    data_dir = os.path.expanduser(data_dir)
    manifest = read_manifest(data_dir)
    check_representation(manifest, data_dir, representation, params)
    if manifest["splits"].get(split, {}).get("examples", 0) == 0:
        raise EmptyDatasetError(_empty_split_message(data_dir, split, manifest))
    spec = feature_spec_from_json(manifest["features"])
    unknown = [name for name in labels if name not in manifest["labels"]]
    if unknown:
        raise ValueError(f"labels {unknown} are not in {data_dir} (it has {sorted(manifest['labels'])})")
    label_spec = {name: Feature(manifest["labels"][name]["dtype"], ()) for name in labels}
    lookups = {name: label_lookup(manifest, name) for name in labels if label_spec[name].dtype == "bytes"}
    files = shard_paths(data_dir, split, manifest)
    shuffle = split == "train" if shuffle is None else shuffle

    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        files_ds = files_ds.shuffle(len(files), seed=seed)
    ds = files_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 4),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle or seed is not None)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def parse(serialized):
        example = parse_examples(serialized, spec, label_spec)
        for name, table in lookups.items():
            example[f"{name}_id"] = table.lookup(example.pop(LABEL_PREFIX + name))
        if not with_source_key:
            del example[SOURCE_KEY]
        return example

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if transform is not None:
        ds = transform(ds)
    variable = [name for name, f in spec.items() if f.shape and f.shape[0] is None]
    if variable and bucket_boundaries:
        ds = ds.bucket_by_sequence_length(
            lambda example: tf.shape(example[variable[0]])[0], bucket_boundaries,
            [batch_size] * (len(bucket_boundaries) + 1), drop_remainder=drop_remainder)
    elif variable:
        ds = ds.padded_batch(batch_size, drop_remainder=drop_remainder)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)

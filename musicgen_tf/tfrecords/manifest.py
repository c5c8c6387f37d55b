"""`manifest.json`: what a preprocessing run wrote, with which parameters, and every file it skipped (and why).

The manifest is the mark of a finished run: it is written last and atomically (a temporary file renamed into
place), so a killed job never leaves a folder that looks complete, and readers refuse a folder without one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from musicgen_tf.errors import SchemaMismatchError
from musicgen_tf.music.converter import Feature
from musicgen_tf.tfrecords.schema import SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
TEMPORARY_SUFFIX = ".tmp"


def feature_spec_to_json(spec: dict[str, Feature]) -> dict:
    return {name: {"dtype": f.dtype, "shape": list(f.shape)} for name, f in spec.items()}


def feature_spec_from_json(data: dict) -> dict[str, Feature]:
    return {name: Feature(f["dtype"], tuple(f["shape"])) for name, f in data.items()}


def write_manifest(output_dir: str, manifest: dict[str, Any]) -> str:
    """Write `<output_dir>/manifest.json` atomically (temporary name, then rename); any Beam filesystem (gs://...)."""
    from apache_beam.io.filesystems import FileSystems  # Beam only where preprocessing runs

    path = FileSystems.join(output_dir, MANIFEST_NAME)
    temporary = path + TEMPORARY_SUFFIX
    text = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    with FileSystems.create(temporary) as handle:
        handle.write(text.encode("utf-8"))
    FileSystems.rename([temporary], [path])  # local: os.rename, atomic; object stores: copy then delete
    return path


def unfinished_run_hint(data_dir: str) -> str:
    """Why a folder has no manifest: a killed `musicgen preprocess` leaves shards or Beam temp folders behind."""
    leftovers = [name for name in os.listdir(data_dir)
                 if name.endswith(".tfrecord") or name.startswith("beam-temp-")] if os.path.isdir(data_dir) else []
    if not leftovers:
        return "point --data at a folder written by `musicgen preprocess`"
    return (f"it holds {len(leftovers)} shard(s)/temporary folder(s) ({', '.join(sorted(leftovers)[:3])}"
            f"{', ...' if len(leftovers) > 3 else ''}) but no manifest, so its preprocessing run did not finish "
            "(killed?); rerun the same `musicgen preprocess` command to complete it")


def read_manifest(data_dir: str) -> dict[str, Any]:
    """Load and check a manifest; raise `SchemaMismatchError` for files written by another schema version."""
    path = os.path.join(os.path.expanduser(data_dir), MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {unfinished_run_hint(os.path.dirname(path))}")
    with open(path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaMismatchError(f"{path}: TFRecord schema version {version}, this musicgen_tf reads version "
                                  f"{SCHEMA_VERSION}; re-run `musicgen preprocess`")
    return manifest


def check_representation(manifest: dict, path: str, name: str | None = None, params: dict | None = None) -> None:
    """Refuse TFRecords of another representation or other converter parameters than the ones asked for."""
    stored = manifest["representation"]
    if name is not None and stored["name"] != name:
        raise SchemaMismatchError(f"{path} holds {stored['name']!r} examples, but {name!r} was asked for")
    if params is not None:
        differing = {k: (stored["params"].get(k), v) for k, v in params.items() if stored["params"].get(k) != v}
        if differing:
            shown = ", ".join(f"{k}: stored {a!r} != wanted {b!r}" for k, (a, b) in sorted(differing.items()))
            raise SchemaMismatchError(f"{path}: representation parameters differ ({shown}); re-run preprocessing "
                                      "with the model's parameters")

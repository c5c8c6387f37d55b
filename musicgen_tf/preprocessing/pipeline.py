"""The Apache Beam preprocessing pipeline: sources -> (load, convert) -> sharded TFRecords per split + manifest.

Bad files never stop the job: anything raised while loading or converting one source goes to Beam's dead-letter
output (`with_exception_handling`), is written next to the shards, and ends up in `manifest.json` with its reason.
Pipeline options (`--runner`, `--direct_num_workers`, Dataflow/Flink/Spark flags) pass through unchanged.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import glob
import json
import operator
import os
import sys
import time
from collections import Counter

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

import musicgen_tf
from musicgen_tf.errors import MusicgenError, SkipInput
from musicgen_tf.music.converter import Converter
from musicgen_tf.preprocessing import files
from musicgen_tf.preprocessing.progress import FileProgress, mark_done
from musicgen_tf.preprocessing.readers.base import SPLITS, Reader, Source
from musicgen_tf.tfrecords.manifest import MANIFEST_NAME, TEMPORARY_SUFFIX, feature_spec_to_json, write_manifest
from musicgen_tf.tfrecords.schema import SCHEMA_VERSION, label_feature, serialize_example

STATS_NAME = "_stats.json"
SKIPPED_NAME = "_skipped.jsonl"
DURATION_BINS_SECONDS = [0, 15, 30, 60, 120, 240, 480, float("inf")]


@dataclasses.dataclass
class Converted:
    """What one source produced: serialized examples and the numbers the manifest aggregates."""

    key: str
    split: str
    examples: list[bytes]
    notes: int
    pitch_counts: list[int]
    duration_seconds: float
    example_stats: list[dict]
    parsed_with: str | None = None


def convert_source(source: Source, reader: Reader, converter: Converter) -> Converted:
    """Load one source and convert it; raises (into the dead-letter output) when it yields nothing usable."""
    item = reader.load(source)
    if converter.input_kind == "waveform":
        examples = converter.to_examples(item, path=source.key)
        notes, pitch_counts = 0, [0] * 128
        duration = float(len(item.samples)) / item.sample_rate
    else:
        examples = converter.to_examples(item)
        pitches = np.fromiter(map(operator.attrgetter("pitch"), item.notes), dtype=np.int64, count=len(item.notes))
        notes, pitch_counts = len(item.notes), np.bincount(pitches, minlength=128)[:128].tolist()
        duration = float(item.total_time)
    if not examples:
        raise SkipInput(source.key, "no examples", f"the {converter.name} converter kept no window of this input")
    spec = converter.feature_spec()
    serialized = [serialize_example(example, spec, source.features, source.key) for example in examples]
    return Converted(source.key, source.split, serialized, notes, pitch_counts, duration,
                     [converter.stats(example) for example in examples], reader.parsed_with(item))


def skipped_record(dead_letter) -> dict:
    """Beam dead-letter element -> manifest record {key, path, reason, detail}."""
    source, (exc_type, exc_repr, trace) = dead_letter
    if exc_type is SkipInput or getattr(exc_type, "__name__", "") == "SkipInput":
        error = SkipInput.from_repr(exc_repr)
        reason, detail = error.reason, error.detail
    else:  # a bug or an unforeseen malformation: keep the type and the last traceback line
        reason = f"unexpected {getattr(exc_type, '__name__', exc_type)}"
        detail = (trace[-1].strip() if trace else exc_repr)[:300]
    return {"key": source.key, "path": source.path, "split": source.split, "reason": reason, "detail": detail}


class StatsCombineFn(beam.CombineFn):
    """Sums per-file numbers into corpus statistics (counts per split, pitch and duration histograms)."""

    def create_accumulator(self):
        return {"files": Counter(), "examples": Counter(), "notes": 0, "pitch_counts": np.zeros(128, np.int64),
                "duration_counts": np.zeros(len(DURATION_BINS_SECONDS) - 1, np.int64), "example_stats": {},
                "parsed_with": Counter()}

    def add_input(self, acc, converted: Converted):
        acc["files"][converted.split] += 1
        acc["examples"][converted.split] += len(converted.examples)
        acc["notes"] += converted.notes
        if converted.parsed_with:
            acc["parsed_with"][converted.parsed_with] += 1
        acc["pitch_counts"] += np.asarray(converted.pitch_counts, np.int64)
        acc["duration_counts"][bisect.bisect_right(DURATION_BINS_SECONDS, converted.duration_seconds) - 1] += 1
        for stats in converted.example_stats:
            for name, value in stats.items():
                entry = acc["example_stats"].setdefault(name, [0, 0.0, float("inf"), float("-inf")])
                entry[0] += 1
                entry[1] += value
                entry[2] = min(entry[2], value)
                entry[3] = max(entry[3], value)
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            merged["files"].update(acc["files"])
            merged["examples"].update(acc["examples"])
            merged["notes"] += acc["notes"]
            merged["parsed_with"].update(acc["parsed_with"])
            merged["pitch_counts"] += acc["pitch_counts"]
            merged["duration_counts"] += acc["duration_counts"]
            for name, (n, total, low, high) in acc["example_stats"].items():
                entry = merged["example_stats"].setdefault(name, [0, 0.0, float("inf"), float("-inf")])
                entry[0] += n
                entry[1] += total
                entry[2] = min(entry[2], low)
                entry[3] = max(entry[3], high)
        return merged

    def extract_output(self, acc):
        return json.dumps({
            "files": dict(acc["files"]), "examples": dict(acc["examples"]), "notes": int(acc["notes"]),
            "parsed_with": dict(acc["parsed_with"]),
            "pitch_histogram": acc["pitch_counts"].tolist(),
            "duration_histogram": {"bin_edges_seconds": [str(b) for b in DURATION_BINS_SECONDS],
                                   "counts": acc["duration_counts"].tolist()},
            "example_stats": {name: {"count": n, "mean": total / max(n, 1), "min": low, "max": high}
                              for name, (n, total, low, high) in acc["example_stats"].items()},
        })


def label_spec(sources: list[Source]) -> dict:
    """Label names, stored types and (for strings) the sorted vocabulary, for models to build embeddings."""
    labels: dict[str, dict] = {}
    for source in sources:
        for name, value in source.features.items():
            entry = labels.setdefault(name, {"dtype": label_feature(value).dtype, "values": set()})
            if entry["dtype"] == "bytes":
                entry["values"].add(str(value))
    return {name: {"dtype": e["dtype"], **({"vocabulary": sorted(e["values"])} if e["dtype"] == "bytes" else {})}
            for name, e in sorted(labels.items())}


def _read_text(path: str) -> str:
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8")


def _matches(pattern: str) -> list[str]:
    return [m.path for m in FileSystems.match([pattern])[0].metadata_list]


def _prepare_output(output_dir: str, overwrite: bool) -> None:
    """Create the folder, or clear what an earlier run left in it.

    A finished run (it has `manifest.json`) is replaced only with `overwrite`.  A run killed before its manifest
    was written left partial shards, Beam's `beam-temp-*` folders and our intermediate files: those are removed
    without asking, so rerunning the same command completes the job with exactly an uninterrupted run's output.
    The manifest goes first, so the folder never looks finished while its shards are being deleted.
    """
    if not FileSystems.exists(output_dir):
        FileSystems.mkdirs(output_dir)
        return
    manifest = _matches(FileSystems.join(output_dir, MANIFEST_NAME))
    if manifest and not overwrite:
        raise MusicgenError(f"{output_dir} already holds a finished preprocessing run (manifest.json); pass "
                            "--overwrite to replace it")
    if manifest:
        FileSystems.delete(manifest)
    leftovers = [path for pattern in ("*.tfrecord", MANIFEST_NAME + TEMPORARY_SUFFIX, STATS_NAME, SKIPPED_NAME,
                                      "beam-temp-*/*", "beam-temp-*")
                 for path in _matches(FileSystems.join(output_dir, pattern))]
    if "://" not in output_dir:  # local folders: `match` lists files only, and an empty temp folder has none
        leftovers += sorted(glob.glob(os.path.join(glob.escape(output_dir), "beam-temp-*")))
    if leftovers and not manifest:
        print(f"note: {output_dir} holds an unfinished run (no manifest.json); removing its {len(leftovers)} "
              "partial shards and temporary files", file=sys.stderr)
    for path in leftovers:  # a temporary folder's files first, then the folder (object stores have no folders)
        if FileSystems.exists(path):
            FileSystems.delete([path])


def run_preprocess(reader: Reader, converter: Converter, output_dir: str, input_dir: str | None = None,
                   limit: int | None = None, num_shards: int = 4, pipeline_args: list[str] | None = None,
                   dataset_name: str | None = None, overwrite: bool = False) -> dict:
    """Run the whole job and return the manifest (also written to `<output_dir>/manifest.json`)."""
    if reader.output_kind != converter.input_kind:
        raise MusicgenError(f"dataset {reader.name!r} gives {reader.output_kind} inputs but representation "
                            f"{converter.name!r} needs {converter.input_kind} inputs")
    started = time.time()
    options = PipelineOptions(pipeline_args or [])
    FileSystems.set_options(options)  # the launcher lists a gs:// or s3:// --input with the job's credentials flags
    sources = reader.list_sources(input_dir)
    listed = len(sources)
    if limit:
        sources = sources[:limit]
    output_dir = os.path.expanduser(output_dir)
    _prepare_output(output_dir, overwrite)
    progress_path = FileProgress.local_path(output_dir, pipeline_args or [])
    with FileProgress(progress_path, len(sources), "files converted"), beam.Pipeline(options=options) as pipeline:
        # Beam encodes source indices, not thousands of pickled Sources (seconds of runner time); the list itself
        # travels once, inside the DoFn.  The reshuffle spreads the indices over the workers.
        converted, failed = (
            pipeline
            | "ListSources" >> beam.Create(list(range(len(sources))), reshuffle=True)
            | "Source" >> beam.Map(sources.__getitem__)
            | "LoadAndConvert" >> beam.Map(convert_source, reader, converter).with_exception_handling())
        _ = (converted, failed) | "Done" >> beam.Flatten() | "Progress" >> beam.Map(mark_done, progress_path)
        by_split = converted | "BySplit" >> beam.Partition(lambda c, n: SPLITS.index(c.split), len(SPLITS))
        for split, pcoll in zip(SPLITS, by_split):
            (pcoll
             | f"Examples_{split}" >> beam.FlatMap(lambda c: c.examples)
             | f"Write_{split}" >> beam.io.WriteToTFRecord(
                 FileSystems.join(output_dir, split), file_name_suffix=".tfrecord",
                 num_shards=num_shards if split == "train" else 1))
        (converted
         | "Stats" >> beam.CombineGlobally(StatsCombineFn())
         | "WriteStats" >> beam.io.WriteToText(FileSystems.join(output_dir, STATS_NAME), shard_name_template=""))
        (failed
         | "SkipRecords" >> beam.Map(lambda bad: json.dumps(skipped_record(bad), ensure_ascii=False))
         | "WriteSkipped" >> beam.io.WriteToText(FileSystems.join(output_dir, SKIPPED_NAME),
                                                 shard_name_template=""))
    stats = json.loads(_read_text(FileSystems.join(output_dir, STATS_NAME)))
    skipped_path = FileSystems.join(output_dir, SKIPPED_NAME)
    skipped = [json.loads(line) for line in _read_text(skipped_path).splitlines() if line.strip()]
    skipped.sort(key=lambda record: record["key"])
    FileSystems.delete([FileSystems.join(output_dir, STATS_NAME), skipped_path])
    splits = {}
    for split in SPLITS:
        shards = sorted(os.path.basename(m.path) for m in
                        FileSystems.match([FileSystems.join(output_dir, f"{split}-*.tfrecord")])[0].metadata_list)
        splits[split] = {"files": stats["files"].get(split, 0), "examples": stats["examples"].get(split, 0),
                         "shards": shards}
    counts = {"listed": listed, "read": len(sources), "converted": sum(stats["files"].values()),
             "skipped": len(skipped)}
    if stats["parsed_with"]:  # readers with more than one parser: which one decoded the converted files
        counts["parsed_with"] = stats["parsed_with"]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "musicgen_tf_version": musicgen_tf.__version__,
        "dataset": dataset_name or reader.name,
        "input": files.absolute(input_dir) if input_dir else None,
        "representation": converter.get_config(),
        "features": feature_spec_to_json(converter.feature_spec()),
        "labels": label_spec(sources),
        "splits": splits,
        "files": counts,
        "skip_reasons": dict(Counter(record["reason"] for record in skipped).most_common()),
        "skipped": skipped,
        "stats": {key: stats[key] for key in ("notes", "pitch_histogram", "duration_histogram", "example_stats")},
        "seconds": round(time.time() - started, 2),
    }
    write_manifest(output_dir, manifest)
    return manifest

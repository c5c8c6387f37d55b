"""`musicgen` command line: preprocess corpora to TFRecords (train/generate/export arrive with their issues)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

# Quiet TensorFlow's C++ start-up chatter before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn.t find ffmpeg")  # pydub, imported by note_seq; we never use it

from musicgen_tf.errors import MusicgenError  # noqa: E402

DEFAULT_REPRESENTATIONS = {
    "groove": "groovae", "pop1k7": "remi", "esac": "melody", "gtzan": "waveform", "midi-dir": "remi",
    "music21-essen": "melody",
}
DEMO_TUNES = 2000


def _parse_param(text: str):
    """`name=value` with a JSON value when it parses (numbers, lists, booleans), else the raw string."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--param expects name=value, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def add_preprocess_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=sorted(DEFAULT_REPRESENTATIONS))
    parser.add_argument("--input", help="dataset folder (not needed for music21-essen)")
    parser.add_argument("--output", required=True, help="folder for the TFRecord shards and manifest.json")
    parser.add_argument("--representation", help="default: the dataset's usual one "
                        + ", ".join(f"{d}->{r}" for d, r in DEFAULT_REPRESENTATIONS.items()))
    parser.add_argument("--param", action="append", type=_parse_param, default=[], metavar="NAME=VALUE",
                        help="converter parameter, e.g. --param slice_bars=16 --param drum_map=my_kit.json")
    parser.add_argument("--limit", type=int, help="read only the first N inputs (quick runs)")
    parser.add_argument("--num-shards", type=int, default=4, help="train shards (validation/test get one each)")
    parser.add_argument("--workers", type=int, default=1,
                        help="DirectRunner worker processes (ignored when --runner names another runner)")
    parser.add_argument("--genres", help="GTZAN: comma-separated genres to keep (default all)")
    parser.add_argument("--pop1k7-variant", default="midi_analyzed",
                        choices=["midi_analyzed", "midi_transcribed", "midi_synchronized"])
    parser.add_argument("--overwrite", action="store_true", help="replace TFRecords already in --output")


def _pipeline_args(args, extra: list[str]) -> list[str]:
    if args.workers > 1 and not any(a.startswith("--runner") for a in extra):
        extra = extra + local_workers_args(args.workers)
    return extra


def local_workers_args(workers: int) -> list[str]:
    """Beam flags for N local worker processes, with their INFO chatter turned down."""
    return [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing",
            "--default_sdk_harness_log_level=WARNING"]


def run_preprocess_command(args, extra: list[str]) -> dict:
    from musicgen_tf.music.representations import get_converter
    from musicgen_tf.preprocessing.pipeline import run_preprocess
    from musicgen_tf.preprocessing.readers import get_reader

    options = {}
    if args.dataset == "gtzan" and args.genres:
        options["genres"] = args.genres.split(",")
    if args.dataset == "pop1k7":
        options["variant"] = args.pop1k7_variant
    reader = get_reader(args.dataset, **options)
    converter = get_converter(args.representation or DEFAULT_REPRESENTATIONS[args.dataset], **dict(args.param))
    manifest = run_preprocess(reader, converter, args.output, input_dir=args.input, limit=args.limit,
                              num_shards=args.num_shards, pipeline_args=_pipeline_args(args, extra),
                              dataset_name=args.dataset, overwrite=args.overwrite)
    print_summary(manifest, args.output)
    return manifest


def print_summary(manifest: dict, output: str) -> None:
    files = manifest["files"]
    print(f"\n{manifest['dataset']} -> {manifest['representation']['name']} TFRecords in {output}")
    print(f"  files: {files['read']} read, {files['converted']} converted, {files['skipped']} skipped"
          + (f" (of {files['listed']} listed)" if files["listed"] != files["read"] else ""))
    for split, info in manifest["splits"].items():
        print(f"  {split:<10} {info['examples']:>7} examples from {info['files']} files in {len(info['shards'])} shards")
    if manifest["skip_reasons"]:
        print("  skipped because:")
        for reason, count in list(manifest["skip_reasons"].items())[:10]:
            print(f"    {count:>6}  {reason}")
        print("  (every skipped file and its reason: manifest.json -> skipped)")
    print(f"  notes: {manifest['stats']['notes']}, time: {manifest['seconds']:.1f}s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="musicgen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    preprocess = commands.add_parser(
        "preprocess", help="raw corpus -> sharded TFRecords + manifest.json (Apache Beam)",
        description="Unknown --flags are passed to Apache Beam (e.g. --runner=DataflowRunner --project=...).")
    add_preprocess_arguments(preprocess)
    demo = commands.add_parser("demo", help="preprocess the Essen folksongs shipped with music21 (no download)")
    demo.add_argument("--output", default="demo_out", help="run folder (TFRecords go to OUTPUT/tfrecords)")
    demo.add_argument("--limit", type=int, default=DEMO_TUNES, help="number of tunes (0 = all 8514)")
    demo.add_argument("--workers", type=int, default=2)
    return parser


def run_demo(args, extra):
    preprocess_args = argparse.Namespace(
        dataset="music21-essen", input=None, output=os.path.join(args.output, "tfrecords"),
        representation="melody", param=[], limit=args.limit or None, num_shards=4, workers=args.workers,
        genres=None, pop1k7_variant="midi_analyzed", overwrite=True)
    run_preprocess_command(preprocess_args, extra)


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    try:
        if args.command == "preprocess":
            run_preprocess_command(args, extra)
        elif args.command == "demo":
            run_demo(args, extra)
    except (MusicgenError, ValueError, FileNotFoundError) as error:
        print(f"musicgen {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

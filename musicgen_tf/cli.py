"""`musicgen` command line: preprocess, train, generate, interpolate, reconstruct, encode, decode, evaluate, export,
client, import-remi, import-magenta and more."""

from __future__ import annotations

import argparse
import json
import os
import sys

from musicgen_tf import quiet

quiet.configure()  # once, before anything imports TensorFlow or Beam

from musicgen_tf.demo import DEMO_PRESET, DEMO_TUNES, EVAL_SAMPLES  # noqa: E402
from musicgen_tf.errors import MusicgenError  # noqa: E402

DEFAULT_REPRESENTATIONS = {
    "groove": "groovae", "pop1k7": "remi", "esac": "melody", "gtzan": "waveform", "midi-dir": "remi",
    "music21-essen": "melody",
}


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
    parser.add_argument("--input", help="dataset folder, local or any Beam filesystem URI (gs://, s3://, "
                        "hdfs://); not needed for music21-essen")
    parser.add_argument("--output", required=True, help="folder for the TFRecord shards and manifest.json")
    parser.add_argument("--representation", help="default: the dataset's usual one "
                        + ", ".join(f"{d}->{r}" for d, r in DEFAULT_REPRESENTATIONS.items()))
    parser.add_argument("--preset", help="take the representation and its parameters from a training preset "
                        "(e.g. groovae_4bar), so the records fit that model")
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
    representation = args.representation or DEFAULT_REPRESENTATIONS[args.dataset]
    params = dict(args.param)
    if args.preset:
        from musicgen_tf.configs import get_preset

        preset = get_preset(args.preset)
        representation, params = preset.representation, {**preset.converter_params, **params}
    converter = get_converter(representation, **params)
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
    if files.get("parsed_with"):
        print("  parsed with: " + ", ".join(f"{name} {count}" for name, count in files["parsed_with"].items()))
    for split, info in manifest["splits"].items():
        print(f"  {split:<10} {info['examples']:>7} examples from {info['files']} files in {len(info['shards'])} shards")
    if manifest["skip_reasons"]:
        print("  skipped because:")
        for reason, count in list(manifest["skip_reasons"].items())[:10]:
            print(f"    {count:>6}  {reason}")
        print("  (every skipped file and its reason: manifest.json -> skipped)")
    print(f"  notes: {manifest['stats']['notes']}, time: {manifest['seconds']:.1f}s")


def _float_list(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="musicgen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    preprocess = commands.add_parser(
        "preprocess", help="raw corpus -> sharded TFRecords + manifest.json (Apache Beam)",
        description="Unknown --flags are passed to Apache Beam (e.g. --runner=DataflowRunner --project=...).")
    add_preprocess_arguments(preprocess)
    train = commands.add_parser("train", help="train a preset on TFRecords; rerun the same command to resume")
    train.add_argument("--preset", required=True)
    train.add_argument("--data", required=True, help="folder written by `musicgen preprocess`")
    train.add_argument("--run-dir", required=True, help="where config, checkpoints, logs and samples go")
    train.add_argument("--tiny", action="store_true", help="shrink the preset to test size")
    train.add_argument("--epochs", type=int, help="epochs of --steps-per-epoch steps (default: the preset's)")
    train.add_argument("--steps", type=int, help="total optimizer steps (default: the preset's)")
    train.add_argument("--steps-per-epoch", type=int, help="also the checkpoint and resume period")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--mixed-precision", nargs="?", const="on", choices=["on", "off", "auto"],
                       help="mixed_float16 policy with loss scaling; alone means on, auto = where a GPU is visible "
                       "(default: the preset's; remi_txl_pop: auto)")
    train.add_argument("--xla", action="store_true", help="compile the train step with XLA (jit_compile)")
    train.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi-worker"])
    train.add_argument("--seed", type=int)

    def add_run_arguments(command, out_default):
        command.add_argument("--run-dir", required=True, help="a folder written by `musicgen train`")
        command.add_argument("--checkpoint", help="weights file or epoch number (default: the newest weights)")
        command.add_argument("--out", default=out_default, help="output folder for MIDI/WAV/PNG")

    generate = commands.add_parser(
        "generate", help="sample new pieces (MIDI, WAV, piano-roll PNG; audio models: WAV and spectrograms)",
        description="Melody beta-VAE: --prompt \"60 _ _ 62\" continues a typed melody. Transformer-XL: --bars N "
                    "pieces from scratch, or --prompt song.mid --prompt-bars 8 --bars 24 continues a MIDI file. "
                    "Audio CVAE: --label names the genre.")
    add_run_arguments(generate, "samples")
    generate.add_argument("--num", type=int, default=None, help="pieces to generate (default 8; 1 for --prompt)")
    generate.add_argument("--temperature", type=float, help="default 1.0 (Transformer-XL: 1.2, as the paper)")
    generate.add_argument("--top-k", type=int, help="Transformer-XL: sample among the k likeliest tokens (5)")
    generate.add_argument("--beam", type=int, default=0, metavar="N",
                          help="Transformer-XL: beam search with N beams instead of sampling (the --num best beams; "
                          "--beam 1 is greedy)")
    generate.add_argument("--seed", type=int, help="same seed, same samples")
    generate.add_argument("--label", "--genre", dest="label",
                          help="for a conditioned model: the label value (a style, a genre) to sample")
    generate.add_argument("--prompt", help='melody beta-VAE: symbols such as "60 _ _ 62 _ 64"; '
                          "Transformer-XL: a MIDI file to continue")
    generate.add_argument("--steps", type=int, default=64, help="melody --prompt: symbols to add")
    generate.add_argument("--bars", type=int, help="Transformer-XL: bars to generate (32; 24 after a prompt)")
    generate.add_argument("--prompt-bars", type=int, default=8, help="Transformer-XL: bars of the prompt kept")
    generate.add_argument("--max-tokens", type=int, metavar="N",
                          help="Transformer-XL: stop after N new tokens whatever the bar count (default bars x 256)")
    generate.add_argument("--events-out", metavar="FILE.json",
                          help='Transformer-XL: write {"prompt_events": [...], "generated_events": [...]} in the '
                          "Pop Music Transformer's event names (one piece: --num 1, the default with this option)")
    interpolate = commands.add_parser("interpolate", help="walk the latent space from one MIDI file to another")
    interpolate.add_argument("midi_a")
    interpolate.add_argument("midi_b")
    add_run_arguments(interpolate, "interpolation")
    interpolate.add_argument("--steps", type=int, default=7)
    reconstruct = commands.add_parser("reconstruct", help="encode a MIDI file (audio models: a WAV) and decode it")
    reconstruct.add_argument("midi", metavar="FILE")
    add_run_arguments(reconstruct, "reconstruction")
    reconstruct.add_argument("--temperature", type=float, default=0.0)

    encode = commands.add_parser("encode", help="MusicVAE/GrooVAE: mu and sigma of every window of a MIDI file")
    encode.add_argument("midi", metavar="FILE")
    encode.add_argument("--run-dir", required=True, help="a folder written by `musicgen train` or import-magenta")
    encode.add_argument("--checkpoint", help="weights file or epoch number (default: the newest weights)")
    encode.add_argument("--json", action="store_true",
                        help='print {"windows": [{"input": [...], "mu": [...], "sigma": [...]}, ...]}')
    decode = commands.add_parser("decode", help='MusicVAE/GrooVAE: one MIDI file per latent vector of a '
                                 '{"z": [[...], ...]} JSON file')
    add_run_arguments(decode, "decoded")
    decode.add_argument("--z", required=True, help='JSON file {"z": [[...], ...]} (e.g. from encode --json)')
    decode.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy (argmax / hits > 0.5)")
    decode.add_argument("--seed", type=int, help="same seed, same samples (temperature > 0)")
    import_magenta = commands.add_parser(
        "import-magenta", help="a released Magenta MusicVAE/GrooVAE checkpoint -> a run directory",
        description="Reads a Magenta TF1 checkpoint (prefix, folder holding one, or the .tar bundle as downloaded) "
                    "into the preset of the same name; the run directory then works with generate, interpolate, "
                    "reconstruct, encode, decode and export.")
    import_magenta.add_argument("--config", required=True, help="Magenta config name, e.g. cat-mel_2bar_big")
    import_magenta.add_argument("--checkpoint", required=True, help="checkpoint prefix, folder or .tar bundle")
    import_magenta.add_argument("--run-dir", required=True, help="new folder to write (must not exist or be empty)")

    from musicgen_tf.serving import commands as serving_commands

    export = commands.add_parser("export", help="SavedModel for TF Serving (<export-dir>/<name>/<version>/) "
                                 "with in-graph generation signatures, plus models.config")
    serving_commands.add_export_arguments(export)
    client = commands.add_parser("client", help="call a running TF Serving (REST or --grpc) and write MIDI/WAV/PNG")
    serving_commands.add_client_arguments(client)

    from musicgen_tf.studio.launch import add_studio_arguments

    studio = commands.add_parser("studio", help="web page to sample, continue, interpolate, see the score and "
                                 "hear the result, from exported models (in-process or a running TF Serving)")
    add_studio_arguments(studio)

    import_remi = commands.add_parser(
        "import-remi", help="a released Pop Music Transformer checkpoint (REMI-tempo-checkpoint/, "
        "REMI-tempo-chord-checkpoint/) -> a run directory that generate, evaluate, export and the studio use")
    import_remi.add_argument("--checkpoint", required=True, metavar="DIR",
                             help="the released folder (dictionary.pkl, model.index, model.data-*)")
    import_remi.add_argument("--run-dir", required=True, help="the new run directory (must not exist)")
    import_remi.add_argument("--mem-len", type=int, default=512, help="generation memory in states (the "
                             "original's 512)")

    evaluate = commands.add_parser(
        "evaluate", help="H1, H4, GS, CPI and SI of every MIDI file in a folder; with --reference, Yang & Lerch's "
        "feature-distribution comparison (overlapping area, KL divergence) of two folders; with --sweep, a "
        "Transformer-XL temperature x top-k grid")
    evaluate.add_argument("--midi", help="folder of MIDI files (generated or training pieces)")
    evaluate.add_argument("--reference", help="folder of reference MIDI files (e.g. held-out real pieces; with "
                          "--sweep, the training pieces)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    evaluate.add_argument("--plot", help="with --reference: PNG of every feature's distance distributions")
    evaluate.add_argument("--no-si", dest="structure", action="store_false",
                          help="skip the SI (structureness) columns, the slow part (~3 s per 32-bar piece)")
    evaluate.add_argument("--sweep", action="store_true",
                          help="Transformer-XL: generate --num pieces per temperature x top-k and tabulate the "
                          "metrics against --reference (seed 003: 20 pieces, T 0.8/1.0/1.2 x k 20/40/60)")
    evaluate.add_argument("--run-dir", help="--sweep: the Transformer-XL run to sample")
    evaluate.add_argument("--out", default="sweep", help="--sweep: where the generated MIDI goes")
    evaluate.add_argument("--temperatures", type=_float_list, default=None, help="--sweep: e.g. 0.8,1.0,1.2")
    evaluate.add_argument("--top-ks", type=_int_list, default=None, help="--sweep: e.g. 20,40,60")
    evaluate.add_argument("--num", type=int, default=None, help="--sweep: pieces per setting (20)")
    evaluate.add_argument("--bars", type=int, default=32, help="--sweep: bars per piece (32)")
    evaluate.add_argument("--max-tokens", type=int, help="--sweep: token cap per piece (default bars x 256)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--checkpoint", help="--sweep: weights file or epoch number (default: the newest)")

    demo = commands.add_parser("demo", help="Essen folksongs shipped with music21 -> TFRecords -> a melody "
                               "MusicVAE trained for a few minutes -> MIDI/WAV/PNG samples (no download)")
    demo.add_argument("--output", default="demo_out",
                      help="folder for tfrecords/, run/, samples/, models/ (the export) and evaluation/")
    demo.add_argument("--limit", type=int, default=DEMO_TUNES,
                      help="read only the first N tunes (default 0: all 8,514)")
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--steps", type=int, help=f"training steps (default: the {DEMO_PRESET} preset's)")
    demo.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES,
                      help="samples compared with the held-out test melodies in the quality table")
    return parser


def run_train(args) -> None:
    from musicgen_tf.train import distributed
    from musicgen_tf.train.trainer import TrainOptions, train

    train(TrainOptions(preset=args.preset, data=args.data, run_dir=args.run_dir, tiny=args.tiny,
                       epochs=args.epochs, steps=args.steps, steps_per_epoch=args.steps_per_epoch,
                       batch_size=args.batch_size, mixed_precision=args.mixed_precision, xla=args.xla,
                       strategy=args.strategy, seed=args.seed))
    if args.strategy == "multi-worker" and not distributed.tf_config_is_chief():
        print("this worker is done; the chief wrote the run directory")
        return
    print(f"trained weights: {os.path.join(os.path.expanduser(args.run_dir), 'model.weights.h5')}")


def run_generation(args) -> None:
    """Dispatch generate/interpolate/reconstruct on the run's model family."""
    from musicgen_tf.train.run_dir import RunDir

    family = RunDir(args.run_dir).read_config()["preset"]["family"]
    if args.command == "generate":
        results = _generate(family, args)
    elif args.command == "interpolate":
        from musicgen_tf import generation

        results = generation.interpolate(args.run_dir, args.midi_a, args.midi_b, args.out, steps=args.steps,
                                         checkpoint=args.checkpoint)
    elif family == "resnet_cvae":
        from musicgen_tf.audio_generation import reconstruct_audio

        results = reconstruct_audio(args.run_dir, args.midi, args.out, checkpoint=args.checkpoint)
    else:
        from musicgen_tf import generation

        results = generation.reconstruct(args.run_dir, args.midi, args.out, temperature=args.temperature,
                                         checkpoint=args.checkpoint)
    for paths in results:
        print("  " + "  ".join(str(path) for path in paths.values()))


def _generate(family: str, args) -> list[dict]:
    common = {"checkpoint": args.checkpoint, "seed": args.seed}
    if family == "transformer_xl":
        from musicgen_tf import txl_generation

        sampling = {"temperature": 1.2 if args.temperature is None else args.temperature,
                    "top_k": 5 if args.top_k is None else args.top_k, "beam": args.beam,
                    "max_tokens": args.max_tokens, "events_out": args.events_out, **common}
        if args.prompt:
            return txl_generation.continue_remi(args.run_dir, args.prompt, args.out, prompt_bars=args.prompt_bars,
                                                bars=args.bars or 24, num=args.num or 1, **sampling)
        return txl_generation.generate_remi(args.run_dir, args.out,
                                            num=args.num or (1 if args.beam or args.events_out else 8),
                                            bars=args.bars or 32, **sampling)
    temperature = 1.0 if args.temperature is None else args.temperature
    if family == "resnet_cvae":
        from musicgen_tf.audio_generation import generate_audio

        return generate_audio(args.run_dir, args.out, num=args.num or 4, genre=args.label, temperature=temperature,
                              **common)
    from musicgen_tf import generation

    if args.prompt:
        return generation.continue_melody(args.run_dir, args.prompt, args.out, steps=args.steps,
                                          temperature=temperature, **common)
    return generation.generate(args.run_dir, args.out, num=args.num or 8, temperature=temperature,
                               label=args.label, **common)


def run_import_remi(args) -> None:
    from musicgen_tf.interop.remi import import_checkpoint

    result = import_checkpoint(args.checkpoint, args.run_dir, mem_len=args.mem_len)
    sizes = result.sizes
    print(f"imported {result.variables} variables ({sizes['num_layers']} layers, d {sizes['d_model']}, "
          f"{sizes['num_heads']} heads, {len(result.vocabulary)} events"
          f"{', with chords' if any(e.startswith('Chord_') for e in result.vocabulary) else ''}) into "
          f"{result.run_dir}")


def run_evaluate(args) -> None:
    if args.sweep:
        if not (args.run_dir and args.reference):
            raise MusicgenError("evaluate --sweep needs --run-dir (a Transformer-XL run) and --reference "
                                "(training MIDI)")
        from musicgen_tf import txl_sweep

        result = txl_sweep.sweep(args.run_dir, args.reference, args.out,
                                 temperatures=args.temperatures or txl_sweep.TEMPERATURES,
                                 top_ks=args.top_ks or txl_sweep.TOP_KS, num=args.num or txl_sweep.PIECES,
                                 bars=args.bars, seed=args.seed, max_tokens=args.max_tokens, structure=args.structure,
                                 checkpoint=args.checkpoint)
        txl_sweep.print_sweep(result, json_out=args.json)
        return
    if not args.midi:
        raise MusicgenError("evaluate needs --midi DIR (or --sweep --run-dir R --reference DIR)")
    if args.reference:
        from musicgen_tf.music.evaluation_report import evaluate_reference_command

        evaluate_reference_command(args.midi, args.reference, json_out=args.json, plot=args.plot)
        return
    if args.plot:
        raise MusicgenError("--plot needs --reference (the distributions compare two folders)")
    from musicgen_tf.txl_generation import evaluate_command

    evaluate_command(args.midi, json_out=args.json, structure=args.structure)


def main(argv: list[str] | None = None) -> int:
    """The `musicgen` program (argv None: the process's own arguments, stderr filtered) or a call with argv."""
    if argv is None:
        quiet.install_stderr_filter()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("preprocess", "demo"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "preprocess":
            run_preprocess_command(args, extra)
        elif args.command == "demo":
            from musicgen_tf.demo import run_demo

            run_demo(args, extra, run_preprocess_command)
        elif args.command == "train":
            run_train(args)
        elif args.command in ("export", "client"):
            from musicgen_tf.serving import commands as serving_commands

            (serving_commands.run_export if args.command == "export" else serving_commands.run_client)(args)
        elif args.command == "studio":
            from musicgen_tf.studio.launch import run_studio

            return run_studio(args)
        elif args.command == "evaluate":
            run_evaluate(args)
        elif args.command in ("encode", "decode"):
            from musicgen_tf import latent

            (latent.run_encode_command if args.command == "encode" else latent.run_decode_command)(args)
        elif args.command == "import-magenta":
            from musicgen_tf.interop.magenta import run_import_command

            run_import_command(args)
        elif args.command == "import-remi":
            run_import_remi(args)
        else:
            run_generation(args)
    except (MusicgenError, ValueError, FileNotFoundError) as error:
        print(f"musicgen {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

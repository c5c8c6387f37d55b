"""CLI glue for `musicgen export` and `musicgen client` (cli.py adds the sub-parsers and calls `run_*`).

    musicgen export --run-dir R --export-dir models/ --name groovae --version 1 [--check]
    musicgen client --server localhost:8501 --model groovae [--grpc] sample --num 4 --out samples/
    musicgen client --model melody interpolate --a a.mid --b b.mid --steps 5 --out path/
    musicgen client --model beta-melody continue --prompt "60 _ _ 62 _ 64" --steps 32 --out cont/

Wiring (cli.py):
    export = commands.add_parser("export", help=...);  serving.commands.add_export_arguments(export)
    client = commands.add_parser("client", help=...);  serving.commands.add_client_arguments(client)
    ... elif args.command == "export": return serving.commands.run_export(args)
`run_*` raise `MusicgenError` / `FileNotFoundError` / `ValueError` on bad input (main prints them) and return 0.
"""

from __future__ import annotations

import argparse


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, help="a run folder written by `musicgen train`")
    parser.add_argument("--export-dir", required=True,
                        help="TF Serving model root: writes <export-dir>/<name>/<version>/ and "
                             "<export-dir>/models.config")
    parser.add_argument("--name", required=True, help="model name clients ask for (/v1/models/<name>)")
    parser.add_argument("--version", type=int, default=1, help="version folder; TF Serving serves the highest")
    parser.add_argument("--checkpoint", help="a .weights.h5 file or an epoch number (default: the final weights)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    parser.add_argument("--serving-root", default="/models",
                        help="where the server sees --export-dir, for models.config base_path (default /models, "
                             "as in `docker run -v $PWD/models:/models tensorflow/serving`)")
    parser.add_argument("--check", action="store_true",
                        help="reload the export in a fresh TensorFlow-only process and compare every signature "
                             "with the Keras model (tolerance 1e-5)")


def run_export(args) -> int:
    from musicgen_tf.serving.export import MODELS_CONFIG, check, export, read_metadata

    path = export(args.run_dir, args.export_dir, args.name, version=args.version, checkpoint=args.checkpoint,
                  overwrite=args.overwrite, serving_root=args.serving_root)
    metadata = read_metadata(path)
    print(f"exported {metadata['preset']['name']} ({metadata['model_class']}) to {path}")
    for name, signature in metadata["signatures"].items():
        inputs = ", ".join(f"{k} {v['dtype']} {v['shape']}" for k, v in signature["inputs"].items())
        outputs = ", ".join(f"{k} {v['dtype']} {v['shape']}" for k, v in signature["outputs"].items())
        print(f"  {name}({inputs}) -> {outputs}")
    print(f"TF Serving config: {args.export_dir.rstrip('/')}/{MODELS_CONFIG}")
    if args.check:
        report = check(path, args.run_dir, args.checkpoint)
        print(f"check: {len(report['signatures'])} signatures reloaded without project code match the Keras model "
              f"(max |diff| {report['max_abs_diff']:.3g} <= {report['tolerance']:g})")
    return 0


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default="localhost:8501",
                        help="host:port of TF Serving: REST (8501) or, with --grpc, gRPC (8500)")
    parser.add_argument("--model", required=True, help="the served model name (musicgen export --name)")
    parser.add_argument("--version", type=int, help="model version (default: the latest served)")
    parser.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request attempt")
    parser.add_argument("--retries", type=int, default=3, help="retries on connection errors and server errors")
    parser.add_argument("--export-dir",
                        help="read the converter config from this export folder instead of the server's "
                             "musicgen_config signature")
    actions = parser.add_subparsers(dest="client_command", required=True)
    sample = actions.add_parser("sample", help="sample new pieces from the prior")
    sample.add_argument("--num", type=int, default=4)
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--seed", type=int, help="same seed, same pieces")
    interpolate = actions.add_parser("interpolate", help="decode points on the latent path between two MIDI files")
    interpolate.add_argument("--a", required=True, dest="midi_a", help="first MIDI file")
    interpolate.add_argument("--b", required=True, dest="midi_b", help="second MIDI file")
    interpolate.add_argument("--steps", type=int, default=5)
    cont = actions.add_parser("continue", help="continue a melody (continue_melody) or a MIDI prompt (Transformer-XL)")
    cont.add_argument("--prompt", required=True, help='melody symbols, e.g. "60 _ _ 62 _ 64"; Transformer-XL: a MIDI file')
    cont.add_argument("--steps", type=int, help="melody symbols to add (default 32); Transformer-XL: bars (default 4)")
    cont.add_argument("--temperature", type=float, default=1.0)
    cont.add_argument("--seed", type=int)
    for action in (sample, interpolate, cont):
        action.add_argument("--out", default="served", help="output folder for MIDI, WAV and PNG files")


def run_client(args) -> int:
    from musicgen_tf.serving.client import ServingClient, client_generate

    client = ServingClient(args.server, model=args.model, version=args.version, grpc=args.grpc,
                           timeout=args.timeout, retries=args.retries)
    try:
        result = client_generate(
            client, args.client_command, args.out, num=getattr(args, "num", 4),
            temperature=getattr(args, "temperature", 1.0), seed=getattr(args, "seed", None),
            steps=getattr(args, "steps", None), midi_a=getattr(args, "midi_a", None),
            midi_b=getattr(args, "midi_b", None), prompt=getattr(args, "prompt", None), export_dir=args.export_dir)
    finally:
        client.close()
    print(f"{client!r}: {args.client_command}; converter config from {result['config_source']}"
          + (f"; seed {result['seed']}" if result["seed"] is not None else ""))
    if result["text"]:
        print(f"  {result['text']}")
    for paths in result["files"]:
        print("  " + "  ".join(str(path) for path in paths.values()))
    return 0


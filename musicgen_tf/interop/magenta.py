"""Magenta MusicVAE / GrooVAE TF1 checkpoints -> an ordinary musicgen run directory.

    musicgen import-magenta --config cat-mel_2bar_big --checkpoint cat-mel_2bar_big.ckpt --run-dir runs/mel

The checkpoint is read with `tf.train.load_checkpoint` (no TF1 graph is built).  `--checkpoint` is a checkpoint
prefix (`X.ckpt` with `X.ckpt.index` beside it), a folder holding one, or Magenta's `.tar` bundle as downloaded.
The preset of the same name gives the network's structure and the data converter; the layer sizes (`enc_rnn_size`,
`dec_rnn_size`, `z_size`) are read from the checkpoint, so a retrained or shrunk Magenta model imports as well.
Every variable is mapped by `VARIABLE_MAP` (data below); a variable the map does not know, a missing one, or a
shape that does not fit is refused, naming the variable.  The run directory is written to a temporary folder
beside it and renamed into place, so a failure leaves nothing behind.

Magenta's `LSTMBlockCell` kernel [F + H, 4H] over [x, h] splits into our kernel [F, 4H] and recurrent kernel
[H, 4H]; its bias, gate order (i, c, f, o) and (c, h) state layout are ours already (`MusicVAE(cell="lstm_block")`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from musicgen_tf.errors import MusicgenError

# Magenta configs we import, each into our preset of the same name (musicgen_tf.configs).
SUPPORTED = ("cat-mel_2bar_small", "cat-mel_2bar_big", "flat-mel_16bar", "hierdec-mel_16bar", "cat-drums_2bar_small",
             "cat-drums_2bar_big", "groovae_4bar", "groovae_2bar_humanize", "groovae_2bar_tap_fixed_velocity",
             "groovae_2bar_add_closed_hh")
# The rest of Magenta's CONFIG_MAP, with the reason.
UNSUPPORTED = {
    "cat-mel_2bar_med_chords": "chord-conditioned melodies (control inputs) are not ported",
    "hierdec-mel_16bar_chords": "chord-conditioned melodies (control inputs) are not ported",
    "nade-drums_2bar_reduced": "the NADE decoder is not ported",
    "nade-drums_2bar_full": "the NADE decoder is not ported",
    "flat-trio_16bar": "trio (melody + bass + drums) decoders are not ported",
    "hierdec-trio_16bar": "trio (melody + bass + drums) decoders are not ported",
    "hier-trio_16bar": "trio decoders and hierarchical encoders are not ported",
    "hier-mel_16bar": "hierarchical encoders are not ported",
    "hier-multiperf_vel_1bar_med": "multi-instrument performance models are not ported",
    "hier-multiperf_vel_1bar_big": "multi-instrument performance models are not ported",
    "hier-multiperf_vel_1bar_med_chords": "multi-instrument performance models are not ported",
    "hier-multiperf_vel_1bar_big_chords": "multi-instrument performance models are not ported",
    "groovae_2bar_hits_control_tfds": "GrooVAE with control inputs (hits as controls) is not ported",
    "groovae_2bar_tap_fixed_velocity_note_dropout": "its converter drops input notes at random even when encoding; "
                                                    "import the checkpoint as groovae_2bar_tap_fixed_velocity "
                                                    "(the same network)",
}

# Checkpoint variables that are training state, not weights.
IGNORED = re.compile(r"^(global_step|beta[12]_power)$|/Adam(_1)?$")

# The variable-name map, as data: (Magenta scope, our layer, kind, layer count).  Kind "lstm" maps
# `<scope>/lstm_cell/{kernel,bias}` (the kernel split into kernel and recurrent kernel), "dense" maps
# `<scope>/{kernel,bias}`.  A layer count names the model argument that lists the stacked layers' sizes; "{i}"
# runs over them, and the checkpoint's `.../lstm_cell/bias` shapes [4H] give those sizes.
_ENCODER = [
    ("encoder/cell_{i}/bidirectional_rnn/fw/multi_rnn_cell/cell_0", "encoder.layers[{i}].forward_layer", "lstm",
     "encoder_units"),
    ("encoder/cell_{i}/bidirectional_rnn/bw/multi_rnn_cell/cell_0", "encoder.layers[{i}].backward_layer", "lstm",
     "encoder_units"),
    ("encoder/mu", "z_mean_dense", "dense", None),
    ("encoder/sigma", "z_sigma_dense", "dense", None),
]
VARIABLE_MAP = {
    "flat": _ENCODER + [
        ("decoder/z_to_initial_state", "decoder.state_projection", "dense", None),
        ("decoder/multi_rnn_cell/cell_{i}", "decoder.lstms[{i}]", "lstm", "decoder_units"),
        ("decoder/output_projection", "output_projection", "dense", None),
    ],
    "hierarchical": _ENCODER + [
        ("decoder/hierarchical_level_0/initial_state", "conductor.state_projection", "dense", None),
        ("decoder/hierarchical_level_0/cell_{i}", "conductor.lstms[{i}]", "lstm", "conductor_units"),
        ("core_decoder/decoder/z_to_initial_state", "decoder.state_projection", "dense", None),
        ("core_decoder/decoder/multi_rnn_cell/cell_{i}", "decoder.lstms[{i}]", "lstm", "decoder_units"),
        ("core_decoder/decoder/output_projection", "output_projection", "dense", None),
    ],
}
LATENT_VARIABLE = "encoder/mu/bias"  # [z_size]


class MagentaImportError(MusicgenError):
    """A checkpoint or config that cannot become a run directory (the message says which and why)."""


def check_config(name: str) -> None:
    if name in SUPPORTED:
        return
    if name in UNSUPPORTED:
        raise MagentaImportError(f"Magenta config {name!r} cannot be imported: {UNSUPPORTED[name]}")
    raise MagentaImportError(f"unknown Magenta config {name!r}; supported: {', '.join(SUPPORTED)}")


def resolve_checkpoint(path: str, workdir: str) -> str:
    """A checkpoint prefix, a folder holding one, or a `.tar` bundle (unpacked into `workdir`) -> the prefix."""
    import tensorflow as tf

    path = os.path.expanduser(path)
    if os.path.isfile(path) and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            tar.extractall(workdir, filter="data")
        return resolve_checkpoint(workdir, workdir)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)  # a folder with a `checkpoint` state file: its newest one
        if latest and os.path.isfile(latest + ".index"):
            return latest
        indexes = sorted(Path(path).rglob("*.index"))
        if len(indexes) != 1:
            raise MagentaImportError(f"{path}: expected one TF checkpoint (a *.index file) in the folder, found "
                                     f"{len(indexes)}" + (f": {[str(i) for i in indexes]}" if indexes else ""))
        return str(indexes[0])[:-len(".index")]
    if path.endswith(".index") or ".data-" in path:
        path = path[:path.index(".data-")] if ".data-" in path else path[:-len(".index")]
    if not os.path.isfile(path + ".index"):
        raise MagentaImportError(f"{path}: not a TF checkpoint prefix (no {path}.index), folder or .tar bundle")
    return path


def checkpoint_sizes(shapes: dict, decoder_kind: str, config: str, source: str) -> dict:
    """The model's layer sizes read from the checkpoint's variable shapes: {"encoder_units": (H, ...),
    "decoder_units": ..., ["conductor_units": ...,] "latent_dim": Z}.  `source` names the checkpoint in errors."""

    def need(name):
        if name not in shapes:
            raise MagentaImportError(f"{source}: the checkpoint has no variable {name!r}, which {config} needs "
                                     f"(is it a checkpoint of another config?)")
        return shapes[name]

    sizes = {"latent_dim": int(need(LATENT_VARIABLE)[0])}
    for scope, _, kind, count in VARIABLE_MAP[decoder_kind]:
        if count is None or count in sizes:
            continue
        units, i = [], 0
        need(f"{scope.format(i=0)}/lstm_cell/bias")
        while f"{scope.format(i=i)}/lstm_cell/bias" in shapes:
            units.append(int(shapes[f"{scope.format(i=i)}/lstm_cell/bias"][0]) // 4)
            i += 1
        sizes[count] = tuple(units)
    return sizes


def _resolve_layer(model, dotted: str):
    """'encoder.layers[0].forward_layer' -> that object."""
    obj = model
    for part in dotted.split("."):
        match = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part)
        obj = getattr(obj, match.group(1))
        if match.group(2) is not None:
            obj = obj[int(match.group(2))]
    return obj


def expand_map(model) -> dict[str, tuple]:
    """Magenta variable name -> (our variable(s), kind) for this model's sizes.

    kind "lstm_kernel": (kernel [F, 4H], recurrent kernel [H, 4H]) from one [F + H, 4H]; "copy": one variable."""
    mapping = {}
    for scope, layer_path, kind, count in VARIABLE_MAP[model.decoder_kind]:
        for i in range(len(getattr(model, count)) if count else 1):
            layer = _resolve_layer(model, layer_path.format(i=i))
            prefix = scope.format(i=i)
            if kind == "lstm":
                cell = layer.cell
                mapping[f"{prefix}/lstm_cell/kernel"] = ((cell.kernel, cell.recurrent_kernel), "lstm_kernel")
                mapping[f"{prefix}/lstm_cell/bias"] = ((cell.bias,), "copy")
            else:
                mapping[f"{prefix}/kernel"] = ((layer.kernel,), "copy")
                mapping[f"{prefix}/bias"] = ((layer.bias,), "copy")
    return mapping


def load_magenta_weights(model, reader, source: str) -> dict:
    """Assign a Magenta checkpoint's weights (a `tf.train.load_checkpoint` reader) to a built MusicVAE of Magenta's
    structure (`cell="lstm_block"`, one-hot inputs).  `source` names the checkpoint in errors.

    Raises MagentaImportError naming the first variable (in name order) that is unknown, missing or of the wrong
    shape; nothing is assigned then.  Returns {"global_step": int or None, "ignored": [training-state names]}.
    """
    if model.cell != "lstm_block" or model.input_encoding != "one_hot" or model.decoder_roll_input:
        raise MagentaImportError("Magenta's weights need the Magenta structure (cell='lstm_block', "
                                 "input_encoding='one_hot', decoder_roll_input=False)")
    shapes = reader.get_variable_to_shape_map()
    mapping = expand_map(model)
    ignored = sorted(name for name in shapes if IGNORED.search(name))
    for name in sorted(shapes):
        if name not in mapping and name not in ignored:
            raise MagentaImportError(f"{source}: checkpoint variable {name!r} {shapes[name]} is not part of the "
                                     f"{model.decoder_kind} MusicVAE this config builds (unmapped)")
    for name in sorted(mapping):
        targets, kind = mapping[name]
        if name not in shapes:
            raise MagentaImportError(f"{source}: the checkpoint has no variable {name!r}, which this config needs")
        expected = ([targets[0].shape[0] + targets[1].shape[0], targets[0].shape[1]] if kind == "lstm_kernel"
                    else list(targets[0].shape))
        if list(shapes[name]) != expected:
            raise MagentaImportError(f"{source}: variable {name!r} has shape {list(shapes[name])}, this config "
                                     f"needs {expected}")
    for name, (targets, kind) in mapping.items():
        value = reader.get_tensor(name)
        if kind == "lstm_kernel":
            rows = targets[0].shape[0]
            targets[0].assign(value[:rows])
            targets[1].assign(value[rows:])
        else:
            targets[0].assign(value)
    global_step = int(reader.get_tensor("global_step")) if "global_step" in shapes else None
    return {"global_step": global_step, "ignored": ignored}


def build_model_for(config: str, sizes: dict):
    """(preset with `sizes`, data schema, built MusicVAE) of a supported Magenta config."""
    from musicgen_tf.configs import get_preset
    from musicgen_tf.models.builders import build_model
    from musicgen_tf.music.representations import get_converter
    from musicgen_tf.tfrecords.manifest import feature_spec_to_json

    check_config(config)
    preset = get_preset(config)
    preset = dataclasses.replace(preset, model={**preset.model, **sizes})
    converter = get_converter(preset.representation, **preset.converter_params)
    schema = {"representation": converter.get_config(), "features": feature_spec_to_json(converter.feature_spec()),
              "labels": {}}
    return preset, schema, build_model(preset, schema)


def import_checkpoint(config: str, checkpoint: str, run_dir: str) -> dict:
    """Write `run_dir` (config.json + model.weights.h5) from a Magenta checkpoint; returns the run's config, whose
    "imported_from" records the source, its global step and the sizes read from it."""
    import tensorflow as tf

    from musicgen_tf.train.run_dir import RunDir

    check_config(config)
    target = Path(os.path.expanduser(run_dir)).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise MagentaImportError(f"{target} already exists and is not empty; choose a new --run-dir")
    with tempfile.TemporaryDirectory() as unpacked:
        prefix = resolve_checkpoint(checkpoint, unpacked)
        # errors name the user's file (for a .tar bundle: the bundle and the checkpoint inside it)
        source = f"{checkpoint} ({os.path.relpath(prefix, unpacked)})" if prefix.startswith(unpacked) else prefix
        try:
            reader = tf.train.load_checkpoint(prefix)
        except (tf.errors.OpError, ValueError) as error:
            raise MagentaImportError(f"{source}: not a readable TF checkpoint ({error})") from None
        sizes = checkpoint_sizes(reader.get_variable_to_shape_map(), _decoder_kind(config), config, source)
        preset, schema, model = build_model_for(config, sizes)
        info = load_magenta_weights(model, reader, source)
        run_config = {"preset": preset.to_json(), "data": None, "data_representation": schema["representation"],
                      "data_schema": {"features": schema["features"], "labels": {}},
                      "flags": {"mixed_precision": False, "xla": False, "strategy": "default"},
                      "intra_op_threads": None,
                      "imported_from": {"magenta_config": config,
                                        "checkpoint": os.path.abspath(os.path.expanduser(checkpoint)),
                                        "global_step": info["global_step"],
                                        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
                                        "ignored_variables": info["ignored"]}}
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=target.parent))
        try:
            run = RunDir(staging)
            run.write_config(json.loads(json.dumps(run_config)))
            model.save_weights(str(run.final_weights))
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return run_config


def _decoder_kind(config: str) -> str:
    from musicgen_tf.configs import get_preset

    return get_preset(config).model.get("decoder", "flat")


def run_import_command(args) -> dict:
    """`musicgen import-magenta`: import, then say what was written and what to run next."""
    config = import_checkpoint(args.config, args.checkpoint, args.run_dir)
    source = config["imported_from"]
    sizes = ", ".join(f"{k}={v}" for k, v in source["sizes"].items())
    step = "" if source["global_step"] is None else f" (global step {source['global_step']})"
    print(f"imported Magenta {args.config}{step} into {args.run_dir}\n  sizes from the checkpoint: {sizes}")
    print(f"  next: musicgen generate --run-dir {args.run_dir} --out samples   "
          f"(or interpolate / reconstruct / encode / decode / export)")
    return config

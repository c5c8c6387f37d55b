"""The Pop Music Transformer's released checkpoints (github:YatingMusic/remi) as ordinary run directories.

    musicgen import-remi --checkpoint REMI-tempo-checkpoint/ --run-dir runs/remi

A released folder holds `dictionary.pkl` (a pickled tuple `(event2word, word2event)`) and a TF1 checkpoint `model`
(`model.index`, `model.data-*`) of its `model.py` graph: 12 layers, d 512, 8 heads, d_inner 2048, one u/v pair for
all layers (`untie_r=False`).  The import:

1. reads the dictionary with `read_dictionary`, which executes nothing: every pickle opcode is checked against a
   list that can only build strings, integers, tuples, lists and dicts before anything is unpickled; a pickle that
   names any class or function is refused;
2. reads the checkpoint's variables (Adam slots, `global_step` and `beta*_power` are training state, skipped) and
   maps each one to our network through `LAYER_VARIABLES` / `GLOBAL_VARIABLES` below; anything left over, missing
   or of the wrong shape is refused by name;
3. builds our `TransformerXL` with the options that make it the original's network (`ORIGINAL_OPTIONS`), sized from
   the checkpoint, and writes a run directory whose converter is the `pop-music-transformer` REMI flavour with the
   dictionary's order as its vocabulary.  `generate`, `evaluate --sweep`, `export` and the studio read it as any
   run.  The directory appears atomically (written beside it, then renamed).

Its Keras layers were named by graph-wide counters (`layer_0/rel_attn/layer_normalization`,
`layer_1/ff/layer_normalization_3`), so layer norms are matched by their place (the one norm of a layer's
`rel_attn` or `ff` scope), never by their number.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import pickletools
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from musicgen_tf.errors import MusicgenError

ORIGINAL = "github:YatingMusic/remi"
DICTIONARY = "dictionary.pkl"
CHECKPOINT_PREFIX = "model"
ORIGINAL_MEM_LEN = 512  # its model.py: mem_len (= x_len) 512

# ---- variable names: the original's -> ours (attribute paths from the model or from `model.blocks[i]`)
GLOBAL_VARIABLES = {
    "transformer/normal_embed/lookup_table": "embedding.embeddings",  # also its softmax weights (tied)
    "transformer/normal_softmax/bias": "output_bias",
    "transformer/r_w_bias": "shared_u",
    "transformer/r_r_bias": "shared_v",
}
# Under `transformer/layer_<i>/`.  `{norm}` is the scope's one `layer_normalization[_N]`.  The fused q/k/v kernel
# [D, 3 H d] is split by column: its first third is our query, the other two (keys then values) our key_value.
LAYER_VARIABLES = {
    "rel_attn/qkv/kernel": (("attention.query.kernel", 0, 1), ("attention.key_value.kernel", 1, 3)),
    "rel_attn/r/kernel": "attention.position.kernel",
    "rel_attn/o/kernel": "attention.output_dense.kernel",
    "rel_attn/{norm}/gamma": "attention.norm.gamma",
    "rel_attn/{norm}/beta": "attention.norm.beta",
    "ff/layer_1/kernel": "feed_forward.inner.kernel",
    "ff/layer_1/bias": "feed_forward.inner.bias",
    "ff/layer_2/kernel": "feed_forward.outer.kernel",
    "ff/layer_2/bias": "feed_forward.outer.bias",
    "ff/{norm}/gamma": "feed_forward.norm.gamma",
    "ff/{norm}/beta": "feed_forward.norm.beta",
}
TRAINING_STATE = re.compile(r"^global_step$|^beta[12]_power$|/Adam(_1)?$")
_LAYER = re.compile(r"^transformer/layer_(\d+)/(rel_attn|ff)/([^/]+)/(.+)$")
_NORM = re.compile(r"^layer_normalization(_\d+)?$")

# Our TransformerXL options that make it the original's network (see models/transformer_xl.py); no PAD or EOS
# either (the converter's pad_id = eos_id = -1).
ORIGINAL_OPTIONS = dict(shared_relative_bias=True, position_layout="concat",
                        ff_output_relu=True, layer_norm_epsilon=1e-3, generation_memory="sliding",
                        dropout=0.1, dropatt=0.1)


class CheckpointImportError(MusicgenError):
    """A released checkpoint folder that cannot be imported; the message names the file and the problem."""


# ------------------------------------------------------------------------------------------------ dictionary.pkl
# Opcodes that build str / int / tuple / list / dict (and the memo and framing around them); nothing else.
_SAFE_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP",
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
    "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
    "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET",
})


class _NoGlobals(pickle.Unpickler):
    """Second guard behind the opcode check: no name is ever looked up."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"names {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("uses a persistent id")


def read_dictionary(path: str | os.PathLike) -> list[str]:
    """The original's `dictionary.pkl` -> its event names in id order (word i is element i).

    Only plain containers of strings and integers are built; a pickle that names a class or function (or uses any
    other opcode) is refused before anything is unpickled."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointImportError(f"{path}: cannot read the dictionary ({error.strerror})") from None
    try:
        strings = []  # the last strings pushed: STACK_GLOBAL takes its module and name from them
        for opcode, arg, position in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if opcode.name not in _SAFE_OPCODES:
                named = arg if opcode.name in ("GLOBAL", "INST") else (
                    ".".join(strings[-2:]) if opcode.name == "STACK_GLOBAL" and len(strings) >= 2 else "")
                raise CheckpointImportError(
                    f"{path}: refused: the pickle uses {opcode.name}{' ' + named if named else ''} at byte "
                    f"{position} (a dictionary.pkl holds only strings, integers and plain containers; nothing in "
                    "it is executed)")
        value = _NoGlobals(io.BytesIO(data)).load()
    except CheckpointImportError:
        raise
    except Exception as error:  # truncated or malformed pickle
        raise CheckpointImportError(f"{path}: not a readable pickle ({error})") from None
    return _vocabulary(value, path)


def _vocabulary(value, path: Path) -> list[str]:
    """(event2word {str: int}, word2event {int: str}), inverse of each other, ids 0..V-1 -> names in id order."""
    if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(d, dict) for d in value)):
        raise CheckpointImportError(f"{path}: expected a tuple (event2word, word2event) of two dicts, got "
                                    f"{type(value).__name__}")
    event2word, word2event = value
    if not all(isinstance(k, str) and type(v) is int for k, v in event2word.items()):
        raise CheckpointImportError(f"{path}: event2word must map event names (str) to ids (int)")
    if not all(type(k) is int and isinstance(v, str) for k, v in word2event.items()):
        raise CheckpointImportError(f"{path}: word2event must map ids (int) to event names (str)")
    if sorted(word2event) != list(range(len(word2event))):
        raise CheckpointImportError(f"{path}: word2event's ids are not 0..{len(word2event) - 1}")
    if {word2event[w]: w for w in word2event} != event2word:
        raise CheckpointImportError(f"{path}: event2word and word2event are not inverse of each other")
    if "Bar_None" not in event2word:
        raise CheckpointImportError(f"{path}: no Bar_None event: not a REMI dictionary")
    return [word2event[i] for i in range(len(word2event))]


# ---------------------------------------------------------------------------------------------------- checkpoint
def read_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    """The network's variables of `<folder>/model` (training state skipped), by the original's names."""
    import tensorflow as tf

    prefix = folder / CHECKPOINT_PREFIX
    if not Path(f"{prefix}.index").is_file():
        raise CheckpointImportError(f"{folder}: no {CHECKPOINT_PREFIX}.index: --checkpoint must be a released "
                                    "folder such as REMI-tempo-checkpoint/ (dictionary.pkl, model.index, "
                                    "model.data-*)")
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as error:
        raise CheckpointImportError(f"{prefix}: not a readable TensorFlow checkpoint "
                                    f"({str(error).splitlines()[0]})") from None
    names = reader.get_variable_to_shape_map()
    return {name: reader.get_tensor(name) for name in sorted(names) if not TRAINING_STATE.search(name)}


def canonical_names(names, where: str = "checkpoint") -> dict[str, tuple[int | None, str]]:
    """original name -> (layer index or None, key of GLOBAL_VARIABLES / LAYER_VARIABLES); refuses unknown names
    and a layer scope with more than one layer norm."""
    out, unknown, norms = {}, [], {}
    for name in names:
        if name in GLOBAL_VARIABLES:
            out[name] = (None, name)
            continue
        match = _LAYER.match(name)
        if not match:
            unknown.append(name)
            continue
        layer, scope, part, rest = int(match[1]), match[2], match[3], match[4]
        if _NORM.match(part):
            norms.setdefault((layer, scope), set()).add(part)
            part = "{norm}"
        key = f"{scope}/{part}/{rest}"
        if key not in LAYER_VARIABLES:
            unknown.append(name)
            continue
        out[name] = (layer, key)
    if unknown:
        raise CheckpointImportError(f"{where}: variables that do not fit the Pop Music Transformer's network: "
                                    f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}")
    for (layer, scope), found in sorted(norms.items()):
        if len(found) > 1:
            raise CheckpointImportError(f"{where}: transformer/layer_{layer}/{scope} has {len(found)} layer norms "
                                        f"({', '.join(sorted(found))}); the original has one per scope")
    return out


def network_sizes(variables: dict[str, np.ndarray], where: str) -> dict[str, int]:
    """TransformerXL sizes read from the checkpoint's shapes."""
    def shape(name):
        if name not in variables:
            raise CheckpointImportError(f"{where}: no variable {name}")
        return variables[name].shape

    vocab_size, d_model = shape("transformer/normal_embed/lookup_table")
    u = shape("transformer/r_w_bias")
    if len(u) != 2:
        raise CheckpointImportError(f"{where}: transformer/r_w_bias has shape {list(u)}: one u/v pair per layer "
                                    "(untie_r=True) is not the released network, which shares one pair "
                                    "[heads, head size]")
    layers = sorted({int(m[1]) for m in map(_LAYER.match, variables) if m})
    if layers != list(range(len(layers))) or not layers:
        raise CheckpointImportError(f"{where}: layers {layers} are not 0..n-1")
    return {"vocab_size": int(vocab_size), "d_model": int(d_model), "num_heads": int(u[0]),
            "num_layers": len(layers), "d_inner": int(shape("transformer/layer_0/ff/layer_1/kernel")[1])}


def _resolve(owner, path: str):
    for attribute in path.split("."):
        owner = getattr(owner, attribute)
    return owner


def assign_variables(model, variables: dict[str, np.ndarray], where: str = "checkpoint") -> None:
    """Copy the original's variables into our built `TransformerXL`; every weight exactly once, shapes equal."""
    assigned = {}
    for name, (layer, key) in canonical_names(variables, where).items():
        owner = model if layer is None else model.blocks[layer]
        target = GLOBAL_VARIABLES[key] if layer is None else LAYER_VARIABLES[key]
        value = variables[name]
        parts = ((target, 0, 1),) if isinstance(target, str) else target
        thirds = value.shape[-1] // max(stop for _, _, stop in parts)
        for path, start, stop in parts:
            weight = _resolve(owner, path)
            piece = value if len(parts) == 1 else value[..., start * thirds:stop * thirds]
            if tuple(piece.shape) != tuple(weight.shape):
                raise CheckpointImportError(f"{where}: {name} has shape {list(value.shape)}, which does not fit "
                                            f"{weight.path} {list(weight.shape)} (the network its other "
                                            "variables size)")
            if id(weight) in assigned:
                raise CheckpointImportError(f"{where}: {name} and {assigned[id(weight)]} both map to {weight.path}")
            weight.assign(piece.astype(np.float32))
            assigned[id(weight)] = name
    missing = [w.path for w in model.weights if id(w) not in assigned]
    if missing:
        raise CheckpointImportError(f"{where}: no variable for {', '.join(missing)}")


# ----------------------------------------------------------------------------------------------------- run dir
@dataclasses.dataclass
class ImportedRun:
    run_dir: Path
    vocabulary: list[str]
    sizes: dict[str, int]
    variables: int


def import_checkpoint(checkpoint: str | os.PathLike, run_dir: str | os.PathLike,
                      mem_len: int = ORIGINAL_MEM_LEN) -> ImportedRun:
    """A released checkpoint folder -> a new run directory (refused if `run_dir` already exists)."""
    from musicgen_tf.configs import get_preset
    from musicgen_tf.models.builders import build_model
    from musicgen_tf.music.remi import RemiConverter
    from musicgen_tf.music.remi_pop import FLAVOUR
    from musicgen_tf.tfrecords.manifest import feature_spec_to_json
    from musicgen_tf.train.run_dir import RunDir

    folder = Path(os.path.expanduser(os.fspath(checkpoint)))
    target = Path(os.path.expanduser(os.fspath(run_dir)))
    if not folder.is_dir():
        raise CheckpointImportError(f"{folder}: not a folder (--checkpoint is a released folder such as "
                                    "REMI-tempo-checkpoint/)")
    if target.exists():
        raise CheckpointImportError(f"{target} already exists: import into a new run directory")
    variables = read_checkpoint(folder)
    vocabulary = read_dictionary(folder / DICTIONARY)
    where = str(folder / CHECKPOINT_PREFIX)
    sizes = network_sizes(variables, where)
    if sizes["vocab_size"] != len(vocabulary):
        raise CheckpointImportError(f"{where}: transformer/normal_embed/lookup_table has {sizes['vocab_size']} "
                                    f"rows but {folder / DICTIONARY} has {len(vocabulary)} events")
    converter = RemiConverter(flavour=FLAVOUR, vocabulary=vocabulary)
    model_config = {**{k: v for k, v in sizes.items() if k != "vocab_size"}, **ORIGINAL_OPTIONS,
                    "segment_len": int(mem_len), "mem_len": int(mem_len)}
    # the preset a run directory names, with this network and converter (what `load_trained_model` rebuilds)
    preset = dataclasses.replace(get_preset("remi_txl_pop"), model=model_config,
                                 converter_params=converter.params(),
                                 description="the Pop Music Transformer's released network, imported "
                                             "(generation only)")
    schema = {"features": feature_spec_to_json(converter.feature_spec()), "labels": {}}
    model = build_model(preset, {"representation": converter.get_config(), **schema})
    assign_variables(model, variables, where)
    config = {"preset": preset.to_json(), "data": None, "data_representation": converter.get_config(),
              "data_schema": schema,
              "imported_from": {"original": ORIGINAL, "checkpoint": str(folder.resolve()),
                                "variables": len(variables)}}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=target.parent))
    try:
        run = RunDir(staging)
        run.write_config(config)
        model.save_weights(str(run.final_weights))
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ImportedRun(target, vocabulary, sizes, len(variables))


__all__ = ["read_dictionary", "import_checkpoint", "assign_variables", "canonical_names", "CheckpointImportError",
           "GLOBAL_VARIABLES", "LAYER_VARIABLES", "ORIGINAL_OPTIONS"]

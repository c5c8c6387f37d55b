"""`musicgen export`: a trained run -> a TF Serving SavedModel with in-graph generation signatures.

    <export_dir>/models.config                       TF Serving model_config_list, one entry per model folder
    <export_dir>/<name>/<version>/saved_model.pb     signatures (below), variables only: no Keras, no Python
    <export_dir>/<name>/<version>/variables/
    <export_dir>/<name>/<version>/assets.extra/musicgen.json
                                                     converter config, preset, data schema, signature docs

One `tf.Module` per model family wraps the trained Keras model's variables and exposes `tf.function` signatures
with fixed dtypes.  Generation runs in-graph (`tf.while_loop`, `tf.random.stateless_*`), so a fixed `seed` gives the
same tokens in Keras, in the SavedModel and behind TF Serving.  Signatures of the families that exist now:

    music_vae (MusicVAE melody/drums, GrooVAE)      beta_vae (pitch histogram, melody windows)
    sample(num, temperature, seed)                  sample(num, temperature, seed)
    encode(<features>)                              encode(<feature>)
    decode(z, temperature, seed)                    decode(z, temperature, seed)
    interpolate(a_<features>, b_<features>, steps)  interpolate(a_<feature>, b_<feature>, steps)
                                                    continue_melody(prompt, steps, temperature, seed)  (melody)
    musicgen_config(unused) -> config_json          (every family: musicgen.json as a string, so a TF Serving
                                                     client gets the converter without the export folder; REST
                                                     cannot call a signature without inputs, hence `unused`)

New families register a module class in `SERVING_MODULES` (family -> "module:Class", imported lazily); the class
subclasses `ServingModule` and lists its `Signature`s.  `check()` reloads an export in a fresh Python that imports
only TensorFlow and compares every signature with the Keras model.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from musicgen_tf.errors import MusicgenError

METADATA_FORMAT = 1
METADATA_DIR = "assets.extra"  # TF Serving's folder for files that travel with a version but are not loaded
METADATA_FILE = "musicgen.json"
CONFIG_SIGNATURE = "musicgen_config"
MODELS_CONFIG = "models.config"
DEFAULT_SERVING_ROOT = "/models"  # where `docker run -v $PWD/models:/models tensorflow/serving` sees export_dir
TOLERANCE = 1e-5

# Model family (Preset.family) -> its serving module, "python.module:Class" (Transformer-XL's generate/continue and
# the audio CVAE's sample/reconstruct/encode/decode are documented in their own modules).
SERVING_MODULES: dict[str, str] = {
    "music_vae": "musicgen_tf.serving.export:MusicVAEServing",
    "beta_vae": "musicgen_tf.serving.export:BetaVAEServing",
    "transformer_xl": "musicgen_tf.serving.txl_module:TransformerXLServing",
    "resnet_cvae": "musicgen_tf.serving.cvae_module:ResnetCVAEServing",
}


class ExportError(MusicgenError):
    """An export that cannot be written, or that does not match its Keras model."""


# -- signature descriptions --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tensor:
    """One signature input or output: dtype, shape (None = any size) and what it means."""

    dtype: tf.DType
    shape: tuple
    doc: str

    def spec(self, name: str) -> tf.TensorSpec:
        return tf.TensorSpec(self.shape, self.dtype, name=name)

    def to_json(self) -> dict:
        return {"dtype": self.dtype.name, "shape": [-1 if d is None else int(d) for d in self.shape], "doc": self.doc}


@dataclasses.dataclass(frozen=True)
class Signature:
    """A serving signature: `fn(inputs: dict of tensors) -> dict of tensors` plus its documented interface.

    `check_inputs(rng)` gives the fixed numpy inputs `check()` runs it with (a deterministic call).
    """

    doc: str
    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    fn: Callable[[dict], dict]
    check_inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]

    def to_json(self) -> dict:
        return {"doc": self.doc, "inputs": {k: v.to_json() for k, v in self.inputs.items()},
                "outputs": {k: v.to_json() for k, v in self.outputs.items()}}


def _scalar(dtype, doc):
    return Tensor(dtype, (), doc)


NUM = _scalar(tf.int32, "how many pieces to generate")
TEMPERATURE = _scalar(tf.float32, "sampling temperature; <= 1e-4 decodes greedily (most likely output)")
SEED = Tensor(tf.int64, (2,), "stateless random seed: the same seed gives the same output")
STEPS = _scalar(tf.int32, "number of points on the latent path, both ends included")
SEED_VALUE = np.array([17, 3], np.int64)


class ServingModule(tf.Module):
    """Base of the per-family serving modules: tracks the Keras model's variables (only them) and builds the
    `tf.function` signatures listed by `signatures()`.

    Subclasses implement `signatures() -> {name: Signature}`; `self.run` (the `TrainedRun`) is a plain attribute,
    not tracked, so the SavedModel holds variables and graphs, never Keras objects.
    """

    def __init__(self, run, metadata: dict | None = None):
        super().__init__(name=f"{run.preset.family}_serving")
        self.run = run  # a dataclass, not trackable: the Keras model is not saved, its variables are
        self.model_variables = list(run.model.variables)
        self.metadata_json = tf.constant(json.dumps(metadata or {}, indent=1), tf.string)
        self.functions = {}
        for name, signature in self.all_signatures().items():
            specs = {key: tensor.spec(key) for key, tensor in signature.inputs.items()}
            self.functions[name] = tf.function(_checking_shapes(signature.fn, specs), input_signature=[specs])

    # -- subclasses ------------------------------------------------------------------------------------------------

    def signatures(self) -> dict[str, Signature]:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------------------------

    def _config_signature(self) -> Signature:
        return Signature(
            doc=f"the export's {METADATA_FILE} (converter config, preset, signature docs) as a JSON string",
            inputs={"unused": _scalar(tf.int32, "any value (TF Serving's REST API needs one input)")},
            outputs={"config_json": _scalar(tf.string, f"UTF-8 JSON, the content of {METADATA_DIR}/{METADATA_FILE}")},
            fn=lambda inputs: {"config_json": tf.identity(self.metadata_json)},
            check_inputs=lambda rng: {"unused": np.int32(0)})

    def all_signatures(self) -> dict[str, Signature]:
        return {**self.signatures(), CONFIG_SIGNATURE: self._config_signature()}

    def concrete_functions(self) -> dict:
        return {name: self.functions[name].get_concrete_function() for name in self.functions}


def _checking_shapes(fn, specs: dict):
    """`fn` with an in-graph shape check of every input: TF Serving does not check shapes against the signature,
    so a wrong window length would otherwise run (or fail deep inside the model)."""
    def checked(inputs):
        return fn({key: tf.ensure_shape(value, specs[key].shape, name=f"check_{key}")
                   for key, value in inputs.items()})
    return checked


def _outputs(value, names) -> dict:
    """A model method's result (tensor or dict) -> a signature's output dict."""
    if isinstance(value, dict):
        return {name: value[name] for name in names}
    (name,) = names
    return {name: value}


# -- MusicVAE / GrooVAE ------------------------------------------------------------------------------------------------

class MusicVAEServing(ServingModule):
    """Signatures of `MusicVAE` (categorical melody/drum tokens, or GrooVAE's groove arrays)."""

    def __init__(self, run, metadata=None):
        model = run.model
        self.groove = model.output_kind == "groove"
        self.feature_names = ("hits", "velocities", "offsets") if self.groove else ("tokens",)
        self.label_name = f"{model.label_key}_id" if model.num_labels else None
        super().__init__(run, metadata)

    def _feature_tensors(self, batch: bool) -> dict[str, Tensor]:
        model = self.run.model
        lead = (None,) if batch else ()
        if self.groove:
            shape = lead + (model.seq_len, model.num_classes)
            return {"hits": Tensor(tf.float32, shape, "drum hits in {0, 1}, [batch,] time x drum class"),
                    "velocities": Tensor(tf.float32, shape, "hit velocities in [0, 1] (0 where no hit)"),
                    "offsets": Tensor(tf.float32, shape, "microtiming offsets in [-0.5, 0.5] steps (0 where no hit)")}
        return {"tokens": Tensor(tf.int64, lead + (model.seq_len,), "the converter's token ids, [batch,] time")}

    def _generated(self, leading: str) -> dict[str, Tensor]:
        model = self.run.model
        if self.groove:
            shape = (None, model.seq_len, model.num_classes)
            return {"hits": Tensor(tf.float32, shape, f"{leading} x time x drum class, in {{0, 1}}"),
                    "velocities": Tensor(tf.float32, shape, "velocities in (0, 1)"),
                    "offsets": Tensor(tf.float32, shape, "microtiming offsets in (-1, 1) steps")}
        return {"tokens": Tensor(tf.int32, (None, model.seq_len), f"token ids, {leading} x time")}

    def _label(self, inputs, count):
        if self.label_name is None:
            return None
        return tf.broadcast_to(inputs[self.label_name], [count])

    def _example(self, rng, batch: int | None) -> dict[str, np.ndarray]:
        """A random but valid input window (batch None = one unbatched example)."""
        model = self.run.model
        lead = () if batch is None else (batch,)
        if self.groove:
            hits = (rng.random(lead + (model.seq_len, model.num_classes)) < 0.3).astype(np.float32)
            return {"hits": hits, "velocities": (hits * rng.uniform(0.2, 1.0, hits.shape)).astype(np.float32),
                    "offsets": (hits * rng.uniform(-0.5, 0.5, hits.shape)).astype(np.float32)}
        return {"tokens": rng.integers(0, model.vocab_size, lead + (model.seq_len,)).astype(np.int64)}

    def signatures(self):
        model, features, groove = self.run.model, self.feature_names, self.groove
        label = {} if self.label_name is None else {
            self.label_name: Tensor(tf.int64, (None,), "label ids per piece (see musicgen.json schema.labels); "
                                                       "-1 = no label")}
        scalar_label = {} if self.label_name is None else {
            self.label_name: _scalar(tf.int64, "label id for the whole path; -1 = no label")}
        label_check = {} if self.label_name is None else {self.label_name: np.array([0, -1], np.int64)}
        latent = model.latent_dim
        what = "groove arrays" if groove else "tokens"

        def sample(inputs):
            out = model.sample(inputs["num"], temperature=inputs["temperature"], seed=inputs["seed"],
                               labels=self._label(inputs, inputs["num"]))
            return _outputs(out, features)

        def encode(inputs):
            batch = {name: inputs[name] for name in features}
            if self.label_name:
                batch[self.label_name] = inputs[self.label_name]
            z_mean, z_sigma = model.encode(batch)
            return {"z_mean": z_mean, "z_sigma": z_sigma}

        def decode(inputs):
            out = model.decode(inputs["z"], temperature=inputs["temperature"], seed=inputs["seed"],
                               labels=self._label(inputs, tf.shape(inputs["z"])[0]))
            return _outputs(out, features)

        def interpolate(inputs):
            a = {name: inputs[f"a_{name}"] for name in features}
            b = {name: inputs[f"b_{name}"] for name in features}
            labels = inputs[self.label_name] if self.label_name else None
            return _outputs(model.interpolate(a, b, inputs["steps"], labels=labels), features)

        one = self._feature_tensors(batch=False)
        return {
            "sample": Signature(
                f"{what} of `num` pieces decoded from z ~ N(0, I)", {"num": NUM, "temperature": TEMPERATURE,
                                                                     "seed": SEED, **label},
                self._generated("num"), sample,
                lambda rng: {"num": np.int32(2), "temperature": np.float32(0.7), "seed": SEED_VALUE,
                             **label_check}),
            "encode": Signature(
                "posterior N(z_mean, z_sigma^2) of each input window", {**self._feature_tensors(True), **label},
                {"z_mean": Tensor(tf.float32, (None, latent), "posterior means, batch x latent"),
                 "z_sigma": Tensor(tf.float32, (None, latent), "posterior standard deviations, batch x latent")},
                encode, lambda rng: {**self._example(rng, 2), **label_check}),
            "decode": Signature(
                f"{what} decoded from latent vectors (autoregressive, seeded)",
                {"z": Tensor(tf.float32, (None, latent), "latent vectors, n x latent"), "temperature": TEMPERATURE,
                 "seed": SEED, **label},
                self._generated("n"), decode,
                lambda rng: {"z": rng.standard_normal((2, latent)).astype(np.float32),
                             "temperature": np.float32(0.5), "seed": SEED_VALUE, **label_check}),
            "interpolate": Signature(
                f"greedy {what} at `steps` points on the slerp between the z means of a and b",
                {**{f"a_{k}": dataclasses.replace(v, doc=f"piece a: {v.doc}") for k, v in one.items()},
                 **{f"b_{k}": dataclasses.replace(v, doc=f"piece b: {v.doc}") for k, v in one.items()},
                 "steps": STEPS, **scalar_label},
                self._generated("steps"), interpolate,
                lambda rng: {**{f"a_{k}": v for k, v in self._example(rng, None).items()},
                             **{f"b_{k}": v for k, v in self._example(rng, None).items()},
                             "steps": np.int32(3),
                             **({} if self.label_name is None else {self.label_name: np.int64(0)})}),
        }


# -- β-VAEs ------------------------------------------------------------------------------------------------------------

class BetaVAEServing(ServingModule):
    """Signatures of the β-VAEs: pitch histograms (`histogram`) or melody windows (`tokens`, + continue_melody)."""

    def __init__(self, run, metadata=None):
        self.melody = run.model.feature_key == "tokens"
        super().__init__(run, metadata)

    def _example(self, rng, batch: int | None):
        model, lead = self.run.model, (() if batch is None else (batch,))
        if self.melody:  # real symbols (not PAD, not "/"), the last few PAD like a short song
            low = max(model.pad_id, model.delimiter_id) + 1
            tokens = rng.integers(low, model.vocab_size, lead + (model.window + 4,)).astype(np.int64)
            tokens[..., -3:] = model.pad_id
            return {"tokens": tokens}
        counts = rng.random(lead + (model.input_dim,)) ** 4
        return {"histogram": (counts / counts.sum(axis=-1, keepdims=True)).astype(np.float32)}

    def signatures(self):
        model, melody = self.run.model, self.melody
        latent, key = model.latent_dim, model.feature_key
        if melody:
            feature = Tensor(tf.int64, (None, None), "songs or windows of symbol ids (PAD=0 padded at the end); "
                                                     "the opening window is used")
            single = Tensor(tf.int64, (None,), "one song of symbol ids (the opening window is used)")
            generated = {"tokens": Tensor(tf.int64, (None, model.window), "symbol ids, n x window")}
        else:
            feature = Tensor(tf.float32, (None, model.input_dim), "pitch histograms summing to 1, batch x pitch")
            single = Tensor(tf.float32, (model.input_dim,), "one pitch histogram summing to 1")
            generated = {"histogram": Tensor(tf.float32, (None, model.input_dim),
                                             "pitch distributions summing to 1, n x pitch")}
        names = tuple(generated)

        def sample(inputs):
            return _outputs(model.sample(inputs["num"], temperature=inputs["temperature"], seed=inputs["seed"]),
                            names)

        def encode(inputs):
            z_mean, z_log_var = model.encode({key: inputs[key]})
            return {"z_mean": z_mean, "z_log_var": z_log_var}

        def decode(inputs):
            return _outputs(model.decode(inputs["z"], temperature=inputs["temperature"], seed=inputs["seed"]), names)

        def interpolate(inputs):
            return _outputs(model.interpolate(inputs[f"a_{key}"], inputs[f"b_{key}"], inputs["steps"]), names)

        decode_doc = ("symbols drawn per position from the decoded window" if melody else
                      "the decoded pitch distribution (deterministic: temperature and seed are ignored)")
        signatures = {
            "sample": Signature(
                "`num` pieces from the prior: z = temperature * N(0, I), outputs tempered by temperature",
                {"num": NUM, "temperature": TEMPERATURE, "seed": SEED}, generated, sample,
                lambda rng: {"num": np.int32(2), "temperature": np.float32(0.8), "seed": SEED_VALUE}),
            "encode": Signature(
                "posterior N(z_mean, exp(z_log_var)) of each input", {key: feature},
                {"z_mean": Tensor(tf.float32, (None, latent), "posterior means, batch x latent"),
                 "z_log_var": Tensor(tf.float32, (None, latent), "posterior log-variances, batch x latent")},
                encode, lambda rng: self._example(rng, 2)),
            "decode": Signature(
                decode_doc, {"z": Tensor(tf.float32, (None, latent), "latent vectors, n x latent"),
                             "temperature": TEMPERATURE, "seed": SEED}, generated, decode,
                lambda rng: {"z": rng.standard_normal((2, latent)).astype(np.float32),
                             "temperature": np.float32(0.8), "seed": SEED_VALUE}),
            "interpolate": Signature(
                "decodes of `steps` points on the line between the z means of a and b (melodies greedily)",
                {f"a_{key}": dataclasses.replace(single, doc=f"piece a: {single.doc}"),
                 f"b_{key}": dataclasses.replace(single, doc=f"piece b: {single.doc}"), "steps": STEPS},
                generated, interpolate,
                lambda rng: {f"a_{key}": self._example(rng, None)[key], f"b_{key}": self._example(rng, None)[key],
                             "steps": np.int32(3)}),
        }
        if melody:
            def continue_melody(inputs):
                tokens = model.continue_melody(inputs["prompt"], inputs["steps"], temperature=inputs["temperature"],
                                               seed=inputs["seed"])
                return {"tokens": tokens}

            signatures["continue_melody"] = Signature(
                "the prompt followed by `steps` new symbols (never PAD or '/')",
                {"prompt": Tensor(tf.int64, (None,), "prompt symbol ids (converter.encode_symbols)"),
                 "steps": _scalar(tf.int32, "how many symbols to add"), "temperature": TEMPERATURE, "seed": SEED},
                {"tokens": Tensor(tf.int64, (None,), "prompt + continuation symbol ids, P + steps")},
                continue_melody,
                lambda rng: {"prompt": self._example(rng, None)["tokens"][:5], "steps": np.int32(6),
                             "temperature": np.float32(0.8), "seed": SEED_VALUE})
        return signatures


# -- export ------------------------------------------------------------------------------------------------------------

def serving_module_class(family: str) -> type[ServingModule]:
    try:
        module_name, class_name = SERVING_MODULES[family].split(":")
    except KeyError:
        raise ExportError(f"no SavedModel export for model family {family!r} yet; exportable families: "
                          f"{sorted(SERVING_MODULES)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def make_serving_module(run, metadata: dict | None = None) -> ServingModule:
    """A `TrainedRun` -> its family's serving module (signatures traced on first `concrete_functions()`)."""
    return serving_module_class(run.preset.family)(run, metadata)


def _metadata(run, module: ServingModule, name: str, version: int, run_dir: str, weights: str) -> dict:
    from musicgen_tf import __version__

    return {"format": METADATA_FORMAT, "name": name, "version": int(version), "family": run.preset.family,
            "model_class": type(run.model).__name__, "representation": run.preset.representation,
            "converter": run.converter.get_config(), "preset": run.preset.to_json(),
            "model_config": run.model.get_config(), "schema": run.schema,
            "signatures": {k: v.to_json() for k, v in module.all_signatures().items()},
            "source": {"run_dir": os.path.abspath(os.path.expanduser(run_dir)), "weights": weights},
            "musicgen_tf_version": __version__}


def _read_models_config(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return re.findall(r'name:\s*"([^"]+)"\s*base_path:\s*"([^"]+)"', text)


def write_models_config(export_dir, name: str, serving_root: str = DEFAULT_SERVING_ROOT) -> Path:
    """Add or update `name` in `<export_dir>/models.config` (TF Serving's `--model_config_file` text proto).

    base_path is `<serving_root>/<name>`: the folder as the server sees it (`-v $PWD/models:/models`).
    """
    path = Path(export_dir) / MODELS_CONFIG
    entries = dict(_read_models_config(path))
    entries[name] = f"{serving_root.rstrip('/')}/{name}"
    blocks = [f'  config {{\n    name: "{model}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n  }}'
              for model, base in sorted(entries.items())]
    path.write_text("model_config_list {\n" + "\n".join(blocks) + "\n}\n", encoding="utf-8")
    return path


def export(run_dir: str, export_dir: str, name: str, version: int = 1, checkpoint: str | None = None,
           overwrite: bool = False, serving_root: str = DEFAULT_SERVING_ROOT) -> str:
    """Write `<export_dir>/<name>/<version>/` (SavedModel + assets.extra/musicgen.json) and update models.config.

    The version folder appears atomically (written beside it, then renamed), so a running TF Serving that watches
    `<export_dir>/<name>` never loads half a model.  Returns the version folder.
    """
    from musicgen_tf.train.run_dir import RunDir
    from musicgen_tf.train.trainer import load_trained_model

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ExportError(f"model name {name!r}: use letters, digits, '_', '-' or '.' (it becomes a URL part)")
    if int(version) < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    target = Path(os.path.expanduser(export_dir)) / name / str(int(version))
    if target.exists() and not overwrite:
        raise ExportError(f"{target} exists; pass a higher --version (TF Serving serves the highest) or --overwrite")
    run = load_trained_model(run_dir, checkpoint)
    weights = str(RunDir(run_dir).weights_path(checkpoint))
    module = make_serving_module(run)
    module.metadata_json = tf.constant(
        json.dumps(_metadata(run, module, name, version, run_dir, weights), indent=1), tf.string)
    functions = module.concrete_functions()

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # Serving never differentiates: leave out custom gradients (the fused LSTM's backward pass).
        tf.saved_model.save(module, str(staging), signatures=functions,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        (staging / METADATA_DIR).mkdir(exist_ok=True)
        (staging / METADATA_DIR / METADATA_FILE).write_text(module.metadata_json.numpy().decode("utf-8") + "\n",
                                                            encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_models_config(Path(os.path.expanduser(export_dir)), name, serving_root)
    return str(target)


def read_metadata(export_path) -> dict:
    """`<version folder>/assets.extra/musicgen.json` (also accepts the model folder: its highest version)."""
    path = Path(os.path.expanduser(os.fspath(export_path)))
    if not (path / "saved_model.pb").is_file():
        versions = sorted((int(p.name) for p in path.glob("*") if p.name.isdigit() and p.is_dir()), reverse=True)
        if not versions:
            raise FileNotFoundError(f"{path} is neither a SavedModel version folder nor a model folder with "
                                    "numbered versions (written by `musicgen export`)")
        path = path / str(versions[0])
    metadata = path / METADATA_DIR / METADATA_FILE
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata} not found: was {path} written by `musicgen export`?")
    return json.loads(metadata.read_text(encoding="utf-8"))


# -- check -------------------------------------------------------------------------------------------------------------

# Runs in a fresh interpreter: TensorFlow and numpy only, inputs and outputs as .npz (no pickle).
_RELOAD_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
export_path, inputs_path, outputs_path = sys.argv[1:4]
loaded = tf.saved_model.load(export_path)
grouped = {}
with np.load(inputs_path, allow_pickle=False) as inputs:
    for key in inputs.files:
        signature, name = key.split("/", 1)
        grouped.setdefault(signature, {})[name] = inputs[key]
results = {}
for signature, args in sorted(grouped.items()):
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in args.items()})
    for name, value in outputs.items():
        value = np.asarray(value.numpy())
        if value.dtype.kind in "OS":  # tf.string: bytes -> str (an .npz stores str without pickle)
            value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[str])(value)
        results[signature + "/" + name] = value
np.savez(outputs_path, **results)
print(json.dumps({"signatures": sorted(loaded.signatures.keys()),
                  "project_modules": sorted(m for m in sys.modules if m.split(".")[0] == "musicgen_tf")}))
"""


def _reload_in_subprocess(export_path: str, inputs: dict[str, np.ndarray], work: Path) -> tuple[dict, dict]:
    inputs_path, outputs_path = work / "inputs.npz", work / "outputs.npz"
    np.savez(inputs_path, **inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run([sys.executable, "-c", _RELOAD_SCRIPT, export_path, str(inputs_path), str(outputs_path)],
                            cwd=work, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise ExportError(f"reloading {export_path} in a fresh TensorFlow process failed:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    with np.load(outputs_path, allow_pickle=False) as outputs:
        return {key: outputs[key] for key in outputs.files}, report


def check(export_path: str, run_dir: str | None = None, checkpoint: str | None = None,
          tolerance: float = TOLERANCE) -> dict:
    """Run every signature of an export in a fresh TensorFlow-only process and compare with the Keras model.

    Inputs are fixed (seeded random valid windows, latent vectors and seeds), so every call is deterministic,
    sampling included.  run_dir / checkpoint default to the ones recorded in musicgen.json.  Returns
    `{"export", "signatures": {name: {"outputs": {name: {"shape", "dtype", "max_abs_diff"}}}}, "max_abs_diff"}`;
    raises ExportError naming the signature and output on a mismatch above `tolerance`.
    """
    from musicgen_tf.train.trainer import load_trained_model

    export_path = os.path.expanduser(export_path)
    metadata = read_metadata(export_path)
    run_dir = run_dir or metadata["source"]["run_dir"]
    run = load_trained_model(run_dir, checkpoint or metadata["source"]["weights"])
    module = make_serving_module(run)
    signatures = module.all_signatures()
    missing = sorted(set(metadata["signatures"]) ^ set(signatures))
    if missing:
        raise ExportError(f"{export_path} and the model of {run_dir} disagree on signatures {missing}")
    rng = np.random.default_rng(0)
    inputs = {name: signature.check_inputs(rng) for name, signature in signatures.items()}
    flat = {f"{name}/{key}": np.asarray(value) for name, args in inputs.items() for key, value in args.items()}
    with tempfile.TemporaryDirectory(prefix="musicgen-check-") as work:
        served, reload_report = _reload_in_subprocess(export_path, flat, Path(work))
    if reload_report["project_modules"]:
        raise ExportError(f"the reload imported project code {reload_report['project_modules']}: the export is "
                          "not self-contained")
    report = {"export": export_path, "run_dir": run_dir, "tolerance": tolerance, "signatures": {},
              "reloaded_signatures": reload_report["signatures"]}
    worst = 0.0
    for name, signature in signatures.items():
        expected = signature.fn({k: tf.constant(v) for k, v in inputs[name].items()})  # eager Keras model
        if name == CONFIG_SIGNATURE:
            expected = {"config_json": json.dumps(metadata)}
        outputs = {}
        for key in signature.outputs:
            got = served.get(f"{name}/{key}")
            if got is None:
                raise ExportError(f"signature {name!r} of {export_path} has no output {key!r}")
            if name == CONFIG_SIGNATURE:
                same = json.loads(str(got)) == json.loads(expected[key])
                diff = 0.0 if same else float("inf")
            else:
                want = np.asarray(expected[key])
                if got.shape != want.shape or got.dtype != want.dtype:
                    raise ExportError(f"signature {name!r} output {key!r}: SavedModel gives {got.dtype} "
                                      f"{list(got.shape)}, Keras {want.dtype} {list(want.shape)}")
                diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
            if not diff <= tolerance:
                raise ExportError(f"signature {name!r} output {key!r} differs from the Keras model by {diff:.3g} "
                                  f"(tolerance {tolerance:g}) in {export_path}")
            worst = max(worst, diff)
            outputs[key] = {"shape": list(got.shape), "dtype": str(got.dtype), "max_abs_diff": diff}
        report["signatures"][name] = {"outputs": outputs}
    report["max_abs_diff"] = worst
    return report

"""What the studio page does, without Streamlit: find exported models, call them, turn the results into files.

    found = discover("models/")                    -> Discovery(models=[ModelInfo], problems=[(folder, message)])
    model = open_model(found.models[0])            -> LocalModel (tf.saved_model.load, in-process)
    model = open_model(info, server="host:8501")   -> ServingClient (a running TF Serving, REST)
    results = generate(model, "sample", "out/", num=2, temperature=0.8, seed=1)
                                                   -> [Result(stem, files={"mid", "wav", "png"[, "musicxml"]}, svg)]

`LocalModel` has the `ServingClient` interface (`model`, `version`, `signatures()`, `predict()`, `config()`), so both
go through the same `client_generate` as `musicgen serve-client`: one path from signature outputs to MIDI, WAV,
piano roll and MusicXML.  It calls the SavedModel's signatures only (no project model classes are imported).

Every failure a user can cause (a folder that is not an export, a bad upload, a model without the wanted
signature, a server that is down) raises `StudioError` with a message in plain words; the page shows it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np

from musicgen_tf.errors import MusicgenError, SkipInput

METADATA_PATH = Path("assets.extra") / "musicgen.json"  # as serving.export (not imported: it imports Keras models)
CONFIG_SIGNATURE = "musicgen_config"
COMMANDS = {"sample": "sample", "continue": "continue_melody", "interpolate": "interpolate"}  # command -> signature


class StudioError(MusicgenError):
    """Something the studio cannot do, said in plain words for the page."""


# -- discovery ---------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One exported model: `<models_dir>/<name>/<version>/` with its musicgen.json (`metadata`)."""

    name: str
    version: int
    path: str
    metadata: dict

    @property
    def signatures(self) -> list[str]:
        return sorted(self.metadata.get("signatures", {}))

    @property
    def representation(self) -> str:
        return self.metadata.get("representation") or self.metadata.get("converter", {}).get("name", "?")

    @property
    def preset(self) -> str:
        return self.metadata.get("preset", {}).get("name", "?")

    @property
    def family(self) -> str:
        return self.metadata.get("family", "?")

    def can(self, command: str) -> bool:
        """Whether the model has the signature `command` ("sample", "continue", "interpolate") needs."""
        return COMMANDS[command] in self.metadata.get("signatures", {})

    def describe(self) -> str:
        return f"{self.family} · {self.representation} · preset {self.preset} · version {self.version}"


@dataclasses.dataclass(frozen=True)
class Discovery:
    models: list[ModelInfo]
    problems: list[tuple[str, str]]  # (folder, why it is not listed)


def _versions(folder: Path) -> list[int]:
    return sorted((int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), reverse=True)


def model_info(folder) -> ModelInfo:
    """`<models_dir>/<name>` (its highest version) or a version folder -> ModelInfo; StudioError if not an export."""
    folder = Path(os.path.expanduser(os.fspath(folder)))
    if not folder.is_dir():
        raise StudioError(f"{folder} is not a folder")
    if (folder / "saved_model.pb").is_file():
        path, name = folder, folder.parent.name
    else:
        versions = _versions(folder)
        with_model = [v for v in versions if (folder / str(v) / "saved_model.pb").is_file()]
        if not with_model:
            found = f" (versions {versions} have no saved_model.pb)" if versions else ""
            raise StudioError(f"{folder.name}: no SavedModel here{found}. The studio lists the folders "
                              "`musicgen export` writes: <models>/<name>/<version>/saved_model.pb")
        path, name = folder / str(with_model[0]), folder.name
    metadata_file = path / METADATA_PATH
    if not metadata_file.is_file():
        raise StudioError(f"{name}: {path} is a SavedModel but has no {METADATA_PATH}, so the studio cannot turn "
                          "its outputs into music; export it with `musicgen export`")
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise StudioError(f"{name}: {metadata_file} is not valid JSON ({error})") from None
    if "converter" not in metadata:
        raise StudioError(f"{name}: {metadata_file} has no converter config; re-export it with `musicgen export`")
    version = int(path.name) if path.name.isdigit() else int(metadata.get("version", 0))
    return ModelInfo(name=name, version=version, path=str(path), metadata=metadata)


def discover(models_dir) -> Discovery:
    """Every exported model under `models_dir` (sorted by name), and why other sub-folders were left out.

    Hidden folders (`musicgen export`'s staging folders start with '.') are ignored.  StudioError when
    `models_dir` itself does not exist.
    """
    root = Path(os.path.expanduser(os.fspath(models_dir)))
    if not root.is_dir():
        raise StudioError(f"models folder {root} does not exist: pass the --export-dir given to `musicgen export`")
    if (root / "saved_model.pb").is_file() or (root / METADATA_PATH).is_file() or _versions(root):
        folders = [root]  # pointed at one model (or one version) instead of the models folder
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    models, problems = [], []
    for folder in folders:
        try:
            models.append(model_info(folder))
        except StudioError as error:
            problems.append((folder.name, str(error)))
    return Discovery(models=models, problems=problems)


# -- calling a model ---------------------------------------------------------------------------------------------------

def _dtype_name(dtype) -> str:
    """tf.DType -> TF Serving's name ("DT_FLOAT", "DT_INT64"), as `ServingClient.signatures()` reports them."""
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(dtype.as_datatype_enum)


def _shape(spec) -> list[int] | None:
    if spec.shape.rank is None:
        return None
    return [-1 if d is None else int(d) for d in spec.shape.as_list()]


class LocalModel:
    """An exported SavedModel loaded in this process, with the `ServingClient` interface.

    Only TensorFlow is used: `tf.saved_model.load(path).signatures[name](**tensors)`.  Loading happens on first use.
    """

    def __init__(self, info: ModelInfo):
        self.info = info
        self.model, self.version, self.server = info.name, info.version, "in-process"
        self._loaded = None
        self._signatures = None

    def __repr__(self):
        return f"LocalModel({self.info.path!r})"

    def _load(self):
        if self._loaded is None:
            import tensorflow as tf

            try:
                self._loaded = tf.saved_model.load(self.info.path)
            except Exception as error:  # a corrupt or foreign SavedModel
                raise StudioError(f"could not load the SavedModel of {self.model} ({self.info.path}): "
                                  f"{_first_line(error)}") from None
        return self._loaded

    def signatures(self) -> dict:
        """{signature: {"inputs": {name: {"dtype": "DT_INT32", "shape": [...]}}, "outputs": {...}}}."""
        if self._signatures is None:
            result = {}
            for name, function in self._load().signatures.items():
                _, inputs = function.structured_input_signature
                result[name] = {
                    "inputs": {k: {"dtype": _dtype_name(s.dtype), "shape": _shape(s)} for k, s in inputs.items()},
                    "outputs": {k: {"dtype": _dtype_name(s.dtype), "shape": _shape(s)}
                                for k, s in function.structured_outputs.items()}}
            self._signatures = result
        return self._signatures

    def predict(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        """Run a signature on numpy inputs (cast to the signature's dtypes); numpy outputs."""
        import tensorflow as tf

        signatures = self.signatures()
        if signature not in signatures:
            raise StudioError(f"model {self.model} has no {signature!r} signature (it has {sorted(signatures)})")
        function = self._load().signatures[signature]
        _, specs = function.structured_input_signature
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise StudioError(f"model {self.model}: signature {signature!r} also needs inputs {missing}")
        try:
            tensors = {name: tf.constant(np.asarray(inputs[name]), dtype=spec.dtype) for name, spec in specs.items()}
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise StudioError(f"model {self.model} refused the inputs of {signature!r}: "
                              f"{_first_line(error)}") from None
        return {name: value.numpy() for name, value in outputs.items()}

    def config(self) -> dict:
        return self.info.metadata


def open_model(info: ModelInfo, server: str | None = None, timeout: float = 30.0):
    """The model to call: `LocalModel(info)`, or a REST `ServingClient` of TF Serving at `server` ("host:8501")."""
    if not server:
        return LocalModel(info)
    from musicgen_tf.serving.client import ServingClient

    return ServingClient(server, model=info.name, timeout=timeout, retries=1, backoff=0.25)


def _first_line(error: BaseException, limit: int = 400) -> str:
    text = str(error).strip() or type(error).__name__
    line = next((line for line in text.splitlines() if line.strip()), text)
    return line if len(line) <= limit else line[:limit] + "..."


# -- uploads -----------------------------------------------------------------------------------------------------------

def save_upload(data: bytes, filename: str, folder, converter_config: dict | None = None) -> str:
    """Write an uploaded MIDI file into `folder` after checking it is MIDI the model's converter can use.

    Returns the saved path.  StudioError names the upload and says what is wrong with it.
    """
    from musicgen_tf.music.midi_io import midi_bytes_to_note_sequence

    label = filename or "the upload"
    if not data:
        raise StudioError(f"{label} is empty")
    if not data.startswith(b"MThd"):
        raise StudioError(f"{label} is not a MIDI file (MIDI files start with 'MThd'); upload a .mid file")
    try:
        ns = midi_bytes_to_note_sequence(data, label)
    except SkipInput as error:
        raise StudioError(f"{label}: {error.reason}" + (f" ({error.detail})" if error.detail else "")) from None
    if converter_config is not None:
        from musicgen_tf.music.representations import converter_from_config

        converter = converter_from_config(converter_config)
        try:
            examples = converter.to_examples(ns)
        except SkipInput as error:
            raise StudioError(f"{label}: this model's {converter.name} representation cannot use it: "
                              f"{error.reason}") from None
        if not examples:
            raise StudioError(f"{label}: this model's {converter.name} representation found no usable window "
                              "in it (too short, or no notes in the model's range?)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(filename or "upload.mid").name) or "upload.mid"
    path = folder / safe
    path.write_bytes(data)
    return str(path)


# -- generating --------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Result:
    """One generated piece: its files ({"mid", "wav", "png"[, "musicxml"]}) and sheet music SVG (or why not)."""

    stem: str
    files: dict[str, str]
    svg: str | None = None
    sheet_note: str | None = None  # why there is no sheet music (drums, engraving failed)


@dataclasses.dataclass
class Generation:
    """A call's results plus what the page shows beside them."""

    command: str
    results: list[Result]
    seed: int | None = None
    text: str | None = None  # the continued melody in symbols ("60 _ _ 62 ...")


def generate(model, command: str, out_dir, *, num: int = 2, temperature: float = 1.0, seed: int | None = None,
             steps: int | None = None, midi_a: str | None = None, midi_b: str | None = None,
             prompt: str | None = None) -> Generation:
    """Call `model` (LocalModel or ServingClient) like `musicgen serve-client` and render every result.

    command: "sample" (num, temperature, seed), "continue" (prompt, steps, temperature, seed) or "interpolate"
    (midi_a, midi_b, steps).  Files go to `out_dir`; melodies also get a MusicXML file and an SVG score.
    """
    from musicgen_tf.serving.client import ServingError, client_generate

    if command not in COMMANDS:
        raise StudioError(f"unknown command {command!r}; use one of {sorted(COMMANDS)}")
    try:
        output = client_generate(model, command, str(out_dir), num=num, temperature=temperature, seed=seed,
                                 steps=steps, midi_a=midi_a, midi_b=midi_b, prompt=prompt)
    except StudioError:
        raise
    except ServingError as error:
        raise StudioError(_served_message(model, error)) from None
    except Exception as error:  # anything else: still a message, never a crash of the page
        raise StudioError(f"{command} with model {getattr(model, 'model', '?')} failed: "
                          f"{type(error).__name__}: {_first_line(error)}") from None
    results = []
    for files in output["files"]:
        result = Result(stem=Path(files["mid"]).stem, files=dict(files))
        if "musicxml" in files:
            result.svg, result.sheet_note = _sheet(files["musicxml"])
        else:
            result.sheet_note = "no sheet music for this representation (drums and grooves are shown as a piano roll)"
        results.append(result)
    return Generation(command=command, results=results, seed=output.get("seed"), text=output.get("text"))


def _sheet(musicxml_path: str) -> tuple[str | None, str | None]:
    from musicgen_tf.music.sheet import musicxml_to_svg

    try:
        return musicxml_to_svg(musicxml_path), None
    except Exception as error:  # engraving is a bonus: the MIDI, audio and piano roll are still shown
        return None, f"could not engrave the score: {_first_line(error)}"


def _served_message(model, error) -> str:
    text = str(error)
    server = getattr(model, "server", "?")
    if "cannot reach TF Serving" in text or "failed after" in text:
        return (f"TF Serving at {server} is not answering: is it running (`musicgen serve` or the tensorflow/serving "
                f"container) and is {server} its REST port (8501)? Details: {_first_line(error)}")
    return text

"""What the studio page does, without Streamlit: find exported models, call them, turn the results into files.

    found = discover("models/")                    -> Discovery(models=[ModelInfo], problems=[(folder, message)])
    model = open_model(found.models[0])            -> LocalModel (tf.saved_model.load, in-process)
    model = open_model(info, server="host:8501")   -> ServingClient (a running TF Serving, REST)
    results = generate(model, "sample", "out/", num=2, temperature=0.8, seed=1)
                                                   -> [Result(stem, files={"mid", "wav", "png"[, "musicxml"]}, svg)]
    generate(model, "reconstruct", "out/", upload="song.mid")   -> results "original" and "reconstruction"
    generate(txl, "continue_midi", "out/", upload="song.mid", prompt_bars=4, steps=4, top_k=8)
    generate(audio, "sample", "out/", num=2, label=1)    -> files {"wav", "waveform_png", "spectrogram_png"}

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
COMMANDS = ("sample", "continue", "interpolate", "reconstruct", "continue_midi")


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

    @property
    def is_txl(self) -> bool:
        """A Transformer-XL export (`generate` + `continue`: REMI tokens, lengths in bars)."""
        return {"generate", "continue"} <= set(self.signatures)

    @property
    def is_audio(self) -> bool:
        """An audio model (waveform converter): results are WAV clips, not MIDI."""
        return self.metadata.get("converter", {}).get("name") == "waveform"

    @property
    def labels(self) -> tuple[str, list[str]] | None:
        """(input name, vocabulary) of the `sample` signature's label input ("genre_id") when the data schema names
        the labels, else None."""
        inputs = self.metadata.get("signatures", {}).get("sample", {}).get("inputs", {})
        for name in inputs:
            if name.endswith("_id"):
                vocabulary = self.metadata.get("schema", {}).get("labels", {}).get(name[:-3], {}).get("vocabulary")
                if vocabulary:
                    return name, list(vocabulary)
        return None

    def can(self, command: str) -> bool:
        """Whether the model has the signatures `command` (one of COMMANDS) needs."""
        have = set(self.signatures)
        needs = {"sample": self.is_txl or "sample" in have, "continue": "continue_melody" in have,
                 "interpolate": "interpolate" in have, "continue_midi": self.is_txl,
                 "reconstruct": "reconstruct" in have if self.is_audio else {"encode", "decode"} <= have}
        return needs[command]

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
    """Write an uploaded MIDI file (a WAV file for an audio model's converter) into `folder` after checking the
    model's converter can use it.

    Returns the saved path.  StudioError names the upload and says what is wrong with it.
    """
    label = filename or "the upload"
    if not data:
        raise StudioError(f"{label} is empty")
    converter = None
    if converter_config is not None:
        from musicgen_tf.music.representations import converter_from_config

        converter = converter_from_config(converter_config)
    if converter is not None and converter.name == "waveform":
        _read_clip(data, label, converter)
    else:
        _check_midi(data, label, converter)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    default = "upload.wav" if converter is not None and converter.name == "waveform" else "upload.mid"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(filename or default).name) or default
    path = folder / safe
    path.write_bytes(data)
    return str(path)


def _check_midi(data: bytes, label: str, converter) -> None:
    from musicgen_tf.music.midi_io import midi_bytes_to_note_sequence

    if not data.startswith(b"MThd"):
        raise StudioError(f"{label} is not a MIDI file (MIDI files start with 'MThd'); upload a .mid file")
    try:
        ns = midi_bytes_to_note_sequence(data, label)
    except SkipInput as error:
        raise StudioError(f"{label}: {error.reason}" + (f" ({error.detail})" if error.detail else "")) from None
    if converter is not None:
        try:
            examples = converter.to_examples(ns)
        except SkipInput as error:
            raise StudioError(f"{label}: this model's {converter.name} representation cannot use it: "
                              f"{error.reason}") from None
        if not examples:
            raise StudioError(f"{label}: this model's {converter.name} representation found no usable window "
                              "in it (too short, or no notes in the model's range?)")


def _read_clip(data: bytes, label: str, converter) -> np.ndarray:
    """Audio file bytes -> the converter's first frame, float32 [frame_length] (mono, at its sample rate)."""
    import io

    import soundfile

    from musicgen_tf.music.converter import Waveform

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception:
        raise StudioError(f"{label} is not a readable audio file; upload a .wav file") from None
    try:
        examples = converter.to_examples(Waveform(samples.mean(axis=1), int(rate)), label)
    except SkipInput as error:
        raise StudioError(f"{label}: this model cannot use it: {error.reason}"
                          + (f" ({error.detail})" if error.detail else "")) from None
    return np.asarray(examples[0]["audio"], np.float32)


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
             prompt: str | None = None, top_k: int = 0, prompt_bars: int = 4, label: int | None = None,
             upload: str | None = None) -> Generation:
    """Call `model` (LocalModel or ServingClient) like `musicgen serve-client` and render every result.

    command: "sample" (num, temperature, seed; Transformer-XL: steps = bars, top_k; audio: label id or None),
    "continue" (prompt "60 _ 62", steps, temperature, seed), "interpolate" (midi_a, midi_b, steps),
    "continue_midi" (Transformer-XL: upload = MIDI prompt cut to its first `prompt_bars` bars, steps = new bars) or
    "reconstruct" (upload = MIDI file, or WAV for an audio model: its first window encoded and decoded greedily;
    results "original" and "reconstruction").  Files go to `out_dir`; melodies also get MusicXML and an SVG score.
    """
    from musicgen_tf.serving.client import ServingError, client_generate

    if command not in COMMANDS:
        raise StudioError(f"unknown command {command!r}; use one of {sorted(COMMANDS)}")
    try:
        kind = _kind(model)
        if command == "reconstruct":
            output = _reconstruct(model, out_dir, upload, label)
        elif kind == "txl" and command in ("sample", "continue_midi"):
            output = _txl(model, command, out_dir, num, temperature, seed, steps or 4, top_k, upload, prompt_bars)
        elif kind == "audio" and command == "sample":
            output = _audio_sample(model, out_dir, num, temperature, seed, label)
        elif command == "continue_midi":
            raise StudioError(f"model {getattr(model, 'model', '?')} is not a Transformer-XL export: it cannot "
                              "continue a MIDI file (no 'generate' and 'continue' signatures)")
        else:
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
        result = Result(stem=Path(files.get("mid") or files["wav"]).stem, files=dict(files))
        if "musicxml" in files:
            result.svg, result.sheet_note = _sheet(files["musicxml"])
        elif "mid" in files:
            result.sheet_note = "no sheet music for this representation (drums and grooves are shown as a piano roll)"
        results.append(result)
    return Generation(command=command, results=results, seed=output.get("seed"), text=output.get("text"))


# -- what client_generate does not cover: reconstruction, Transformer-XL with top-k and a cut prompt, audio by label

def _setup(model):
    """(musicgen.json, converter, signatures) of a model."""
    from musicgen_tf.music.representations import converter_from_config
    from musicgen_tf.serving.client import model_config

    config, _ = model_config(model)
    return config, converter_from_config(config["converter"]), model.signatures()


def _kind(model) -> str:
    """"txl", "audio" or "symbolic"."""
    signatures = model.signatures()
    if "generate" in signatures and "continue" in signatures:
        return "txl"
    info = getattr(model, "info", None)
    converter = info.metadata["converter"] if info is not None else _setup(model)[0]["converter"]
    return "audio" if converter.get("name") == "waveform" else "symbolic"


def _seed(seed: int | None) -> tuple[int, np.ndarray]:
    if seed is None:
        seed = int(np.random.default_rng().integers(0, 2 ** 31 - 1))
    return seed, np.array([seed, 0], np.int64)


def _label_inputs(signature: dict, count: int, label: int | None) -> dict:
    """Every `<label>_id` input of a signature: `label` (-1 = none / cycle) for each of `count` rows."""
    return {name: np.full([count], -1 if label is None else label, np.int64)
            for name in signature["inputs"] if name.endswith("_id")}


def _render(config: dict, pieces: list, stems: list[str], out_dir) -> list[dict]:
    from musicgen_tf.music import render
    from musicgen_tf.serving.client import MONOPHONIC

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    melody = config.get("representation", config["converter"].get("name")) in MONOPHONIC
    return [render.render_all(piece, out, stem, musicxml=melody) for piece, stem in zip(pieces, stems)]


def _write_clip(clip, sample_rate: int, out_dir, stem: str) -> dict:
    """A clip -> {"wav", "waveform_png", "spectrogram_png"}."""
    import soundfile

    from musicgen_tf.music import render

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip = np.clip(np.nan_to_num(np.asarray(clip, np.float32)), -1.0, 1.0)
    wav = out / f"{stem}.wav"
    soundfile.write(str(wav), clip, sample_rate, subtype="PCM_16")
    return {"wav": str(wav), "waveform_png": render.waveform_png(clip, sample_rate, out / f"{stem}.waveform.png", stem),
            "spectrogram_png": render.spectrogram_png(clip, sample_rate, out / f"{stem}.spectrogram.png", stem)}


def _reconstruct(model, out_dir, upload: str | None, label: int | None) -> dict:
    """The upload's first window -> encode -> z_mean -> decode (temperature 0) -> original and reconstruction."""
    from musicgen_tf.serving.client import _first_example, _rows

    if not upload:
        raise StudioError("reconstruct needs an uploaded file")
    config, converter, signatures = _setup(model)
    if converter.name == "waveform":
        clip = _read_clip(Path(upload).read_bytes(), Path(upload).name, converter)
        inputs = {"audio": clip[None], **_label_inputs(signatures["reconstruct"], 1, label)}
        audio = model.predict("reconstruct", inputs)["audio"][0]
        return {"files": [_write_clip(clip, converter.sample_rate, out_dir, "original"),
                          _write_clip(audio, converter.sample_rate, out_dir, "reconstruction")]}
    if not {"encode", "decode"} <= set(signatures):
        raise StudioError(f"model {getattr(model, 'model', '?')} cannot reconstruct (it needs 'encode' and 'decode' "
                          f"signatures; it has {sorted(signatures)})")
    example = _first_example(converter, upload)
    inputs = {name: np.asarray(example[name])[None] for name in signatures["encode"]["inputs"] if name in example}
    inputs.update(_label_inputs(signatures["encode"], 1, label))
    z = model.predict("encode", inputs)["z_mean"]
    decoded = model.predict("decode", {"z": z, "temperature": np.float32(0.0), "seed": np.zeros([2], np.int64),
                                       **_label_inputs(signatures["decode"], 1, label)})
    pieces = [converter.from_example(example), converter.render_output(_rows(decoded)[0])]
    return {"files": _render(config, pieces, ["original", "reconstruction"], out_dir)}


def _txl(model, command, out_dir, num, temperature, seed, bars, top_k, upload, prompt_bars) -> dict:
    """Transformer-XL: `generate` num pieces of `bars` bars, or `continue` the upload's first `prompt_bars` bars."""
    from musicgen_tf.serving.client import _first_example

    config, converter, _ = _setup(model)
    seed, seed_pair = _seed(seed)
    inputs = {"num": np.int32(num), "num_bars": np.int32(bars), "temperature": np.float32(temperature),
              "top_k": np.int32(top_k), "max_tokens": np.int32(4096), "seed": seed_pair}
    pieces, stems = [], []
    if command == "continue_midi":
        if not upload:
            raise StudioError("continue needs an uploaded MIDI file")
        prompt = converter.first_bars(_first_example(converter, upload)["tokens"], prompt_bars)
        inputs.update(num=np.int32(1), prompt_tokens=prompt)
        pieces, stems = [converter.from_example({"tokens": prompt})], ["prompt"]
    tokens = model.predict("generate" if command == "sample" else "continue", inputs)["tokens"]
    prefix = "sample" if command == "sample" else "continuation"
    pieces += [converter.from_example({"tokens": row}) for row in tokens]
    stems += [f"{prefix}-{index:02d}" for index in range(len(tokens))]
    return {"files": _render(config, pieces, stems, out_dir), "seed": seed}


def _audio_sample(model, out_dir, num, temperature, seed, label) -> dict:
    """An audio model's `sample` (label id, or None to cycle through the labels) -> WAV + waveform + spectrogram."""
    _, converter, signatures = _setup(model)
    seed, seed_pair = _seed(seed)
    inputs = {"num": np.int32(num), "temperature": np.float32(temperature), "seed": seed_pair,
              **_label_inputs(signatures["sample"], num, label)}
    clips = model.predict("sample", inputs)["audio"]
    return {"files": [_write_clip(clip, converter.sample_rate, out_dir, f"sample-{index:02d}")
                      for index, clip in enumerate(clips)], "seed": seed}


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

"""`musicgen client`: call a running TF Serving over REST or gRPC and turn the returned tokens into music.

    client = ServingClient("localhost:8501", model="groovae")              # REST (TF Serving's --rest_api_port)
    client = ServingClient("localhost:8500", model="groovae", grpc=True)   # gRPC (--port)
    client.signatures()                       -> {"sample": {"inputs": {...}, "outputs": {...}}, ...}
    client.predict("sample", {"num": 4, "temperature": 0.8, "seed": [1, 0]})  -> {"hits": float32 [4, 32, 9], ...}
    client_generate(client, "sample", "samples/", num=4, seed=1)          -> MIDI + WAV + PNG per piece

REST uses the "columnar" predict format: `POST /v1/models/<name>[/versions/<v>]:predict` with
`{"signature_name": ..., "inputs": {...}}`, answered by `{"outputs": {...}}` (or the bare value when the signature
has one output); signatures come from `GET /v1/models/<name>[/versions/<v>]/metadata`.  gRPC uses
`tensorflow_serving.apis` (`PredictionService.Predict`, `GetModelMetadata`).

Connection errors, timeouts and server errors (HTTP 5xx, gRPC UNAVAILABLE/INTERNAL/...) are retried `retries` times
with exponential backoff (`backoff`, 2 x backoff, ...); a wrong model name, signature or input raises
`ServingError` at once with TF Serving's own message and, when known, the signatures and inputs the model has.

Turning outputs into music needs the model's converter config.  TF Serving's metadata API only returns signature
definitions, so every export also serves its `musicgen.json` through the `musicgen_config` signature; pass
`export_dir` to read `<export_dir>/<model>/<version>/assets.extra/musicgen.json` locally instead.  No model code is
imported here: only converters (music representation) and rendering.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from musicgen_tf.errors import MusicgenError

CONFIG_SIGNATURE = "musicgen_config"  # as musicgen_tf.serving.export (not imported: it imports TensorFlow models)
DTYPES = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32, "DT_INT64": np.int64,
          "DT_INT16": np.int16, "DT_INT8": np.int8, "DT_UINT8": np.uint8, "DT_BOOL": np.bool_, "DT_STRING": object,
          "DT_HALF": np.float16}
RETRY_GRPC_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL", "UNKNOWN")
MONOPHONIC = ("melody", "melody_timeseries")  # representations whose results also get sheet music


class ServingError(MusicgenError):
    """TF Serving refused a request, or could not be reached after the retries."""


class _Retryable(Exception):
    """A failure worth another attempt (connection refused, timeout, 5xx)."""


def _tensor_spec(info: dict) -> dict:
    """A TensorInfo as JSON (REST metadata / MessageToDict) -> {"dtype": "DT_INT32", "shape": [-1, 32] or None}."""
    shape = info.get("tensor_shape", {})
    dims = None if shape.get("unknown_rank") else [int(d.get("size", -1)) for d in shape.get("dim", [])]
    return {"dtype": info.get("dtype", "DT_INVALID"), "shape": dims}


def _signature_map(signature_defs: dict) -> dict:
    """`signature_def` map as JSON -> {name: {"inputs": {name: spec}, "outputs": {name: spec}}} (predict ones)."""
    return {name: {"inputs": {k: _tensor_spec(v) for k, v in sig.get("inputs", {}).items()},
                   "outputs": {k: _tensor_spec(v) for k, v in sig.get("outputs", {}).items()}}
            for name, sig in signature_defs.items() if not name.startswith("__")}


def describe_inputs(signature: dict) -> str:
    """"num int32 [], seed int64 [2]" from a `signatures()` entry."""
    parts = []
    for name, spec in sorted(signature["inputs"].items()):
        dtype = DTYPES.get(spec["dtype"])
        dtype = spec["dtype"] if dtype is None else "string" if dtype is object else np.dtype(dtype).name
        shape = "?" if spec["shape"] is None else "[" + ", ".join("n" if d < 0 else str(d) for d in spec["shape"]) + "]"
        parts.append(f"{name} {dtype} {shape}")
    return ", ".join(parts)


def _cast(value, spec: dict | None):
    """Cast to the signature's dtype as TF Serving's JSON parser would (Python floats -> float32, ints -> int64...);
    a value the dtype cannot hold (1.5 for an int) is sent as is, so the server's own error comes back."""
    array = np.asarray(value)
    if spec is None or spec["dtype"] not in DTYPES or DTYPES[spec["dtype"]] is object:
        return array
    target = np.dtype(DTYPES[spec["dtype"]])
    if array.dtype == target:
        return array
    try:
        cast = array.astype(target)
    except (TypeError, ValueError):
        return array
    if array.dtype.kind == "f" and target.kind == "f":
        return cast
    if array.dtype.kind in "iufb" and np.array_equal(cast.astype(array.dtype), array):
        return cast
    return array


class ServingClient:
    """A TF Serving model: `signatures()`, `predict(signature, inputs)`, `config()` (the export's musicgen.json).

    server: "host:port" (REST 8501, gRPC 8500 by default in the tensorflow/serving image) or an http(s) URL;
    version: a model version, None = the latest the server has; timeout: seconds per attempt; retries: further
    attempts after a connection error or server error, waiting backoff * 2**attempt seconds in between.
    """

    def __init__(self, server: str = "localhost:8501", model: str = "musicgen", version: int | None = None,
                 grpc: bool = False, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5):
        self.server, self.model, self.version = server, model, version
        self.grpc, self.timeout, self.retries, self.backoff = grpc, float(timeout), int(retries), float(backoff)
        self._signatures = None
        self._stub = None
        if not grpc:
            self.base_url = server if server.startswith(("http://", "https://")) else f"http://{server}"
            self.base_url = self.base_url.rstrip("/")

    def __repr__(self):
        return (f"ServingClient({self.server!r}, model={self.model!r}, version={self.version}, "
                f"{'gRPC' if self.grpc else 'REST'})")

    @property
    def _model_url(self) -> str:
        version = f"/versions/{self.version}" if self.version is not None else ""
        return f"{self.base_url}/v1/models/{self.model}{version}"

    # -- retries ---------------------------------------------------------------------------------------------------

    def _with_retries(self, what: str, call):
        for attempt in range(self.retries + 1):
            try:
                return call()
            except _Retryable as error:
                if attempt == self.retries:
                    raise ServingError(f"{what} failed after {self.retries + 1} attempts: {error}") from None
                time.sleep(self.backoff * 2 ** attempt)

    # -- REST ------------------------------------------------------------------------------------------------------

    def _http(self, method: str, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                message = text
            if error.code >= 500:
                raise _Retryable(f"HTTP {error.code} from {url}: {message}") from None
            raise _HttpError(error.code, message) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise _Retryable(f"cannot reach TF Serving at {self.base_url} ({reason})") from None

    def _not_found(self, message: str) -> ServingError:
        return ServingError(f"TF Serving at {self.server} has no model {self.model!r}"
                            f"{'' if self.version is None else f' version {self.version}'} ({message}); "
                            "use a name from the server's models.config (`musicgen export --name`)")

    def _rest_metadata(self) -> dict:
        try:
            body = self._with_retries(f"GET {self._model_url}/metadata",
                                      lambda: self._http("GET", f"{self._model_url}/metadata"))
        except _HttpError as error:
            if error.code == 404:
                raise self._not_found(error.message) from None
            raise ServingError(f"metadata of model {self.model!r}: HTTP {error.code}: {error.message}") from None
        return _signature_map(body["metadata"]["signature_def"]["signature_def"])

    def _rest_predict(self, signature: str, inputs: dict) -> dict:
        body = {"signature_name": signature,
                "inputs": {k: v.tolist() if not isinstance(v, np.ndarray) or v.dtype != object
                           else [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
                           for k, v in inputs.items()}}
        url = f"{self._model_url}:predict"
        try:
            response = self._with_retries(f"POST {url}", lambda: self._http("POST", url, body))
        except _HttpError as error:
            raise self._explain(signature, inputs, error.code == 404, error.message) from None
        outputs = response["outputs"]
        if not isinstance(outputs, dict):  # TF Serving answers a single-output signature with the bare value
            (name,) = self.signatures()[signature]["outputs"]
            outputs = {name: outputs}
        return outputs

    # -- gRPC ------------------------------------------------------------------------------------------------------

    def _grpc_stub(self):
        if self._stub is None:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            self._channel = grpc.insecure_channel(self.server)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        return self._stub

    def _model_spec(self, spec, signature: str | None = None):
        spec.name = self.model
        if signature is not None:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = int(self.version)

    def _grpc_call(self, what: str, method: str, request):
        import grpc

        def call():
            try:
                return getattr(self._grpc_stub(), method)(request, timeout=self.timeout)
            except grpc.RpcError as error:
                if error.code().name in RETRY_GRPC_CODES:
                    raise _Retryable(f"{error.code().name} from {self.server}: {error.details()}") from None
                raise _GrpcError(error.code().name, error.details()) from None

        return self._with_retries(what, call)

    def _grpc_metadata(self) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        try:
            response = self._grpc_call("GetModelMetadata", "GetModelMetadata", request)
        except _GrpcError as error:
            if error.code == "NOT_FOUND":
                raise self._not_found(error.message) from None
            raise ServingError(f"metadata of model {self.model!r}: {error.code}: {error.message}") from None
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        as_json = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        return _signature_map(as_json.get("signature_def", {}))

    def _grpc_predict(self, signature: str, inputs: dict) -> dict:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, signature)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self._grpc_call(f"Predict {signature}", "Predict", request)
        except _GrpcError as error:
            raise self._explain(signature, inputs, error.code == "NOT_FOUND" and "signature" not in error.message,
                                error.message) from None
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    # -- public ----------------------------------------------------------------------------------------------------

    def signatures(self) -> dict:
        """{signature: {"inputs": {name: {"dtype": "DT_INT32", "shape": [...]}}, "outputs": {...}}} (cached)."""
        if self._signatures is None:
            self._signatures = self._grpc_metadata() if self.grpc else self._rest_metadata()
        return self._signatures

    def _explain(self, signature: str, inputs: dict, model_missing: bool, message: str) -> ServingError:
        """A refused predict -> the most useful error: unknown model, unknown signature, or bad inputs."""
        if model_missing:
            return self._not_found(message)
        try:
            signatures = self.signatures()
        except ServingError as error:
            return error
        if signature not in signatures:
            return ServingError(f"model {self.model!r} has no signature {signature!r}; it has "
                                f"{sorted(signatures)} ({message})")
        sent = ", ".join(f"{k} {np.asarray(v).dtype} {list(np.shape(v))}" for k, v in sorted(inputs.items()))
        return ServingError(f"TF Serving refused the inputs of {self.model}:{signature}: {message}\n"
                            f"  sent:     {sent}\n  expected: {describe_inputs(signatures[signature])}")

    def predict(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        """Run a signature; inputs are arrays or nested lists; returns numpy arrays in the signature's dtypes."""
        known = self._signatures.get(signature) if self._signatures is not None else None
        if self._signatures is not None and known is None:
            raise ServingError(f"model {self.model!r} has no signature {signature!r}; it has "
                               f"{sorted(self._signatures)}")
        if known is None and self.grpc:  # gRPC tensors carry their dtype: learn the expected ones first
            known = self.signatures().get(signature)
            if known is None:
                raise ServingError(f"model {self.model!r} has no signature {signature!r}; it has "
                                   f"{sorted(self.signatures())}")
        arrays = {name: _cast(value, known["inputs"].get(name) if known else None) for name, value in inputs.items()}
        outputs = self._grpc_predict(signature, arrays) if self.grpc else self._rest_predict(signature, arrays)
        specs = self.signatures()[signature]["outputs"] if not self.grpc else known["outputs"]
        result = {}
        for name, value in outputs.items():
            dtype = DTYPES.get(specs.get(name, {}).get("dtype"))
            result[name] = np.asarray(value, dtype=dtype) if dtype not in (None, object) else np.asarray(value)
        return result

    def config(self) -> dict:
        """The export's musicgen.json, served by its `musicgen_config` signature."""
        value = self.predict(CONFIG_SIGNATURE, {"unused": np.int32(0)})["config_json"]
        value = value.item() if isinstance(value, np.ndarray) else value
        return json.loads(value.decode("utf-8") if isinstance(value, bytes) else value)

    def close(self):
        if self._stub is not None:
            self._channel.close()
            self._stub = None


class _HttpError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"HTTP {code}: {message}")
        self.code, self.message = code, message


class _GrpcError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


# -- tokens -> music -----------------------------------------------------------------------------------------------

def local_config(export_dir: str, model: str, version: int | None = None) -> dict:
    """`<export_dir>/<model>/<version or highest>/assets.extra/musicgen.json`."""
    folder = Path(os.path.expanduser(export_dir)) / model
    if version is None:
        versions = sorted((int(p.name) for p in folder.glob("*") if p.name.isdigit()), reverse=True)
        if not versions:
            raise ServingError(f"{folder} has no numbered versions: is --export-dir the folder given to "
                               "`musicgen export --export-dir`?")
        version = versions[0]
    path = folder / str(version) / "assets.extra" / "musicgen.json"
    if not path.is_file():
        raise ServingError(f"{path} not found: is --export-dir the folder given to `musicgen export --export-dir`?")
    return json.loads(path.read_text(encoding="utf-8"))


def model_config(client: ServingClient, export_dir: str | None = None) -> tuple[dict, str]:
    """(musicgen.json, where it came from): `export_dir` when given, else the served `musicgen_config` signature."""
    if export_dir is not None:
        return local_config(export_dir, client.model, client.version), f"local file under {export_dir}"
    if CONFIG_SIGNATURE not in client.signatures():
        raise ServingError(f"model {client.model!r} does not serve its converter config (no {CONFIG_SIGNATURE!r} "
                           "signature): pass --export-dir, the folder `musicgen export` wrote")
    return client.config(), f"the server's {CONFIG_SIGNATURE!r} signature"


def _rows(outputs: dict) -> list[dict]:
    """Batched outputs {name: [n, ...]} -> one converter example per row."""
    count = len(next(iter(outputs.values())))
    return [{name: np.asarray(value)[i] for name, value in outputs.items()} for i in range(count)]


def _first_example(converter, midi_path: str) -> dict:
    from musicgen_tf.errors import SkipInput
    from musicgen_tf.music.midi_io import midi_file_to_note_sequence

    try:
        return converter.to_examples(midi_file_to_note_sequence(midi_path))[0]
    except SkipInput as error:
        raise ServingError(f"{midi_path}: the {converter.name} representation cannot use this file: "
                           f"{error.reason}") from None


def client_generate(client: ServingClient, command: str, out_dir: str, num: int = 4, temperature: float = 1.0,
                    seed: int | None = None, steps: int | None = None, midi_a: str | None = None,
                    midi_b: str | None = None, prompt: str | None = None, export_dir: str | None = None) -> dict:
    """Call the served model and write MIDI + WAV + PNG (+ MusicXML for melodies) per result.

    command: "sample" (num, temperature, seed), "interpolate" (midi_a, midi_b, steps; default 5) or "continue"
    (prompt "60 _ _ 62", steps; default 32, temperature, seed).  A Transformer-XL model (`generate`/`continue`
    signatures) takes `steps` as bars (default 4) and a MIDI file as `prompt`; an audio model's sample writes WAV +
    spectrogram PNG per clip.  seed None draws one (printed in the result).
    Returns {"files": [{"mid", "wav", "png"...}], "config_source": str, "seed": int | None, "text": str | None}.
    """
    from musicgen_tf.music import render
    from musicgen_tf.music.representations import converter_from_config

    config, source = model_config(client, export_dir)
    converter = converter_from_config(config["converter"])
    representation = config.get("representation", converter.name)
    signatures = client.signatures()
    if seed is None and command in ("sample", "continue"):
        seed = int(np.random.default_rng().integers(0, 2 ** 31 - 1))
    seed_pair = np.array([0 if seed is None else seed, 0], np.int64)
    text = None
    txl = "generate" in signatures and "continue" in signatures  # Transformer-XL: REMI tokens, steps = bars
    if txl and command in ("sample", "continue"):
        inputs = {"num": np.int32(num if command == "sample" else 1), "num_bars": np.int32(steps or 4),
                  "temperature": np.float32(temperature), "top_k": np.int32(0), "max_tokens": np.int32(4096),
                  "seed": seed_pair}
        if command == "continue":
            if not prompt:
                raise ServingError("continue with a Transformer-XL model needs --prompt, a MIDI file")
            inputs["prompt_tokens"] = _first_example(converter, prompt)["tokens"]
        tokens = client.predict("generate" if command == "sample" else "continue", inputs)["tokens"]
        pieces = [converter.from_example({"tokens": row}) for row in tokens]
    elif command == "sample" and "audio" in signatures.get("sample", {"outputs": {}})["outputs"]:
        return _write_audio(client, out_dir, converter, signatures, num, temperature, seed, seed_pair, source)
    elif command == "sample":
        inputs = {"num": np.int32(num), "temperature": np.float32(temperature), "seed": seed_pair}
        label = [name for name in signatures.get("sample", {"inputs": {}})["inputs"] if name.endswith("_id")]
        inputs.update({name: np.full([num], -1, np.int64) for name in label})  # conditioned models: no label
        pieces = [converter.render_output(row) for row in _rows(client.predict("sample", inputs))]
    elif command == "interpolate":
        if not (midi_a and midi_b):
            raise ServingError("interpolate needs two MIDI files (--a, --b)")
        a, b = _first_example(converter, midi_a), _first_example(converter, midi_b)
        inputs = {**{f"a_{k}": v for k, v in a.items()}, **{f"b_{k}": v for k, v in b.items()},
                  "steps": np.int32(steps or 5)}
        wanted = set(signatures.get("interpolate", {"inputs": {}})["inputs"])
        inputs = {k: v for k, v in inputs.items() if k in wanted or not wanted}
        pieces = [converter.render_output(row) for row in _rows(client.predict("interpolate", inputs))]
    elif command == "continue":
        if "continue_melody" not in signatures:
            raise ServingError(f"model {client.model!r} cannot continue melodies (no 'continue_melody' signature; "
                               f"it has {sorted(signatures)})")
        if not prompt or not hasattr(converter, "encode_symbols"):
            raise ServingError("continue needs --prompt, a melody in the model's symbols, e.g. \"60 _ _ 62 _ 64\"")
        try:
            prompt_ids = converter.encode_symbols(prompt)
        except ValueError as error:
            raise ServingError(f"--prompt: {error}") from None
        tokens = client.predict("continue_melody", {
            "prompt": prompt_ids, "steps": np.int32(steps or 32),
            "temperature": np.float32(temperature), "seed": seed_pair})["tokens"]
        text = converter.decode_symbols(tokens)
        pieces = [converter.from_example({"tokens": np.asarray(tokens)})]
    else:
        raise ServingError(f"unknown client command {command!r}; use sample, interpolate or continue")
    out = Path(os.path.expanduser(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    prefix = {"continue": "continuation"}.get(command, command)
    files = [render.render_all(piece, out, f"{prefix}-{index:02d}", musicxml=representation in MONOPHONIC)
             for index, piece in enumerate(pieces)]
    return {"files": files, "config_source": source, "seed": seed, "text": text}


def _write_audio(client, out_dir, converter, signatures, num, temperature, seed, seed_pair, source) -> dict:
    """An audio model's `sample` (-1 label ids: cycle through the genres) -> WAV + spectrogram PNG per clip."""
    import soundfile

    from musicgen_tf.music import render

    inputs = {"num": np.int32(num), "temperature": np.float32(temperature), "seed": seed_pair}
    inputs.update({name: np.full([num], -1, np.int64) for name in signatures["sample"]["inputs"]
                   if name.endswith("_id")})
    out = Path(os.path.expanduser(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for index, clip in enumerate(client.predict("sample", inputs)["audio"]):
        clip = np.clip(np.nan_to_num(np.asarray(clip, np.float32)), -1.0, 1.0)
        wav, stem = out / f"sample-{index:02d}.wav", f"sample-{index:02d}"
        soundfile.write(str(wav), clip, converter.sample_rate, subtype="PCM_16")
        files.append({"wav": str(wav), "spectrogram_png": render.spectrogram_png(
            clip, converter.sample_rate, out / f"{stem}.spectrogram.png", stem)})
    return {"files": files, "config_source": source, "seed": seed, "text": None}

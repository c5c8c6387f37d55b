"""The serving client against local test doubles of TF Serving (REST on http.server, gRPC on grpcio).

The doubles load the exported SavedModels with TensorFlow only and speak TF Serving's protocols: REST columnar
predict (`{"signature_name", "inputs"}` -> `{"outputs"}`, a bare value for one output), `GET .../metadata` with the
signature_def map, 404 for an unknown model, 400 with the TensorFlow error for bad inputs; gRPC `Predict` and
`GetModelMetadata`.  The real server cannot be installed here.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from concurrent import futures

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.python.saved_model import loader_impl

from musicgen_tf.serving.client import ServingClient, ServingError, client_generate
from musicgen_tf.serving.commands import add_client_arguments, run_client
from tests import serving

pytestmark = pytest.mark.slow

_TF_DTYPES = {"DT_FLOAT": tf.float32, "DT_INT32": tf.int32, "DT_INT64": tf.int64, "DT_STRING": tf.string}


class _Model:
    """One loaded SavedModel version: signature functions + the signature_def map as TF Serving's JSON."""

    def __init__(self, path):
        self.loaded = tf.saved_model.load(path)
        meta_graph = loader_impl.parse_saved_model(path).meta_graphs[0]
        self.signature_def = {name: json_format.MessageToDict(sig, preserving_proto_field_name=True)
                              for name, sig in meta_graph.signature_def.items()}
        self.proto = meta_graph.signature_def

    def predict(self, signature, inputs):
        """inputs: {name: tf.Tensor} -> {name: numpy}; raises ValueError(TF's message) like TF Serving's 400."""
        if signature not in self.loaded.signatures:
            raise KeyError(f'Serving signature name: "{signature}" not found in signature def')
        expected = set(self.signature_def[signature].get("inputs", {}))
        if set(inputs) != expected:
            raise ValueError(f"input size does not match signature: {len(inputs)}!={len(expected)} len({{"
                             f"{','.join(sorted(inputs))}}}) != len({{{','.join(sorted(expected))}}})")
        outputs = self.loaded.signatures[signature](**inputs)
        return {name: np.asarray(value.numpy()) for name, value in outputs.items()}


class FakeTFServing:
    """REST double on 127.0.0.1: `fail_next` requests answer 503 first (a restarting server)."""

    def __init__(self, models: dict[str, str]):
        self.models = {name: _Model(path) for name, path in models.items()}
        self.fail_next, self.requests = 0, 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _servable(self, suffix):
                """(name, model) the request addresses, or None once a 503 (warming up) or 404 is sent."""
                if self._failing():
                    return None
                match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/(\d+))?" + suffix, self.path)
                name = match.group(1) if match else None
                if name not in fake.models:
                    self._send(404, {"error": f"Servable not found for request: Latest({name})"})
                    return None
                return name, fake.models[name]

            def _failing(self):
                fake.requests += 1
                if fake.fail_next > 0:
                    fake.fail_next -= 1
                    self._send(503, {"error": "Servable not available yet (warming up)"})
                    return True
                return False

            def do_GET(self):
                servable = self._servable("/metadata")
                if servable is None:
                    return
                name, model = servable
                self._send(200, {"model_spec": {"name": name, "signature_name": "", "version": "1"},
                                 "metadata": {"signature_def": {"signature_def": model.signature_def}}})

            def do_POST(self):
                servable = self._servable(":predict")
                if servable is None:
                    return
                _, model = servable
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                signature = body.get("signature_name", "serving_default")
                try:
                    specs = model.signature_def[signature]["inputs"]
                except KeyError:
                    return self._send(400, {"error": f'Serving signature name: "{signature}" not found in '
                                                     "signature def"})
                try:
                    inputs = {k: tf.constant(v, _TF_DTYPES[specs[k]["dtype"]]) if k in specs else tf.constant(v)
                              for k, v in body["inputs"].items()}
                    outputs = model.predict(signature, inputs)
                except (ValueError, TypeError, KeyError, tf.errors.OpError) as error:
                    return self._send(400, {"error": str(error).strip()[:2000]})
                jsonable = {k: (np.char.decode(v.astype(bytes)) if v.dtype.kind in "OS" else v).tolist()
                            for k, v in outputs.items()}
                if len(jsonable) == 1:
                    jsonable = next(iter(jsonable.values()))
                self._send(200, {"outputs": jsonable})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeGrpcServing:
    """gRPC double: PredictionService.Predict and GetModelMetadata over the same loaded models."""

    def __init__(self, models: dict[str, _Model]):
        import grpc
        from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def _model(self, request, context):
                model = models.get(request.model_spec.name)
                if model is None:
                    context.abort(grpc.StatusCode.NOT_FOUND,
                                  f"Servable not found for request: Latest({request.model_spec.name})")
                return model

            def Predict(self, request, context):
                model = self._model(request, context)
                inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
                try:
                    outputs = model.predict(request.model_spec.signature_name or "serving_default", inputs)
                except (ValueError, TypeError, KeyError, tf.errors.OpError) as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).strip()[:2000])
                response = predict_pb2.PredictResponse()
                for name, value in outputs.items():
                    response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
                return response

            def GetModelMetadata(self, request, context):
                model = self._model(request, context)
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                for name, sig in model.proto.items():
                    signature_map.signature_def[name].CopyFrom(sig)
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                response.model_spec.name = request.model_spec.name
                response.metadata["signature_def"].Pack(signature_map)
                return response

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def close(self):
        self.server.stop(0)


@pytest.fixture(scope="module")
def served():
    exports = {kind.replace("_", "-"): serving.exported(kind)[1] for kind in ("melody", "beta_melody")}
    rest = FakeTFServing(exports)
    grpc_server = FakeGrpcServing(rest.models)
    yield rest, grpc_server, exports
    rest.close()
    grpc_server.close()


def _client(server, model="melody", **kwargs):
    return ServingClient(server.address, model=model, timeout=60, backoff=0.01, **kwargs)


def test_sample_with_a_seed_is_reproducible_and_matches_the_savedmodel(served):
    rest, grpc_server, exports = served
    client = _client(rest)
    inputs = {"num": 3, "temperature": 0.8, "seed": [5, 0]}  # plain Python values: cast to the signature dtypes
    first, second = client.predict("sample", inputs)["tokens"], client.predict("sample", inputs)["tokens"]
    assert first.dtype == np.int32 and first.shape == (3, 32)
    np.testing.assert_array_equal(first, second)
    direct = tf.saved_model.load(exports["melody"]).signatures["sample"](
        num=tf.constant(3), temperature=tf.constant(0.8), seed=tf.constant([5, 0], tf.int64))["tokens"].numpy()
    np.testing.assert_array_equal(first, direct)
    other = client.predict("sample", {**inputs, "seed": [6, 0]})["tokens"]
    assert not np.array_equal(first, other)
    over_grpc = _client(grpc_server, grpc=True)
    np.testing.assert_array_equal(over_grpc.predict("sample", inputs)["tokens"], first)
    over_grpc.close()


def test_signatures_and_config_come_from_the_server(served):
    rest, _, _ = served
    client = _client(rest, model="beta-melody")
    signatures = client.signatures()
    assert set(signatures) == {"sample", "encode", "decode", "interpolate", "continue_melody", "musicgen_config"}
    assert signatures["continue_melody"]["inputs"]["prompt"] == {"dtype": "DT_INT64", "shape": [-1]}
    assert signatures["sample"]["inputs"]["seed"] == {"dtype": "DT_INT64", "shape": [2]}
    config = client.config()
    assert config["converter"]["name"] == "melody_timeseries" and config["preset"]["name"] == "beta_vae_melody"


@pytest.mark.parametrize("grpc", [False, True])
def test_wrong_model_name_is_a_clear_error(served, grpc):
    server = served[1] if grpc else served[0]
    with pytest.raises(ServingError, match=r"has no model 'melodyy'.*models\.config"):
        _client(server, model="melodyy", grpc=grpc).predict("sample", {"num": 1, "temperature": 1.0, "seed": [1, 0]})


@pytest.mark.parametrize("grpc", [False, True])
def test_wrong_signature_lists_the_available_ones(served, grpc):
    server = served[1] if grpc else served[0]
    with pytest.raises(ServingError, match=r"no signature 'smaple'; it has \['decode', 'encode', 'interpolate', "
                                           r"'musicgen_config', 'sample'\]"):
        _client(server, grpc=grpc).predict("smaple", {"num": 1})


def test_wrong_shape_passes_on_the_server_message(served):
    rest, _, _ = served
    client = _client(rest)
    with pytest.raises(ServingError) as error:
        client.predict("encode", {"tokens": np.zeros([2, 5], np.int64)})  # the model reads 32-step windows
    message = str(error.value)
    assert "refused the inputs of melody:encode" in message
    assert "sent:     tokens int64 [2, 5]" in message and "expected: tokens int64 [n, 32]" in message
    with pytest.raises(ServingError, match="refused the inputs of melody:sample"):
        client.predict("sample", {"num": 1.5, "temperature": 1.0, "seed": [1, 0]})  # not an int32


def test_a_server_that_fails_twice_is_retried(served):
    rest, _, _ = served
    client = _client(rest, retries=3)
    client.signatures()  # metadata cached: only the predict call is counted below
    before = rest.requests
    rest.fail_next = 2
    tokens = client.predict("sample", {"num": 1, "temperature": 1.0, "seed": [1, 0]})["tokens"]
    assert tokens.shape == (1, 32)
    assert rest.requests - before == 3  # two 503s, then the answer
    rest.fail_next = 10
    with pytest.raises(ServingError, match="failed after 2 attempts.*HTTP 503"):
        _client(rest, retries=1).predict("sample", {"num": 1, "temperature": 1.0, "seed": [1, 0]})
    rest.fail_next = 0
    with pytest.raises(ServingError, match="failed after 2 attempts: cannot reach TF Serving"):
        ServingClient("127.0.0.1:9", model="melody", retries=1, backoff=0.01, timeout=2).signatures()


def test_client_generate_writes_music(served, tmp_path):
    rest, _, exports = served
    client = _client(rest)
    result = client_generate(client, "sample", str(tmp_path / "s"), num=2, temperature=0.7, seed=3)
    assert "musicgen_config" in result["config_source"]
    assert len(result["files"]) == 2 and all((tmp_path / "s" / f"sample-0{i}.{ext}").is_file()
                                             for i in range(2) for ext in ("mid", "wav", "png"))
    export_dir = str(tmp_path.parent / "unused")
    local = client_generate(client, "sample", str(tmp_path / "l"), num=2, temperature=0.7, seed=3,
                            export_dir=serving.exported("melody")[0])
    assert local["config_source"].startswith("local file")
    assert (tmp_path / "l" / "sample-00.mid").read_bytes() == (tmp_path / "s" / "sample-00.mid").read_bytes()
    with pytest.raises(ServingError, match="no numbered versions"):
        client_generate(client, "sample", str(tmp_path / "x"), export_dir=export_dir)
    midis = sorted(serving.corpus("melodies").glob("*.mid"))[:2]
    path = client_generate(client, "interpolate", str(tmp_path / "i"), midi_a=str(midis[0]), midi_b=str(midis[1]),
                           steps=3)
    assert len(path["files"]) == 3
    with pytest.raises(ServingError, match="cannot continue melodies"):
        client_generate(client, "continue", str(tmp_path / "c"), prompt="60 _ 62")


def test_cli_client_continues_a_melody(served, tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    args = parser.parse_args(["--server", served[0].address, "--model", "beta-melody", "continue", "--prompt",
                              "60 _ _ 62 _ 64", "--steps", "8", "--seed", "2", "--out", str(tmp_path / "c")])
    assert run_client(args) == 0
    out = capsys.readouterr().out
    assert "musicgen_config" in out and (tmp_path / "c" / "continuation-00.mid").is_file()
    symbols = out.splitlines()[1].split()
    assert symbols[:6] == ["60", "_", "_", "62", "_", "64"] and len(symbols) == 14

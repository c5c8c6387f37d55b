"""`musicgen preprocess` on Beam's PortableRunner: Beam's own job server and an external worker pool on localhost
ports, the set-up a Flink/Spark/Dataflow job uses, minus the cluster.  Its examples and manifest must equal a
DirectRunner run's (shard order aside)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from musicgen_tf.cli import main
from musicgen_tf.train.distributed import free_ports
from tests import fixtures

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
RUN_SPECIFIC = ("created", "seconds", "input")  # the manifest's fields that differ from run to run


def _start(module, args, log):
    # The worker pool starts `python` from PATH for every SDK worker: this interpreter's folder comes first.
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_listener(port, servers, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(server.poll() is not None for server in servers):
            raise AssertionError("a Beam server exited at start-up")
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on localhost:{port} after {timeout} s")


@pytest.fixture
def portable_servers(tmp_path):
    """(job endpoint, worker pool endpoint); both servers are killed at the end, whatever happens."""
    job_port, pool_port = free_ports(2)
    log = open(tmp_path / "servers.log", "w")
    servers = [_start("apache_beam.runners.portability.local_job_service_main",
                      [f"--port={job_port}", f"--staging_dir={tmp_path / 'staging'}"], log),
               _start("apache_beam.runners.worker.worker_pool_main", [f"--service_port={pool_port}"], log)]
    try:
        for port in (job_port, pool_port):
            _wait_for_listener(port, servers)
        yield f"localhost:{job_port}", f"localhost:{pool_port}"
    finally:
        for server in servers:
            server.kill()
            server.wait()
        log.close()


def _examples(folder: Path) -> dict[str, list[bytes]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {split: sorted(record.numpy() for shard in info["shards"]
                          for record in tf.data.TFRecordDataset(str(folder / shard)))
            for split, info in manifest["splits"].items()}


def _manifest(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {key: value for key, value in manifest.items() if key not in RUN_SPECIFIC}


def test_portable_runner_matches_direct_runner(tmp_path, portable_servers):
    job_endpoint, pool_endpoint = portable_servers
    corpus = fixtures.make_groove(tmp_path / "groove")
    direct, portable = tmp_path / "direct", tmp_path / "portable"
    common = ["preprocess", "--dataset", "groove", "--input", str(corpus), "--num-shards", "2"]
    assert main(common + ["--output", str(direct)]) == 0
    code = main(common + ["--output", str(portable), "--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
                          "--environment_type=EXTERNAL", f"--environment_config={pool_endpoint}"])
    assert code == 0, (tmp_path / "servers.log").read_text()[-3000:]
    assert _manifest(portable) == _manifest(direct)
    examples = _examples(direct)
    assert sum(len(records) for records in examples.values()) > 0
    assert _examples(portable) == examples

"""`musicgen studio` as a process: its default models folder, and SIGTERM stopping the Streamlit server."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicgen_tf.studio import launch

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has stopped


def test_default_models_folder_is_the_demos_when_it_exists(tmp_path, monkeypatch):
    parser = launch.add_studio_arguments(argparse.ArgumentParser())
    monkeypatch.chdir(tmp_path)
    command = launch.studio_command(parser.parse_args([]))
    assert command[command.index("--models") + 1] == str(tmp_path / "models")
    (tmp_path / "demo_out" / "models").mkdir(parents=True)
    command = launch.studio_command(parser.parse_args([]))
    assert command[command.index("--models") + 1] == str(tmp_path / "demo_out" / "models")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc (Linux)")
def test_sigterm_stops_the_streamlit_server(tmp_path):
    (tmp_path / "demo_out" / "models").mkdir(parents=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    studio = subprocess.Popen([sys.executable, "-m", "musicgen_tf.cli", "studio", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not port_in_use(port):
            assert studio.poll() is None, studio.stdout.read()
            assert time.time() < deadline, "the studio did not start listening"
            time.sleep(0.5)
        servers = children(studio.pid)
        assert servers and all(alive(pid) for pid in servers)
        studio.send_signal(signal.SIGTERM)
        assert studio.wait(timeout=30) == 0
        output = studio.stdout.read()
        assert "demo_out/models" in output
        deadline = time.time() + 10
        while any(alive(pid) for pid in servers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in servers), "the Streamlit server outlived `musicgen studio`"
        assert not port_in_use(port)
    finally:
        if studio.poll() is None:
            studio.kill()

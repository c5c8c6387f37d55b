"""`musicgen studio`: start the Streamlit page (`app.py`) on the exported models.

    musicgen studio --models models/                         models in-process (tf.saved_model.load)
    musicgen studio --models models/ --server localhost:8501 the same models through a running TF Serving (REST)

Runs `python -m streamlit run app.py --server.port P --server.address A --server.headless true -- --models ...`
and waits until it is stopped: Ctrl-C, SIGTERM (`kill`, a service manager) or SIGHUP stop the Streamlit server too,
so it never outlives the command holding its port.  Without `--models`: `demo_out/models` (what `make demo`
exports) when it exists, else `models`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")
DEFAULT_PORT = 8502  # not 8501: that is TF Serving's REST port, often running beside the studio
DEMO_MODELS = os.path.join("demo_out", "models")
DEFAULT_MODELS = "models"


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM/SIGHUP handler."""


def default_models_dir() -> str:
    """`demo_out/models` when `make demo` left one here, else `models`."""
    return DEMO_MODELS if os.path.isdir(DEMO_MODELS) else DEFAULT_MODELS


def add_studio_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--models", default=None,
                        help="folder written by `musicgen export --export-dir` (<name>/<version>/saved_model.pb); "
                             f"default {DEMO_MODELS} when it exists, else {DEFAULT_MODELS}")
    parser.add_argument("--server", default=None,
                        help="call a running TF Serving at host:port (REST, e.g. localhost:8501) instead of "
                             "loading the models in-process")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the studio page")
    parser.add_argument("--address", default="localhost",
                        help="address the page listens on (0.0.0.0 to reach it from other machines)")
    return parser


def studio_command(args) -> list[str]:
    """The streamlit command line `run_studio` runs (also used by the browser test)."""
    command = [sys.executable, "-m", "streamlit", "run", str(APP),
               "--server.port", str(args.port), "--server.address", args.address, "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
               "--client.toolbarMode", "minimal", "--theme.base", "light",
               "--", "--models", os.path.abspath(os.path.expanduser(args.models or default_models_dir()))]
    if args.server:
        command += ["--server", args.server]
    return command


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_studio(args) -> int:
    args.models = args.models or default_models_dir()
    models = Path(os.path.expanduser(args.models))
    if not models.is_dir():
        print(f"error: models folder {models} does not exist; export a model first "
              "(`musicgen export --run-dir RUN --export-dir models --name NAME`)", file=sys.stderr)
        return 2
    where = f"TF Serving at {args.server}" if args.server else "in-process"
    print(f"musicgen studio: http://{args.address}:{args.port}  (models from {models}, {where}; Ctrl-C stops it)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    process = None
    try:
        process = subprocess.Popen(studio_command(args), env=env)
        return process.wait()
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        if process is not None:
            stop_process(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

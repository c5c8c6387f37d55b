"""A newcomer's terminal: no library chatter that looks like a failure, real errors still shown."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHATTER_MARKS = ("E0000", "WARNING", "RuntimeWarning", "I0000", "W0000")


def run(args, **kwargs):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(Path.home())}
    done = subprocess.run([sys.executable, *args], capture_output=True, env=env, cwd=ROOT, **kwargs)
    done.raw_stderr = done.stderr
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode().replace("\r", "\n")
    return done


def chatter(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(mark in line for mark in CHATTER_MARKS)]


def test_filter_drops_library_chatter_and_keeps_errors():
    script = textwrap.dedent("""
        import os, sys
        from musicgen_tf import quiet
        quiet.configure()
        quiet.install_stderr_filter()
        lines = [
            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
            "I0000 00:00:1796341449.700487   14521 port.cc:153] oneDNN custom operations are on.",
            "W0000 00:00:1796341449.700487   14521 some.cc:1] a C++ warning",
            "E0000 00:00:1796341630.207971   14521 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
            "WARNING:root:apitools not found, and bigquery client libraries are not available",
            "WARNING:apache_beam.options.pipeline_options:Discarding unparseable args: ['--pipeline_type_check']",
            "INFO:__main__:Logging handler created.",
            "/x/pydub/utils.py:170: RuntimeWarning: Couldn't find ffmpeg or avconv - defaulting to ffmpeg",
            "E0000 00:00:1796341630.207971   14521 kernel.cc:9] a real C++ error",
            "ERROR:apache_beam.runners:a real Beam error",
            "musicgen preprocess: error: a real error of ours",
        ]
        for line in lines:
            os.write(2, (line + "\\n").encode())
        print("progress\\r50%\\r100%", file=sys.stderr)
        import logging
        logging.getLogger().warning("apitools not found, again")
        raise SystemExit("exit message")
    """)
    done = run(["-c", script])
    assert done.returncode == 1
    kept = done.stderr.splitlines()
    assert kept[:3] == ["E0000 00:00:1796341630.207971   14521 kernel.cc:9] a real C++ error",
                        "ERROR:apache_beam.runners:a real Beam error", "musicgen preprocess: error: a real error of ours"]
    assert b"progress\r50%\r100%" in done.raw_stderr  # tqdm's carriage returns pass as they are
    assert kept[-1] == "exit message"
    assert "apitools" not in done.stderr and "cuInit" not in done.stderr and "ffmpeg" not in done.stderr


def test_help_is_quiet():
    done = run(["-m", "musicgen_tf.cli", "--help"])
    assert done.returncode == 0 and "preprocess" in done.stdout
    assert chatter(done.stdout + done.stderr) == []


@pytest.mark.slow
def test_tiny_preprocess_with_workers_is_quiet(tmp_path):
    done = run(["-m", "musicgen_tf.cli", "preprocess", "--dataset", "music21-essen", "--output", str(tmp_path / "r"),
                "--limit", "4", "--workers", "2"], timeout=600)
    assert done.returncode == 0, done.stderr
    assert "4 read" in done.stdout
    assert chatter(done.stdout + done.stderr) == []
    assert not (tmp_path / "r" / "_progress").exists()


def test_chatter_after_an_unfinished_progress_line_is_dropped():
    script = ("import os\nfrom musicgen_tf import quiet\nquiet.install_stderr_filter()\n"
              "os.write(2, b'\\rfiles: 10%|#')\n"
              "os.write(2, b'WARNING:root:apitools not found, and bigquery\\n')\n"
              "os.write(2, b'\\rfiles: 20%|##\\n')\n")
    done = run(["-c", script])
    assert done.raw_stderr == b"\rfiles: 10%|#\rfiles: 20%|##\n"

"""Quiet start-up for the `musicgen` command: known library chatter is dropped, everything else passes.

Why a filter on file descriptor 2: TensorFlow 2.21's C++ code logs through absl before anyone can configure it
(`TF_CPP_MIN_LOG_LEVEL` no longer reaches those lines), and Beam's DirectRunner workers are child processes whose
Python logging we do not configure; both write straight to fd 2.  `configure()` (called once by `musicgen_tf.cli`
at import, before TensorFlow or Beam is imported) sets what can be set in Python and in the environment children
inherit; `install_stderr_filter()` (only when `musicgen` runs as a program) puts a pipe behind fd 2 whose reader
thread forwards every line except those matching `CHATTER`: absl/TF INFO and WARNING lines (unless the user set
TF_CPP_MIN_LOG_LEVEL below 2), the `cuInit` failure of a machine without a GPU, oneDNN's int32 fallback notice, Beam's INFO/WARNING start-up lines,
"apitools not found" and pydub's missing-ffmpeg warning.  ERROR lines, tracebacks and our own output pass.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
import warnings

_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
_DROP_CPP_INFO = _LEVEL is None or _LEVEL.strip() not in ("0", "1")

_ALWAYS = [
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"E\d{4} [\d:. ]+\d+ \S+:\d+\] failed call to cuInit",  # no GPU on this machine: not an error for us
    r"E\d{4} [\d:. ]+\d+ \S+:\d+\] oneDNN supports DT_INT32 only on platforms with AVX-512",  # a fallback notice
    r"(INFO|WARNING):(__main__|root|apache_beam[\w.]*):",  # Beam's driver and DirectRunner workers
    r".*pydub[/\\]utils\.py:\d+: RuntimeWarning: Couldn't find ffmpeg",
    r"\s+warn\(\"Couldn't find ffmpeg or avconv",
]
_CPP_INFO = [
    r"[IW]\d{4} [\d:. ]+\d+ \S+:\d+\] ",  # absl C++ INFO / WARNING
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] ",  # older TF C++ format
]
_PATTERNS = "|".join(_ALWAYS + (_CPP_INFO if _DROP_CPP_INFO else []))
CHATTER = re.compile(f"^(?:{_PATTERNS})")
_CHATTER_AFTER_FRAGMENT = re.compile(f"(?:{_PATTERNS})")  # a progress bar's unfinished line, then chatter

_configured = False
_filter: _StderrFilter | None = None


class _DropApitools(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


def configure() -> None:
    """Environment (inherited by child processes) and Python-side settings; idempotent."""
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ignore_pydub = "ignore::RuntimeWarning:pydub.utils"
    existing = os.environ.get("PYTHONWARNINGS")
    if ignore_pydub not in (existing or ""):
        os.environ["PYTHONWARNINGS"] = f"{existing},{ignore_pydub}" if existing else ignore_pydub
    warnings.filterwarnings("ignore", message="Couldn.t find ffmpeg", category=RuntimeWarning)
    logging.getLogger().addFilter(_DropApitools())  # logged on the root logger when Beam's GCP IO is imported
    logging.getLogger("apache_beam").setLevel(logging.ERROR)


class _StderrFilter:
    """fd 2 -> pipe -> thread -> the real stderr, minus CHATTER lines (a line ends at '\\n' or '\\r')."""

    def __init__(self):
        sys.stderr.flush()
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._pump, name="stderr-filter", daemon=True)
        self.thread.start()

    def _forward(self, segment: bytes) -> None:
        text = segment.decode("utf-8", "replace")
        if CHATTER.match(text):
            return
        found = _CHATTER_AFTER_FRAGMENT.search(text)
        if found:  # e.g. tqdm's "\rfiles: 10%|..." (no line end yet) followed by a worker's warning line
            segment = text[:found.start()].encode("utf-8")
        os.write(self.real, segment)

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            parts = re.split(rb"(?<=[\r\n])", pending)
            pending = parts.pop()
            for segment in parts:
                self._forward(segment)
        if pending:
            self._forward(pending)
        os.close(self.read_end)

    def close(self) -> None:
        """Give fd 2 back to the real stderr; the thread drains what is left in the pipe."""
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.real, 2)  # closes our write end of the pipe
        self.thread.join(timeout=2.0)


def install_stderr_filter() -> None:
    """Filter fd 2 for the rest of the process (and the children it starts); undone at exit."""
    global _filter
    if _filter is not None:
        return
    try:
        _filter = _StderrFilter()
    except OSError:  # no fd 2 (a detached process): nothing to filter
        return
    atexit.register(_filter.close)


__all__ = ["configure", "install_stderr_filter", "CHATTER"]

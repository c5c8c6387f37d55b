"""A files-done progress bar for a Beam job whose workers are other processes on this machine.

Workers append one byte per source to a file in the (local) output folder; the driver polls its size into tqdm.
Only for local output folders: on a remote runner (Dataflow) the bar is off and the job's own UI shows progress.
"""

from __future__ import annotations

import os
import threading


def mark_done(item, path: str | None):
    """Beam Map function: count `item` in the progress file, pass it on unchanged."""
    if path:
        with open(path, "ab") as handle:
            handle.write(b".")
    return item


class FileProgress:
    """Context manager: a tqdm bar of `total` files fed by the size of `path` (None: no bar)."""

    def __init__(self, path: str | None, total: int, desc: str = "files"):
        self.path, self.total, self.desc = path, total, desc
        self._stop = threading.Event()
        self._thread = None

    @staticmethod
    def local_path(output_dir: str, runner_args: list[str]) -> str | None:
        """The progress file for a local folder and an in-process/local runner, else None."""
        remote = "://" in output_dir or any(a.startswith("--runner") and "direct" not in a.lower()
                                             for a in runner_args)
        return None if remote else os.path.join(output_dir, "_progress")

    def __enter__(self):
        if self.path:
            open(self.path, "wb").close()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        from tqdm import tqdm

        with tqdm(total=self.total, desc=self.desc, unit="file", leave=False) as bar:
            while True:
                stopped = self._stop.wait(0.5)
                done = min(os.path.getsize(self.path), self.total) if os.path.exists(self.path) else 0
                bar.update(done - bar.n)
                if stopped:
                    break

    def __exit__(self, *exc):
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=5)
            if os.path.exists(self.path):
                os.remove(self.path)
        return False

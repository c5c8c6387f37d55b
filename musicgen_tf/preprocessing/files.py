"""Corpus files wherever they live: a local folder, or any URI an Apache Beam filesystem reads (gs://, s3://, ...).

On a cluster the launcher lists `--input` and the workers open its files, so both go through Beam's `FileSystems`
when the input has a scheme; local folders keep pathlib.  Readers see only root strings, relative keys and bytes,
so a corpus gives the same keys, splits and examples wherever it is stored.  Object stores have no folders: a
"folder" there is a prefix with at least one file under it.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from musicgen_tf.errors import LayoutError

_GLOB_CHARACTERS = "*?["


def is_uri(path: str) -> bool:
    """True for `scheme://...` inputs, which Beam's filesystems read; False for local paths."""
    return FileSystems.get_scheme(path) is not None


def require_dir(path: str | os.PathLike | None, expected: str) -> str:
    """The input root as a normalized string; `LayoutError` naming `expected` when it is missing or no folder."""
    if path is None:
        raise LayoutError(f"--input is required; expected {expected}")
    path = os.fspath(path)
    if not is_uri(path):
        root = str(Path(os.path.expanduser(path)))
    else:
        root = absolute(path)
        if any(c in root for c in _GLOB_CHARACTERS):  # Beam's match has no quoting for these
            raise LayoutError(f"input {root} contains one of {_GLOB_CHARACTERS!r}, which Beam's filesystems read "
                              f"as a pattern; rename the folder; expected {expected}")
    if not is_dir(root):
        raise LayoutError(f"input folder {root} does not exist or is not a folder; expected {expected}")
    return root


def absolute(path: str) -> str:
    """An absolute local path, or the URI without a trailing slash (what listings and the manifest use)."""
    return path.rstrip("/") if is_uri(path) else os.path.abspath(os.path.expanduser(path))


def join(root: str, *parts: str) -> str:
    return FileSystems.join(root, *parts) if is_uri(root) else os.path.join(root, *parts)


def is_file(path: str) -> bool:
    return FileSystems.exists(path) if is_uri(path) else os.path.isfile(path)


def is_dir(path: str) -> bool:
    """A local folder, or a URI prefix holding at least one file (object stores have no empty folders)."""
    if not is_uri(path):
        return os.path.isdir(path)
    return bool(FileSystems.match([_everything_under(path)], limits=[1])[0].metadata_list)


def list_files(root: str, suffixes: tuple[str, ...]) -> list[str]:
    """Relative keys (`a/b.mid`) of every file under `root` whose suffix (case-insensitive) is in `suffixes`.

    Sorted by path components, the order pathlib gives, so local and remote listings agree.
    """
    if is_uri(root):
        prefix = root + "/"
        keys = [m.path[len(prefix):] for m in FileSystems.match([_everything_under(root)])[0].metadata_list
                if m.path.startswith(prefix) and not m.path.endswith("/")]
    else:
        base = Path(root)
        keys = [p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()]
    return sorted((k for k in keys if PurePosixPath(k).suffix.lower() in suffixes), key=lambda k: k.split("/"))


def read_bytes(path: str) -> bytes:
    """The whole file (corpus files are small: one song, one tunebook, one 30 s clip)."""
    if not is_uri(path):
        return Path(path).read_bytes()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def read_text(path: str, encoding: str = "utf-8") -> str:
    return read_bytes(path).decode(encoding)


def version(path: str) -> int | None:
    """Local files: the modification time, so caches see edits.  URIs: None (a corpus does not change mid-job, and
    asking an object store for it per tune would cost one request each)."""
    return None if is_uri(path) else Path(path).stat().st_mtime_ns


def _everything_under(root: str) -> str:
    return posixpath.join(root, "**")

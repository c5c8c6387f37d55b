"""Name the damaged shard when a TFRecord read fails.

TensorFlow's reader reports only `corrupted record at <byte>` (or `truncated record at <byte>`), naming no file, and
tf.data cannot catch errors inside a pipeline.  So reads run under `naming_damaged_shards(files)`: when a
`DataLossError` comes out, the shards are scanned one by one (only then: a healthy run pays nothing) and the error
is replaced by one that names the file, the record number and the byte offset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re

import tensorflow as tf

from musicgen_tf.errors import MusicgenError


class CorruptShardError(MusicgenError):
    """A TFRecord shard is truncated or corrupt; the message names the file and the record."""


@dataclasses.dataclass(frozen=True)
class DamagedRecord:
    path: str
    record: int  # 0-based index of the first unreadable record (= records read before it)
    offset: int | None  # byte offset TensorFlow reports, when it does
    reason: str  # "truncated record" / "corrupted record" / TensorFlow's text

    def message(self) -> str:
        where = f"record {self.record}" + (f" (byte {self.offset})" if self.offset is not None else "")
        return (f"{self.path}: {self.reason} at {where}; {self.record} records before it are readable. The shard "
                "is damaged (a copy cut short, or a disk error): rerun `musicgen preprocess` with --overwrite, "
                "or copy the file again")


def find_damaged_record(files: list[str]) -> DamagedRecord | None:
    """Read every record of every file (CRC-checked); the first failure, or None when all files are whole."""
    for path in files:
        count = 0
        try:
            for _ in tf.data.TFRecordDataset(path):
                count += 1
        except tf.errors.DataLossError as error:
            text = error.message or str(error)
            match = re.search(r"(truncated record|corrupted record)\D*(\d+)", text)
            reason, offset = (match.group(1), int(match.group(2))) if match else (text.strip()[:200], None)
            return DamagedRecord(os.fspath(path), count, offset, reason)
    return None


@contextlib.contextmanager
def naming_damaged_shards(files: list[str]):
    """Turn a `DataLossError` raised while reading `files` into a `CorruptShardError` that names the shard."""
    try:
        yield
    except tf.errors.DataLossError as error:
        damaged = find_damaged_record(files)
        if damaged is None:  # not one of these files: let the original through
            raise
        raise CorruptShardError(damaged.message()) from error

"""`--input` on a Beam filesystem: a corpus read through a URI gives exactly the records and manifest of the same
corpus read from a local folder.

`objstore://<local path>` is a tiny Beam filesystem registered here (Beam finds `FileSystem` subclasses by scheme):
the folder seen as an object store like gs:// or s3:// -- files only, `exists` false for folders, prefix listing.
"""

import json
import os
import posixpath

import pytest
import tensorflow as tf
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem

from musicgen_tf.cli import main
from musicgen_tf.errors import LayoutError
from musicgen_tf.preprocessing import files
from musicgen_tf.preprocessing.readers import get_reader
from tests import fixtures

SCHEME = "objstore"
GTZAN_PARAMS = ["--param", "sample_rate=4000", "--param", "frame_length=4000", "--param", "hop_length=4000",
                "--param", "max_frames_per_clip=1"]


def _local(uri: str) -> str:
    assert uri.startswith(f"{SCHEME}://"), uri
    return uri[len(SCHEME) + 3:]


class ObjectStoreFileSystem(LocalFileSystem):
    """Reads `objstore:///tmp/x/a.mid` from `/tmp/x/a.mid`, with an object store's semantics."""

    @classmethod
    def scheme(cls):
        return SCHEME

    def has_dirs(self):
        return False

    def join(self, basepath, *paths):
        return posixpath.join(basepath, *paths)

    def exists(self, path):
        return os.path.isfile(_local(path))

    def _list(self, prefix):
        local = _local(prefix)
        for folder, _, names in os.walk(local if local.endswith("/") else os.path.dirname(local)):
            for name in names:
                path = os.path.join(folder, name)
                if path.startswith(local):
                    yield FileMetadata(f"{SCHEME}://{path}", os.path.getsize(path), os.path.getmtime(path))

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        return super().open(_local(path), mime_type, compression_type)


def _records(output) -> dict[str, list[bytes]]:
    """Every serialized example per split, sorted (shard assignment may vary between runs)."""
    return {split: sorted(r.numpy() for shard in sorted(output.glob(f"{split}-*.tfrecord"))
                          for r in tf.data.TFRecordDataset(str(shard)))
            for split in ("train", "validation", "test")}


def _comparable(manifest: dict) -> dict:
    """The manifest without what differs between any two runs (time, input location, file paths)."""
    skipped = [{k: v for k, v in record.items() if k != "path"} for record in manifest["skipped"]]
    return {**{k: v for k, v in manifest.items() if k not in ("created", "seconds", "input", "skipped")},
            "skipped": skipped}


def _preprocess(dataset: str, input_path: str, output, extra: list[str]) -> dict:
    assert main(["preprocess", "--dataset", dataset, "--input", input_path, "--output", str(output),
                 "--num-shards", "2", *extra]) == 0
    return json.loads((output / "manifest.json").read_text())


CORPORA = {  # dataset: (fixture builder, CLI flags, (converted, skipped) expected)
    "groove": (fixtures.make_groove, [], (4, 1)),
    "midi-dir": (fixtures.write_bad_midis, ["--representation", "pitch_histogram"], (1, 6)),
    "esac": (fixtures.make_esac, ["--representation", "pitch_histogram"], (4, 2)),
    "gtzan": (fixtures.make_gtzan, GTZAN_PARAMS, (7, 2)),
    "pop1k7": (fixtures.make_pop1k7, ["--representation", "pitch_histogram"], (4, 0)),
}


@pytest.mark.parametrize("dataset", sorted(CORPORA))
def test_uri_input_gives_the_local_runs_records_and_manifest(dataset, tmp_path):
    build, extra, (converted, skipped) = CORPORA[dataset]
    root = tmp_path / "corpus"
    build(root)
    if dataset == "midi-dir":  # a good song among the broken ones
        fixtures.write_midi(root / "ok" / "song.mid", fixtures.melody_notes(2))
    local = _preprocess(dataset, str(root), tmp_path / "local", extra)
    remote = _preprocess(dataset, f"{SCHEME}://{root}/", tmp_path / "remote", extra)
    assert (local["files"]["converted"], local["files"]["skipped"]) == (converted, skipped)
    assert _comparable(remote) == _comparable(local)
    assert remote["input"] == f"{SCHEME}://{root}" and local["input"] == str(root)
    for run, prefix in ((local, f"{root}/"), (remote, f"{SCHEME}://{root}/")):
        assert all(r["path"].startswith(prefix) and r["path"].endswith(r["key"].split("#")[0])
                   for r in run["skipped"])
    assert _records(tmp_path / "remote") == _records(tmp_path / "local")
    assert sum(map(len, _records(tmp_path / "local").values())) > 0


def test_listing_keys_and_splits_match_and_layout_errors_name_the_layout(tmp_path):
    root = fixtures.make_groove(tmp_path / "groove")
    uri = f"{SCHEME}://{root}"
    local, remote = get_reader("groove").list_sources(str(root)), get_reader("groove").list_sources(uri)
    assert [(s.key, s.split, s.features) for s in remote] == [(s.key, s.split, s.features) for s in local]
    assert files.read_bytes(remote[0].path) == (root / remote[0].key).read_bytes()
    (root / "info.csv").unlink()
    with pytest.raises(LayoutError, match=f"{uri}/info.csv not found; expected the Groove MIDI Dataset"):
        get_reader("groove").list_sources(uri)
    with pytest.raises(LayoutError, match=f"input folder {uri}/missing does not exist.*expected a folder"):
        get_reader("midi-dir").list_sources(f"{uri}/missing")
    (root / "docs").mkdir()
    (root / "docs" / "README.txt").write_text("no songs here")
    with pytest.raises(LayoutError, match=f"no .mid/.midi files under {uri}/docs;"):
        get_reader("midi-dir").list_sources(f"{uri}/docs/")


def test_listing_order_is_pathlibs_so_limit_reads_the_same_files(tmp_path):
    for name in ("a-c.mid", "a/b.mid", "A.MID", "a/notes.txt"):
        fixtures.write_midi(tmp_path / name, fixtures.melody_notes(1))
    local = [s.key for s in get_reader("midi-dir").list_sources(str(tmp_path))]
    remote = [s.key for s in get_reader("midi-dir").list_sources(f"{SCHEME}://{tmp_path}")]
    assert local == remote == ["A.MID", "a/b.mid", "a-c.mid"]  # by path component, not by string
    with pytest.raises(LayoutError, match="as a pattern"):
        get_reader("midi-dir").list_sources(f"{SCHEME}://{tmp_path}/[draft]")

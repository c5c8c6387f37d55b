"""The Beam pipeline end to end on fixture corpora: shards per split, manifest, dead letters, tf.data reading."""

import json

import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.errors import MusicgenError, SchemaMismatchError
from musicgen_tf.music.representations import get_converter
from musicgen_tf.preprocessing.pipeline import run_preprocess
from musicgen_tf.preprocessing.readers import get_reader
from musicgen_tf.tfrecords.dataset import EmptyDatasetError, example_to_numpy, make_dataset
from musicgen_tf.tfrecords.schema import SOURCE_KEY
from tests import fixtures

WAVEFORM = {"sample_rate": 4000, "frame_length": 4000, "hop_length": 4000, "max_frames_per_clip": 1,
            "res_type": "soxr_hq"}


@pytest.fixture(scope="module")
def gtzan_run(tmp_path_factory):
    root = fixtures.make_gtzan(tmp_path_factory.mktemp("gtzan"))
    output = tmp_path_factory.mktemp("gtzan_records")
    manifest = run_preprocess(get_reader("gtzan"), get_converter("waveform", **WAVEFORM), str(output),
                              input_dir=str(root), num_shards=2)
    return output, manifest


def test_manifest_counts_every_file_and_reason(gtzan_run):
    output, manifest = gtzan_run
    assert manifest == json.loads((output / "manifest.json").read_text())
    assert manifest["files"] == {"listed": 9, "read": 9, "converted": 7, "skipped": 2}
    assert manifest["skip_reasons"] == {"silent audio": 1, "unreadable audio": 1}
    assert {r["key"] for r in manifest["skipped"]} == {"jazz/jazz.00053.wav", "jazz/jazz.00054.wav"}
    assert all(r["path"].endswith(r["key"]) and r["detail"] for r in manifest["skipped"])
    assert sum(s["examples"] for s in manifest["splits"].values()) == 7
    assert len(manifest["splits"]["train"]["shards"]) == 2
    assert manifest["representation"] == {"name": "waveform", "schema_version": 1, "params": WAVEFORM}
    assert manifest["labels"] == {"genre": {"dtype": "bytes", "vocabulary": ["jazz", "rock"]}}
    assert manifest["stats"]["example_stats"]["length"]["mean"] == 4000
    assert sum(manifest["stats"]["duration_histogram"]["counts"]) == 7


def test_records_decode_back_to_the_converted_audio(gtzan_run):
    output, manifest = gtzan_run
    converter = get_converter("waveform", **WAVEFORM)
    records = [r.numpy() for shard in output.glob("*.tfrecord") for r in tf.data.TFRecordDataset(str(shard))]
    assert len(records) == 7
    reader = get_reader("gtzan")
    by_key = {s.key: s for s in reader.list_sources(manifest["input"])}
    for record in records:
        key = tf.train.Example.FromString(record).features.feature[SOURCE_KEY].bytes_list.value[0].decode()
        expected = converter.to_examples(reader.load(by_key[key]))[0]["audio"]
        np.testing.assert_array_equal(example_to_numpy(record, converter.feature_spec())["audio"], expected)


def test_make_dataset_batches_with_shapes_dtypes_and_label_ids(gtzan_run):
    output, manifest = gtzan_run
    split = max(manifest["splits"], key=lambda s: manifest["splits"][s]["examples"])
    ds = make_dataset(str(output), split=split, batch_size=3, representation="waveform", params=WAVEFORM,
                      labels=("genre",), shuffle=False)
    batch = next(iter(ds))
    assert batch["audio"].shape == (3, 4000) and batch["audio"].dtype == tf.float32
    assert batch["genre_id"].dtype == tf.int64 and set(batch["genre_id"].numpy()) <= {0, 1}
    total = sum(int(b["audio"].shape[0]) for b in ds)
    assert total == manifest["splits"][split]["examples"]
    assert SOURCE_KEY in batch
    training = make_dataset(str(output), split=split, batch_size=3, with_source_key=False)
    assert SOURCE_KEY not in next(iter(training))  # strings cannot enter an XLA-compiled train step


def test_make_dataset_refuses_mismatches_and_explains_empty_splits(gtzan_run):
    output, manifest = gtzan_run
    with pytest.raises(SchemaMismatchError, match="'remi'"):
        make_dataset(str(output), representation="remi")
    with pytest.raises(SchemaMismatchError, match="sample_rate: stored 4000 != wanted 3000"):
        make_dataset(str(output), params={"sample_rate": 3000})
    empty = [s for s, info in manifest["splits"].items() if info["examples"] == 0]
    if empty:
        with pytest.raises(EmptyDatasetError, match="0 examples .* 2 skipped .*silent audio"):
            make_dataset(str(output), split=empty[0])
    with pytest.raises(ValueError, match="labels \\['style'\\]"):
        make_dataset(str(output), labels=("style",))


def test_rerun_needs_overwrite_and_kinds_must_match(gtzan_run, tmp_path):
    output, manifest = gtzan_run
    with pytest.raises(MusicgenError, match="--overwrite"):
        run_preprocess(get_reader("gtzan"), get_converter("waveform", **WAVEFORM), str(output),
                       input_dir=manifest["input"])
    with pytest.raises(MusicgenError, match="needs note_sequence inputs"):
        run_preprocess(get_reader("gtzan"), get_converter("pitch_histogram"), str(tmp_path),
                       input_dir=manifest["input"])


@pytest.mark.slow
def test_midi_dir_bad_inputs_are_recorded_with_reasons(tmp_path):
    root = tmp_path / "midi"
    expected = fixtures.write_bad_midis(root)
    fixtures.write_midi(root / "ok" / "song.mid", fixtures.melody_notes(2))
    fixtures.write_midi(root / "ok" / "seven_eight.mid", fixtures.melody_notes(2), time_signatures=((7, 8, 0.0),))
    expected["empty.mid"] = "no notes"
    manifest = run_preprocess(get_reader("midi-dir"), get_converter("pitch_histogram"), str(tmp_path / "out"),
                              input_dir=str(root), num_shards=1, pipeline_args=["--direct_num_workers=2",
                                                                                "--direct_running_mode=multi_processing"])
    assert {r["key"]: r["reason"] for r in manifest["skipped"]} == expected
    assert manifest["files"]["converted"] == 2
    assert manifest["stats"]["notes"] == 16
    assert manifest["stats"]["pitch_histogram"][60] == 2


@pytest.mark.slow
def test_manifest_counts_which_parser_read_each_esac_file(tmp_path):
    root = fixtures.make_esac(tmp_path / "esac")
    manifest = run_preprocess(get_reader("esac"), get_converter("pitch_histogram"), str(tmp_path / "out"),
                              input_dir=str(root), num_shards=1)
    # tunes 1-2 by symusic, tune 4 (K:H) by music21 after symusic refused it, the kern song by music21
    assert manifest["files"]["parsed_with"] == {"symusic": 2, "music21 fallback": 1, "music21": 1}
    assert manifest["files"]["converted"] == 4
